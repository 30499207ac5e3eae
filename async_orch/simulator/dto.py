"""Render folders, releases, robots and jobs as the API's DTOs (PascalCase JSON).

Field names, order and enum values follow the v20 OpenAPI (FolderDto, ReleaseDto,
JobDto, SimpleRobotDto, MachineDto) and the sample responses quoted in the API
reference. Timestamps are ISO-8601 UTC with a ``Z`` and up to seven fractional
digits, trailing zeros dropped, as .NET writes them (``2018-01-15T18:18:02.79Z``).
Navigation properties (Robot, Release, Machine) appear only when ``$expand``-ed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

from async_orch.simulator.engine import PRIORITY_VALUES, Job
from async_orch.simulator.world import Folder, Release, Robot

__all__ = [
    "EXPANDABLE",
    "folder_dto",
    "format_timestamp",
    "job_dto",
    "path_aware_folder_dto",
    "release_dto",
    "robot_dto",
    "source_type",
]

EXPANDABLE = ("Robot", "Release", "Machine")
# JobDto.SourceType has no Assistant/HttpTriggerWithCallback; those map like this.
_SOURCE_TYPES = {"Assistant": "Agent", "HttpTriggerWithCallback": "HttpTriggerCallback"}
_JOB_SOURCE_TYPES = frozenset({
    "Manual", "Schedule", "Agent", "Queue", "StudioWeb", "IntegrationTrigger",
    "StudioDesktop", "AutomationOpsPipelines", "Apps", "SAP", "HttpTrigger",
    "HttpTriggerCallback", "RobotAPI", "CommandLine", "RobotNetAPI", "Autopilot",
    "TestManager", "AgentService", "ProcessOrchestration", "PluginEcosystem",
    "PerformanceTesting", "AgentHub", "ApiWorkflow",
})  # fmt: skip
_RELEASE_AGE = 30 * 86_400.0  # releases were "deployed" a month before the run


def format_timestamp(seconds: float | None) -> str | None:
    """Epoch seconds -> ``YYYY-MM-DDTHH:MM:SS[.fffffff]Z`` (None stays None)."""
    if seconds is None:
        return None
    ticks = round(seconds * 10_000_000)  # .NET ticks: 100 ns
    whole, fraction = divmod(ticks, 10_000_000)
    text = dt.datetime.fromtimestamp(whole, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{fraction:07d}".rstrip("0")
    return f"{text}.{digits}Z" if digits else f"{text}Z"


def folder_dto(folder: Folder) -> dict[str, Any]:
    # FullyQualifiedNameOrderable and IsActive are not in the spec's FolderDto but
    # real responses carry them (sample Folders response in the API reference).
    return {
        "Key": folder.key,
        "DisplayName": folder.display_name,
        "FullyQualifiedName": folder.path,
        "FullyQualifiedNameOrderable": folder.path,
        "Description": folder.description or None,
        "FolderType": "Standard",
        "IsPersonal": False,
        "ProvisionType": "Automatic",
        "PermissionModel": "FineGrained",
        "ParentId": folder.parent_id,
        "ParentKey": folder.parent_key,
        "IsActive": True,
        "FeedType": "Processes",
        "Id": folder.id,
    }


def path_aware_folder_dto(folder: Folder) -> dict[str, Any]:
    """A PathAwareFolderDto (FoldersNavigation): the FolderDto fields the spec lists
    for it, plus FolderPath (ASSUMPTION: the full path, as FullyQualifiedName)."""
    dto = folder_dto(folder)
    del dto["FullyQualifiedNameOrderable"], dto["IsActive"]
    return {"FolderPath": folder.path, **dto}


def release_dto(release: Release, *, deployed_at: float) -> dict[str, Any]:
    spec = release.spec
    created = format_timestamp(deployed_at - _RELEASE_AGE)
    return {
        "Key": release.key,
        "ProcessKey": release.process_key,
        "ProcessVersion": release.version,
        "IsLatestVersion": True,
        "IsProcessDeleted": False,
        "Description": spec.description,
        "Name": release.name,
        "EntryPointId": release.entry_point_id,
        "EntryPointPath": "Main.xaml",
        "InputArguments": spec.input_arguments,
        "EnvironmentVariables": "",
        "ProcessType": "Process",
        "SupportsMultipleEntryPoints": False,
        "RequiresUserInteraction": False,
        "IsConversational": False,
        "IsAttended": False,
        "IsCompiled": False,
        "CurrentVersion": {
            "ReleaseId": release.id,
            "VersionNumber": release.version,
            "CreationTime": created,
            "ReleaseName": release.name,
            "Id": release.version_id,
        },
        "AutoUpdate": False,
        "HiddenForAttendedUser": False,
        "FeedId": release.feed_id,
        "JobPriority": spec.priority,
        "SpecificPriorityValue": PRIORITY_VALUES[spec.priority],
        "FolderKey": release.folder_key,
        "OrganizationUnitId": release.folder_id,
        "OrganizationUnitFullyQualifiedName": release.folder_path,
        "TargetFramework": "Windows",
        "Tags": [],
        "RemoteControlAccess": "None",
        "LastModificationTime": created,
        "CreationTime": created,
        "Id": release.id,
    }


def robot_dto(robot: Robot) -> dict[str, Any]:
    """SimpleRobotDto (``$expand=Robot``)."""
    return {
        "MachineName": robot.machine_name,
        "MachineId": robot.machine_id,
        "Name": robot.name,
        "Username": robot.username,
        "Type": "Unattended",
        "HostingType": "Standard",
        "ProvisionType": "Manual",
        "Enabled": True,
        "IsExternalLicensed": False,
        "LimitConcurrentExecution": False,
        "Id": robot.id,
    }


def _machine_dto(robot: Robot) -> dict[str, Any]:
    return {
        "Name": robot.machine_name,
        "Type": "Template",
        "Scope": "Default",
        "Id": robot.machine_id,
    }


def _simple_release_dto(release: Release) -> dict[str, Any]:
    return {
        "Key": release.key,
        "ProcessKey": release.process_key,
        "ProcessVersion": release.version,
        "IsLatestVersion": True,
        "IsProcessDeleted": False,
        "Description": release.spec.description,
        "Name": release.name,
        "ProcessType": "Process",
        "OrganizationUnitId": release.folder_id,
        "Id": release.id,
    }


def source_type(source: str) -> str:
    mapped = _SOURCE_TYPES.get(source, source)
    return mapped if mapped in _JOB_SOURCE_TYPES else "Manual"


def job_dto(job: Job, *, large_fields: bool, expand: Collection[str] = ()) -> dict[str, Any]:
    """JobDto. *large_fields* False nulls the arguments, as the list endpoint does."""
    started = job.start_time is not None
    robot = job.robot if started else None
    dto: dict[str, Any] = {
        "Key": job.key,
        "StartTime": format_timestamp(job.start_time),
        "EndTime": format_timestamp(job.end_time),
        "State": job.state.value,
        "JobPriority": job.job_priority,
        "SpecificPriorityValue": job.specific_priority,
        "ResourceOverwrites": None,
        "Source": job.source,
        "SourceType": source_type(job.source),
        "BatchExecutionKey": job.batch_execution_key,
        "Info": job.info,
        "CreationTime": format_timestamp(job.creation_time),
        "StartingScheduleId": None,
        "ReleaseName": job.release.name,
        "Type": "Unattended",
        "InputArguments": job.input_arguments if large_fields else None,
        "InputFile": job.input_file,
        "EnvironmentVariables": None,
        "OutputArguments": job.output_arguments if large_fields else None,
        # Large outputs: an attachment key, OutputArguments null (orchestrator-api.md §8).
        "OutputFile": job.output_file,
        "HostMachineName": robot.machine_name if robot else None,
        "HasMediaRecorded": False,
        "HasVideoRecorded": False,
        "PersistenceId": None,
        "ResumeVersion": None,
        "StopStrategy": job.stop_strategy,
        "RuntimeType": job.runtime_type or "Unattended",
        "RequiresUserInteraction": False,
        "ReleaseVersionId": job.release.version_id,
        "EntryPointPath": "Main.xaml",
        "OrganizationUnitId": job.folder.id,
        "OrganizationUnitFullyQualifiedName": job.folder.path,
        "Reference": job.reference,
        "ProcessType": "Process",
        "ProfilingOptions": None,
        "ResumeOnSameContext": False,
        "LocalSystemAccount": "",
        "OrchestratorUserIdentity": None,
        "RemoteControlAccess": "None",
        "StartingTriggerId": None,
        "MaxExpectedRunningTimeSeconds": None,
        "ServerlessJobType": None,
        "ParentJobKey": None,
        "ResumeTime": None,
        "LastModificationTime": format_timestamp(job.last_modification_time),
        "Id": job.id,
    }
    if "Robot" in expand:
        dto["Robot"] = robot_dto(job.robot) if job.robot else None
    if "Release" in expand:
        dto["Release"] = _simple_release_dto(job.release)
    if "Machine" in expand:
        dto["Machine"] = _machine_dto(job.robot) if job.robot else None
    return dto
