"""Validation of StartJobs / StopJobs / StopJob bodies into engine commands.

Orchestrator binds these bodies with Newtonsoft.Json: property names and enum
values are matched case-insensitively and unknown properties are ignored, so the
same holds here. Field rules come from the v20 OpenAPI (StartProcessDto,
StopJobsRequest, StopJobRequest). Invalid bodies get 400 with errorCode 1000
("Invalid request!"); UNCONFIRMED: the exact messages and codes of the real
model-validation errors, ours name the field and the fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from async_orch._jsonvalues import utf16_length
from async_orch.simulator.engine import PRIORITY_VALUES, STOP_STRATEGIES, StartOrder
from async_orch.simulator.problems import ITEM_NOT_FOUND, ApiProblem
from async_orch.simulator.world import Folder, Robot

__all__ = [
    "INVALID_ROBOT_IDS",
    "RUNTIME_TYPES",
    "SOURCES",
    "STRATEGIES",
    "UnknownRobotIds",
    "parse_start_jobs",
    "parse_stop_job",
    "parse_stop_jobs",
]

STRATEGIES = ("All", "Specific", "RobotCount", "JobsCount", "ModernJobsCount")
SOURCES = (
    "Manual", "Schedule", "Queue", "StudioWeb", "IntegrationTrigger", "StudioDesktop",
    "AutomationOpsPipelines", "Apps", "SAP", "HttpTrigger", "HttpTriggerWithCallback",
    "RobotAPI", "Assistant", "CommandLine", "RobotNetAPI", "Autopilot", "TestManager",
    "AgentService", "ProcessOrchestration", "PluginEcosystem", "PerformanceTesting",
    "AgentHub", "ApiWorkflow",
)  # fmt: skip
RUNTIME_TYPES = (
    "NonProduction", "Attended", "Unattended", "Development", "Studio", "RpaDeveloper",
    "StudioX", "CitizenDeveloper", "Headless", "StudioPro", "RpaDeveloperPro",
    "TestAutomation", "AutomationCloud", "Serverless", "AutomationKit",
    "ServerlessTestAutomation", "AutomationCloudTestAutomation", "AttendedStudioWeb",
    "Hosting", "AssistantWeb", "ProcessOrchestration", "AgentService", "AppTest",
    "PerformanceTest",
)  # fmt: skip
MAX_INPUT_ARGUMENTS = 10_000  # StartProcessDto.InputArguments maxLength
MAX_REFERENCE = 128  # StartProcessDto.Reference maxLength
#: The other StartProcessDto strings with a maxLength in the spec. Every length is
#: a .NET string length, in UTF-16 units (orchestrator-api.md §8).
_MAX_LENGTHS = {
    "EnvironmentVariables": 4000, "ParentOperationId": 128, "ProfilingOptions": 4000,
    "FpsContext": 2048, "FpsProperties": 4000, "TraceId": 255, "ParentSpanId": 255,
    "RootSpanId": 255,
}  # fmt: skip
# UNCONFIRMED: no documented cap on JobsCount; this one keeps the simulator safe.
MAX_JOBS_PER_CALL = 10_000
_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


# orchestrator-api.md section 8 (docs.uipath.com alerts-troubleshooting): 409 with Error
# Code "InvalidStartJobRobotIds". UNCONFIRMED: whether the wire's errorCode carries this
# name or a number (none is documented); the simulator sends the documented name.
INVALID_ROBOT_IDS = "InvalidStartJobRobotIds"


class UnknownRobotIds(ApiProblem):
    """Specific robot ids that are not robots of the folder: 409 InvalidStartJobRobotIds."""

    def __init__(self, robot_ids: list[object], folder: Folder) -> None:
        self.robot_ids = robot_ids
        super().__init__(
            409,
            "Couldn't find the specified unattended user/robot in the current folder. "
            f"Not robots of folder {folder.path!r}: {', '.join(map(repr, robot_ids))}. In "
            "modern folders use Strategy ModernJobsCount with JobsCount instead.",
            INVALID_ROBOT_IDS,
        )


def _bad(message: str) -> ApiProblem:
    return ApiProblem(400, message)


def _fields(value: object, what: str) -> dict[str, Any]:
    """A JSON object with its keys folded to lower case (Newtonsoft binding)."""
    if not isinstance(value, Mapping):
        raise _bad(f"{what} must be a JSON object.")
    return {str(k).lower(): v for k, v in value.items()}


def _enum(fields: Mapping[str, Any], name: str, allowed: tuple[str, ...]) -> str | None:
    value = fields.get(name.lower())
    if value is None:
        return None
    for member in allowed:
        if isinstance(value, str) and value.lower() == member.lower():
            return member
    raise _bad(f"{name} must be one of {', '.join(allowed)}; got {value!r}.")


def _integer(fields: Mapping[str, Any], name: str) -> int | None:
    value = fields.get(name.lower())
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"{name} must be an integer; got {value!r}.")
    return value


def _string(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name.lower())
    if value is None or isinstance(value, str):
        return value
    if name == "InputArguments" and isinstance(value, dict | list):
        raise _bad(
            "InputArguments must be a string containing JSON, not a JSON object: "
            'send "InputArguments": "{\\"Name\\": \\"value\\"}" (json.dumps the arguments).'
        )
    raise _bad(f"{name} must be a string; got {value!r}.")


def _invalid_argument(message: str) -> ApiProblem:
    # 400 InvalidArgument (orchestrator-api.md §8). UNCONFIRMED: the numeric errorCode.
    return ApiProblem(400, message)


def parse_start_jobs(
    body: object, folder: Folder, *, input_file: Callable[[str], str | None] | None = None
) -> StartOrder:
    """Turn a ``{"startInfo": StartProcessDto}`` body into a :class:`StartOrder`.

    ``input_file`` gives the uploaded text of an InputFile attachment Id (None:
    there is no such attachment in this folder).
    """
    outer = _fields(body, 'The request body ({"startInfo": {...}})')
    if outer.get("startinfo") is None:
        raise _bad('startInfo is required: send {"startInfo": {"ReleaseKey": ..., ...}}.')
    info = _fields(outer["startinfo"], "startInfo")

    release_key = _string(info, "ReleaseKey")
    release_name = _string(info, "ReleaseName")
    if release_key:
        release = folder.release_by_key(release_key) if _GUID.fullmatch(release_key) else None
        wanted = f"key {release_key!r}"
    elif release_name:
        release = folder.release_by_name(release_name)
        wanted = f"name {release_name!r}"
    else:
        raise _bad("startInfo needs ReleaseKey (the Key from GET /odata/Releases) or ReleaseName.")
    if release is None:
        # UNCONFIRMED: status and code for an unknown release; 404/1002 is the
        # documented "item not found" pairing.
        raise ApiProblem(
            404,
            f"Release does not exist: no process with {wanted} in folder {folder.path!r}.",
            ITEM_NOT_FOUND,
        )

    robots = _robots(info, folder)
    if len(robots) > MAX_JOBS_PER_CALL:
        raise _bad(f"Too many jobs in one call ({len(robots)}); the limit is {MAX_JOBS_PER_CALL}.")

    inputs = _string(info, "InputArguments")
    file_id = _string(info, "InputFile")
    if inputs is not None and file_id is not None:
        raise _invalid_argument("A job cannot have both input file and input arguments.")
    if file_id is not None:
        text = input_file(file_id) if input_file is not None and _GUID.fullmatch(file_id) else None
        if text is None:
            # UNCONFIRMED: the real answer for an unknown or empty InputFile.
            raise _bad(f"InputFile {file_id!r} is not an uploaded attachment of this folder.")
        inputs = text
    elif inputs is not None:
        length = utf16_length(inputs)  # .NET string length (orchestrator-api.md §8)
        if length > MAX_INPUT_ARGUMENTS:
            raise _bad(
                f"InputArguments is {length} characters long; the maximum is "
                f"{MAX_INPUT_ARGUMENTS}. Pass large inputs as an attachment (InputFile)."
            )
    if inputs is not None:
        try:
            parsed = json.loads(inputs) if inputs.strip() else {}
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise _bad(
                "InputArguments must be the JSON text of an object, e.g. "
                '"{\\"Name\\": \\"value\\"}"; got ' + repr(inputs[:80]) + "."
            )

    reference = _string(info, "Reference")
    _check_lengths(info, {"Reference": MAX_REFERENCE, **_MAX_LENGTHS})

    batch = _string(info, "BatchExecutionKey")
    if batch is not None and not _GUID.fullmatch(batch):
        raise _bad(f"BatchExecutionKey must be a GUID; got {batch!r}.")

    given_priority = _enum(info, "JobPriority", tuple(PRIORITY_VALUES))
    specific = _integer(info, "SpecificPriorityValue")
    if given_priority is not None and specific is not None:
        raise _invalid_argument(
            "Cannot set a specific priority value when a standard job priority setting is selected."
        )
    priority = given_priority or release.spec.priority
    if specific is not None and not 1 <= specific <= 100:
        raise _bad(f"SpecificPriorityValue must be between 1 and 100; got {specific}.")

    return StartOrder(
        folder=folder,
        release=release,
        robots=robots,
        input_arguments=inputs,  # an InputFile's text too: the job's inputs
        input_file=file_id.lower() if file_id is not None else None,
        reference=reference,
        source=_enum(info, "Source", SOURCES) or "Manual",
        job_priority=priority,
        specific_priority=specific if specific is not None else PRIORITY_VALUES[priority],
        batch_execution_key=batch.lower() if batch else None,
        runtime_type=_enum(info, "RuntimeType", RUNTIME_TYPES),
    )


def _robots(info: Mapping[str, Any], folder: Folder) -> tuple[Robot | None, ...]:
    """One entry per job to create, per the Strategy."""
    # The official SDK sends neither Strategy nor JobsCount and expects one job
    # back (uipath-python processes.invoke), so both default to "one job".
    strategy = _enum(info, "Strategy", STRATEGIES) or "ModernJobsCount"
    if strategy in ("ModernJobsCount", "JobsCount"):
        count = _integer(info, "JobsCount")
        if count is None:
            count = 1
        if count < 1:
            raise _bad(f"JobsCount must be greater than 0 with Strategy {strategy}; got {count}.")
        return (None,) * count
    if strategy == "RobotCount":
        count = _integer(info, "NoOfRobots") or 0
        if count < 1:
            raise _bad(f"NoOfRobots must be greater than 0 with Strategy RobotCount; got {count}.")
        return (None,) * count
    if strategy == "All":
        return folder.robots
    ids = info.get("robotids")
    if not isinstance(ids, list) or not ids:
        raise _bad(
            "RobotIds must list at least one robot Id with Strategy Specific. In modern "
            "folders use Strategy ModernJobsCount with JobsCount instead."
        )
    by_id = {r.id: r for r in folder.robots}
    unknown = [i for i in ids if not isinstance(i, int) or isinstance(i, bool) or i not in by_id]
    if unknown:
        raise UnknownRobotIds(unknown, folder)
    return tuple(by_id[i] for i in ids)


def parse_stop_jobs(body: object) -> tuple[list[int], str]:
    """``{"jobIds": [...], "strategy": "SoftStop"|"Kill"}`` -> (ids, strategy)."""
    fields = _fields(body, 'The request body ({"jobIds": [...], "strategy": ...})')
    ids = fields.get("jobids")
    if not isinstance(ids, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in ids
    ):
        raise _bad("jobIds is required: a list of job Ids (integers).")
    return ids, _stop_strategy(fields)


def parse_resume_job(body: object) -> str:
    """``{"jobKey": "<guid>"}`` (ResumeJobRequest) -> the job Key."""
    fields = _fields(body, 'The request body ({"jobKey": ...})')
    key = fields.get("jobkey")
    if not isinstance(key, str) or not _GUID.fullmatch(key):
        raise _bad("jobKey is required: the Key (GUID) of the job to resume.")
    return key


def parse_restart_job(body: object) -> int:
    """``{"jobId": <int64>}`` (RestartJobRequest) -> the job Id."""
    job_id = _integer(_fields(body, 'The request body ({"jobId": ...})'), "jobId")
    if job_id is None:
        raise _bad("jobId is required: the Id of the job to restart.")
    return job_id


def parse_stop_job(body: object) -> str:
    """``{"strategy": "SoftStop"|"Kill"}`` -> strategy."""
    return _stop_strategy(_fields(body, 'The request body ({"strategy": ...})'))


def _stop_strategy(fields: Mapping[str, Any]) -> str:
    strategy = _enum(fields, "strategy", STOP_STRATEGIES)
    if strategy is None:
        raise _bad("strategy is required: SoftStop or Kill.")
    return strategy


def _check_lengths(info: Mapping[str, Any], limits: Mapping[str, int]) -> None:
    """Refuse a string longer than its spec maxLength, counted in UTF-16 units."""
    for name, limit in limits.items():
        text = _string(info, name)
        if text is not None and (length := utf16_length(text)) > limit:
            raise _bad(f"{name} is {length} characters long; the maximum is {limit}.")
