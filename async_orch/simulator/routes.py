"""Which endpoint a request path names, matched case-insensitively like ASP.NET.

Orchestrator endpoints are served under three base shapes:

* cloud / Automation Suite: ``/{organization}/{tenant}/orchestrator_/odata/...``
* legacy cloud (platform.uipath.com era): ``/{account}/{tenant}/odata/...``
* standalone (on-premises): ``/odata/...``, the tenant comes from the token

A path of the legacy shape whose segments are not a tenant (say, the folder name
put in the URL) still matches; authentication then fails with 401 for that
"tenant", which is what the real service answers to that mistake.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

__all__ = ["Endpoint", "RouteMatch", "match_route"]


class Endpoint(enum.Enum):
    """Every endpoint the simulator serves; the value is the stats template."""

    TOKEN = "POST /identity_/connect/token"
    LEGACY_TOKEN = "POST /oauth/token"
    AUTHENTICATE = "POST /api/Account/Authenticate"
    FOLDERS = "GET /odata/Folders"
    RELEASES = "GET /odata/Releases"
    JOBS = "GET /odata/Jobs"
    JOB = "GET /odata/Jobs({key})"
    JOB_BY_KEY = "GET /odata/Jobs/UiPath.Server.Configuration.OData.GetByKey(identifier={key})"
    START_JOBS = "POST /odata/Jobs/UiPath.Server.Configuration.OData.StartJobs"
    STOP_JOBS = "POST /odata/Jobs/UiPath.Server.Configuration.OData.StopJobs"
    STOP_JOB = "POST /odata/Jobs({key})/UiPath.Server.Configuration.OData.StopJob"
    VALIDATE_DYNAMIC_JOB = "POST /odata/Jobs/UiPath.Server.Configuration.OData.ValidateDynamicJob"
    RESUME_JOB = "POST /odata/Jobs/UiPath.Server.Configuration.OData.ResumeJob"
    ATTACHMENTS = "POST /odata/Attachments"
    ATTACHMENT = "GET /odata/Attachments({key})"
    # The blob store behind BlobFileAccess.Uri. ASSUMPTION: the real Uri points at
    # a storage service; the simulator serves the content under the tenant's base.
    BLOB_PUT = "PUT /odata/BlobFiles({key})"
    BLOB_GET = "GET /odata/BlobFiles({key})"
    # The official SDK's folder lookup (orchestrator-api.md §8; spec/orchestrator.yaml
    # FoldersNavigation_GetFoldersForCurrentUser).
    FOLDERS_FOR_USER = "GET /api/FoldersNavigation/GetFoldersForCurrentUser"
    RESTART_JOB = "POST /odata/Jobs/UiPath.Server.Configuration.OData.RestartJob"
    WEBHOOKS = "GET /odata/Webhooks"
    CREATE_WEBHOOK = "POST /odata/Webhooks"

    @property
    def method(self) -> str:
        return self.value.split(" ", 1)[0]

    @property
    def is_token(self) -> bool:
        return self in (Endpoint.TOKEN, Endpoint.LEGACY_TOKEN, Endpoint.AUTHENTICATE)


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """A matched path. ``method_allowed`` is False for a known path, wrong method."""

    endpoint: Endpoint
    method_allowed: bool
    organization: str | None = None
    tenant: str | None = None
    base_path: str = ""  # the Orchestrator base: "/org/tenant/orchestrator_", "" on-prem
    params: dict[str, str] = field(default_factory=dict)


_SEG = r"[^/]+"
_GUID = r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}"
_ACTION = r"UiPath\.Server\.Configuration\.OData\."

_ODATA_TAILS: tuple[tuple[re.Pattern[str], Endpoint], ...] = tuple(
    (re.compile(pattern + r"/?", re.IGNORECASE), endpoint)
    for pattern, endpoint in (
        (r"api/FoldersNavigation/GetFoldersForCurrentUser", Endpoint.FOLDERS_FOR_USER),
        (rf"Jobs/{_ACTION}RestartJob", Endpoint.RESTART_JOB),
        (r"Folders", Endpoint.FOLDERS),
        (r"Releases", Endpoint.RELEASES),
        (r"Jobs", Endpoint.JOBS),
        (r"Jobs\((?P<key>-?\d+)\)", Endpoint.JOB),
        (rf"Jobs/{_ACTION}GetByKey\(identifier='?(?P<key>{_GUID})'?\)", Endpoint.JOB_BY_KEY),
        (rf"Jobs/{_ACTION}StartJobs", Endpoint.START_JOBS),
        (rf"Jobs/{_ACTION}StopJobs", Endpoint.STOP_JOBS),
        (rf"Jobs\((?P<key>-?\d+)\)/{_ACTION}StopJob", Endpoint.STOP_JOB),
        (rf"Jobs/{_ACTION}ValidateDynamicJob", Endpoint.VALIDATE_DYNAMIC_JOB),
        (rf"Jobs/{_ACTION}ResumeJob", Endpoint.RESUME_JOB),
        (r"Attachments", Endpoint.ATTACHMENTS),
        (rf"Attachments\('?(?P<key>{_GUID})'?\)", Endpoint.ATTACHMENT),
        (rf"BlobFiles\((?P<key>{_GUID})\)", Endpoint.BLOB_PUT),
        (rf"BlobFiles\((?P<key>{_GUID})\)", Endpoint.BLOB_GET),
        (r"Webhooks", Endpoint.WEBHOOKS),
        (r"Webhooks", Endpoint.CREATE_WEBHOOK),
    )
)

# The tail after /odata/, or api/... for the few /api/ endpoints.
_TAIL = r"(?:odata/(?P<tail>.*)|(?P<api>api/.*))"
_BASES = (
    re.compile(rf"/(?P<org>{_SEG})/(?P<tenant>{_SEG})/orchestrator_/{_TAIL}", re.I),
    re.compile(rf"/(?P<org>{_SEG})/(?P<tenant>{_SEG})/{_TAIL}", re.I),
    re.compile(rf"/{_TAIL}", re.I),
)

_TOKEN_PATHS: tuple[tuple[re.Pattern[str], Endpoint], ...] = (
    (re.compile(rf"(?:/(?P<org>{_SEG}))?/identity_?/connect/token/?", re.I), Endpoint.TOKEN),
    (re.compile(r"/oauth/token/?", re.I), Endpoint.LEGACY_TOKEN),
    # Standalone: {base}/api/Account/Authenticate; Automation Suite serves it per
    # tenant, /{org}/{tenant}/api/account/authenticate (orchestrator-api.md §8).
    (
        re.compile(rf"(?:/(?P<org>{_SEG})/(?P<tenant>{_SEG}))?/api/account/authenticate/?", re.I),
        Endpoint.AUTHENTICATE,
    ),
)


def match_route(method: str, path: str) -> RouteMatch | None:
    """Match a decoded request path; ``None`` if no endpoint has that path."""
    for pattern, endpoint in _TOKEN_PATHS:
        if m := pattern.fullmatch(path):
            groups = m.groupdict()
            return RouteMatch(
                endpoint,
                method == endpoint.method,
                organization=groups.get("org"),
                tenant=groups.get("tenant"),
            )
    for base in _BASES:
        if not (m := base.fullmatch(path)):
            continue
        groups = m.groupdict()
        tail = groups["tail"] if groups["tail"] is not None else groups["api"]
        start = m.start("tail") - len("odata/") if groups["tail"] is not None else m.start("api")
        base_path = path[: start - 1]
        found: RouteMatch | None = None
        for pattern, endpoint in _ODATA_TAILS:
            if t := pattern.fullmatch(tail):
                match = RouteMatch(
                    endpoint,
                    method == endpoint.method,
                    organization=groups.get("org"),
                    tenant=groups.get("tenant"),
                    base_path=base_path,
                    params={k: v for k, v in t.groupdict().items() if v is not None},
                )
                if match.method_allowed:
                    return match
                found = found or match  # one path, several methods: look on
        return found
    return None
