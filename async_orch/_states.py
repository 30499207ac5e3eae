"""Job states as Orchestrator reports them, and which of them are final.

Orchestrator's JobDto.State is a string enum (spec: JobDto.State):
Pending, Running, Stopping, Terminating, Faulted, Successful, Stopped,
Suspended, Resumed. Terminal = {Successful, Faulted, Stopped}; this is
inferred from the state descriptions, the docs never say "terminal".

Newer services also report states the v20 spec does not list (Cancelled,
Unknown, ...). :meth:`JobState.parse` maps any such value to
``JobState.UNKNOWN`` instead of failing; the raw string is kept on the Job.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

__all__ = ["TERMINAL_STATES", "JobState"]


class JobState(enum.StrEnum):
    """A job's State, with ``UNKNOWN`` for values this version does not know."""

    PENDING = "Pending"
    RUNNING = "Running"
    STOPPING = "Stopping"
    TERMINATING = "Terminating"
    FAULTED = "Faulted"
    SUCCESSFUL = "Successful"
    STOPPED = "Stopped"
    SUSPENDED = "Suspended"
    RESUMED = "Resumed"
    UNKNOWN = "Unknown"

    @classmethod
    def parse(cls, value: object) -> JobState:
        """Map an API value (name or documented number) to a JobState; never raise."""
        if isinstance(value, str):
            # The name as the API spells it (nearly always), else case-insensitive,
            # then give up gracefully.
            member = _BY_VALUE.get(value)
            if member is not None:
                return member
            return _BY_NAME.get(value.lower(), cls.UNKNOWN)
        if isinstance(value, int) and not isinstance(value, bool):
            # Numeric values from the enumerated-types doc page.
            return _BY_NUMBER.get(value, cls.UNKNOWN)
        return cls.UNKNOWN

    @property
    def is_terminal(self) -> bool:
        """True once the job will not change state again by itself."""
        return self in TERMINAL_STATES


# By lower-case name: one dict lookup, where Enum's own lookup is slower and exact
# (watching a thousand jobs parses a state tens of thousands of times).
_BY_NAME: dict[str, JobState] = {member.value.lower(): member for member in JobState}
_BY_VALUE: dict[str, JobState] = {member.value: member for member in JobState}
#: The states by their exact API spelling, for loops over thousands of list rows
#: (one dict lookup per row, no call); anything else goes through JobState.parse.
BY_API_NAME: Mapping[str, JobState] = _BY_VALUE  # read-only by its type

_BY_NUMBER = {
    0: JobState.PENDING,
    1: JobState.RUNNING,
    2: JobState.STOPPING,
    3: JobState.TERMINATING,
    4: JobState.FAULTED,
    5: JobState.SUCCESSFUL,
    6: JobState.STOPPED,
    7: JobState.SUSPENDED,
    8: JobState.RESUMED,
}

TERMINAL_STATES: frozenset[JobState] = frozenset(
    {JobState.SUCCESSFUL, JobState.FAULTED, JobState.STOPPED}
)
"""The states a job never leaves: Successful, Faulted and Stopped."""
