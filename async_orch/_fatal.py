"""Errors no job of a batch can survive, found before anything starts.

A batch puts each job's failure in its result; but a refused credential, a host
that cannot be reached, an unknown tenant or a token without the scopes fail every
job alike, and 300 results saying ``not_started`` hide what to fix. So a batch
looks its folders and processes up first (it needs them anyway), or reads one of
the jobs it is given to wait for, and raises such an error from the call.
"""

from __future__ import annotations

from collections.abc import Sequence

from async_orch._config import ClientCredentials, Settings
from async_orch._errors import (
    AuthenticationError,
    ConfigurationError,
    NotFoundError,
    PermissionDeniedError,
    RequestError,
    TransportError,
    UnauthorizedError,
)
from async_orch._jobs import CheckedRequests, JobHandle
from async_orch._jsonvalues import utf16_length
from async_orch._models import needs_input_file
from async_orch._seams import JobsAPI

__all__ = [
    "NO_API_FIX",
    "UPLOAD_SCOPES",
    "fatal_error",
    "no_api_here",
    "probe_handles",
    "upload_scope_missing",
]

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


#: What to do when there is no Orchestrator API at the URL.
NO_API_FIX = (
    "check the URL (--url, UIPATH_URL, a profile's url or Settings.url); cloud URLs are "
    "https://cloud.uipath.com/{org}/{tenant}/orchestrator_, on-premises https://host/"
)


def no_api_here(error: NotFoundError) -> ConfigurationError:
    """The error for a 404 from ``GET odata/Folders``: every tenant has that route,
    so the URL is not an Orchestrator API root (an organization without its tenant,
    ``https://host/org``, is taken as an on-premises virtual directory)."""
    base = error.url.split("?", 1)[0].removesuffix("/odata/Folders")
    failure = ConfigurationError(
        f"no Orchestrator API at {base} (GET odata/Folders answered 404): {NO_API_FIX}"
    )
    failure.__cause__ = error
    return failure


async def probe_handles(api: JobsAPI, handles: Sequence[JobHandle]) -> None:
    """Read the first job waited for: the batch's first call. Raises what no job
    can survive; any other error (the job is gone: 404; its folder refused, with
    jobs in other folders too) is left to the watcher."""
    if not handles:
        return
    first = handles[0]
    try:
        await api.get_job(first.folder_key or first.folder_id, first.job_id)
    except PermissionDeniedError:
        # A 403 may refuse one folder (a permission in it taken away): fatal only
        # when every job is in it; else the watcher counts it per folder and the
        # others' jobs go on (a resume re-attaching a refused folder's jobs raised
        # before it read the other folders' ones: attack h10b).
        if all(h.folder_id == first.folder_id for h in handles):
            raise
    except _FATAL:
        raise
    except RequestError:
        pass


#: Scopes that allow POST /odata/Attachments, where inputs over 10,000 UTF-16 units
#: go (the OpenAPI description's Attachments_Post; orchestrator-api.md §5).
UPLOAD_SCOPES = frozenset({"OR.Folders", "OR.Folders.Write"})


def upload_scope_missing(
    settings: Settings, requests: CheckedRequests
) -> ConfigurationError | None:
    """The error for a batch with inputs too long to send inline (an attachment is
    uploaded for them) from an application that does not ask for an upload scope:
    every such start would fail alike, so the batch is refused before it starts.
    None when the scopes allow it, none is needed, or the scopes are not ours to
    know (a user's token or refresh token). Reads the inputs as checking encoded
    them (``requests.inputs_json``): they are not encoded again.
    """
    credentials = settings.credentials
    if not isinstance(credentials, ClientCredentials):
        return None
    if UPLOAD_SCOPES & set(credentials.scopes.split()):
        return None
    for index, text in enumerate(requests.inputs_json):
        if text is not None and needs_input_file(text):
            return ConfigurationError(
                f"the inputs of request {index} are {utf16_length(text):,} characters "
                "(UTF-16 units), over StartJobs' 10,000: they are uploaded as an "
                "attachment, which needs the OR.Folders.Write scope, and the scopes asked "
                f"for ({credentials.scopes}) do not include it; add OR.Folders.Write to "
                "ASYNC_ORCH_SCOPES (or ClientCredentials(scopes=...)) and grant it to "
                "the external application"
            )
    return None
