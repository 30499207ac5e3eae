"""Job life cycle over HTTP, driven by an injected clock (no waiting)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import aiohttp
from conftest import FakeClock, SimClient

from async_orch.simulator import SimulatorHandle


async def _states(orch: SimClient, folder: str) -> Counter[str]:
    status, body, _ = await orch.get("/odata/Jobs", folder=folder, params={"$select": "State"})
    assert status == 200, body
    return Counter(j["State"] for j in body["value"])


async def test_a_job_walks_pending_running_successful(
    orch: SimClient, fake_clock: FakeClock
) -> None:
    (job,) = await orch.start("Finance", "InvoiceProcessing", InputArguments='{"InvoiceCount": 3}')
    seen = [job["State"]]
    for _ in range(100):  # one simulated second at a time: 20-90 s job
        fake_clock.advance(1)
        current = await orch.job("Finance", job["Id"])
        if current["State"] != seen[-1]:
            seen.append(current["State"])
        if current["EndTime"]:
            break
    assert seen in (["Pending", "Running", "Successful"], ["Pending", "Running", "Faulted"])
    assert current["StartTime"] < current["EndTime"] == current["LastModificationTime"]
    if seen[-1] == "Successful":
        outputs = json.loads(current["OutputArguments"])
        assert outputs["InvoicesProcessed"] == 3 and outputs["Currency"] == "EUR"


async def test_time_scale_speeds_up_the_jobs(
    start_simulator: Any, http: aiohttp.ClientSession, fake_clock: FakeClock
) -> None:
    handle: SimulatorHandle = await start_simulator(clock=fake_clock, time_scale=60)
    orch = SimClient(handle, http)
    (job,) = await orch.start("Shared", "DailyReport")  # 20-60 s + 2 s pickup
    fake_clock.advance(0.5)  # 30 simulated seconds
    assert (await orch.job("Shared", job["Id"]))["State"] in ("Running", "Successful", "Faulted")
    fake_clock.advance(0.6)  # 66 simulated seconds in all
    assert (await orch.job("Shared", job["Id"]))["State"] in ("Successful", "Faulted")


async def test_a_500_job_dispatch_queues_behind_the_folder_capacity(
    orch: SimClient, fake_clock: FakeClock
) -> None:
    for batch in range(5):
        await orch.start("HR", "EmployeeOnboarding", JobsCount=100, Reference=f"b{batch}")
    assert await _states(orch, "HR") == {"Pending": 500}
    fake_clock.advance(3)
    assert await _states(orch, "HR") == {"Running": 25, "Pending": 475}  # capacity 25
    for _ in range(400):  # at most 82 s per job, 20 rounds of 25: well under 4000 s
        fake_clock.advance(10)
        states = await _states(orch, "HR")
        assert states["Running"] <= 25
        if states["Pending"] == 0 and states["Running"] == 0:
            break
    assert set(states) <= {"Successful", "Faulted"} and sum(states.values()) == 500
    assert states["Successful"] > 0
    stats = orch.handle.simulator.stats()["jobs"]
    assert stats["created"] == 500 and stats["by_reference"] == {f"b{i}": 100 for i in range(5)}
    assert stats["duplicate_references"] == {}


async def test_stopping_pending_and_running_jobs(orch: SimClient, fake_clock: FakeClock) -> None:
    jobs = await orch.start("Shared", "DailyReport", JobsCount=27)  # capacity 25
    fake_clock.advance(3)
    waiting = jobs[-1]
    assert (await orch.job("Shared", waiting["Id"]))["State"] == "Pending"
    status, _, _ = await orch.post(
        "/odata/Jobs/UiPath.Server.Configuration.OData.StopJobs",
        folder="Shared",
        json={"jobIds": [waiting["Id"], jobs[0]["Id"]], "strategy": "SoftStop"},
    )
    assert status == 200
    stopped = await orch.job("Shared", waiting["Id"])
    assert stopped["State"] == "Stopped" and stopped["StartTime"] is None
    assert stopped["StopStrategy"] == "SoftStop"
    assert (await orch.job("Shared", jobs[0]["Id"]))["State"] == "Stopping"
    fake_clock.advance(5)
    assert (await orch.job("Shared", jobs[0]["Id"]))["State"] == "Stopped"


async def test_same_seed_same_requests_same_jobs(
    start_simulator: Any, http: aiohttp.ClientSession
) -> None:
    async def run() -> list[tuple[str, str, str | None]]:
        clock = FakeClock()
        handle: SimulatorHandle = await start_simulator(
            clock=clock, seed=7, wall_clock=lambda: 1.7e9
        )
        orch = SimClient(handle, http)
        jobs = await orch.start("Finance", "InvoiceProcessing", JobsCount=10)
        clock.advance(200)
        finished = [await orch.job("Finance", j["Id"]) for j in jobs]
        return [(j["Key"], j["EndTime"], j["OutputArguments"]) for j in finished]

    assert await run() == await run()


async def test_fast_simulator_finishes_jobs_on_the_real_clock(
    fast_simulator: SimulatorHandle, http: aiohttp.ClientSession
) -> None:
    orch = SimClient(fast_simulator, http)
    (job,) = await orch.start("Shared", InputArguments='{"n": 1}')
    deadline = asyncio.get_running_loop().time() + 30  # ~4 simulated s = ~1 ms real
    while (current := await orch.job("Shared", job["Id"]))["State"] != "Successful":
        assert asyncio.get_running_loop().time() < deadline, current
        await asyncio.sleep(0.01)
    assert current["OutputArguments"] == '{"n":1}'
