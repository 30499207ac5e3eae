"""Pure pieces of the simulator: rate limit, faults, tokens, routes, folders, requests."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import time
from typing import Any

import pytest

from async_orch._errors import ConfigurationError
from async_orch.simulator.clock import SimClock
from async_orch.simulator.dto import format_timestamp
from async_orch.simulator.faults import FaultInjector, FaultSettings, parse_fault_assignment
from async_orch.simulator.folders import resolve_folder
from async_orch.simulator.problems import ApiProblem, abp_unauthenticated_body, new_trace_id
from async_orch.simulator.ratelimit import RollingWindowLimiter
from async_orch.simulator.routes import Endpoint, match_route
from async_orch.simulator.scenario import load_scenario
from async_orch.simulator.start_request import (
    parse_start_jobs,
    parse_stop_job,
    parse_stop_jobs,
)
from async_orch.simulator.tokens import TokenStore, jwt_claims
from async_orch.simulator.world import Folder, World, build_world

# -- rate limit ------------------------------------------------------------------


def test_rolling_window_refuses_the_extra_call_and_says_when_a_slot_frees() -> None:
    limiter = RollingWindowLimiter(100, 60.0)
    decisions = [limiter.acquire(1000.0 + i * 0.1) for i in range(100)]
    assert all(d.allowed for d in decisions)
    assert decisions[0].remaining == 99
    assert decisions[89].remaining == 10  # exactly 10 left is still reported
    assert decisions[90].remaining == 0  # fewer than 10 left reads 0
    refused = limiter.acquire(1030.0)
    assert not refused.allowed and refused.remaining == 0
    assert refused.retry_after == 30  # the first call (t=1000) leaves the window at 1060
    assert limiter.acquire(1059.99).retry_after == 1  # never below 1
    assert limiter.acquire(1060.0).allowed  # rolling, not aligned to minutes


def test_rolling_window_validates_its_settings() -> None:
    with pytest.raises(ValueError, match="limit"):
        RollingWindowLimiter(0, 60)


# -- faults ------------------------------------------------------------------------


def test_fault_settings_parse_merge_and_reject() -> None:
    settings = FaultSettings.from_mapping({"drop_rate": 0.5, "server_error_statuses": [503]})
    assert settings.drop_rate == 0.5 and settings.server_error_statuses == (503,)
    assert settings.active and not FaultSettings().active
    merged = FaultSettings.from_mapping({"slow_rate": 1}, base=settings)
    assert (merged.drop_rate, merged.slow_rate) == (0.5, 1.0)
    assert FaultSettings.from_mapping(settings.to_dict()) == settings
    cases: list[tuple[dict[str, Any], str]] = [
        ({"drop_rate": 2}, "drop_rate must be a number >= 0 and <= 1"),
        ({"server_error_statuses": [404]}, "server_error_statuses must be"),
        ({"nope": 1}, "unknown key(s) nope"),
        ({"throttle_burst_seconds": 5, "throttle_burst_every": 2}, "must not exceed"),
    ]
    for bad, message in cases:
        with pytest.raises(ConfigurationError, match=re.escape(message)):
            FaultSettings.from_mapping(bad)


def test_fault_assignments_from_the_command_line() -> None:
    assert parse_fault_assignment("drop_rate=0.05") == ("drop_rate", 0.05)
    assert parse_fault_assignment("revoke_tokens_every=30") == ("revoke_tokens_every", 30)
    assert parse_fault_assignment("include_token_endpoint=true") == ("include_token_endpoint", True)
    assert parse_fault_assignment("server_error_statuses=502,503") == (
        "server_error_statuses",
        [502, 503],
    )
    assert parse_fault_assignment("server_error_statuses=500") == ("server_error_statuses", [500])
    assert parse_fault_assignment("ambiguous_start_mode=504") == ("ambiguous_start_mode", "504")
    assert (
        FaultSettings.from_mapping(
            dict([parse_fault_assignment("ambiguous_start_mode=504")])
        ).ambiguous_start_mode
        == "504"
    )
    with pytest.raises(ConfigurationError, match="key=value"):
        parse_fault_assignment("drop_rate")


def test_injector_is_quiet_by_default_and_seeded() -> None:
    quiet = FaultInjector(FaultSettings(), seed=1, now=0.0)
    plans = [quiet.plan(now=0.0, token_route=False, start_jobs=True) for _ in range(100)]
    assert {p.outcome for p in plans} == {"none"} and not quiet.counts

    settings = FaultSettings(server_error_rate=0.2, drop_rate=0.1, throttle_rate=0.1)

    def outcomes(seed: int) -> list[str]:
        injector = FaultInjector(settings, seed=seed, now=0.0)
        return [
            injector.plan(now=0.0, token_route=False, start_jobs=False).outcome for _ in range(300)
        ]

    assert outcomes(7) == outcomes(7) != outcomes(8)
    counts = {o: outcomes(7).count(o) for o in ("server_error", "drop", "throttle", "none")}
    assert all(counts.values()), counts


def test_injector_counts_and_respects_the_token_route_switch() -> None:
    injector = FaultInjector(FaultSettings(server_error_rate=1.0), seed=0, now=0.0)
    assert injector.plan(now=0, token_route=True, start_jobs=False).outcome == "none"
    plan = injector.plan(now=0, token_route=False, start_jobs=False)
    assert plan.outcome == "server_error" and plan.status in (500, 502, 503)
    assert injector.counts == {"server_error": 1}
    injector.update(FaultSettings(server_error_rate=1.0, include_token_endpoint=True), now=0)
    assert injector.plan(now=0, token_route=True, start_jobs=False).outcome == "server_error"


def test_throttle_bursts_follow_the_real_clock() -> None:
    injector = FaultInjector(
        FaultSettings(throttle_burst_seconds=5, throttle_burst_every=20), seed=0, now=100.0
    )

    def at(t: float) -> tuple[str, int | None]:
        plan = injector.plan(now=t, token_route=False, start_jobs=False)
        return plan.outcome, plan.retry_after

    assert at(100.0) == ("throttle", 5)
    assert at(103.5) == ("throttle", 2)
    assert at(105.0) == ("none", None)
    assert at(119.9) == ("none", None)
    assert at(120.0) == ("throttle", 5)


def test_ambiguous_start_only_on_start_jobs_and_slow_is_independent() -> None:
    injector = FaultInjector(
        FaultSettings(ambiguous_start_rate=1.0, slow_rate=1.0, slow_seconds=0.5), seed=0, now=0
    )
    other = injector.plan(now=0, token_route=False, start_jobs=False)
    start = injector.plan(now=0, token_route=False, start_jobs=True)
    assert (other.outcome, other.delay) == ("none", 0.5)
    assert (start.outcome, start.delay) == ("ambiguous", 0.5)
    assert injector.counts == {"slow": 2, "ambiguous_start": 1}


def test_revocation_is_due_once_per_period() -> None:
    injector = FaultInjector(FaultSettings(revoke_tokens_every=30), seed=0, now=0.0)
    assert [injector.revocation_due(t) for t in (10, 30, 31, 59, 60)] == [
        False,
        True,
        False,
        False,
        True,
    ]
    assert not FaultInjector(FaultSettings(), seed=0, now=0).revocation_due(1e9)


# -- tokens and clock ------------------------------------------------------------------


def test_tokens_expire_and_are_revoked_per_tenant() -> None:
    store = TokenStore()
    a = store.issue(
        tenant_key="o/a", scopes=frozenset({"OR.Jobs"}), lifetime=60, now=0, flow="x",
        subject="c", issuer="i",
    )  # fmt: skip
    b = store.issue(
        tenant_key="o/b", scopes=None, lifetime=60, now=0, flow="x", subject="c", issuer="i"
    )
    assert a.value != b.value and len(a.value) >= 40
    assert store.check(a.value, now=59.9) == (a, "")
    assert store.check(a.value, now=60)[1] == "token expired"
    assert store.check("nope", now=0)[0] is None
    assert store.check("nope", now=0)[1].startswith("unknown token")
    assert a.allows(frozenset({"OR.Jobs", "OR.Jobs.Read"}))
    assert not a.allows(frozenset({"OR.Folders"}))
    assert b.allows(frozenset({"anything"}))  # user tokens carry every scope
    assert store.revoke(tenant_key="o/b") == 1
    assert store.check(b.value, now=1)[1] == "token was revoked"
    assert store.check(a.value, now=1)[1] == ""


def test_tokens_are_signed_jwts_with_the_real_claims() -> None:
    store = TokenStore(signing_key=b"k" * 32)
    token = store.issue(
        tenant_key="o/a", scopes=frozenset({"OR.Jobs", "OR.Folders.Read"}), lifetime=3600,
        now=1_000, flow="client_credentials", subject="app", issuer="https://h/identity_",
    )  # fmt: skip
    header, _, _ = token.value.split(".")
    assert json.loads(base64.urlsafe_b64decode(header + "==")) == {"alg": "HS256", "typ": "JWT"}
    claims = jwt_claims(token.value)
    # Unix seconds (RFC 7519), whatever the simulator's own clock says (now=1_000).
    assert claims["exp"] - claims["iat"] == 3600 and abs(claims["iat"] - time.time()) < 600
    assert claims["iss"] == "https://h/identity_"
    assert claims["client_id"] == "app" and claims["scope"] == ["OR.Folders.Read", "OR.Jobs"]
    # Another key (a restarted simulator) or a changed claim: not a token of this one.
    assert TokenStore(signing_key=b"x" * 32).check(token.value, now=1_001)[0] is None
    head, body, mac = token.value.split(".")
    forged = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    assert store.check(f"{head}.{forged}.{mac}", now=1_001)[0] is None


def test_sim_clock_scales_real_time() -> None:
    now = [50.0]
    clock = SimClock(lambda: now[0], time_scale=60, epoch=1_000.0)
    assert clock.now() == 1_000.0
    now[0] = 52.5
    assert clock.now() == 1_150.0
    with pytest.raises(ValueError, match="time_scale"):
        SimClock(lambda: 0.0, time_scale=0, epoch=0)


def test_timestamps_look_like_dotnet() -> None:
    t = dt.datetime(2018, 1, 15, 18, 18, 2, 790000, tzinfo=dt.UTC).timestamp()
    assert format_timestamp(t) == "2018-01-15T18:18:02.79Z"
    assert format_timestamp(float(int(t))) == "2018-01-15T18:18:02Z"
    assert format_timestamp(None) is None


def test_error_bodies() -> None:
    body = abp_unauthenticated_body()
    assert body["message"] == body["error"]["message"] == "You are not authenticated!"
    assert body["__abp"] is True and body["errorCode"] == 0 and body["success"] is False
    version, trace, span, flags = new_trace_id().split("-")
    assert (version, len(trace), len(span), flags) == ("00", 32, 16, "01")


# -- routes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "endpoint", "tenant", "base"),
    [
        ("POST", "/identity_/connect/token", Endpoint.TOKEN, None, ""),
        ("POST", "/demo/identity_/connect/token", Endpoint.TOKEN, None, ""),
        ("POST", "/identity/connect/token", Endpoint.TOKEN, None, ""),
        ("POST", "/oauth/token", Endpoint.LEGACY_TOKEN, None, ""),
        ("POST", "/api/account/authenticate", Endpoint.AUTHENTICATE, None, ""),
        (
            "GET",
            "/demo/T/orchestrator_/odata/Folders",
            Endpoint.FOLDERS,
            "T",
            "/demo/T/orchestrator_",
        ),
        ("GET", "/demo/T/ORCHESTRATOR_/ODATA/jobs", Endpoint.JOBS, "T", "/demo/T/ORCHESTRATOR_"),
        ("GET", "/demo/T/odata/Releases", Endpoint.RELEASES, "T", "/demo/T"),
        ("GET", "/odata/Jobs(42)", Endpoint.JOB, None, ""),
        (
            "GET",
            "/odata/Jobs/UiPath.Server.Configuration.OData.GetByKey(identifier=0b9f2b9c-8f0e-4b43-9d59-5d2a6c7a1e01)",
            Endpoint.JOB_BY_KEY,
            None,
            "",
        ),
        (
            "POST",
            "/odata/jobs/uipath.server.configuration.odata.startjobs",
            Endpoint.START_JOBS,
            None,
            "",
        ),
        (
            "POST",
            "/odata/Jobs/UiPath.Server.Configuration.OData.StopJobs",
            Endpoint.STOP_JOBS,
            None,
            "",
        ),
        (
            "POST",
            "/odata/Jobs(7)/UiPath.Server.Configuration.OData.StopJob",
            Endpoint.STOP_JOB,
            None,
            "",
        ),
    ],
)
def test_routes_match_case_insensitively_under_every_base(
    method: str, path: str, endpoint: Endpoint, tenant: str | None, base: str
) -> None:
    match = match_route(method, path)
    assert match is not None and match.method_allowed
    assert (match.endpoint, match.tenant, match.base_path) == (endpoint, tenant, base)


def test_route_params_wrong_methods_and_unknown_paths() -> None:
    match = match_route("GET", "/odata/Jobs(42)")
    assert match is not None and match.params == {"key": "42"}
    wrong = match_route("POST", "/odata/Folders")
    assert wrong is not None and not wrong.method_allowed
    for path in ("/odata/Robots", "/demo/odata/Jobs", "/a/b/c/odata/Jobs", "/", "/odata/Jobs(x)"):
        assert match_route("GET", path) is None, path


# -- folders ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world() -> World:
    return build_world(load_scenario().tenants[0])


def _folder(world: World, path: str) -> Folder:
    folder = world.folder_by_path(path)
    assert folder is not None
    return folder


def test_every_folder_header_form_resolves(world: World) -> None:
    target = _folder(world, "Finance/Comptabilité")
    encoded = base64.b64encode("Finance/Comptabilité".encode("utf-16-le")).decode()
    for headers in (
        {"X-UIPATH-OrganizationUnitId": str(target.id)},
        {"X-UIPATH-FolderKey": target.key.upper()},
        {"X-UIPATH-FolderPath": "/finance/comptabilité"},
        {"X-UIPATH-FolderPath-Encoded": encoded},
    ):
        assert resolve_folder(headers, world) is target, headers


@pytest.mark.parametrize(
    ("headers", "code", "message"),
    [
        ({}, 1101, "An organization unit is required for this action."),
        ({"X-UIPATH-OrganizationUnitId": "  "}, 1101, "An organization unit is required"),
        ({"X-UIPATH-OrganizationUnitId": "demo"}, 1101, "must be the numeric folder Id"),
        ({"X-UIPATH-OrganizationUnitId": "1"}, 1100, "Folder does not exist"),
        ({"X-UIPATH-FolderKey": "not-a-guid"}, 1100, "Folder does not exist"),
        ({"X-UIPATH-FolderPath": "Nope"}, 1100, "Folder does not exist"),
        ({"X-UIPATH-FolderPath-Encoded": "%%%"}, 1000, "base64 of the folder path"),
    ],
)
def test_folder_header_errors(
    world: World, headers: dict[str, str], code: int, message: str
) -> None:
    with pytest.raises(ApiProblem) as info:
        resolve_folder(headers, world)
    assert (info.value.status, info.value.error_code) == (400, code)
    assert message in info.value.message


# -- StartJobs / StopJobs bodies --------------------------------------------------------------


def _start(world: World, info: Any, folder: str = "Finance") -> Any:
    return parse_start_jobs({"startInfo": info}, _folder(world, folder))


def test_start_defaults_to_one_job_like_the_official_sdk(world: World) -> None:
    order = _start(world, {"ReleaseName": "echo", "InputArguments": "{}"})
    assert order.release.name == "Echo" and order.robots == (None,)
    assert (order.source, order.job_priority, order.specific_priority) == ("Manual", "Normal", 45)


def test_start_strategies(world: World) -> None:
    folder = _folder(world, "Finance")
    key = folder.release_by_name("InvoiceProcessing").key  # type: ignore[union-attr]
    assert (
        len(
            _start(
                world, {"ReleaseKey": key.upper(), "Strategy": "ModernJobsCount", "JobsCount": 3}
            ).robots
        )
        == 3
    )
    assert (
        len(_start(world, {"releasekey": key, "strategy": "jobscount", "jobscount": 2}).robots) == 2
    )
    assert (
        len(_start(world, {"ReleaseKey": key, "Strategy": "RobotCount", "NoOfRobots": 4}).robots)
        == 4
    )
    assert _start(world, {"ReleaseKey": key, "Strategy": "All"}).robots == folder.robots
    robot = folder.robots[1]
    specific = _start(
        world, {"ReleaseKey": key, "Strategy": "Specific", "RobotIds": [robot.id], "JobsCount": 0}
    )
    assert specific.robots == (robot,)
    full = _start(
        world,
        {
            "ReleaseKey": key,
            "Reference": "r" * 128,
            "Source": "agentservice",
            "JobPriority": "High",
            "RuntimeType": "Unattended",
            "Unknown": "ignored",
            "BatchExecutionKey": "0B9F2B9C-8F0E-4B43-9D59-5D2A6C7A1E01",
        },
    )
    assert (full.source, full.job_priority, full.specific_priority) == ("AgentService", "High", 85)
    assert full.batch_execution_key == "0b9f2b9c-8f0e-4b43-9d59-5d2a6c7a1e01"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ([], 400, "must be a JSON object"),
        ({}, 400, "startInfo is required"),
        ({"startInfo": "x"}, 400, "startInfo must be a JSON object"),
        ({"startInfo": {}}, 400, "needs ReleaseKey"),
        (
            {"startInfo": {"ReleaseName": "Nope"}},
            404,
            "no process with name 'Nope' in folder 'Finance'",
        ),
        ({"startInfo": {"ReleaseKey": "bad"}}, 404, "Release does not exist"),
        (
            {"startInfo": {"ReleaseName": "Echo", "Strategy": "Best"}},
            400,
            "Strategy must be one of",
        ),
        (
            {"startInfo": {"ReleaseName": "Echo", "Strategy": "JobsCount", "JobsCount": 0}},
            400,
            "JobsCount must be greater than 0",
        ),
        (
            {"startInfo": {"ReleaseName": "Echo", "JobsCount": "3"}},
            400,
            "JobsCount must be an integer",
        ),
        (
            {"startInfo": {"ReleaseName": "Echo", "Strategy": "RobotCount"}},
            400,
            "NoOfRobots must be greater than 0",
        ),
        ({"startInfo": {"ReleaseName": "Echo", "Strategy": "Specific"}}, 400, "RobotIds must list"),
        (
            {"startInfo": {"ReleaseName": "Echo", "Strategy": "Specific", "RobotIds": [6]}},
            409,
            "Couldn't find the specified unattended user/robot",
        ),
        (
            {"startInfo": {"ReleaseName": "Echo", "InputArguments": {"a": 1}}},
            400,
            "not a JSON object",
        ),
        (
            {"startInfo": {"ReleaseName": "Echo", "InputArguments": "[1, 2]"}},
            400,
            "JSON text of an object",
        ),
        (
            {
                "startInfo": {
                    "ReleaseName": "Echo",
                    "InputArguments": json.dumps({"a": "x" * 10_000}),
                }
            },
            400,
            "the maximum is 10000",
        ),
        ({"startInfo": {"ReleaseName": "Echo", "Reference": "r" * 129}}, 400, "the maximum is 128"),
        ({"startInfo": {"ReleaseName": "Echo", "Reference": 5}}, 400, "Reference must be a string"),
        (
            {"startInfo": {"ReleaseName": "Echo", "BatchExecutionKey": "x"}},
            400,
            "BatchExecutionKey must be a GUID",
        ),
        (
            {"startInfo": {"ReleaseName": "Echo", "SpecificPriorityValue": 101}},
            400,
            "between 1 and 100",
        ),
        ({"startInfo": {"ReleaseName": "Echo", "Source": "Nowhere"}}, 400, "Source must be one of"),
        ({"startInfo": {"ReleaseName": "Echo", "JobsCount": 10_001}}, 400, "Too many jobs"),
    ],
)
def test_start_errors_name_the_problem(world: World, body: Any, status: int, message: str) -> None:
    with pytest.raises(ApiProblem) as info:
        parse_start_jobs(body, _folder(world, "Finance"))
    assert info.value.status == status
    assert message in info.value.message


def test_stop_bodies() -> None:
    assert parse_stop_jobs({"jobIds": [1, 2], "strategy": "softstop"}) == ([1, 2], "SoftStop")
    assert parse_stop_job({"Strategy": "Kill"}) == "Kill"
    for body, message in [
        ({"strategy": "Kill"}, "jobIds is required"),
        ({"jobIds": ["1"], "strategy": "Kill"}, "jobIds is required"),
        ({"jobIds": [1]}, "strategy is required"),
        ({"jobIds": [1], "strategy": "Pause"}, "strategy must be one of SoftStop, Kill"),
        (None, "must be a JSON object"),
    ]:
        with pytest.raises(ApiProblem, match=message):
            parse_stop_jobs(body)
