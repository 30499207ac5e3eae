"""Why Orchestrator refused a start, and what the user should do about it (pure).

Robot and runtime problems at start are 409s (orchestrator-api.md section 8):

* errorCode 2818 "Could not find a machine with Unattended or NonProduction runtimes":
  the folder has no machine with runtimes (UiPath/skills playbook
  ``no-suitable-runtime-machine.md``);
* ``InvalidStartJobRobotIds`` "Couldn't find the specified unattended user/robot in the
  current folder." or "Couldn't find any user with unattended robot permissions in the
  current folder." (docs.uipath.com alerts-troubleshooting).

A 409 is final (backoff.py: only 408, 429 and some 5xx are retried): asking again
changes nothing until an admin fixes the folder. :func:`explain_start_refusal` keeps
the error's class and fields and adds the fix to its message.
"""

from __future__ import annotations

from collections.abc import Callable

from async_orch._errors import ConflictError, RequestError

__all__ = ["NO_RUNTIME_CODE", "explain_start_refusal", "pending_reason_fix", "start_refusal_hint"]

NO_RUNTIME_CODE = 2818


def _no_runtime(folder: str) -> str:
    return (
        f"folder {folder!r} has no machine with unattended runtimes: in Orchestrator, "
        "assign a machine (template) with unattended runtimes to the folder, then "
        "start again"
    )


def _robot_not_in_folder(folder: str) -> str:
    return (
        f"a robot id given is not a robot of folder {folder!r}: assign that robot to the "
        "folder, or leave robot_ids out (strategy ModernJobsCount)"
    )


# The cause and fix of the ValidateDynamicJob ErrorCodes (JobPendingReasons, spec
# ValidationResultDto) that a bulk dispatch meets; the others keep Orchestrator's text.
_PENDING_FIXES: dict[str, Callable[[str], str]] = {
    "TemplateNoRuntime": _no_runtime,
    "TemplateNotAssignedToFolder": _no_runtime,
    "RobotNotAssignedToFolder": _robot_not_in_folder,
    "TemplateNoHostsAvailable": lambda folder: (
        f"no machine serving folder {folder!r} is connected: start the robot service on "
        "one of its machines (jobs would stay Pending until then)"
    ),
    "TemplateNoLicense": lambda folder: (
        "every unattended licence of the tenant is in use: free or add licences (jobs "
        "would stay Pending until one frees)"
    ),
    "TemplateFullCapacity": lambda folder: (
        f"every runtime of folder {folder!r}'s machines is busy: jobs would wait in "
        "Pending until one frees; add runtimes to start more at once"
    ),
}


def pending_reason_fix(code: str, folder: str) -> str | None:
    """The cause and fix of a ValidateDynamicJob error code, or None if not a known one."""
    fix = _PENDING_FIXES.get(code)
    return fix(folder) if fix is not None else None


def start_refusal_hint(error: ConflictError, folder: str) -> str | None:
    """The cause and fix of a 409 answered to StartJobs, or None if not a known one."""
    message = error.message.casefold()
    if str(error.error_code) == str(NO_RUNTIME_CODE) or "unattended or nonproduction" in message:
        return _no_runtime(folder)
    if error.error_code == "InvalidStartJobRobotIds" or "unattended robot permissions" in message:
        if "any user" in message:
            return (
                f"folder {folder!r} has no user with an unattended robot: assign one to the "
                "folder (users are not inherited from groups), then start again"
            )
        return _robot_not_in_folder(folder)
    return None


def explain_start_refusal(error: RequestError, folder: str) -> RequestError:
    """*error* with the cause and fix added when it is a known start refusal."""
    if not isinstance(error, ConflictError):
        return error
    hint = start_refusal_hint(error, folder)
    if hint is None:
        return error
    explained = ConflictError(
        status=error.status,
        method=error.method,
        url=error.url,
        message=f"{error.message} ({hint})",
        error_code=error.error_code,
        trace_id=error.trace_id,
        body=error.body,
        retry_after=error.retry_after,
    )
    explained.__cause__ = error
    return explained
