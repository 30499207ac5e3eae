"""A dry run of a batch: could each (folder, process) start a job now?

Orchestrator answers ``POST .../ValidateDynamicJob`` with ``IsValid``, ``Errors`` and
``ErrorCodes`` (the JobPendingReasons, spec ``ValidationResultDto``) and starts nothing
(orchestrator-api.md section 8). A batch asks once per distinct (folder, process), with
the first request of that pair. Each code gets the cause and fix that a refused start
would get (:mod:`async_orch._start_refusals`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from async_orch._errors import ConflictError
from async_orch._jobs import JobRequest, checked_requests, folder_of
from async_orch._resources import OrchestratorAPI
from async_orch._start_refusals import pending_reason_fix, start_refusal_hint

__all__ = ["Validation", "ValidationProblem", "validate_requests"]


@dataclass(frozen=True, slots=True)
class ValidationProblem:
    """Why a job could not start now.

    Attributes:
        code: Orchestrator's code (``TemplateNoRuntime``, ``TemplateNoLicense``...), or
            the errorCode of a refusal (``2818``).
        message: Orchestrator's text for it.
        fix: the cause and what to do, when async-orch knows it.
    """

    code: str
    message: str
    fix: str | None = None


@dataclass(frozen=True, slots=True)
class Validation:
    """Orchestrator's dry run of one (folder, process) pair of a batch."""

    folder: str
    process: str
    is_valid: bool
    problems: tuple[ValidationProblem, ...] = ()

    def describe(self, *, with_fixes: bool = False) -> str:
        """One line: ``Shared / Echo: valid``, or ``Sandbox / Echo: INVALID`` and the
        codes (with each code's cause and fix when ``with_fixes``)."""
        if self.is_valid:
            return f"{self.folder} / {self.process}: valid"
        if not self.problems:
            return f"{self.folder} / {self.process}: INVALID (no reason given)"
        if with_fixes:
            reasons = "; ".join(f"{p.code}: {p.fix or p.message}" for p in self.problems)
        else:
            reasons = ", ".join(p.code for p in self.problems)
        return f"{self.folder} / {self.process}: INVALID ({reasons})"


async def validate_requests(
    api: OrchestratorAPI, requests: Sequence[JobRequest]
) -> list[Validation]:
    """One :class:`Validation` per distinct (folder, process) of ``requests``, in order.

    Raises:
        InvalidRequestError: a request is malformed.
        NotFoundByNameError: a folder or process name is unknown.
    """
    firsts: dict[tuple[str, str], JobRequest] = {}
    for request in checked_requests(requests):
        firsts.setdefault((str(request.folder), request.process), request)
    return [await _validate(api, request) for request in firsts.values()]


async def _validate(api: OrchestratorAPI, request: JobRequest) -> Validation:
    folder = await api.resolve_folder(folder_of(request))
    release = await api.resolve_release(folder, request.process)
    where = folder.fully_qualified_name
    start = request.start_request(release_key=release.key, reference=None)
    pair = {"folder": str(request.folder), "process": request.process}
    try:
        answer = await api.validate_start(folder, start)
    except ConflictError as exc:
        # Not seen in our sources, but a 409 is how StartJobs refuses the same causes.
        code = str(exc.error_code or exc.status)
        problem = ValidationProblem(code, exc.message, start_refusal_hint(exc, where))
        return Validation(**pair, is_valid=False, problems=(problem,))
    codes = [str(c) for c in answer.get("ErrorCodes") or []]
    texts = [str(t) for t in answer.get("Errors") or []]
    problems = tuple(
        ValidationProblem(
            code,
            texts[i] if i < len(texts) else code,
            pending_reason_fix(code, where),
        )
        for i, code in enumerate(codes)
    )
    return Validation(**pair, is_valid=bool(answer["IsValid"]), problems=problems)
