"""How a simulated process behaves past the happy path: stops, suspension, big outputs.

A process's optional ``[...processes.lifecycle]`` table; every key is off by
default, which keeps the demo's behaviour exactly as it was.

* ``soft_stop``: how the workflow answers SoftStop. SoftStop only sets the
  workflow's "should stop" flag: the job stays Stopping until the workflow checks
  it, and may still end Successful or Faulted; a workflow that never checks never
  stops (orchestrator-api.md §8, docs.uipath.com/robot/standalone/2023.10/
  user-guide/stopping-a-process). ``"ignore"``: it never checks (only Kill ends it
  early); a number: it checks that many seconds after the SoftStop (and ends at
  its natural end if that comes first). Absent: the engine's ``soft_stop_delay``,
  after which it is Stopped whatever (the behaviour before this table existed).
* ``suspend_after`` / ``suspend_for``: the job suspends (waiting on an external
  event) that many seconds into its run, freeing its robot, and resumes after
  ``suspend_for`` seconds, or, without ``suspend_for``, only when resumed by
  ``ResumeJob`` (spec/orchestrator.yaml, Jobs_ResumeJob) or the admin API.
* ``output_file_over``: outputs whose JSON text is longer than this (UTF-16
  units) are returned as an attachment (``OutputFile``) with OutputArguments
  null (orchestrator-api.md §8). ASSUMPTION: the real threshold is not
  documented; it is a scenario setting.
* ``output_limit``: outputs longer than this fault the job at its end with
  Orchestrator's "message too large" Info (UiPath/skills job-output-too-large.md,
  orchestrator-api.md §8). ASSUMPTION: the real limit is not documented.
"""

from __future__ import annotations

from dataclasses import dataclass

from async_orch.simulator.validation import Table

__all__ = ["OUTPUT_TOO_LARGE", "LifecycleSpec", "lifecycle_from_table"]

#: JobDto.Info of a job whose outputs were too large to transfer (orchestrator-api.md §8).
OUTPUT_TOO_LARGE = (
    "Could not retrieve the result of the job execution. This might be because a message "
    "was too large to process."
)

_KEYS = ("soft_stop", "suspend_after", "suspend_for", "output_file_over", "output_limit")


@dataclass(frozen=True, slots=True, kw_only=True)
class LifecycleSpec:
    """See the module docstring; None everywhere is the default behaviour."""

    soft_stop_ignored: bool = False
    soft_stop_check: float | None = None  # seconds after SoftStop the workflow checks
    suspend_after: float | None = None
    suspend_for: float | None = None  # None with suspend_after: until resumed
    output_file_over: int | None = None
    output_limit: int | None = None

    @property
    def models_soft_stop(self) -> bool:
        """Whether SoftStop follows the workflow (else: the engine's fixed delay)."""
        return self.soft_stop_ignored or self.soft_stop_check is not None


def lifecycle_from_table(t: Table) -> LifecycleSpec:
    """Read a ``lifecycle`` table (already known to be a table)."""
    t.reject_unknown(_KEYS)
    ignored, check = False, None
    raw = t.data.get("soft_stop")
    if raw == "ignore":
        ignored = True
    elif raw is not None:
        if isinstance(raw, str):
            raise t.fail("soft_stop", '"ignore" or seconds >= 0')
        check = t.number("soft_stop")
    suspend_after = t.number("suspend_after") if t.has("suspend_after") else None
    suspend_for = t.number("suspend_for") if t.has("suspend_for") else None
    if suspend_for is not None and suspend_after is None:
        raise t.fail("suspend_for", "given only with suspend_after")
    file_over = t.integer("output_file_over", minimum=0) if t.has("output_file_over") else None
    limit = t.integer("output_limit", minimum=1) if t.has("output_limit") else None
    return LifecycleSpec(
        soft_stop_ignored=ignored,
        soft_stop_check=check,
        suspend_after=suspend_after,
        suspend_for=suspend_for,
        output_file_over=file_over,
        output_limit=limit,
    )
