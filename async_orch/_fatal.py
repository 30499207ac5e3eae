"""Errors no job of a batch can survive, found before anything starts.

A batch puts each job's failure in its result; but a refused credential, a host
that cannot be reached, an unknown tenant or a token without the scopes fail every
job alike, and 300 results saying ``not_started`` hide what to fix. So a batch
looks its folders and processes up first (it needs them anyway), or reads one of
the jobs it is given to wait for, and raises such an error from the call.
"""

from __future__ import annotations

from collections.abc import Sequence

from async_orch._errors import (
    AuthenticationError,
    PermissionDeniedError,
    RequestError,
    TransportError,
    UnauthorizedError,
)
from async_orch._jobs import JobHandle
from async_orch._seams import JobsAPI

__all__ = ["fatal_error", "probe_handles"]

# Errors about the credentials, the host or the token, not about one name or job.
_FATAL = (AuthenticationError, TransportError, UnauthorizedError, PermissionDeniedError)


def fatal_error(lookups: Sequence[object]) -> RequestError | None:
    """The error to raise for a batch whose every folder/process lookup failed with
    one of the errors above; None when some lookup worked (then each failed
    request's own error goes into its results, as a name typo's does)."""
    errors = [item for item in lookups if isinstance(item, RequestError)]
    if not errors or len(errors) < len(lookups):
        return None
    return next((error for error in errors if isinstance(error, _FATAL)), None)


async def probe_handles(api: JobsAPI, handles: Sequence[JobHandle]) -> None:
    """Read the first job waited for: the batch's first call. Raises what no job
    can survive; any other error (the job is gone: 404) is left to the watcher."""
    if not handles:
        return
    first = handles[0]
    try:
        await api.get_job(first.folder_key or first.folder_id, first.job_id)
    except _FATAL:
        raise
    except RequestError:
        pass
