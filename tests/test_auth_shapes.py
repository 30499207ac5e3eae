"""Auth as the real service answers (issue 14, point 4): JWT access tokens the client
keeps opaque, today's /api/Account/Authenticate failure body, the Automation Suite
URL shapes built from ``deployment``, and a revoked token explained as revoked."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from conftest import DEMO_SCOPES, add_simulator_middleware, aioresponses_mock
from test_integration_auth import admin_password, connect, demo_credentials

from async_orch._config import ClientCredentials, PasswordCredentials, Settings
from async_orch._errors import AuthenticationError, ConfigurationError
from async_orch.simulator import SimulatorHandle
from async_orch.simulator.tokens import jwt_claims

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def test_tokens_are_signed_jwts_and_the_client_uses_them_as_is(
    simulator: SimulatorHandle,
) -> None:
    settings = Settings(url=simulator.url, credentials=demo_credentials(simulator))
    async with connect(settings) as (api, transport):
        await api.list_folders()
        assert transport._tokens is not None
        token = await transport._tokens.get_token()
    claims = jwt_claims(token)
    assert claims["iss"] == f"{simulator.root_url}/identity_"
    assert claims["client_id"] == simulator.client_id
    assert claims["scope"] == sorted(DEMO_SCOPES.split())  # the scopes asked for
    assert claims["exp"] - claims["iat"] == 3600
    # Unix seconds, as RFC 7519 says (not the simulator's monotonic clock).
    assert abs(claims["iat"] - time.time()) < 600


# -- Automation Suite ------------------------------------------------------------------------


@pytest.fixture
def paths_seen(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []

    @web.middleware
    async def record(request: web.Request, handler: _Handler) -> web.StreamResponse:
        seen.append(request.path)
        return await handler(request)

    add_simulator_middleware(monkeypatch, record)
    return seen


async def test_automation_suite_token_urls_are_built_from_the_deployment_setting(
    paths_seen: list[str], simulator: SimulatorHandle
) -> None:
    org, tenant = simulator.organization, simulator.tenant
    app = Settings(
        url=simulator.url, credentials=demo_credentials(simulator), deployment="automation-suite"
    )
    user = Settings(url=simulator.url, credentials=admin_password(), deployment="automation-suite")
    assert app.token_url == f"{simulator.root_url}/identity/connect/token"
    assert user.token_url == f"{simulator.root_url}/{org}/{tenant}/api/account/authenticate"

    for settings in (app, user):
        async with connect(settings) as (api, _):
            assert len(await api.list_folders()) == 4
    assert [p for p in paths_seen if not p.endswith("/odata/Folders")] == [
        "/identity/connect/token",
        f"/{org}/{tenant}/api/account/authenticate",
    ]


def test_deployment_comes_from_the_environment_and_is_checked() -> None:
    env = {
        "UIPATH_URL": "https://as.example.com/acme/Prod/orchestrator_",
        "UIPATH_CLIENT_ID": "app",
        "UIPATH_CLIENT_SECRET": "secret",
        "ASYNC_ORCH_DEPLOYMENT": "automation-suite",
    }
    assert Settings.from_env(env).token_url == "https://as.example.com/identity/connect/token"
    default = Settings.from_env({**env, "ASYNC_ORCH_DEPLOYMENT": ""})
    assert default.token_url == "https://as.example.com/acme/identity_/connect/token"
    with pytest.raises(ConfigurationError, match="'automation suite' is not one of auto"):
        Settings.from_env({**env, "ASYNC_ORCH_DEPLOYMENT": "automation suite"})
    with pytest.raises(ConfigurationError, match="has no organization and tenant"):
        Settings.from_env({**env, "UIPATH_URL": "https://orch.example.com"})


# -- the password flow's failure body -------------------------------------------------------


async def test_todays_authenticate_failure_body_is_quoted_with_the_fix() -> None:
    # orchestrator-api.md §8: 400 {"message": ..., "errorCode": 1000, "resourceIds": null}.
    url = "https://orch.example.com"
    settings = Settings(
        url=url, credentials=PasswordCredentials(tenancy_name="Default", username="u", password="p")
    )
    with aioresponses_mock() as wire:
        wire.post(
            f"{url}/api/Account/Authenticate",
            status=400,
            payload={
                "message": "Invalid credentials, failed to login.",
                "errorCode": 1000,
                "resourceIds": None,
            },
        )
        async with connect(settings) as (api, _):
            with pytest.raises(AuthenticationError) as caught:
                await api.list_folders()
    error = caught.value
    assert (error.status, error.server_message) == (400, "Invalid credentials, failed to login.")
    assert error.hint is not None and "ASYNC_ORCH_USERNAME, ASYNC_ORCH_PASSWORD" in error.hint


async def test_wrong_password_against_the_simulator_reads_the_same(
    simulator: SimulatorHandle,
) -> None:
    credentials = PasswordCredentials(tenancy_name="Default", username="admin", password="nope")
    settings = Settings(url=simulator.onprem_url, credentials=credentials)
    async with connect(settings) as (api, _):
        with pytest.raises(AuthenticationError) as caught:
            await api.list_folders()
    assert caught.value.server_message == "Invalid credentials, failed to login."


# -- revocation -----------------------------------------------------------------------------


async def test_a_refusal_that_does_not_say_revoked_still_points_at_the_url(
    simulator: SimulatorHandle,
) -> None:
    # A token of another tenant: no revocation, so the URL is the likely mistake
    # (a revoked one: test_never_silent.py).
    other = simulator.url.replace(f"/{simulator.tenant}/", "/OtherTenant/")
    settings = Settings(
        url=other,
        credentials=ClientCredentials(
            client_id=simulator.client_id, client_secret=simulator.client_secret
        ),
        identity_url=f"{simulator.root_url}/{simulator.organization}/identity_/connect/token",
    )
    async with connect(settings) as (api, _):
        with pytest.raises(AuthenticationError, match="Check the Orchestrator URL"):
            await api.list_folders()
