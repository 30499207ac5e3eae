"""The GET /odata/Jobs rate limit over HTTP, on an injected clock."""

from __future__ import annotations

from typing import Any

import aiohttp
from conftest import FakeClock, SimClient

from async_orch.simulator import SimulatorHandle, load_scenario
from async_orch.simulator.ratelimit import RollingWindowLimiter
from async_orch.simulator.scenario import RateLimitSpec

START = "/odata/Jobs/UiPath.Server.Configuration.OData.StartJobs"


async def test_the_101st_list_call_in_a_minute_gets_429(
    orch: SimClient, fake_clock: FakeClock
) -> None:
    remaining = []
    for _ in range(100):
        status, _, headers = await orch.get("/odata/Jobs", folder="Shared")
        assert status == 200
        remaining.append(int(headers["X-RateLimit-Remaining"]))
        fake_clock.advance(0.25)  # 100 calls within 25 s (0.25: exact in binary)
    assert remaining[:3] == [99, 98, 97] and remaining[89] == 10 and remaining[90:] == [0] * 10

    status, body, headers = await orch.get("/odata/Jobs", folder="Shared")
    assert status == 429
    assert set(body) == {"message", "errorCode", "traceId"}
    assert "100 calls per 60 seconds" in body["message"]
    assert headers["X-RateLimit-Remaining"] == "0"
    assert headers["Retry-After"] == "35"  # the first call (t=0) leaves the window at t=60

    # Not limited: Jobs({id}), StartJobs, Folders.
    (job,) = await orch.start("Shared")
    assert (await orch.job("Shared", job["Id"]))["Id"] == job["Id"]
    assert (await orch.get("/odata/Folders"))[0] == 200

    fake_clock.advance(35)  # the oldest call left the window
    status, _, headers = await orch.get("/odata/Jobs", folder="Shared")
    assert status == 200 and headers["X-RateLimit-Remaining"] == "0"
    stats = orch.handle.simulator.stats()
    assert stats["rejections"]["429"] == 1
    assert stats["requests"]["GET /odata/Jobs"] == {"200": 101, "429": 1}


async def test_the_limit_is_per_tenant_and_configurable(
    start_simulator: Any, http: aiohttp.ClientSession, fake_clock: FakeClock
) -> None:
    scenario = load_scenario()
    tenant = scenario.tenants[0]
    small = tenant.__class__(
        **{
            **{f: getattr(tenant, f) for f in tenant.__dataclass_fields__},
            "rate_limit": RateLimitSpec(jobs_list=3, window_seconds=2),
        }
    )
    handle: SimulatorHandle = await start_simulator(
        scenario.__class__(name="small", tenants=(small,)), clock=fake_clock
    )
    orch = SimClient(handle, http)
    statuses = [(await orch.get("/odata/Jobs", folder="HR"))[0] for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    _, _, headers = await orch.get("/odata/Jobs", folder="HR")
    assert headers["Retry-After"] == "2"
    fake_clock.advance(2)
    assert (await orch.get("/odata/Jobs", folder="HR"))[0] == 200


async def test_refusals_are_counted_before_the_folder_is_checked(orch: SimClient) -> None:
    # The limit counts every call to the endpoint, valid or not.
    for _ in range(100):
        assert (await orch.get("/odata/Jobs"))[0] == 400  # no folder header
    assert (await orch.get("/odata/Jobs", folder="Shared"))[0] == 429


def _with_rate_limit(limit: RateLimitSpec) -> Any:
    scenario = load_scenario()
    tenant = scenario.tenants[0]
    fields = {f: getattr(tenant, f) for f in tenant.__dataclass_fields__}
    return scenario.__class__(
        name="shared", tenants=(tenant.__class__(**{**fields, "rate_limit": limit}),)
    )


async def test_other_callers_load_is_charged_to_the_tenants_window(
    start_simulator: Any, http: aiohttp.ClientSession, fake_clock: FakeClock
) -> None:
    # 30 calls a minute from elsewhere: a minute of them is in the window already.
    handle: SimulatorHandle = await start_simulator(
        _with_rate_limit(RateLimitSpec(other_per_minute=30)), clock=fake_clock
    )
    orch = SimClient(handle, http)
    _, _, headers = await orch.get("/odata/Jobs", folder="Shared")
    assert headers["X-RateLimit-Remaining"] == "69"  # 100 - 30 others - this call
    for _ in range(69):
        assert (await orch.get("/odata/Jobs", folder="Shared"))[0] == 200
    status, _, headers = await orch.get("/odata/Jobs", folder="Shared")
    assert status == 429 and headers["X-RateLimit-Remaining"] == "0"
    assert int(headers["Retry-After"]) >= 1
    fake_clock.advance(2)  # the oldest other call left the window: the others took it
    assert (await orch.get("/odata/Jobs", folder="Shared"))[0] == 429
    fake_clock.advance(58)  # our 70 calls of t=0 left; 30 others of t=2..60 remain
    _, _, headers = await orch.get("/odata/Jobs", folder="Shared")
    assert headers["X-RateLimit-Remaining"] == "69"
    limiter = handle.simulator.tenants[0].limiter
    assert (limiter.other_calls, limiter.other_refused) == (60, 0)


def test_other_callers_load_is_evenly_spaced_and_refused_when_full() -> None:
    limiter = RollingWindowLimiter(10, 60, other_per_minute=60)
    first = limiter.acquire(100.0)  # the window holds 59 s of load: full
    assert not first.allowed and first.retry_after == 1
    assert (limiter.other_calls, limiter.other_refused) == (10, 50)
    assert limiter.acquire(100.5).allowed is False
    assert limiter.acquire(101.0).allowed is False  # the 101 s call took the freed slot
