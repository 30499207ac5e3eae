"""Every way of authenticating, end to end: the client core against the simulator.

Each test builds real :class:`Settings`, opens a real :class:`Transport` and talks
to a simulator on 127.0.0.1 over sockets. Time is a :class:`FakeClock` shared by the
simulator (token lifetimes, rate limits, faults) and the client (token expiry), so
expiry and Retry-After waits happen by moving the clock, never by sleeping.

URLs with UiPath's own host names (``cloud.uipath.com``, ``platform.uipath.com``,
``account.uipath.com``) reach the simulator through :class:`LoopbackResolver`, so
the URL shapes the forum user tried are exercised exactly as typed.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from conftest import DEMO_SCOPES, FakeClock, SimClient

from async_orch._auth import build_token_request, parse_token_response
from async_orch._client import OrchestratorClient
from async_orch._config import (
    LEGACY_TOKEN_URL,
    ClientCredentials,
    Credentials,
    PasswordCredentials,
    RefreshTokenCredentials,
    RetryPolicy,
    Settings,
    StaticToken,
)
from async_orch._errors import AuthenticationError, ConfigurationError
from async_orch._models import StartRequest
from async_orch._resources import OrchestratorAPI
from async_orch._states import JobState
from async_orch._transport import Transport
from async_orch.simulator import Scenario, SimulatorHandle, parse_scenario

DEMO_PATHS = ["Finance", "Finance/Comptabilité", "HR", "Shared"]
LEGACY_CLIENT_ID = "8DEv1AMNXczW3y4U15LL3jYf62jK93n5"  # from the demo scenario
TOKEN = "POST /identity_/connect/token"
LEGACY_TOKEN = "POST /oauth/token"
AUTHENTICATE = "POST /api/Account/Authenticate"

StartSimulator = Callable[..., Awaitable[SimulatorHandle]]


# -- helpers -------------------------------------------------------------------------------


class LoopbackResolver(AbstractResolver):
    """Resolve a few host names to 127.0.0.1 (and refuse every other name)."""

    def __init__(self, *names: str) -> None:
        self._names = {name.lower() for name in names}

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host.lower() not in self._names:
            raise OSError(f"{host} is not routed to the simulator in this test")
        return [
            {
                "hostname": host,
                "host": "127.0.0.1",
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        return None


@dataclass
class RoutedSession:
    """A session in which UiPath's host names lead to 127.0.0.1, recording what it sends."""

    session: aiohttp.ClientSession
    sent: list[tuple[str, str, Mapping[str, str]]] = field(default_factory=list)

    def headers_sent_to(self, url: str) -> list[Mapping[str, str]]:
        return [headers for _, sent_url, headers in self.sent if sent_url == url]


@pytest.fixture
async def uipath_hosts() -> AsyncIterator[RoutedSession]:
    resolver = LoopbackResolver("cloud.uipath.com", "platform.uipath.com", "account.uipath.com")
    sent: list[tuple[str, str, Mapping[str, str]]] = []

    async def record(
        _: aiohttp.ClientSession, __: Any, params: aiohttp.TraceRequestStartParams
    ) -> None:
        sent.append((params.method, str(params.url), dict(params.headers)))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(record)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(resolver=resolver), trace_configs=[trace]
    ) as session:
        yield RoutedSession(session, sent)


async def no_wait_expected(seconds: float) -> None:
    """The default ``sleep``: a retry nobody planned for fails the test at once."""
    raise AssertionError(f"unexpected retry wait of {seconds:.2f} s")


@asynccontextmanager
async def connect(
    settings: Settings,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    session: aiohttp.ClientSession | None = None,
) -> AsyncIterator[tuple[OrchestratorAPI, Transport]]:
    wait = sleep or no_wait_expected
    async with Transport(settings, session=session, clock=clock, sleep=wait) as transport:
        yield OrchestratorAPI(transport), transport


def requests_to(sim: SimulatorHandle, endpoint: str) -> dict[str, int]:
    """{status: count} of the simulator's answers on one endpoint."""
    counts: dict[str, int] = sim.simulator.stats()["requests"].get(endpoint, {})
    return counts


def rejections(sim: SimulatorHandle, status: int) -> int:
    return int(sim.simulator.stats()["rejections"][str(status)])


def demo_credentials(sim: SimulatorHandle) -> ClientCredentials:
    return ClientCredentials(client_id=sim.client_id, client_secret=sim.client_secret)


def legacy_credentials(tenant: str = "DefaultTenant") -> RefreshTokenCredentials:
    return RefreshTokenCredentials(
        client_id=LEGACY_CLIENT_ID, refresh_token="demo-refresh-token", tenant_name=tenant
    )


def admin_password(tenancy: str = "Default") -> PasswordCredentials:
    return PasswordCredentials(tenancy_name=tenancy, username="admin", password="demo-password")


async def admin_post(
    http: aiohttp.ClientSession, sim: SimulatorHandle, path: str, **body: Any
) -> Any:
    async with http.post(
        f"{sim.root_url}/_simulator/{path}", json=body, headers=sim.admin_headers
    ) as response:
        assert response.status == 200, await response.text()
        return await response.json()


def tenant_scenario(
    *, expires_in: int = 3600, legacy_expires_in: int = 86400, onprem_expires_in: int = 1800
) -> Scenario:
    """One tenant, acme/Prod, with every kind of credential and the given lifetimes."""
    return parse_scenario(
        f"""
        [[tenants]]
        organization = "acme"
        name = "Prod"
        expires_in = {expires_in}
        legacy_expires_in = {legacy_expires_in}
        onprem_expires_in = {onprem_expires_in}

        [[tenants.credentials]]
        client_id = "app"
        client_secret = "app-secret"
        scopes = ["OR.Folders.Read", "OR.Execution.Read", "OR.Jobs"]

        [[tenants.refresh_tokens]]
        client_id = "{LEGACY_CLIENT_ID}"
        refresh_token = "user-key"

        [[tenants.users]]
        username = "admin"
        password = "pw"

        [[tenants.processes]]
        name = "Echo"
        duration = 1

        [[tenants.folders]]
        path = "Shared"
        """,
        name="lifetimes",
    )


async def folder_paths(api: OrchestratorAPI) -> list[str]:
    return sorted(f.fully_qualified_name for f in await api.list_folders(refresh=True))


# -- client credentials ----------------------------------------------------------------------


@pytest.mark.parametrize("token_url", ["org-scoped", "plain"])
async def test_client_credentials_on_the_cloud_url(
    simulator: SimulatorHandle, token_url: str
) -> None:
    identity_url = simulator.token_url if token_url == "plain" else None
    settings = Settings(
        url=simulator.url, credentials=demo_credentials(simulator), identity_url=identity_url
    )
    # The derived endpoint names the organization (current UiPath docs); both shapes work.
    expected = (
        f"{simulator.root_url}/identity_/connect/token"
        if token_url == "plain"
        else f"{simulator.root_url}/demo/identity_/connect/token"
    )
    assert settings.token_url == expected

    async with connect(settings) as (api, transport):
        assert await folder_paths(api) == DEMO_PATHS
        response = await transport.request("GET", "odata/Folders", params={"$top": 1})
    assert response.url == f"{simulator.url}/odata/Folders"
    assert transport.stats.token_requests == 1  # the counters outlive the session
    assert requests_to(simulator, TOKEN) == {"200": 1}


async def test_client_credentials_on_cloud_uipath_com_as_the_forum_user_typed_it(
    simulator: SimulatorHandle, uipath_hosts: RoutedSession
) -> None:
    # The forum user's base URL: no "orchestrator_" and a pasted "/odata/Folders".
    port = simulator.port
    settings = Settings(
        url=f"http://cloud.uipath.com:{port}/demo/DefaultTenant/odata/Folders",
        credentials=demo_credentials(simulator),
    )
    assert (
        settings.orchestrator.base
        == f"http://cloud.uipath.com:{port}/demo/DefaultTenant/orchestrator_"
    )
    assert settings.token_url == f"http://cloud.uipath.com:{port}/demo/identity_/connect/token"

    async with connect(settings, session=uipath_hosts.session) as (api, _):
        assert await folder_paths(api) == DEMO_PATHS
    assert requests_to(simulator, TOKEN) == {"200": 1}


async def test_client_credentials_on_premises(simulator: SimulatorHandle) -> None:
    settings = Settings(url=simulator.onprem_url, credentials=demo_credentials(simulator))
    assert settings.orchestrator.kind == "onprem"
    assert settings.token_url == f"{simulator.root_url}/identity/connect/token"

    async with connect(settings) as (api, transport):
        assert await folder_paths(api) == DEMO_PATHS
        response = await transport.request("GET", "odata/Folders")
    # On-premises the API sits at the root and the token names the tenant.
    assert response.url == f"{simulator.root_url}/odata/Folders"
    assert requests_to(simulator, TOKEN) == {"200": 1}


async def test_orchestrator_client_facade_authenticates_with_client_credentials(
    simulator: SimulatorHandle,
) -> None:
    settings = Settings(url=simulator.url, credentials=demo_credentials(simulator))
    async with OrchestratorClient(settings) as client:
        folder = await client.api.resolve_folder("Finance/Comptabilité")
        release = await client.api.resolve_release(folder, "Echo")
    assert (folder.fully_qualified_name, release.name) == ("Finance/Comptabilité", "Echo")
    assert client.transport.stats.token_requests == 1


# -- legacy refresh token ------------------------------------------------------------------


async def test_legacy_refresh_token_on_the_cloud_url(simulator: SimulatorHandle) -> None:
    credentials = legacy_credentials()
    # By default the retired account service is used; the simulator serves its path.
    assert Settings(url=simulator.url, credentials=credentials).token_url == LEGACY_TOKEN_URL
    settings = Settings(
        url=simulator.url,
        credentials=credentials,
        identity_url=f"{simulator.root_url}/oauth/token",
    )
    async with connect(settings) as (api, transport):
        assert await folder_paths(api) == DEMO_PATHS
        folder = await api.resolve_folder("HR")
        (job,) = await api.start_jobs(folder, StartRequest(release_name="Echo", reference="legacy"))
    assert job.reference == "legacy"
    assert transport.stats.token_requests == 1
    assert requests_to(simulator, LEGACY_TOKEN) == {"200": 1}
    assert requests_to(simulator, TOKEN) == {}


async def test_legacy_platform_url_sends_the_tenant_header_and_reaches_the_tenant(
    simulator: SimulatorHandle, uipath_hosts: RoutedSession
) -> None:
    port = simulator.port
    settings = Settings(
        url=f"http://platform.uipath.com:{port}/demo/DefaultTenant",
        credentials=legacy_credentials(),
        identity_url=f"http://account.uipath.com:{port}/oauth/token",
    )
    assert settings.orchestrator.kind == "legacy"

    async with connect(settings, session=uipath_hosts.session) as (api, transport):
        assert await folder_paths(api) == DEMO_PATHS
        response = await transport.request("GET", "odata/Folders")
    # The legacy shape has no "orchestrator_": /{account}/{tenant}/odata/...
    folders_url = f"http://platform.uipath.com:{port}/demo/DefaultTenant/odata/Folders"
    assert response.url == folders_url
    # The legacy platform routed by X-UIPATH-TenantName; it goes on every API call.
    (sent,) = uipath_hosts.headers_sent_to(folders_url)
    assert sent["X-UIPATH-TenantName"] == "DefaultTenant"
    assert sent["Authorization"].startswith("Bearer ")
    (token_call,) = uipath_hosts.headers_sent_to(f"http://account.uipath.com:{port}/oauth/token")
    assert token_call["Content-Type"] == "application/json"
    assert token_call["X-UIPATH-TenantName"] == "DefaultTenant"
    assert requests_to(simulator, LEGACY_TOKEN) == {"200": 1}


# -- on-premises username and password --------------------------------------------------------


async def test_onprem_password_flow(simulator: SimulatorHandle, fake_clock: FakeClock) -> None:
    settings = Settings(url=simulator.onprem_url, credentials=admin_password())
    assert settings.token_url == f"{simulator.root_url}/api/Account/Authenticate"

    async with connect(settings, clock=fake_clock) as (api, transport):
        assert await folder_paths(api) == DEMO_PATHS
        (job,) = await api.start_jobs(
            "HR", StartRequest(release_name="Echo", input_arguments={"n": 1})
        )
        fake_clock.advance(10)  # pick-up (2 s) and at most 2 s of work
        finished = await api.get_job("HR", job.id)
        response = await transport.request(
            "GET", f"odata/Jobs({job.id})", headers={"X-UIPATH-FolderPath": "HR"}
        )
    assert (finished.state, finished.output_arguments) == (JobState.SUCCESSFUL, {"n": 1})
    assert response.url == f"{simulator.root_url}/odata/Jobs({job.id})"
    assert requests_to(simulator, AUTHENTICATE) == {"200": 1}


# -- static token ----------------------------------------------------------------------------


async def test_static_token_is_used_as_is_and_never_renewed(
    simulator: SimulatorHandle, orch: SimClient, http: aiohttp.ClientSession
) -> None:
    token = await orch.token(DEMO_SCOPES)
    settings = Settings(url=simulator.url, credentials=StaticToken(token=token))
    assert settings.token_url is None

    async with connect(settings) as (api, transport):
        assert await folder_paths(api) == DEMO_PATHS
        assert transport.stats.token_requests == 0
        await admin_post(http, simulator, "revoke-tokens")

        with pytest.raises(AuthenticationError) as caught:
            await api.list_folders(refresh=True)
        assert "personal access token" in str(caught.value)
        assert token not in str(caught.value)
        # Refused once, not retried, and no token request (there is nothing to renew with).
        assert rejections(simulator, 401) == 1

        with pytest.raises(AuthenticationError):
            await api.list_folders(refresh=True)
        assert rejections(simulator, 401) == 1  # known refused: not even sent again
    assert requests_to(simulator, TOKEN) == {"200": 1}  # the test's own request


# -- renewal ------------------------------------------------------------------------------


LIFETIME_CASES: dict[str, tuple[Credentials, int, int]] = {
    # credentials, seconds still quiet, seconds by which a renewal must have happened
    "client_credentials": (ClientCredentials(client_id="app", client_secret="app-secret"), 53, 55),
    "refresh_token": (
        RefreshTokenCredentials(
            client_id=LEGACY_CLIENT_ID, refresh_token="user-key", tenant_name="Prod"
        ),
        107,
        109,
    ),
    # /api/Account/Authenticate sends no lifetime: the documented 30 minutes is assumed.
    "password": (
        PasswordCredentials(tenancy_name="Prod", username="admin", password="pw"),
        1619,
        1621,
    ),
}


@pytest.mark.parametrize("flow", sorted(LIFETIME_CASES))
async def test_token_is_renewed_before_it_expires(
    start_simulator: StartSimulator, fake_clock: FakeClock, flow: str
) -> None:
    sim = await start_simulator(
        tenant_scenario(expires_in=60, legacy_expires_in=120, onprem_expires_in=1800),
        clock=fake_clock,
    )
    credentials, quiet, renewed_by = LIFETIME_CASES[flow]
    url = sim.onprem_url if flow == "password" else sim.url
    identity_url = f"{sim.root_url}/oauth/token" if flow == "refresh_token" else None
    settings = Settings(url=url, credentials=credentials, identity_url=identity_url)

    async with connect(settings, clock=fake_clock) as (api, transport):
        await api.list_folders(refresh=True)
        fake_clock.advance(quiet)
        await api.list_folders(refresh=True)
        assert transport.stats.token_requests == 1
        fake_clock.advance(renewed_by - quiet)
        await api.list_folders(refresh=True)
        assert transport.stats.token_requests == 2
    # Renewed ahead of expiry (10 % of the lifetime early): never refused.
    assert rejections(sim, 401) == 0


async def test_token_the_server_expires_early_is_renewed_after_one_401(
    start_simulator: StartSimulator, fake_clock: FakeClock
) -> None:
    # This server's password tokens live 10 minutes, not the 30 the client assumes.
    sim = await start_simulator(tenant_scenario(onprem_expires_in=600), clock=fake_clock)
    settings = Settings(
        url=sim.onprem_url,
        credentials=PasswordCredentials(tenancy_name="Prod", username="admin", password="pw"),
    )
    async with connect(settings, clock=fake_clock) as (api, transport):
        await api.list_folders(refresh=True)
        fake_clock.advance(700)
        assert [f.fully_qualified_name for f in await api.list_folders(refresh=True)] == ["Shared"]
        assert transport.stats.token_requests == 2
        assert transport.stats.count("GET Folders", 401) == 1
    assert rejections(sim, 401) == 1


async def test_revoked_token_is_renewed_once_and_the_call_retried(
    simulator: SimulatorHandle, http: aiohttp.ClientSession
) -> None:
    settings = Settings(url=simulator.url, credentials=demo_credentials(simulator))
    async with connect(settings) as (api, transport):
        await api.list_folders()
        assert (await admin_post(http, simulator, "revoke-tokens"))["revoked"] == 1

        assert await folder_paths(api) == DEMO_PATHS
        assert transport.stats.count("GET Folders", 401) == 1
        assert transport.stats.count("GET Folders", 200) == 2
        assert transport.stats.token_requests == 2
    assert rejections(simulator, 401) == 1
    assert requests_to(simulator, TOKEN) == {"200": 2}


async def test_periodic_revocation_fault_is_absorbed_by_renewal(
    simulator: SimulatorHandle, fake_clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    await admin_post(http, simulator, "faults", revoke_tokens_every=100)
    settings = Settings(url=simulator.url, credentials=demo_credentials(simulator))
    async with connect(settings, clock=fake_clock) as (api, transport):
        for _ in range(3):
            assert await folder_paths(api) == DEMO_PATHS
            fake_clock.advance(150)  # every token issued so far is revoked on the next call
        assert transport.stats.token_requests == 3
    assert simulator.simulator.stats()["faults"]["token_revocation"] == 2
    assert rejections(simulator, 401) == 2


async def test_concurrent_callers_share_one_token_request(
    simulator: SimulatorHandle, http: aiohttp.ClientSession
) -> None:
    settings = Settings(url=simulator.url, credentials=demo_credentials(simulator))
    callers = 30
    async with connect(settings) as (_, transport):

        async def call() -> int:
            return (await transport.request("GET", "odata/Folders")).status

        assert await asyncio.gather(*(call() for _ in range(callers))) == [200] * callers
        assert requests_to(simulator, TOKEN) == {"200": 1}

        # All refused together after a revocation: still one renewal between them.
        await admin_post(http, simulator, "revoke-tokens")
        assert await asyncio.gather(*(call() for _ in range(callers))) == [200] * callers
        assert requests_to(simulator, TOKEN) == {"200": 2}
        assert transport.stats.count("odata/Folders", 401) == rejections(simulator, 401)
        assert transport.stats.token_requests == 2


async def test_throttled_token_endpoint_is_retried_after_retry_after(
    simulator: SimulatorHandle, fake_clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    # Everything, the token endpoint included, is refused for the next 5 seconds.
    await admin_post(
        http,
        simulator,
        "faults",
        throttle_burst_seconds=5,
        throttle_burst_every=3600,
        include_token_endpoint=True,
    )
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        fake_clock.advance(seconds)

    settings = Settings(url=simulator.url, credentials=demo_credentials(simulator))
    async with connect(settings, clock=fake_clock, sleep=sleep) as (api, transport):
        assert await folder_paths(api) == DEMO_PATHS
        assert transport.stats.rate_limited == 1
    assert waits == [5.0]  # the server's Retry-After, no extra backoff
    assert requests_to(simulator, TOKEN) == {"200": 1, "429": 1}


# -- refusals and their fixes -------------------------------------------------------------------


def _refusal_cases(sim: SimulatorHandle) -> dict[str, tuple[Settings, int, str]]:
    root = sim.root_url
    demo = demo_credentials(sim)
    return {
        "wrong secret": (
            Settings(
                url=sim.url,
                # Not a word of the server's message: a short one that is ("wrong") is
                # left there as the server's own (test_batch_fatal_errors.py).
                credentials=ClientCredentials(
                    client_id=sim.client_id, client_secret="wrong-secret-1"
                ),
            ),
            400,
            "Check the client id and secret (UIPATH_CLIENT_ID and UIPATH_CLIENT_SECRET",
        ),
        "app of another organization": (
            Settings(url=f"{root}/acme/DefaultTenant/orchestrator_", credentials=demo),
            400,
            "Check the client id and secret (UIPATH_CLIENT_ID and UIPATH_CLIENT_SECRET",
        ),
        "scope not granted": (
            Settings(
                url=sim.url,
                credentials=ClientCredentials(
                    client_id="demo-readonly", client_secret="demo-readonly-secret"
                ),
            ),
            400,
            "or ask for fewer with ASYNC_ORCH_SCOPES",
        ),
        "token url is the orchestrator url": (
            Settings(url=sim.url, credentials=demo, identity_url=sim.url),
            404,
            "Wrong URL: no token endpoint",
        ),
        "client credentials sent to the legacy endpoint": (
            Settings(url=sim.url, credentials=demo, identity_url=f"{root}/oauth/token"),
            400,
            "client credentials go to the Identity Server",
        ),
        "wrong refresh token": (
            Settings(
                url=sim.url,
                credentials=RefreshTokenCredentials(
                    client_id=LEGACY_CLIENT_ID, refresh_token="expired", tenant_name="DefaultTenant"
                ),
                identity_url=f"{root}/oauth/token",
            ),
            403,
            "create an external application",
        ),
        "refresh token sent to the identity server": (
            Settings(url=sim.url, credentials=legacy_credentials(), identity_url=sim.token_url),
            400,
            f"posts to {LEGACY_TOKEN_URL}",
        ),
        "wrong password": (
            Settings(
                url=sim.onprem_url,
                credentials=PasswordCredentials(
                    tenancy_name="Default", username="admin", password="wrong"
                ),
            ),
            400,
            "Check ASYNC_ORCH_USERNAME, ASYNC_ORCH_PASSWORD and the tenancy name",
        ),
        "unknown tenancy": (
            Settings(url=sim.onprem_url, credentials=admin_password("Prod")),
            400,
            "the tenancy name (UIPATH_TENANT_NAME",
        ),
        "password sent to the identity server": (
            Settings(url=sim.onprem_url, credentials=admin_password(), identity_url=sim.token_url),
            400,
            "/api/Account/Authenticate",
        ),
    }


REFUSALS = sorted(
    [
        "wrong secret",
        "app of another organization",
        "scope not granted",
        "token url is the orchestrator url",
        "client credentials sent to the legacy endpoint",
        "wrong refresh token",
        "refresh token sent to the identity server",
        "wrong password",
        "unknown tenancy",
        "password sent to the identity server",
    ]
)


def _secrets(credentials: Credentials) -> list[str]:
    if isinstance(credentials, ClientCredentials):
        return [credentials.client_secret]
    if isinstance(credentials, RefreshTokenCredentials):
        return [credentials.refresh_token]
    if isinstance(credentials, PasswordCredentials):
        return [credentials.password]
    return [credentials.token]


@pytest.mark.parametrize("case", REFUSALS)
async def test_refused_credentials_raise_authentication_error_naming_the_fix(
    simulator: SimulatorHandle, case: str
) -> None:
    settings, status, fix = _refusal_cases(simulator)[case]
    async with connect(settings) as (api, transport):
        with pytest.raises(AuthenticationError) as caught:
            await api.list_folders()
        assert transport.stats.token_requests == 1  # a refusal is not retried
    error = caught.value
    assert error.status == status
    assert error.hint is not None and fix in error.hint, str(error)
    assert error.server_message  # the server's own words are quoted
    for secret in _secrets(settings.credentials):
        assert secret not in str(error)


async def test_url_naming_the_wrong_tenant_is_refused_after_one_renewal(
    simulator: SimulatorHandle,
) -> None:
    # The forum user's "You are not authenticated!": a token for one tenant, the URL of another.
    settings = Settings(
        url=f"{simulator.root_url}/demo/Finance/orchestrator_",
        credentials=demo_credentials(simulator),
    )
    async with connect(settings) as (api, transport):
        with pytest.raises(AuthenticationError) as caught:
            await api.list_folders()
        assert transport.stats.token_requests == 2
    error = caught.value
    assert error.server_message == "You are not authenticated!"
    assert error.hint is not None and "must name the organization and tenant" in error.hint
    assert rejections(simulator, 401) == 2


async def test_json_body_to_the_identity_server_gets_an_explanatory_400(
    simulator: SimulatorHandle, http: aiohttp.ClientSession
) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": simulator.client_id,
        "client_secret": simulator.client_secret,
        "scope": DEMO_SCOPES,
    }
    async with http.post(simulator.token_url, json=form) as response:
        status, headers, body = response.status, response.headers, await response.read()
    assert status == 400
    assert b"invalid_request" in body and b"form-encoded" in body

    # Fed that real answer, the client's parser points at the form body.
    request = build_token_request(demo_credentials(simulator), token_url=simulator.token_url)
    with pytest.raises(AuthenticationError) as caught:
        parse_token_response(
            request, status, headers, body, credentials=demo_credentials(simulator)
        )
    assert caught.value.hint is not None and "form-encoded body" in caught.value.hint
    assert simulator.client_secret not in str(caught.value)


@pytest.mark.parametrize(
    ("credentials", "token_url", "fix"),
    [
        (
            ClientCredentials(client_id="app", client_secret="secret"),
            "https://account.uipath.com/oauth/token",
            "client credentials go to the Identity Server",
        ),
        (
            legacy_credentials(),
            "https://cloud.uipath.com/acme/identity_/connect/token",
            f"posts to {LEGACY_TOKEN_URL}",
        ),
        (
            admin_password(),
            "https://orch.example.com/identity/connect/token",
            "posts to {Orchestrator URL}/api/Account/Authenticate",
        ),
    ],
)
def test_token_url_of_another_flow_is_named_whatever_the_server_says(
    credentials: Credentials, token_url: str, fix: str
) -> None:
    request = build_token_request(credentials, token_url=token_url)
    with pytest.raises(AuthenticationError) as caught:
        parse_token_response(
            request, 400, {}, b'{"error": "invalid_request"}', credentials=credentials
        )
    assert caught.value.hint is not None and fix in caught.value.hint


# -- what the forum user got wrong ------------------------------------------------------------


async def test_forum_form_body_labelled_json_vs_the_client(
    simulator: SimulatorHandle, http: aiohttp.ClientSession
) -> None:
    # The first attempt: requests.post(url, data=json_auth, headers={... "application/json"}),
    # a form-encoded body under a JSON Content-Type, refused with a 400 ...
    form = {
        "grant_type": "refresh_token",
        "client_id": LEGACY_CLIENT_ID,
        "refresh_token": "demo-refresh-token",
    }
    legacy_url = f"{simulator.root_url}/oauth/token"
    headers = {"X-UIPATH-TenantName": "DefaultTenant", "Content-Type": "application/json"}
    async with http.post(legacy_url, data=form, headers=headers) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_request"
    assert requests_to(simulator, LEGACY_TOKEN) == {"400": 1}
    # ... while the client always encodes the body as it labels it: JSON, with the tenant.
    settings = Settings(
        url=simulator.url, credentials=legacy_credentials(), identity_url=legacy_url
    )
    request = build_token_request(settings.credentials, token_url=legacy_url)
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-UIPATH-TenantName"] == "DefaultTenant"
    assert json.loads(request.body) == form
    async with connect(settings) as (api, _):
        assert await folder_paths(api) == DEMO_PATHS
    assert requests_to(simulator, LEGACY_TOKEN) == {"200": 1, "400": 1}


@pytest.mark.parametrize(
    ("url", "credentials", "fix"),
    [
        # Legacy endpoint without account and tenant (https://platform.uipath.com/odata/Folders).
        (
            "https://platform.uipath.com/odata/Folders",
            legacy_credentials(),
            "account and tenant missing from the URL",
        ),
        # /api/account/authenticate against Automation Cloud, with an e-mail and password.
        (
            "https://cloud.uipath.com/acme/DefaultTenant/api/account/authenticate",
            PasswordCredentials(
                tenancy_name="DefaultTenant", username="me@example.com", password="pw"
            ),
            "works only with on-premises Orchestrator",
        ),
        # An external application with the retired platform.uipath.com URL.
        (
            "https://platform.uipath.com/acme/DefaultTenant",
            ClientCredentials(client_id="app", client_secret="secret"),
            "https://cloud.uipath.com/acme/DefaultTenant/orchestrator_",
        ),
        # The token endpoint given as the Orchestrator URL.
        (
            "https://account.uipath.com/oauth/token",
            legacy_credentials(),
            "that is the identity (token) server, not Orchestrator",
        ),
        # A folder in the URL, where only organization and tenant belong.
        (
            "https://cloud.uipath.com/acme/DefaultTenant/orchestrator_/Finance/odata/Folders",
            ClientCredentials(client_id="app", client_secret="secret"),
            "folders are not part of the URL",
        ),
    ],
)
def test_forum_url_and_flow_mistakes_are_configuration_errors(
    url: str, credentials: Credentials, fix: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings(url=url, credentials=credentials)
    assert fix in str(caught.value)


# -- Settings.from_env ---------------------------------------------------------------------------


def _environments(sim: SimulatorHandle, token: str) -> dict[str, dict[str, str]]:
    return {
        # As `uip login` writes it: bare host, organization and tenant apart.
        "client credentials": {
            "UIPATH_URL": sim.root_url,
            "UIPATH_ORGANIZATION_NAME": "demo",
            "UIPATH_TENANT_NAME": "DefaultTenant",
            "UIPATH_CLIENT_ID": sim.client_id,
            "UIPATH_CLIENT_SECRET": sim.client_secret,
        },
        "refresh token": {
            "UIPATH_URL": sim.url,
            "UIPATH_CLIENT_ID": LEGACY_CLIENT_ID,
            "ASYNC_ORCH_REFRESH_TOKEN": "demo-refresh-token",
            "ASYNC_ORCH_IDENTITY_URL": f"{sim.root_url}/oauth/token",
        },
        "password": {
            "UIPATH_URL": sim.onprem_url,
            "ASYNC_ORCH_USERNAME": "admin",
            "ASYNC_ORCH_PASSWORD": "demo-password",
        },
        "access token": {"UIPATH_URL": sim.url, "UIPATH_ACCESS_TOKEN": token},
    }


@pytest.mark.parametrize(
    "flow", ["access token", "client credentials", "password", "refresh token"]
)
async def test_settings_from_env_work_end_to_end(
    simulator: SimulatorHandle, orch: SimClient, fake_clock: FakeClock, flow: str
) -> None:
    environ = {
        **_environments(simulator, await orch.token())[flow],
        "UIPATH_FOLDER_PATH": "Finance/Comptabilité",
        "ASYNC_ORCH_RETRY_ATTEMPTS": "2",
    }
    settings = Settings.from_env(environ)
    assert settings.retry == RetryPolicy(attempts=2)
    assert settings.folder is not None

    async with connect(settings, clock=fake_clock) as (api, _):
        folder = await api.resolve_folder(settings.folder)
        (job,) = await api.start_jobs(
            folder, StartRequest(release_name="Echo", input_arguments={"flow": flow})
        )
        fake_clock.advance(10)
        finished = await api.get_job(folder, job.id)
    assert folder.fully_qualified_name == "Finance/Comptabilité"
    assert finished.output_arguments == {"flow": flow}
