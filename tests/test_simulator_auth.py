"""Token endpoints and the 401/403 gate, over real HTTP."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
import pytest
from conftest import FakeClock, SimClient

from async_orch.simulator import SimulatorHandle, parse_scenario

ABP_401 = {
    "message": "You are not authenticated!",
    "errorCode": 0,
    "result": None,
    "targetUrl": None,
    "success": False,
    "error": {
        "code": 0,
        "message": "You are not authenticated!",
        "details": "You should be authenticated (sign in) in order to perform this operation.",
        "validationErrors": None,
    },
    "unAuthorizedRequest": False,
    "__abp": True,
}


async def _post(http: aiohttp.ClientSession, url: str, **kwargs: Any) -> tuple[int, Any]:
    async with http.post(url, **kwargs) as response:
        return response.status, await response.json(content_type=None)


def _form(sim: SimulatorHandle, **extra: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": sim.client_id,
        "client_secret": sim.client_secret,
        **extra,
    }


# -- client credentials ------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/identity_/connect/token", "/demo/identity_/connect/token", "/identity/connect/token"]
)
async def test_client_credentials_token_on_every_url_shape(
    simulator: SimulatorHandle, http: aiohttp.ClientSession, path: str
) -> None:
    status, body = await _post(
        http, simulator.root_url + path, data=_form(simulator, scope="OR.Jobs OR.Folders.Read")
    )
    assert status == 200, body
    assert set(body) == {"access_token", "expires_in", "token_type", "scope"}
    assert (body["expires_in"], body["token_type"]) == (3600, "Bearer")
    assert body["scope"].split() == ["OR.Folders.Read", "OR.Jobs"]


async def test_no_scope_means_every_granted_scope_and_basic_auth_works(
    simulator: SimulatorHandle, http: aiohttp.ClientSession
) -> None:
    basic = base64.b64encode(f"{simulator.client_id}:{simulator.client_secret}".encode()).decode()
    status, body = await _post(
        http,
        simulator.token_url,
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert status == 200, body
    assert set(body["scope"].split()) == set(simulator.scopes)


@pytest.mark.parametrize(
    ("form", "error", "hint"),
    [
        ({"client_secret": "wrong"}, "invalid_client", "App ID and App Secret"),
        ({"client_secret": "sécret"}, "invalid_client", "App ID and App Secret"),
        ({"client_id": "nobody"}, "invalid_client", "Unknown client_id"),
        ({"grant_type": ""}, "unsupported_grant_type", "grant_type is missing"),
        ({"grant_type": "magic"}, "unsupported_grant_type", "grant_type=client_credentials"),
        ({"grant_type": "password"}, "unauthorized_client", "not allowed for this application"),
        ({"scope": "OR.Jobs OR.Administration"}, "invalid_scope", "OR.Administration"),
    ],
)
async def test_token_errors_follow_identity_server(
    simulator: SimulatorHandle,
    http: aiohttp.ClientSession,
    form: dict[str, str],
    error: str,
    hint: str,
) -> None:
    status, body = await _post(http, simulator.token_url, data=_form(simulator, **form))
    assert (status, body["error"]) == (400, error)
    assert hint in body["error_description"]


async def test_token_for_an_app_of_another_organization_is_refused(
    simulator: SimulatorHandle, http: aiohttp.ClientSession
) -> None:
    status, body = await _post(
        http, simulator.root_url + "/other/identity_/connect/token", data=_form(simulator)
    )
    assert (status, body["error"]) == (400, "invalid_client")
    assert "organization 'other'" in body["error_description"]


async def test_json_body_and_get_are_invalid_requests(
    simulator: SimulatorHandle, http: aiohttp.ClientSession
) -> None:
    status, body = await _post(http, simulator.token_url, json=_form(simulator))
    assert (status, body["error"]) == (400, "invalid_request")
    assert (
        "must be form-encoded (application/x-www-form-urlencoded), not JSON"
        in body["error_description"]
    )
    assert "got a JSON body" in body["error_description"]
    async with http.get(simulator.token_url) as response:
        body = await response.json()
        assert (response.status, body["error"]) == (400, "invalid_request")


# -- legacy refresh token and on-premises ---------------------------------------------------


async def test_legacy_refresh_token_flow(
    simulator: SimulatorHandle, http: aiohttp.ClientSession
) -> None:
    url = simulator.root_url + "/oauth/token"
    payload = {
        "grant_type": "refresh_token",
        "client_id": "8DEv1AMNXczW3y4U15LL3jYf62jK93n5",
        "refresh_token": "demo-refresh-token",
    }
    headers = {"X-UIPATH-TenantName": "DefaultTenant"}
    status, body = await _post(http, url, json=payload, headers=headers)
    assert status == 200, body
    assert set(body) == {"access_token", "id_token", "scope", "expires_in", "token_type"}
    assert body["expires_in"] == 86400 and body["id_token"].count(".") == 2
    async with http.get(
        simulator.url + "/odata/Folders",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    ) as r:
        assert r.status == 200  # a user token carries every scope

    # The forum mistake: data=dict form-encodes the body under a JSON content type.
    labelled_json = {**headers, "Content-Type": "application/json"}
    status, body = await _post(http, url, data=payload, headers=labelled_json)
    assert (status, body["error"]) == (400, "invalid_request") and "json=" in body[
        "error_description"
    ]
    # What finally worked in that thread: a plain form body, no tenant header.
    status, body = await _post(http, url, data=payload)
    assert status == 200 and body["token_type"] == "Bearer"
    # The tenant header must still name the refresh token's tenant when sent.
    status, body = await _post(http, url, json=payload, headers={"X-UIPATH-TenantName": "Nope"})
    assert (status, body["error"]) == (403, "invalid_grant")
    status, body = await _post(
        http, url, json={**payload, "grant_type": "client_credentials"}, headers=headers
    )
    assert (status, body["error"]) == (400, "unsupported_grant_type")
    status, body = await _post(http, url, json={**payload, "refresh_token": "x"}, headers=headers)
    assert (status, body["error"]) == (403, "invalid_grant")


@pytest.mark.parametrize("path", ["/api/Account/Authenticate", "/api/account/authenticate"])
async def test_onprem_authenticate_and_odata_at_the_root(
    simulator: SimulatorHandle, http: aiohttp.ClientSession, path: str
) -> None:
    credentials = {
        "TenancyName": "Default",
        "UsernameOrEmailAddress": "admin",
        "Password": "demo-password",
    }
    status, body = await _post(http, simulator.root_url + path, json=credentials)
    assert status == 200, body
    assert {k: v for k, v in body.items() if k != "result"} == {
        "targetUrl": None,
        "success": True,
        "error": None,
        "unAuthorizedRequest": False,
        "__abp": True,
    }
    async with http.get(
        simulator.onprem_url + "/odata/Folders",
        headers={"Authorization": f"Bearer {body['result']}"},
    ) as r:
        folders = await r.json()
        assert r.status == 200 and "/odata/$metadata#Folders" in folders["@odata.context"]
        assert folders["@odata.context"].startswith(simulator.root_url + "/odata/")


@pytest.mark.parametrize(
    ("payload", "hint"),
    [
        (
            {"tenancyName": "Default", "usernameOrEmailAddress": "admin", "password": "x"},
            "wrong user name or password",
        ),
        (
            {"tenancyName": "Nope", "usernameOrEmailAddress": "admin", "password": "demo-password"},
            "no tenant with tenancy name 'Nope'",
        ),
    ],
)
async def test_onprem_login_failure_is_todays_body(
    simulator: SimulatorHandle, http: aiohttp.ClientSession, payload: dict[str, str], hint: str
) -> None:
    # orchestrator-api.md §8 (forum threads 145593, 166216).
    async with http.post(simulator.root_url + "/api/Account/Authenticate", json=payload) as r:
        assert (r.status, await r.json()) == (
            400,
            {"message": "Invalid credentials, failed to login.", "errorCode": 1000,
             "resourceIds": None},
        )  # fmt: skip
        assert r.headers["X-Simulator-Hint"] == hint


async def test_onprem_missing_fields_use_the_ajax_validation_shape(
    simulator: SimulatorHandle, http: aiohttp.ClientSession
) -> None:
    payload = {"tenancyName": "Default", "password": "x"}
    status, body = await _post(http, simulator.root_url + "/api/Account/Authenticate", json=payload)
    assert status == 400
    assert (body["success"], body["result"], body["__abp"]) == (False, None, True)
    assert body["error"]["message"] == "Your request is not valid!"
    assert "errors were detected" in body["error"]["details"]


async def test_automation_suite_serves_authenticate_per_tenant(
    simulator: SimulatorHandle, http: aiohttp.ClientSession
) -> None:
    org, tenant = simulator.organization, simulator.tenant
    url = f"{simulator.root_url}/{org}/{tenant}/api/account/authenticate"
    payload = {"usernameOrEmailAddress": "admin", "password": "demo-password"}
    status, body = await _post(http, url, json=payload)
    assert status == 200 and body["success"] is True
    async with http.get(
        f"{simulator.url}/odata/Folders", headers={"Authorization": f"Bearer {body['result']}"}
    ) as r:
        assert r.status == 200
    # Another organization/tenant in the path: no such tenant, the login fails.
    status, body = await _post(
        http, f"{simulator.root_url}/{org}/Elsewhere/api/account/authenticate", json=payload
    )
    assert (status, body["errorCode"]) == (400, 1000)


async def test_onprem_form_body_is_refused(
    simulator: SimulatorHandle, http: aiohttp.ClientSession
) -> None:
    payload = {
        "tenancyName": "Default",
        "usernameOrEmailAddress": "admin",
        "password": "demo-password",
    }
    status, body = await _post(http, simulator.root_url + "/api/Account/Authenticate", data=payload)
    assert status == 400 and "json=" in body["error"]["details"]


# -- the 401 and 403 gate ------------------------------------------------------------------------


async def _folders_status(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str]
) -> tuple[int, Any, Any]:
    async with http.get(url, headers=headers) as response:
        return response.status, await response.json(content_type=None), response.headers


async def test_missing_bad_expired_revoked_tokens_get_the_abp_401(
    simulator: SimulatorHandle, orch: SimClient, http: aiohttp.ClientSession, fake_clock: FakeClock
) -> None:
    url = simulator.url + "/odata/Folders"
    token = await orch.token()
    cases = [
        ({}, "no Authorization header"),
        ({"Authorization": f"Token {token}"}, "must read 'Bearer"),
        ({"Authorization": "Bearer made-up"}, "unknown token"),
    ]
    for headers, hint in cases:
        status, body, response_headers = await _folders_status(http, url, headers)
        # unAuthorizedRequest is true only when no token reached the API at all.
        expected = {**ABP_401, "unAuthorizedRequest": not headers}
        assert (status, body) == (401, expected)
        assert hint in response_headers["X-Simulator-Hint"]
    status, _, hints = await _folders_status(http, url + f"?access_token={token}", {})
    assert status == 401 and "not the URL" in hints["X-Simulator-Hint"]

    good = {"Authorization": f"Bearer {token}"}
    assert (await _folders_status(http, url, good))[0] == 200
    fake_clock.advance(3600)
    status, body, hints = await _folders_status(http, url, good)
    assert (status, body) == (401, ABP_401) and hints["X-Simulator-Hint"] == "token expired"

    fresh = {"Authorization": f"Bearer {await orch.token()}"}
    simulator.simulator.revoke_tokens()
    status, body, hints = await _folders_status(http, url, fresh)
    assert (status, body) == (401, ABP_401) and hints["X-Simulator-Hint"] == "token was revoked"
    assert simulator.simulator.stats()["rejections"]["401"] == 6


async def test_wrong_base_url_shapes_get_401(
    simulator: SimulatorHandle, orch: SimClient, http: aiohttp.ClientSession
) -> None:
    headers = {"Authorization": f"Bearer {await orch.token()}"}
    # The forum mistake: the folder in the path instead of /{org}/{tenant}/orchestrator_.
    for path in (
        "/DefaultTenant/Finance/odata/Folders",
        "/demo/OtherTenant/orchestrator_/odata/Folders",
    ):
        status, body, hints = await _folders_status(http, simulator.root_url + path, headers)
        assert (status, body) == (401, ABP_401), path
        assert "issued for tenant demo/DefaultTenant" in hints["X-Simulator-Hint"]
    # The legacy platform shape /{account}/{tenant}/odata still serves the right tenant.
    status, _, _ = await _folders_status(
        http, simulator.root_url + "/DEMO/defaulttenant/odata/Folders", headers
    )
    assert status == 200


async def test_tokens_of_one_tenant_are_refused_by_another(
    start_simulator: Any, http: aiohttp.ClientSession
) -> None:
    text = """
[[tenants]]
organization = "acme"
name = "Prod"
[[tenants.credentials]]
client_id = "prod-app"
client_secret = "s1"
scopes = ["OR.Folders.Read"]
[[tenants.folders]]
path = "Shared"

[[tenants]]
organization = "acme"
name = "Test"
[[tenants.credentials]]
client_id = "test-app"
client_secret = "s2"
scopes = ["OR.Folders.Read"]
[[tenants.folders]]
path = "Sandbox"
"""
    sim: SimulatorHandle = await start_simulator(parse_scenario(text, name="two.toml"))
    status, body = await _post(
        http,
        sim.root_url + "/acme/identity_/connect/token",
        data={"grant_type": "client_credentials", "client_id": "test-app", "client_secret": "s2"},
    )
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    status, folders, _ = await _folders_status(
        http, sim.base_url("acme/Test") + "/odata/Folders", headers
    )
    assert status == 200 and [f["DisplayName"] for f in folders["value"]] == ["Sandbox"]
    status, body, _ = await _folders_status(
        http, sim.base_url("acme/Prod") + "/odata/Folders", headers
    )
    assert (status, body) == (401, ABP_401)


@pytest.mark.parametrize(
    ("scope", "method", "path", "needs"),
    [
        ("OR.Jobs", "GET", "/odata/Folders", "OR.Folders or OR.Folders.Read"),
        ("OR.Jobs", "GET", "/odata/Releases", "OR.Execution or OR.Execution.Read"),
        ("OR.Folders.Read", "GET", "/odata/Jobs", "OR.Jobs or OR.Jobs.Read"),
        ("OR.Folders.Read", "GET", "/odata/Jobs(1)", "OR.Jobs or OR.Jobs.Read"),
        (
            "OR.Jobs.Read",
            "POST",
            "/odata/Jobs/UiPath.Server.Configuration.OData.StartJobs",
            "OR.Jobs or OR.Jobs.Write",
        ),
        (
            "OR.Jobs.Read",
            "POST",
            "/odata/Jobs/UiPath.Server.Configuration.OData.StopJobs",
            "OR.Jobs or OR.Jobs.Write",
        ),
        (
            "OR.Jobs.Read",
            "POST",
            "/odata/Jobs(1)/UiPath.Server.Configuration.OData.StopJob",
            "OR.Jobs or OR.Jobs.Write",
        ),
    ],
)
async def test_missing_scope_is_403_with_the_modern_body(
    simulator: SimulatorHandle, orch: SimClient, scope: str, method: str, path: str, needs: str
) -> None:
    token = await orch.token(scope)
    status, body, _ = await orch.request(
        method,
        path,
        headers={"Authorization": f"Bearer {token}", "X-UIPATH-FolderPath": "Shared"},
        json={},
    )
    assert status == 403
    assert set(body) == {"message", "errorCode", "traceId"}
    assert needs in body["message"]
    assert simulator.simulator.stats()["rejections"]["403"] == 1


async def test_read_and_write_scopes_are_enough(orch: SimClient) -> None:
    token = await orch.token("OR.Jobs.Read OR.Jobs.Write OR.Execution.Read")
    headers = {"Authorization": f"Bearer {token}", "X-UIPATH-FolderPath": "Shared"}
    status, body, _ = await orch.post(
        "/odata/Jobs/UiPath.Server.Configuration.OData.StartJobs",
        headers=headers,
        json={"startInfo": {"ReleaseName": "Echo"}},
    )
    assert status == 201, body
    status, _, _ = await orch.get("/odata/Jobs", headers=headers)
    assert status == 200
