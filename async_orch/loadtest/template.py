"""Jobs of a load test: one process, folders round-robin, inputs from a template (pure).

In the inputs template, ``{n}`` (the job's number, from 0) and ``{folder}`` are
replaced in every string value; a value that is exactly ``"{n}"`` becomes the
number itself. ``{"customer": "C{n}", "n": "{n}"}`` gives job 7
``{"customer": "C7", "n": 7}``. Every job gets the Reference ``PREFIX-n``, so the
jobs of one run can be found in Orchestrator (and are never started twice).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from async_orch._errors import ConfigurationError
from async_orch._jobs import JobRequest

__all__ = ["JobTemplate", "render_inputs"]


def render_inputs(template: Any, *, n: int, folder: str) -> Any:
    """Replace ``{n}`` and ``{folder}`` in every string of a JSON-like value."""
    if isinstance(template, str):
        if template == "{n}":
            return n
        return template.replace("{n}", str(n)).replace("{folder}", folder)
    if isinstance(template, Mapping):
        return {str(k): render_inputs(v, n=n, folder=folder) for k, v in template.items()}
    if isinstance(template, list | tuple):
        return [render_inputs(v, n=n, folder=folder) for v in template]
    return template


_PLACEHOLDER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")
_KNOWN = {"{n}", "{folder}"}


def _unknown_placeholder(template: Any) -> str | None:
    """The first ``{name}`` in the template's strings that is not a placeholder
    (``{nope}``, ``{N}``): it would be sent as it is, most likely a typo."""
    if isinstance(template, str):
        return next((m for m in _PLACEHOLDER.findall(template) if m not in _KNOWN), None)
    if isinstance(template, Mapping):
        template = list(template.values())
    if isinstance(template, list | tuple):
        for item in template:
            if (found := _unknown_placeholder(item)) is not None:
                return found
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class JobTemplate:
    """What each job of a load test is: process, folders, inputs, Reference prefix."""

    process: str
    folders: Sequence[str]
    inputs: Mapping[str, Any] | None = None
    reference_prefix: str = "loadtest"
    timeout: float | None = None

    def __post_init__(self) -> None:
        if not self.process:
            raise ConfigurationError("a load test needs a process: --process NAME")
        if not self.folders:
            raise ConfigurationError("a load test needs at least one folder: --folder PATH")
        if len(self.reference_prefix) > 100:
            raise ConfigurationError("the Reference prefix must be at most 100 characters")
        unknown = _unknown_placeholder(self.inputs)
        if unknown is not None:
            raise ConfigurationError(
                f"the inputs template holds {unknown}, which is not a placeholder: only {{n}} "
                "and {folder} are replaced; fix its name (or reword it if it is meant as text)"
            )

    def folder(self, n: int) -> str:
        return self.folders[n % len(self.folders)]

    def reference(self, n: int) -> str:
        return f"{self.reference_prefix}-{n}"

    def request(self, n: int) -> JobRequest:
        """The n-th job's request."""
        folder = self.folder(n)
        inputs = None if self.inputs is None else render_inputs(self.inputs, n=n, folder=folder)
        return JobRequest(
            process=self.process,
            folder=folder,
            inputs=inputs,
            reference=self.reference(n),
            timeout=self.timeout,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "process": self.process,
            "folders": list(self.folders),
            "inputs": None if self.inputs is None else dict(self.inputs),
            "reference_prefix": self.reference_prefix,
        }
