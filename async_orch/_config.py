"""Settings: where Orchestrator is, how to authenticate, how patient to be.

Everything here is pure: frozen dataclasses, URL parsing and the environment
reader, which is handed its mapping. Mistakes raise :class:`ConfigurationError`
before any request is sent, with the fix in the message.

Environment variables read by :meth:`Settings.from_env` (the ``UIPATH_`` names
are the official UiPath SDK's and ``uip login``'s; the ``ASYNC_ORCH_`` ones are
ours). Empty values count as unset.

==========================  ==========================================================
Variable                    Meaning
==========================  ==========================================================
UIPATH_URL                  Orchestrator URL (required), e.g.
                            ``https://cloud.uipath.com/ORG/TENANT/orchestrator_``.
                            A bare ``https://cloud.uipath.com`` is completed with the
                            two variables below, as ``uip login`` writes them.
UIPATH_ORGANIZATION_NAME    Organization, used only to complete a bare cloud URL.
UIPATH_TENANT_NAME          Tenant: completes a bare cloud URL; the
                            ``X-UIPATH-TenantName`` of the legacy refresh-token flow
                            (default: the URL's tenant); the ``tenancyName`` of the
                            on-premises password flow (default ``Default``).
UIPATH_CLIENT_ID            External application's App ID (client credentials), or the
                            client id of the legacy refresh-token flow.
UIPATH_CLIENT_SECRET        External application's App Secret.
UIPATH_ACCESS_TOKEN         A ready token, e.g. a personal access token; never refreshed.
UIPATH_FOLDER_KEY           Default folder by Key (GUID); not with UIPATH_FOLDER_PATH.
UIPATH_FOLDER_PATH          Default folder by full path, e.g. ``Finance/Invoices``.
ASYNC_ORCH_SCOPES           Scopes asked for with client credentials
                            (default ``OR.Folders.Read OR.Execution.Read OR.Jobs``).
ASYNC_ORCH_REFRESH_TOKEN    Legacy "User Key" for ``account.uipath.com/oauth/token``.
ASYNC_ORCH_USERNAME         On-premises user (``/api/Account/Authenticate``).
ASYNC_ORCH_PASSWORD         On-premises password.
ASYNC_ORCH_IDENTITY_URL     Token endpoint, when the derived one is wrong for you.
ASYNC_ORCH_DEPLOYMENT       ``automation-suite`` for an Automation Suite URL
                            (``https://{server}/{org}/{tenant}/orchestrator_``): tokens
                            then come from ``{server}/identity/connect/token`` (client
                            credentials) or ``{server}/{org}/{tenant}/api/account/
                            authenticate`` (username/password). Default ``auto``: from
                            the URL alone (Automation Cloud's ``/{org}/identity_``).
ASYNC_ORCH_TIMEOUT          Seconds a whole request may take (default 60).
ASYNC_ORCH_CONNECT_TIMEOUT  Seconds to open a connection (default 10).
ASYNC_ORCH_RETRY_ATTEMPTS   Tries per request, the first included (default 5).
ASYNC_ORCH_RECONCILE_WINDOW Seconds a StartJobs without a clear answer may still create
                            jobs (default: ASYNC_ORCH_TIMEOUT + 30); see RetryPolicy.
ASYNC_ORCH_MAX_CONNECTIONS  Connection pool size, 0 for no limit (default 100).
ASYNC_ORCH_CA_BUNDLE        PEM file of the CAs to trust instead of the system's (say, a
                            corporate proxy's); ``SSL_CERT_FILE`` when unset.
HTTPS_PROXY, HTTP_PROXY,    Proxies, read by :mod:`async_orch._sessions` (not Settings)
NO_PROXY                    the way curl and requests read them.
==========================  ==========================================================

Credentials are taken in this order: client id + secret, client id + refresh
token, username + password, access token (the SDK also prefers client
credentials over a token).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal
from urllib.parse import SplitResult, urlsplit

from yarl import URL

from async_orch._errors import ConfigurationError
from async_orch._jsonvalues import shown
from async_orch._retries import RetryPolicy  # re-exported: settings carry one

__all__ = [
    "DEFAULT_SCOPES",
    "LEGACY_TOKEN_URL",
    "ClientCredentials",
    "ConnectionLimits",
    "Credentials",
    "OrchestratorUrl",
    "PasswordCredentials",
    "RefreshTokenCredentials",
    "RequestTimeouts",
    "RetryPolicy",
    "Settings",
    "StaticToken",
    "parse_orchestrator_url",
]

#: What a dispatcher needs: list folders, find releases, start/read/stop jobs
#: (scopes per endpoint: orchestrator-api.md §1a).
DEFAULT_SCOPES = "OR.Folders.Read OR.Execution.Read OR.Jobs"

#: Token endpoint of the retired "API access" (User Key) flow (orchestrator-api.md §1b).
LEGACY_TOKEN_URL = "https://account.uipath.com/oauth/token"

_CLOUD_EXAMPLE = "https://cloud.uipath.com/{organization}/{tenant}/orchestrator_"


# -- credentials ---------------------------------------------------------------


def _require(owner: str, **values: str) -> None:
    for name, value in values.items():
        if not isinstance(value, str):
            raise ConfigurationError(f"{owner}.{name} must be a string, not {type(value).__name__}")
        if not value.strip():
            raise ConfigurationError(f"{owner}.{name} is empty")


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientCredentials:
    """An external application (Automation Cloud, Automation Suite, on-premises 2021.10+).

    Sent form-encoded to ``.../identity_/connect/token`` with
    ``grant_type=client_credentials``; the app needs these scopes granted.
    ``scopes`` is one space-separated string, as OAuth sends it
    (``"OR.Jobs OR.Folders.Read"``); a list or tuple is refused, not joined.
    """

    client_id: str
    client_secret: str = field(repr=False)
    scopes: str = DEFAULT_SCOPES

    def __post_init__(self) -> None:
        scopes: object = self.scopes  # typed as object: a check of what callers pass
        if not isinstance(scopes, str):
            raise ConfigurationError(
                "ClientCredentials.scopes must be one space-separated string such as "
                f"{DEFAULT_SCOPES!r}, not {type(scopes).__name__}"
            )
        _require(
            "ClientCredentials",
            client_id=self.client_id,
            client_secret=self.client_secret,
            scopes=self.scopes,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RefreshTokenCredentials:
    """The legacy cloud flow: a User Key exchanged at account.uipath.com (deprecated)."""

    client_id: str
    refresh_token: str = field(repr=False)
    tenant_name: str

    def __post_init__(self) -> None:
        _require(
            "RefreshTokenCredentials",
            client_id=self.client_id,
            refresh_token=self.refresh_token,
            tenant_name=self.tenant_name,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PasswordCredentials:
    """On-premises ``POST /api/Account/Authenticate`` (deprecated by UiPath, still common)."""

    tenancy_name: str
    username: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        _require(
            "PasswordCredentials",
            tenancy_name=self.tenancy_name,
            username=self.username,
            password=self.password,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class StaticToken:
    """A bearer token used as is (personal access token); it cannot be refreshed."""

    token: str = field(repr=False)

    def __post_init__(self) -> None:
        _require("StaticToken", token=self.token)


Credentials = ClientCredentials | RefreshTokenCredentials | PasswordCredentials | StaticToken


# -- policies --------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestTimeouts:
    """Seconds allowed per request: in all, and to open a connection (TCP + TLS)."""

    total: float = 60.0
    connect: float = 10.0

    def __post_init__(self) -> None:
        for name in ("total", "connect"):
            if (problem := seconds_problem(getattr(self, name), allow_zero=False)) is not None:
                raise ConfigurationError(f"RequestTimeouts.{name} {problem}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionLimits:
    """Connection pool size in all and per host; 0 means no limit (aiohttp's convention)."""

    max_connections: int = 100
    per_host: int = 0

    def __post_init__(self) -> None:
        if self.max_connections < 0 or self.per_host < 0:
            raise ConfigurationError("ConnectionLimits values must not be negative")


# -- Orchestrator URL ------------------------------------------------------------

UrlKind = Literal["cloud", "onprem", "legacy"]
Deployment = Literal["auto", "automation-suite"]
DEPLOYMENTS: tuple[Deployment, ...] = ("auto", "automation-suite")

# Path segments that begin the API itself, i.e. a pasted request URL.
_API_ROOTS = frozenset({"odata", "api", "swagger", "signalr"})
# First path segments of Orchestrator's web UI after orchestrator_, as a URL pasted
# from the browser has them. UNCONFIRMED as a complete list (taken from pages seen
# in UiPath's documentation); anything else there is refused as a likely folder.
_WEB_UI_PAGES = frozenset(
    {
        "actions",
        "assets",
        "automations",
        "folders",
        "home",
        "jobs",
        "logs",
        "machines",
        "monitoring",
        "packages",
        "processes",
        "queues",
        "robots",
        "settings",
        "storage-buckets",
        "tenant",
        "testing",
        "triggers",
        "users",
    }
)
_LEGACY_HOSTS = frozenset({"platform.uipath.com"})


@dataclass(frozen=True, slots=True, kw_only=True)
class OrchestratorUrl:
    """An Orchestrator URL, understood.

    Attributes:
        base: the root that API paths such as ``odata/Jobs`` are appended to
            (after a "/"); no trailing slash.
        kind: ``cloud`` (Automation Cloud or Automation Suite, ``/{org}/{tenant}/
            orchestrator_``), ``onprem`` (standalone server) or ``legacy``
            (``platform.uipath.com/{account}/{tenant}``).
        organization, tenant: from the path, when it has them.
        identity_token_url: the token endpoint that goes with this URL.
    """

    base: str
    kind: UrlKind
    organization: str | None
    tenant: str | None
    identity_token_url: str

    @property
    def password_auth_url(self) -> str:
        """The password flow's endpoint: ``{base}/api/Account/Authenticate`` on-premises;
        ``{server}/{org}/{tenant}/api/account/authenticate`` for an organization/tenant
        URL, which only Automation Suite serves (Automation Cloud has no password flow;
        orchestrator-api.md §8, docs.uipath.com automation-suite ropc-authentication)."""
        if self.kind == "cloud":
            origin = self.base.rsplit("/", 3)[0]
            return f"{origin}/{self.organization}/{self.tenant}/api/account/authenticate"
        return f"{self.base}/api/Account/Authenticate"

    @property
    def automation_suite_token_url(self) -> str:
        """Automation Suite's Identity Server token endpoint, ``{server}/identity/connect/
        token``. UNCONFIRMED (orchestrator-api.md §1a, §8): set identity_url if yours
        differs."""
        return f"{self.base.rsplit('/', 3)[0]}/identity/connect/token"


def _is_uipath_cloud_host(host: str) -> bool:
    return host.endswith((".uipath.com", ".uipath.us"))


def _is_service_segment(segment: str) -> bool:
    # Automation Cloud serves each product under "{name}_" (portal_, studio_, ...).
    return segment.endswith("_") and segment != "orchestrator_"


def _fail(url: str, problem: str) -> ConfigurationError:
    return ConfigurationError(f"Orchestrator URL {shown(url)}: {problem}")


def _split(url: str) -> SplitResult:
    """``urlsplit``, with the port and host checked too; ValueError for a malformed
    URL (an unclosed ``[`` of an IPv6 address, a port that is not 0-65535, a host
    name IDNA refuses, such as one holding a bidi control character)."""
    parts = urlsplit(url)
    _ = parts.port  # parsed lazily: reading it is what checks it
    URL(url)  # aiohttp's parser: what it refuses later would be a bare ValueError
    return parts


def _malformed(problem: ValueError) -> str:
    return (
        f"not a valid URL ({problem}); check the host and port, e.g. "
        "https://orch.example.com:8443 (an IPv6 address goes in brackets: http://[::1]:8080)"
    )


def _check_tail(url: str, tail: list[str], base: str, *, after_orchestrator: bool) -> None:
    """Reject a folder (or other stray segment) after the part that names the tenant."""
    if not tail or tail[0].lower() in _API_ROOTS:
        return  # nothing more, or a pasted API call such as ".../odata/Jobs?$top=1"
    later = [s.lower() for s in tail[1:]]
    if (
        after_orchestrator
        and tail[0].lower() in _WEB_UI_PAGES
        and not {"odata", "api"} & set(later)
    ):
        return  # a page of the web UI, such as ".../orchestrator_/jobs"
    if _is_service_segment(tail[0].lower()):
        raise _fail(url, f"{shown(tail[0])} is another UiPath service; use {base}")
    raise _fail(
        url,
        f"{shown(tail[0])} looks like a folder, and folders are not part of the URL. "
        f"Use {base} and choose the folder with the folder setting (UIPATH_FOLDER_PATH)",
    )


def parse_orchestrator_url(url: str) -> OrchestratorUrl:
    """Understand an Orchestrator URL as users paste it, or say how to fix it.

    Accepted shapes (``http`` works like ``https``; a query or fragment is dropped):

    * ``https://cloud.uipath.com/{org}/{tenant}/orchestrator_``, also with a
      pasted API path (``.../orchestrator_/odata/Jobs?x``), a web-UI path
      (``.../orchestrator_/jobs``), or without ``orchestrator_``. Any host with
      ``/{org}/{tenant}/orchestrator_`` is Automation Suite and works the same.
    * ``https://orch.example.com`` (on-premises; one path segment is taken as
      the virtual directory Orchestrator is installed under).
    * ``https://platform.uipath.com/{account}/{tenant}`` (legacy cloud).

    The cloud token endpoint is ``{host}/{org}/identity_/connect/token``. The
    host-level ``{host}/identity_/connect/token`` works too (orchestrator-api.md
    §1a), but the organization-scoped form is the one current UiPath docs give
    and tells the identity server which organization's external applications to
    look the client id up in. UNCONFIRMED for Automation Suite: if its identity
    server wants the host-level form, set ``identity_url``.

    Raises:
        ConfigurationError: no scheme, no host, credentials in the URL, an
            identity-server URL, a tenant or organization missing, a folder in
            the path, another UiPath service's URL.
    """
    text = url.strip()
    if not text:
        raise ConfigurationError(
            f"the Orchestrator URL is empty; set UIPATH_URL to {_CLOUD_EXAMPLE}"
        )
    if "://" not in text:
        raise _fail(text, f"no scheme; write 'https://{text}'")
    try:
        parts = _split(text)
    except ValueError as exc:
        raise _fail(text, _malformed(exc)) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise _fail(text, f"scheme {shown(parts.scheme)} is not http or https")
    host = (parts.hostname or "").lower()
    if not host:
        raise _fail(text, "no host name")
    if parts.username is not None or parts.password is not None:
        # Do not echo the URL: it holds a password.
        raise ConfigurationError(
            "the Orchestrator URL must not contain user:password@; give credentials "
            "through Settings.credentials (UIPATH_CLIENT_ID/UIPATH_CLIENT_SECRET, ...)"
        )
    origin = f"{scheme}://{parts.netloc.lower()}"
    segments = [s for s in parts.path.split("/") if s]
    lowered = [s.lower() for s in segments]

    identity_hint = (
        f"that is the identity (token) server, not Orchestrator. Use {_CLOUD_EXAMPLE} "
        "(or https://{server} on-premises); set identity_url (ASYNC_ORCH_IDENTITY_URL) "
        "only if the token endpoint itself must change"
    )
    if host == "account.uipath.com" or "identity_" in lowered:
        raise _fail(text, identity_hint)
    if "orchestrator_" in lowered:
        return _parse_cloud(text, origin, segments, lowered.index("orchestrator_"))
    if host in _LEGACY_HOSTS:
        return _parse_legacy(text, origin, segments)
    if _is_uipath_cloud_host(host):
        return _parse_cloud(text, origin, segments, None)
    if lowered[:1] == ["identity"]:
        raise _fail(text, identity_hint)
    return _parse_onprem(text, origin, segments)


def _parse_cloud(
    url: str, origin: str, segments: list[str], orchestrator_at: int | None
) -> OrchestratorUrl:
    prefix = segments if orchestrator_at is None else segments[:orchestrator_at]
    lowered = [s.lower() for s in prefix]
    named = 0  # how many leading segments can be organization, tenant
    while named < min(2, len(prefix)) and not (
        lowered[named] in _API_ROOTS or _is_service_segment(lowered[named])
    ):
        named += 1
    if named < min(2, len(prefix)) and _is_service_segment(lowered[named]):
        raise _fail(
            url,
            f"{shown(prefix[named])} is another UiPath service, not Orchestrator; "
            f"use {_CLOUD_EXAMPLE}",
        )
    if named == 0:
        raise _fail(url, f"organization and tenant missing from the URL; use {_CLOUD_EXAMPLE}")
    if named == 1:
        raise _fail(
            url,
            f"tenant missing from the URL; use {origin}/{prefix[0]}/{{tenant}}/orchestrator_",
        )
    organization, tenant = prefix[0], prefix[1]
    base = f"{origin}/{organization}/{tenant}/orchestrator_"
    if orchestrator_at is None:
        _check_tail(url, prefix[2:], base, after_orchestrator=False)
    else:
        if len(prefix) > 2:
            raise _fail(
                url,
                f"expected only organization and tenant before orchestrator_, got "
                f"{shown('/'.join(prefix))}; use {_CLOUD_EXAMPLE}",
            )
        _check_tail(url, segments[orchestrator_at + 1 :], base, after_orchestrator=True)
    return OrchestratorUrl(
        base=base,
        kind="cloud",
        organization=organization,
        tenant=tenant,
        identity_token_url=f"{origin}/{organization}/identity_/connect/token",
    )


def _parse_legacy(url: str, origin: str, segments: list[str]) -> OrchestratorUrl:
    lowered = [s.lower() for s in segments]
    if not segments or lowered[0] in _API_ROOTS:
        raise _fail(
            url, f"account and tenant missing from the URL; use {origin}/{{account}}/{{tenant}}"
        )
    if len(segments) < 2 or lowered[1] in _API_ROOTS:
        raise _fail(url, f"tenant missing from the URL; use {origin}/{segments[0]}/{{tenant}}")
    account, tenant = segments[0], segments[1]
    base = f"{origin}/{account}/{tenant}"
    _check_tail(url, segments[2:], base, after_orchestrator=False)
    return OrchestratorUrl(
        base=base,
        kind="legacy",
        organization=account,
        tenant=tenant,
        identity_token_url=LEGACY_TOKEN_URL,
    )


def _parse_onprem(url: str, origin: str, segments: list[str]) -> OrchestratorUrl:
    lowered = [s.lower() for s in segments]
    api_at = next((i for i, s in enumerate(lowered) if s in _API_ROOTS), len(segments))
    prefix = segments[:api_at]
    if len(prefix) == 2:
        raise _fail(
            url,
            "an on-premises Orchestrator URL has no organization/tenant path; if this is "
            f"Automation Suite, add orchestrator_: {origin}/{prefix[0]}/{prefix[1]}/orchestrator_",
        )
    if len(prefix) > 2:
        raise _fail(
            url,
            f"unexpected path {shown('/'.join(prefix))}; use {origin} (on-premises) or "
            f"{origin}/{{organization}}/{{tenant}}/orchestrator_ (Automation Suite)",
        )
    base = "/".join([origin, *prefix])
    return OrchestratorUrl(
        base=base,
        kind="onprem",
        organization=None,
        tenant=None,
        identity_token_url=f"{origin}/identity/connect/token",
    )


def _check_http_url(name: str, value: str) -> None:
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a string (a URL), not {type(value).__name__}")
    try:
        parts = _split(value.strip())
    except ValueError as exc:
        raise ConfigurationError(f"{name} {shown(value)}: {_malformed(exc)}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"{name} {shown(value)} must be an absolute http(s) URL")


# -- settings --------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Where Orchestrator is and how to talk to it. Validated when built.

    Attributes:
        url: the Orchestrator URL (see `parse_orchestrator_url`).
        credentials: one of ClientCredentials, RefreshTokenCredentials,
            PasswordCredentials, StaticToken.
        folder: the default folder (full path, or Key), if any.
        identity_url: token endpoint override; by default it is derived from
            ``url`` and the kind of credentials (see [`token_url`][async_orch.Settings.token_url]).
        timeout: seconds allowed per request, in all and to connect.
        retry: how transient failures are retried.
        limits: the connection pool size, in all and per host.
        ca_bundle: a PEM file of the CAs to trust instead of the system's
            (None: the system's, which OpenSSL reads from ``SSL_CERT_FILE`` if set).
        deployment: ``"automation-suite"`` makes the token endpoints those of
            Automation Suite (see [`token_url`][async_orch.Settings.token_url]); ``"auto"``
            (default) derives them from the URL alone.

    Example:

        Settings(
            url="https://cloud.uipath.com/acme/DefaultTenant/orchestrator_",
            credentials=ClientCredentials(client_id="...", client_secret="..."),
            folder="Finance/Invoices",
        )
    """

    url: str
    credentials: Credentials
    folder: str | None = None
    identity_url: str | None = None
    timeout: RequestTimeouts = field(default_factory=RequestTimeouts)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    ca_bundle: str | None = None
    deployment: Deployment = "auto"

    def __post_init__(self) -> None:
        url: object = self.url  # typed as object: a check of what callers pass
        if not isinstance(url, str):
            raise ConfigurationError(
                f"Settings.url must be the Orchestrator URL as a string, not {type(url).__name__}"
                f"; e.g. {_CLOUD_EXAMPLE}"
            )
        where = self.orchestrator  # parses, raising ConfigurationError on a bad URL
        credentials = self.credentials
        if not isinstance(
            credentials,
            ClientCredentials | RefreshTokenCredentials | PasswordCredentials | StaticToken,
        ):
            raise ConfigurationError(
                "Settings.credentials must be ClientCredentials, RefreshTokenCredentials, "
                f"PasswordCredentials or StaticToken, not {type(credentials).__name__}"
            )
        if self.identity_url is not None:
            _check_http_url("identity_url (ASYNC_ORCH_IDENTITY_URL)", self.identity_url)
        if self.deployment not in DEPLOYMENTS:
            raise ConfigurationError(
                f"deployment (ASYNC_ORCH_DEPLOYMENT) {shown(self.deployment)} is not one of "
                f"{', '.join(DEPLOYMENTS)}"
            )
        if self.deployment == "automation-suite" and where.kind != "cloud":
            raise ConfigurationError(
                "deployment automation-suite needs the Automation Suite Orchestrator URL, "
                "https://{server}/{organization}/{tenant}/orchestrator_; "
                f"{shown(self.url)} has no organization and tenant"
            )
        if isinstance(credentials, ClientCredentials) and where.kind == "legacy":
            raise ConfigurationError(
                "platform.uipath.com URLs belong to the retired API-access flow; an external "
                "application (client id + secret) works with "
                f"https://cloud.uipath.com/{where.organization}/{where.tenant}/orchestrator_"
            )
        host = (urlsplit(where.base).hostname or "").lower()
        if isinstance(credentials, PasswordCredentials) and _is_uipath_cloud_host(host):
            raise ConfigurationError(
                "username/password (/api/Account/Authenticate) works only with on-premises "
                "Orchestrator; Automation Cloud needs an external application: set "
                "UIPATH_CLIENT_ID and UIPATH_CLIENT_SECRET (or use a personal access token)"
            )
        folder: object = self.folder
        if folder is not None and not isinstance(folder, str):
            raise ConfigurationError(
                f"Settings.folder must be a folder path or Key (a string), not "
                f"{type(folder).__name__}"
            )
        if self.folder is not None and not self.folder.strip():
            raise ConfigurationError("Settings.folder is empty; leave it None for no default")
        if self.ca_bundle is not None and not os.path.isfile(self.ca_bundle):
            raise ConfigurationError(
                f"CA bundle {shown(self.ca_bundle)} (ASYNC_ORCH_CA_BUNDLE or SSL_CERT_FILE) is not "
                "a readable file; give the path of a PEM file of trusted certificates"
            )

    @property
    def orchestrator(self) -> OrchestratorUrl:
        """The parsed `url`."""
        return parse_orchestrator_url(self.url)

    @property
    def token_url(self) -> str | None:
        """Where the credentials are exchanged for a token (None for a StaticToken).

        ``identity_url`` if set; else the Orchestrator's password endpoint
        (`OrchestratorUrl.password_auth_url`) for a password,
        account.uipath.com for a refresh token, and the URL's identity server for
        client credentials (Automation Suite's with ``deployment="automation-suite"``).
        """
        credentials = self.credentials
        if isinstance(credentials, StaticToken):
            return None
        if self.identity_url is not None:
            return self.identity_url.strip()
        if isinstance(credentials, PasswordCredentials):
            return self.orchestrator.password_auth_url
        if isinstance(credentials, RefreshTokenCredentials):
            return LEGACY_TOKEN_URL
        if self.deployment == "automation-suite":
            return self.orchestrator.automation_suite_token_url
        return self.orchestrator.identity_token_url

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from environment variables (table in the module docstring).

        Args:
            environ: the variables; ``os.environ`` when None.
            **overrides: Settings fields that win over the environment. A None
                value counts as not given, so CLI flags can be passed through as is.

        Raises:
            ConfigurationError: a variable is missing, malformed or inconsistent.
            TypeError: an override that is not a Settings field.
        """
        env = _Env(os.environ if environ is None else environ)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"unknown setting(s) {unknown}; valid: {sorted(known)}")
        given = {k: v for k, v in overrides.items() if v is not None}

        url = given.pop("url", None) or _url_from_env(env)
        values: dict[str, Any] = {
            "url": url,
            "folder": _default_folder(env) if "folder" not in given else None,
            "identity_url": env.get("ASYNC_ORCH_IDENTITY_URL"),
            "timeout": RequestTimeouts(
                total=env.seconds("ASYNC_ORCH_TIMEOUT", 60.0),
                connect=env.seconds("ASYNC_ORCH_CONNECT_TIMEOUT", 10.0),
            ),
            "retry": RetryPolicy(
                attempts=env.integer("ASYNC_ORCH_RETRY_ATTEMPTS", 5),
                reconcile_window=env.optional_seconds("ASYNC_ORCH_RECONCILE_WINDOW"),
            ),
            "limits": ConnectionLimits(
                max_connections=env.integer("ASYNC_ORCH_MAX_CONNECTIONS", 100)
            ),
            "ca_bundle": env.get("ASYNC_ORCH_CA_BUNDLE") or env.get("SSL_CERT_FILE"),
            "deployment": (env.get("ASYNC_ORCH_DEPLOYMENT") or "auto").lower().replace("_", "-"),
        }
        if "credentials" not in given:
            values["credentials"] = _credentials_from_env(env, url)
        values.update(given)
        return cls(**values)


#: Variables that hold seconds: (name, whether 0 is allowed).
SECONDS_VARIABLES = {
    "ASYNC_ORCH_TIMEOUT": False,
    "ASYNC_ORCH_CONNECT_TIMEOUT": False,
    "ASYNC_ORCH_RECONCILE_WINDOW": True,
}
#: Variables that hold whole numbers: name -> the least allowed.
COUNT_VARIABLES = {"ASYNC_ORCH_RETRY_ATTEMPTS": 1, "ASYNC_ORCH_MAX_CONNECTIONS": 0}


def seconds_problem(value: object, *, allow_zero: bool) -> str | None:
    """Why ``value`` is not a usable number of seconds, or None. NaN, infinity and
    1e400 (infinity once parsed) are floats to Python, not to a timer."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a number of seconds, not {type(value).__name__}"
    if not (0 <= value < math.inf) or (value == 0 and not allow_zero):
        least = "0 or more" if allow_zero else "more than 0"
        return f"must be a finite number of seconds, {least} (like 30 or 2.5), not {value:g}"
    return None


def setting_problem(variable: str, text: str) -> str | None:
    """Why ``text`` is not a valid value of the number variable ``variable`` (see
    :data:`SECONDS_VARIABLES`, :data:`COUNT_VARIABLES`), or None (also for others)."""
    if variable in SECONDS_VARIABLES:
        try:
            value = float(text)
        except ValueError:
            return "is not a number of seconds (write it like 30 or 2.5)"
        return seconds_problem(value, allow_zero=SECONDS_VARIABLES[variable])
    if variable in COUNT_VARIABLES:
        least = COUNT_VARIABLES[variable]
        try:
            count = int(text)
        except ValueError:  # not a whole number, or over Python's 4,300-digit limit
            return f"is not a whole number (of at least {least})"
        if count < least:
            return f"must be a whole number of at least {least}, not {count}"
    return None


def undecodable_byte(text: str) -> int | None:
    """The first byte of ``text`` that was not UTF-8 (os.environ and argv keep such
    bytes as lone surrogates, U+DC80..U+DCFF), or None."""
    if text.isascii():
        return None
    return next((ord(c) - 0xDC00 for c in text if 0xDC80 <= ord(c) <= 0xDCFF), None)


def _default_folder(env: _Env) -> str | None:
    """UIPATH_FOLDER_KEY or UIPATH_FOLDER_PATH; both at once is refused: each names a
    folder, and silently taking one (the SDK takes the Key) surprises whoever set the other."""
    key, path = env.get("UIPATH_FOLDER_KEY"), env.get("UIPATH_FOLDER_PATH")
    if key and path:
        raise ConfigurationError(
            f"UIPATH_FOLDER_KEY ({key}) and UIPATH_FOLDER_PATH ({path!r}) are both set, each "
            "naming the default folder: unset one (a profile's folder_key and folder set them)"
        )
    return key or path


class _Env:
    """Environment lookups: stripped, empty means unset, bytes and numbers checked."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def get(self, name: str) -> str | None:
        value = self._environ.get(name)
        if value is None or not value.strip():
            return None
        byte = undecodable_byte(value)
        if byte is not None:
            # The value is not shown: this may be a secret.
            raise ConfigurationError(
                f"{name} holds a byte that is not UTF-8 (0x{byte:02x}); set it as UTF-8 text"
            )
        return value.strip()

    def _checked(self, name: str) -> str | None:
        value = self.get(name)
        if value is not None and (problem := setting_problem(name, value)) is not None:
            raise ConfigurationError(f"{name}={shown(value)} {problem}")
        return value

    def seconds(self, name: str, default: float) -> float:
        value = self._checked(name)
        return default if value is None else float(value)

    def optional_seconds(self, name: str) -> float | None:
        value = self._checked(name)
        return None if value is None else float(value)

    def integer(self, name: str, default: int) -> int:
        value = self._checked(name)
        return default if value is None else int(value)


def _url_from_env(env: _Env) -> str:
    url = env.get("UIPATH_URL")
    if url is None:
        raise ConfigurationError(f"UIPATH_URL is not set; set it to {_CLOUD_EXAMPLE}")
    organization = env.get("UIPATH_ORGANIZATION_NAME")
    tenant = env.get("UIPATH_TENANT_NAME")
    try:
        parts = _split(url)
    except ValueError as exc:
        raise _fail(url, _malformed(exc)) from None
    # `uip login` stores the bare host and the organization and tenant apart.
    if organization and tenant and parts.path.strip("/") == "" and parts.hostname:
        return f"{url.rstrip('/')}/{organization}/{tenant}/orchestrator_"
    return url


def _credentials_from_env(env: _Env, url: str) -> Credentials:
    client_id = env.get("UIPATH_CLIENT_ID")
    client_secret = env.get("UIPATH_CLIENT_SECRET")
    refresh_token = env.get("ASYNC_ORCH_REFRESH_TOKEN")
    username = env.get("ASYNC_ORCH_USERNAME")
    password = env.get("ASYNC_ORCH_PASSWORD")
    access_token = env.get("UIPATH_ACCESS_TOKEN")

    if client_id and client_secret:
        return ClientCredentials(
            client_id=client_id,
            client_secret=client_secret,
            scopes=env.get("ASYNC_ORCH_SCOPES") or DEFAULT_SCOPES,
        )
    if client_id and refresh_token:
        tenant = env.get("UIPATH_TENANT_NAME") or parse_orchestrator_url(url).tenant
        if not tenant:
            raise ConfigurationError(
                "the refresh-token flow needs the tenant's logical name: set UIPATH_TENANT_NAME"
            )
        return RefreshTokenCredentials(
            client_id=client_id, refresh_token=refresh_token, tenant_name=tenant
        )
    if client_id and not access_token:
        raise ConfigurationError(
            "UIPATH_CLIENT_ID is set but UIPATH_CLIENT_SECRET is not (or, for the legacy "
            "flow, ASYNC_ORCH_REFRESH_TOKEN)"
        )
    if username or password:
        if not (username and password):
            missing = "ASYNC_ORCH_PASSWORD" if username else "ASYNC_ORCH_USERNAME"
            raise ConfigurationError(f"{missing} is not set (the password flow needs both)")
        # "Default" is the tenant a standalone Orchestrator is installed with.
        return PasswordCredentials(
            tenancy_name=env.get("UIPATH_TENANT_NAME") or "Default",
            username=username,
            password=password,
        )
    if access_token:
        return StaticToken(token=access_token)
    raise ConfigurationError(
        "no credentials: set UIPATH_CLIENT_ID and UIPATH_CLIENT_SECRET (an external "
        "application), or UIPATH_ACCESS_TOKEN (a personal access token), or, on-premises, "
        "ASYNC_ORCH_USERNAME and ASYNC_ORCH_PASSWORD"
    )
