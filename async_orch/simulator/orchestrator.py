"""The Orchestrator OData endpoints: folders, releases, jobs, start and stop.

Every call goes through the same gate, in this order: authentication (401, ABP
body), scope (403), rate limit (429, ``GET /odata/Jobs`` only), folder context
(400), then the endpoint itself. Scopes per endpoint are the ones the v20 OpenAPI
states ("OAuth required scopes: OR.Jobs or OR.Jobs.Read", ...).

Query options ($filter, $select, $orderby, $top, $skip, $count) are those of
:mod:`odata`; ``$expand`` of Robot, Release and Machine is served on jobs.
``$filter`` accepts on Jobs: Id, Key, State, Reference, ReleaseName, CreationTime,
StartTime, EndTime, LastModificationTime, BatchExecutionKey, OrganizationUnitId,
ProcessType, Source, SourceType, HostMachineName, Type, JobPriority; on Releases:
Id, Key, Name, ProcessKey, ProcessVersion; on Folders: Id, Key, DisplayName,
FullyQualifiedName, ParentId, ParentKey. Navigation paths (``Release/ProcessKey``,
``Robot/Id``) are not supported: filter Releases by ProcessKey, then Jobs by
ReleaseName.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

from async_orch._states import JobState
from async_orch.simulator.attachments import (
    create_attachment,
    get_attachment,
    get_blob,
    put_blob,
)
from async_orch.simulator.dry_run import validate_dynamic_job
from async_orch.simulator.dto import (
    EXPANDABLE,
    folder_dto,
    job_dto,
    path_aware_folder_dto,
    release_dto,
)
from async_orch.simulator.engine import Job, StartOrder, UnknownJobError
from async_orch.simulator.folders import resolve_folder
from async_orch.simulator.odata import (
    FieldKind,
    ODataError,
    ODataQuery,
    apply_query,
    parse_query,
    required_values,
)
from async_orch.simulator.problems import ITEM_NOT_FOUND, ApiProblem, Unauthenticated
from async_orch.simulator.responses import odata_response
from async_orch.simulator.robots import NO_RUNTIME_CODE, NO_RUNTIME_MESSAGE
from async_orch.simulator.routes import Endpoint, RouteMatch
from async_orch.simulator.start_request import (
    parse_restart_job,
    parse_resume_job,
    parse_start_jobs,
    parse_stop_job,
    parse_stop_jobs,
)
from async_orch.simulator.world import Folder

if TYPE_CHECKING:
    from async_orch.simulator.core import Simulator, TenantRuntime
    from async_orch.simulator.tokens import AccessToken

__all__ = ["REQUIRED_SCOPES", "handle_orchestrator"]

_ANY_SCOPE = frozenset(
    {
        *("OR.Folders", "OR.Folders.Read", "OR.Folders.Write", "OR.Jobs", "OR.Jobs.Read"),
        *("OR.Jobs.Write", "OR.Execution", "OR.Execution.Read", "OR.Default"),
    }
)

REQUIRED_SCOPES: dict[Endpoint, frozenset[str]] = {
    Endpoint.FOLDERS: frozenset({"OR.Folders", "OR.Folders.Read"}),
    Endpoint.RELEASES: frozenset({"OR.Execution", "OR.Execution.Read"}),
    Endpoint.JOBS: frozenset({"OR.Jobs", "OR.Jobs.Read"}),
    Endpoint.JOB: frozenset({"OR.Jobs", "OR.Jobs.Read"}),
    Endpoint.JOB_BY_KEY: frozenset({"OR.Jobs", "OR.Jobs.Read"}),
    Endpoint.START_JOBS: frozenset({"OR.Jobs", "OR.Jobs.Write"}),
    Endpoint.STOP_JOBS: frozenset({"OR.Jobs", "OR.Jobs.Write"}),
    Endpoint.STOP_JOB: frozenset({"OR.Jobs", "OR.Jobs.Write"}),
    Endpoint.VALIDATE_DYNAMIC_JOB: frozenset({"OR.Jobs", "OR.Jobs.Write"}),
    Endpoint.RESUME_JOB: frozenset({"OR.Jobs", "OR.Jobs.Write"}),
    Endpoint.RESTART_JOB: frozenset({"OR.Jobs", "OR.Jobs.Write"}),
    # The spec says "OAuth authentication is not supported" here, yet the official
    # SDK calls it with its token (orchestrator-api.md §8). ASSUMPTION: the folder
    # scopes admit it.
    Endpoint.FOLDERS_FOR_USER: frozenset({"OR.Folders", "OR.Folders.Read"}),
    Endpoint.ATTACHMENTS: frozenset({"OR.Folders", "OR.Folders.Write"}),
    Endpoint.ATTACHMENT: frozenset({"OR.Folders", "OR.Folders.Read"}),
    # ASSUMPTION: a blob Uri that RequiresAuth takes any token of the tenant.
    Endpoint.BLOB_PUT: _ANY_SCOPE,
    Endpoint.BLOB_GET: _ANY_SCOPE,
    Endpoint.WEBHOOKS: frozenset({"OR.Webhooks", "OR.Webhooks.Read"}),
    Endpoint.CREATE_WEBHOOK: frozenset({"OR.Webhooks", "OR.Webhooks.Write"}),
}

# UNCONFIRMED: the page size of GET /odata/Jobs without $top; the maximum $top
# (1000) is used, so a client that never pages sees up to 1000 jobs.
JOBS_DEFAULT_TOP = 1000

_K = FieldKind
_JOB_FIELDS: dict[str, FieldKind] = {
    "Key": _K.GUID, "StartTime": _K.DATETIME, "EndTime": _K.DATETIME, "State": _K.ENUM,
    "JobPriority": _K.ENUM, "SpecificPriorityValue": _K.INT, "ResourceOverwrites": _K.STRING,
    "Source": _K.STRING, "SourceType": _K.ENUM, "BatchExecutionKey": _K.GUID,
    "Info": _K.STRING, "CreationTime": _K.DATETIME, "StartingScheduleId": _K.INT,
    "ReleaseName": _K.STRING, "Type": _K.ENUM, "InputArguments": _K.STRING,
    "InputFile": _K.GUID, "EnvironmentVariables": _K.STRING, "OutputArguments": _K.STRING,
    "OutputFile": _K.GUID, "HostMachineName": _K.STRING, "HasMediaRecorded": _K.BOOL,
    "HasVideoRecorded": _K.BOOL, "PersistenceId": _K.GUID, "ResumeVersion": _K.INT,
    "StopStrategy": _K.ENUM, "RuntimeType": _K.ENUM, "RequiresUserInteraction": _K.BOOL,
    "ReleaseVersionId": _K.INT, "EntryPointPath": _K.STRING, "OrganizationUnitId": _K.INT,
    "OrganizationUnitFullyQualifiedName": _K.STRING, "Reference": _K.STRING,
    "ProcessType": _K.ENUM, "ProfilingOptions": _K.STRING, "ResumeOnSameContext": _K.BOOL,
    "LocalSystemAccount": _K.STRING, "OrchestratorUserIdentity": _K.STRING,
    "RemoteControlAccess": _K.ENUM, "StartingTriggerId": _K.GUID,
    "MaxExpectedRunningTimeSeconds": _K.INT, "ServerlessJobType": _K.ENUM,
    "ParentJobKey": _K.GUID, "ResumeTime": _K.DATETIME, "LastModificationTime": _K.DATETIME,
    "Id": _K.INT,
}  # fmt: skip
# Navigation properties a JobDto filter or ordering may follow (Robot/Id eq 123L:
# orchestrator-api.md §3.4 and §8, forum thread 799810), with the properties of
# the DTOs dto.py renders for $expand (SimpleRobotDto, SimpleReleaseDto, MachineDto).
_JOB_NAVIGATION: dict[str, dict[str, FieldKind]] = {
    "Robot": {"MachineName": _K.STRING, "MachineId": _K.INT, "Name": _K.STRING,
              "Username": _K.STRING, "Id": _K.INT},
    "Release": {"Key": _K.GUID, "ProcessKey": _K.STRING, "ProcessVersion": _K.STRING,
                "Name": _K.STRING, "OrganizationUnitId": _K.INT, "Id": _K.INT},
    "Machine": {"Name": _K.STRING, "Id": _K.INT},
}  # fmt: skip
_JOB_FILTERABLE = (
    "Id", "Key", "State", "Reference", "ReleaseName", "CreationTime", "StartTime", "EndTime",
    "LastModificationTime", "BatchExecutionKey", "OrganizationUnitId", "ProcessType", "Source",
    "SourceType", "HostMachineName", "Type", "JobPriority",
    *(f"{nav}/{prop}" for nav, props in _JOB_NAVIGATION.items() for prop in props),
)  # fmt: skip
_JOB_ENUMS = {
    "State": [s.value for s in JobState if s is not JobState.UNKNOWN],
    "JobPriority": ["Low", "Normal", "High"],
}
_RELEASE_FIELDS: dict[str, FieldKind] = {
    "Key": _K.GUID, "ProcessKey": _K.STRING, "ProcessVersion": _K.STRING,
    "IsLatestVersion": _K.BOOL, "IsProcessDeleted": _K.BOOL, "Description": _K.STRING,
    "Name": _K.STRING, "EntryPointId": _K.INT, "EntryPointPath": _K.STRING,
    "InputArguments": _K.STRING, "EnvironmentVariables": _K.STRING, "ProcessType": _K.ENUM,
    "SupportsMultipleEntryPoints": _K.BOOL, "RequiresUserInteraction": _K.BOOL,
    "IsConversational": _K.BOOL, "IsAttended": _K.BOOL, "IsCompiled": _K.BOOL,
    "AutoUpdate": _K.BOOL, "HiddenForAttendedUser": _K.BOOL, "FeedId": _K.GUID,
    "JobPriority": _K.ENUM, "SpecificPriorityValue": _K.INT, "FolderKey": _K.GUID,
    "OrganizationUnitId": _K.INT, "OrganizationUnitFullyQualifiedName": _K.STRING,
    "TargetFramework": _K.ENUM, "RemoteControlAccess": _K.ENUM,
    "LastModificationTime": _K.DATETIME, "CreationTime": _K.DATETIME, "Id": _K.INT,
}  # fmt: skip
_RELEASE_FILTERABLE = ("Id", "Key", "Name", "ProcessKey", "ProcessVersion", "OrganizationUnitId")
_FOLDER_FIELDS: dict[str, FieldKind] = {
    "Key": _K.GUID, "DisplayName": _K.STRING, "FullyQualifiedName": _K.STRING,
    "FullyQualifiedNameOrderable": _K.STRING, "Description": _K.STRING,
    "FolderType": _K.ENUM, "IsPersonal": _K.BOOL, "ProvisionType": _K.ENUM,
    "PermissionModel": _K.ENUM, "ParentId": _K.INT, "ParentKey": _K.GUID,
    "IsActive": _K.BOOL, "FeedType": _K.ENUM, "Id": _K.INT,
}  # fmt: skip
_FOLDER_FILTERABLE = ("Id", "Key", "DisplayName", "FullyQualifiedName", "ParentId", "ParentKey")


@dataclass(frozen=True, slots=True)
class _Call:
    """One authenticated call to an Orchestrator endpoint."""

    sim: Simulator
    request: web.Request
    match: RouteMatch
    tenant: TenantRuntime
    token: AccessToken
    now: float  # simulated

    @property
    def base_url(self) -> str:
        return f"{self.request.scheme}://{self.request.host}{quote(self.match.base_path)}"

    def context(self, fragment: str) -> str:
        return f"{self.base_url}/odata/$metadata#{fragment}"

    def folder(self) -> Folder:
        """The folder the headers address, if this caller may use it (else 400/1100)."""
        return resolve_folder(self.request.headers, self.tenant.world, visible=self.sees)

    def sees(self, folder: Folder) -> bool:
        return self.token.sees(folder.path)


async def handle_orchestrator(
    sim: Simulator, request: web.Request, match: RouteMatch
) -> web.Response:
    """Authenticate, authorize, rate-limit, then serve an Orchestrator endpoint."""
    tenant, token = _authenticate(sim, request, match)
    required = REQUIRED_SCOPES[match.endpoint]
    if not token.allows(required):
        sim.requests.reject(403)
        # UNCONFIRMED: body and errorCode of a scope refusal; the modern shape is used.
        raise ApiProblem(
            403,
            "You are not authorized! The access token has none of the scopes this endpoint "
            f"requires ({' or '.join(sorted(required))}). Request one of them in the token "
            "call's scope field (it must be granted to the external application).",
            0,
        )
    headers: dict[str, str] = {}
    if match.endpoint is Endpoint.JOBS:
        decision = tenant.limiter.acquire(sim.real_now())
        # The limits doc names X-RateLimit-Remaining among the 429 headers (§4);
        # ASSUMPTION: answers within the limit carry it too (a count that "reports
        # 0 once fewer than 10 remain" is meant to be read before the refusal).
        headers["X-RateLimit-Remaining"] = str(decision.remaining)
        if not decision.allowed:
            sim.requests.reject(429)
            limit = tenant.spec.rate_limit
            # UNCONFIRMED: Orchestrator's 429 body; headers per the API limits doc.
            raise ApiProblem(
                429,
                f"Too many requests: GET /odata/Jobs is limited to {limit.jobs_list} calls per "
                f"{limit.window_seconds:g} seconds per tenant. Retry after "
                f"{decision.retry_after} seconds, or poll known jobs with GET /odata/Jobs({{id}}), "
                "which is not rate limited.",
                0,
                headers={**headers, "Retry-After": str(decision.retry_after)},
            )
    now = sim.sim_now()
    tenant.engine.advance(now)
    call = _Call(sim, request, match, tenant, token, now)
    response = await _HANDLERS[match.endpoint](call)
    response.headers.update(headers)
    return response


def _authenticate(
    sim: Simulator, request: web.Request, match: RouteMatch
) -> tuple[TenantRuntime, AccessToken]:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.strip().partition(" ")
    if not header:
        reason = "no Authorization header"
        if "access_token" in request.query:
            reason += "; the token must go in 'Authorization: Bearer <token>', not the URL"
        raise Unauthenticated(reason)
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthenticated("the Authorization header must read 'Bearer <access_token>'")
    token, problem = sim.tokens.check(value.strip(), now=sim.real_now())
    if token is None or problem:
        raise Unauthenticated(problem)
    if match.tenant is None:  # on-premises shape: the token names the tenant
        tenant = sim.tenant_by_key(token.tenant_key)
    else:
        tenant = sim.tenant(match.organization or "", match.tenant)
        if tenant is None or tenant.key != token.tenant_key:
            raise Unauthenticated(
                f"the token was issued for tenant {token.tenant_key}, but the URL addresses "
                f"{match.organization}/{match.tenant}; the base URL is "
                "/{organization}/{tenant}/orchestrator_"
            )
    if tenant is None:
        raise Unauthenticated("the token's tenant no longer exists")
    return tenant, token


# -- helpers -------------------------------------------------------------------


def _params(request: web.Request) -> dict[str, str]:
    return dict(request.query.items())


def _expand(raw: str | None, entity: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    names = []
    for part in raw.split(","):
        name = part.strip()
        found = next((e for e in EXPANDABLE if e.lower() == name.lower()), None)
        if found is None or entity != "JobDto":
            hint = (
                " The simulator can expand: Robot, Release, Machine." if entity == "JobDto" else ""
            )
            raise ODataError(
                f"Could not find a navigation property named '{name}' on type '{entity}'.{hint}"
            )
        names.append(found)
    return tuple(names)


def _listing(
    call: _Call,
    entity_set: str,
    rows: Sequence[Mapping[str, Any]] | Callable[[ODataQuery], Sequence[Mapping[str, Any]]],
    *,
    entity: str,
    fields: Mapping[str, FieldKind],
    filterable: Sequence[str],
    default_top: int | None = None,
    enums: Mapping[str, Sequence[str]] | None = None,
    expanded: Sequence[str] = (),
    navigation: Mapping[str, Mapping[str, FieldKind]] | None = None,
) -> web.Response:
    query = parse_query(
        _params(call.request),
        entity=entity,
        fields=fields,
        filterable=filterable,
        default_top=default_top,
        enum_members=enums,
        navigation=navigation,
    )
    if callable(rows):
        rows = rows(query)  # the rows the query can match, built now
    page, count = apply_query(dataclasses.replace(query, select=None), rows)
    page = _project(page, query.select, expanded)
    hidden = query.navigations - set(expanded)
    if hidden:  # read by the filter or ordering, not asked for with $expand
        page = [{k: v for k, v in row.items() if k not in hidden} for row in page]
    fragment = entity_set + (f"({','.join(query.select)})" if query.select else "")
    body: dict[str, Any] = {"@odata.context": call.context(fragment)}
    if count is not None:
        body["@odata.count"] = count
    body["value"] = page
    return odata_response(body)


def _project(
    rows: list[dict[str, Any]], select: Sequence[str] | None, expanded: Sequence[str]
) -> list[dict[str, Any]]:
    """Apply $select; expanded navigation properties stay, as in OData."""
    if select is None:
        return rows
    keep = {*select, *expanded}
    return [{k: v for k, v in row.items() if k in keep} for row in rows]


async def _read_json(request: web.Request) -> Any:
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise ApiProblem(
            415,
            f"Unsupported Content-Type {request.content_type!r}: send the body as JSON "
            "(Content-Type: application/json).",
        )
    raw = await request.read()
    if not raw.strip():
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # nested too deep: 400
        raise ApiProblem(400, "The request body is not valid JSON.") from None


def _job_not_found(job_id: object) -> ApiProblem:
    # UNCONFIRMED: the exact message; 404 with errorCode 1002 (item not found).
    return ApiProblem(404, f"Job does not exist (Id or Key {job_id}).", ITEM_NOT_FOUND)


def _single_job(call: _Call, job: Job | None, shown: object) -> web.Response:
    folder = call.folder()
    if job is None or job.folder.id != folder.id:
        raise _job_not_found(shown)
    params = _params(call.request)
    extra = sorted(k for k in params if k.startswith("$") and k not in ("$select", "$expand"))
    if extra:
        raise ODataError(f"Query option(s) {', '.join(extra)} are not allowed on a single job.")
    expanded = _expand(params.get("$expand"), "JobDto")
    row = job_dto(job, large_fields=True, expand=expanded)
    query = parse_query(params, entity="JobDto", fields=_JOB_FIELDS, filterable=())
    (item,) = _project([row], query.select, expanded)
    fragment = "Jobs/$entity" if query.select is None else f"Jobs({','.join(query.select)})/$entity"
    return odata_response({"@odata.context": call.context(fragment), **item})


# -- endpoints -------------------------------------------------------------------


async def _folders(call: _Call) -> web.Response:
    _expand(call.request.query.get("$expand"), "FolderDto")
    # ASSUMPTION: an application assigned to some folders lists only those (and
    # their subfolders), as it can use no other (orchestrator-api.md §8: 1100).
    rows = [folder_dto(f) for f in call.tenant.world if call.sees(f)]
    return _listing(
        call,
        "Folders",
        rows,
        entity="FolderDto",
        fields=_FOLDER_FIELDS,
        filterable=_FOLDER_FILTERABLE,
    )


async def _releases(call: _Call) -> web.Response:
    folder = call.folder()
    _expand(call.request.query.get("$expand"), "ReleaseDto")
    deployed = call.tenant.started_at
    rows = [release_dto(r, deployed_at=deployed) for r in folder.releases]
    return _listing(
        call,
        "Releases",
        rows,
        entity="ReleaseDto",
        fields=_RELEASE_FIELDS,
        filterable=_RELEASE_FILTERABLE,
        enums={"JobPriority": ["Low", "Normal", "High"]},
    )


async def _jobs(call: _Call) -> web.Response:
    # UNCONFIRMED: without a folder header the real service may list the jobs of
    # every folder the caller sees; the simulator asks for the header (400/1101).
    folder = call.folder()
    expanded = _expand(call.request.query.get("$expand"), "JobDto")

    def rows(query: ODataQuery) -> list[dict[str, Any]]:
        # Polls ask for a few ids among thousands of jobs: build only those rows.
        jobs = call.tenant.engine.jobs(folder.id)
        ids = required_values(query.filter, "Id")
        if ids is not None:
            jobs = [j for j in jobs if j.id in ids]
        # The 2024 large-data-field policy: the list leaves the arguments out (null).
        # Navigation properties a path reads are built too, and dropped after.
        expand = {*expanded, *query.navigations}
        return [job_dto(j, large_fields=False, expand=expand) for j in jobs]

    return _listing(
        call,
        "Jobs",
        rows,
        entity="JobDto",
        fields=_JOB_FIELDS,
        filterable=_JOB_FILTERABLE,
        default_top=JOBS_DEFAULT_TOP,
        enums=_JOB_ENUMS,
        expanded=expanded,
        navigation=_JOB_NAVIGATION,
    )


async def _job(call: _Call) -> web.Response:
    job_id = int(call.match.params["key"])
    return _single_job(call, call.tenant.engine.job(job_id), job_id)


async def _job_by_key(call: _Call) -> web.Response:
    key = call.match.params["key"]
    return _single_job(call, call.tenant.engine.job_by_key(key), key)


async def _start_jobs(call: _Call) -> web.Response:
    folder = call.folder()
    tenant_key = call.tenant.key

    def input_file(key: str) -> str | None:
        return call.sim.attachments.input_text(tenant_key, folder.id, key)

    order = parse_start_jobs(await _read_json(call.request), folder, input_file=input_file)
    runtimes = call.tenant.engine.runtimes
    if runtimes is not None and not runtimes.folder_has_runtimes(folder.id):
        # orchestrator-api.md section 8: 409, errorCode 2818 (UiPath/skills maestro
        # playbook no-suitable-runtime-machine.md). Nothing is created.
        raise ApiProblem(409, NO_RUNTIME_MESSAGE, NO_RUNTIME_CODE)
    jobs = call.tenant.engine.start_jobs(call.now, order)
    body = {
        # UNCONFIRMED: the exact @odata.context of this action's answer.
        "@odata.context": call.context("Jobs"),
        "value": [job_dto(j, large_fields=True) for j in jobs],
    }
    return odata_response(body, status=201)


async def _validate_dynamic_job(call: _Call) -> web.Response:
    folder = call.folder()
    result = validate_dynamic_job(
        await _read_json(call.request), folder, call.tenant.engine.runtimes
    )
    # UNCONFIRMED: the @odata.context of this action's answer (a ValidationResultDto).
    context = call.context("UiPath.Server.Configuration.OData.ValidationResultDto")
    return odata_response({"@odata.context": context, **result})


async def _stop(call: _Call, job_ids: list[int], strategy: str) -> web.Response:
    folder = call.folder()
    try:
        call.tenant.engine.stop_jobs(call.now, folder.id, job_ids, strategy)
    except UnknownJobError as exc:
        raise _job_not_found(exc.job_id) from None
    return web.Response(status=200)


async def _stop_jobs(call: _Call) -> web.Response:
    job_ids, strategy = parse_stop_jobs(await _read_json(call.request))
    return await _stop(call, job_ids, strategy)


async def _stop_job(call: _Call) -> web.Response:
    strategy = parse_stop_job(await _read_json(call.request))
    return await _stop(call, [int(call.match.params["key"])], strategy)


async def _resume_job(call: _Call) -> web.Response:
    folder = call.folder()
    key = parse_resume_job(await _read_json(call.request))
    engine = call.tenant.engine
    job = engine.job_by_key(key)
    if job is None or job.folder.id != folder.id:  # another folder's job is not found
        raise _job_not_found(key)
    try:
        resumed = engine.resume_job(call.now, key)
    except UnknownJobError:
        raise _job_not_found(key) from None
    if not resumed:
        # UNCONFIRMED: status and message for resuming a job that is not suspended.
        raise ApiProblem(409, f"Job {key} is not Suspended; only a Suspended job can resume.")
    # 200 with the JobDto (spec/orchestrator.yaml, Jobs_ResumeJob), like GET Jobs(id).
    return _single_job(call, engine.job_by_key(key), key)


async def _restart_job(call: _Call) -> web.Response:
    folder = call.folder()
    job_id = parse_restart_job(await _read_json(call.request))
    engine = call.tenant.engine
    job = engine.job(job_id)
    if job is None or job.folder.id != folder.id:
        raise _job_not_found(job_id)
    if not job.state.is_terminal:
        # UNCONFIRMED: status and message for restarting a job that has not ended.
        raise ApiProblem(409, f"Job {job_id} is {job.state.value}; only a finished job restarts.")
    # ASSUMPTION: a restart is a new job of the same process, inputs and priority,
    # on any robot; its Reference is not carried over (undocumented). The answer is
    # the new job's JobDto, 200 (spec/orchestrator.yaml, Jobs_RestartJob).
    order = StartOrder(
        folder=folder,
        release=job.release,
        robots=(None,),
        input_arguments=job.input_arguments,
        input_file=job.input_file,
        job_priority=job.job_priority,
        specific_priority=job.specific_priority,
        runtime_type=job.runtime_type,
    )
    (restarted,) = engine.start_jobs(call.now, order)
    return _single_job(call, restarted, restarted.id)


async def _folders_for_user(call: _Call) -> web.Response:
    """``GET /api/FoldersNavigation/GetFoldersForCurrentUser?searchText=&skip=&take=``:
    a ``PageResultDtoOfPathAwareFolderDto`` of the folders the caller sees.
    ASSUMPTION: searchText matches any part of the full path, case-insensitively;
    without take, every match is returned."""
    query = call.request.query
    text = query.get("searchText", "").casefold()
    skip = _page_number(query, "skip", 0) or 0
    take = _page_number(query, "take", None)
    found = [f for f in call.tenant.world if call.sees(f) and text in f.path.casefold()]
    page = found[skip:] if take is None else found[skip : skip + take]
    return odata_response(
        {"PageItems": [path_aware_folder_dto(f) for f in page], "Count": len(found)}
    )


def _page_number(query: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = query.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) > 2**31 - 1:
        # ASSUMPTION: a bad int32 query parameter is a 400 with errorCode 1000.
        raise ApiProblem(400, f"{name} must be a non-negative integer, got {raw[:40]!r}.")
    return int(raw)


async def _webhooks(call: _Call) -> web.Response:
    subscriptions = call.sim.webhooks.subscriptions.get(call.tenant.key, [])
    return odata_response(
        {"@odata.context": call.context("Webhooks"), "value": [s.dto() for s in subscriptions]}
    )


async def _create_webhook(call: _Call) -> web.Response:
    subscription = call.sim.webhooks.create(call.tenant, await _read_json(call.request))
    body = {"@odata.context": call.context("Webhooks/$entity"), **subscription.dto()}
    return odata_response(body, status=201)


async def _attachments(call: _Call) -> web.Response:
    body = await _read_json(call.request)
    return await create_attachment(
        call.tenant, call.sim.attachments, call.folder(), body, call.base_url
    )


async def _attachment(call: _Call) -> web.Response:
    key = call.match.params["key"]
    folder = call.folder()
    return await get_attachment(call.tenant, call.sim.attachments, folder, key, call.base_url)


async def _blob_put(call: _Call) -> web.Response:
    return await put_blob(call.tenant, call.sim.attachments, call.request, call.match.params["key"])


async def _blob_get(call: _Call) -> web.Response:
    return await get_blob(call.tenant, call.sim.attachments, call.match.params["key"])


_HANDLERS: dict[Endpoint, Callable[[_Call], Awaitable[web.Response]]] = {
    Endpoint.FOLDERS: _folders,
    Endpoint.RELEASES: _releases,
    Endpoint.JOBS: _jobs,
    Endpoint.JOB: _job,
    Endpoint.JOB_BY_KEY: _job_by_key,
    Endpoint.START_JOBS: _start_jobs,
    Endpoint.STOP_JOBS: _stop_jobs,
    Endpoint.STOP_JOB: _stop_job,
    Endpoint.VALIDATE_DYNAMIC_JOB: _validate_dynamic_job,
    Endpoint.RESUME_JOB: _resume_job,
    Endpoint.RESTART_JOB: _restart_job,
    Endpoint.FOLDERS_FOR_USER: _folders_for_user,
    Endpoint.ATTACHMENTS: _attachments,
    Endpoint.WEBHOOKS: _webhooks,
    Endpoint.CREATE_WEBHOOK: _create_webhook,
    Endpoint.ATTACHMENT: _attachment,
    Endpoint.BLOB_PUT: _blob_put,
    Endpoint.BLOB_GET: _blob_get,
}
