"""Every list call of a client draws on its list budgets: the watchers' polls,
Reference lookups after ambiguous starts, and what used to be retried inside the
transport; the remaining count of each answer steers the adaptive budget."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
import pytest
from fakes import FakeAPI, FakeSender, SentRequest, reply

from async_orch import ClientCredentials, InProcessListBudget, JobRequest, OrchestratorClient
from async_orch._config import RetryPolicy, Settings, StaticToken
from async_orch._dispatcher import Dispatcher
from async_orch._errors import RateLimitedError, ServerError, TransportError
from async_orch._planner import PollPolicy
from async_orch._resources import OrchestratorAPI
from async_orch._seams import FolderRef
from async_orch._states import JobState
from async_orch._transport import Transport
from async_orch.simulator import SimulatorHandle, load_scenario
from async_orch.simulator.scenario import RateLimitSpec

BASE = "https://cloud.uipath.com/acme/DefaultTenant/orchestrator_"
FOLDERS = {"value": [{"Id": 1, "Key": "0f8fad5b-d9cb-469f-a165-70867728950e",
                      "DisplayName": "Finance", "FullyQualifiedName": "Finance"}]}  # fmt: skip


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (429, {"Retry-After": "1", "X-RateLimit-Remaining": "0"}),
        (503, {"Retry-After": "1"}),
        (502, {}),
    ],
)
async def test_a_poll_list_call_is_tried_once_the_poller_owns_its_retries(
    status: int, headers: dict[str, str]
) -> None:
    # Before, the transport retried it (5 tries): retries no list budget ever saw.
    async def answer(request: SentRequest) -> Any:
        if request.url.endswith("/odata/Folders"):
            return reply(200, FOLDERS)
        return reply(status, {"message": "no", "errorCode": 0}, headers=headers)

    sender = FakeSender(handler=answer)
    api = OrchestratorAPI(
        Transport(Settings(url=BASE, credentials=StaticToken(token="pat")), sender=sender)
    )
    with pytest.raises((RateLimitedError, ServerError)):
        await api.job_states("Finance", [11, 12])
    assert len(sender.sent_to(BASE + "/odata/Jobs")) == 1


async def test_each_list_answer_reports_its_remaining_count() -> None:
    seen: list[int | None] = []

    async def answer(request: SentRequest) -> Any:
        if request.url.endswith("/odata/Folders"):
            return reply(200, FOLDERS)
        remaining = {} if len(seen) else {"X-RateLimit-Remaining": "12"}
        return reply(200, {"value": [{"Id": 11, "State": "Running"}]}, headers=remaining)

    api = OrchestratorAPI(
        Transport(
            Settings(url=BASE, credentials=StaticToken(token="pat")),
            sender=FakeSender(handler=answer),
        )
    )
    api.on_list_answer = seen.append
    await api.job_states("Finance", [11])
    await api.jobs_by_reference("Finance", ["a"])
    assert seen == [12, None]


class CountingBudget(InProcessListBudget):
    def __init__(self) -> None:
        super().__init__(1000)
        self.acquired = 0
        self.throttles: list[float] = []

    async def acquire(self) -> None:
        self.acquired += 1
        await super().acquire()

    async def throttled(self, retry_after: float) -> None:
        self.throttles.append(retry_after)


class ThrottledOnce(FakeAPI):
    """Loses the first StartJobs answer (the job exists: a lookup follows), refuses
    the first list of states with a 429, and ends the jobs the next list asks for."""

    def __init__(self) -> None:
        lost = TransportError("reset", method="POST", url="u", may_have_reached_server=True)
        super().__init__(start_errors=[lost], create_before_error=True)
        self.refused = False

    async def job_states(self, folder: FolderRef, ids: Sequence[int]) -> dict[int, JobState]:
        if not self.refused:
            self.refused = True
            self.calls.append(("states", folder, tuple(ids)))
            raise RateLimitedError(
                status=429, method="GET", url="u", message="too many", retry_after=0.1
            )
        for job_id in ids:
            self.jobs[job_id].state = JobState.SUCCESSFUL
        return await super().job_states(folder, ids)


async def test_lookups_and_polls_all_take_a_slot_of_the_shared_budget() -> None:
    api = ThrottledOnce()
    shared = CountingBudget()
    dispatcher = Dispatcher(
        api,
        list_budget=shared,
        poll=PollPolicy(min_interval=0.05, max_interval=0.5, list_budget_per_minute=600),
        retry=RetryPolicy(wait_initial=0.0, wait_jitter=0.0, reconcile_window=0.0),
    )
    requests = [JobRequest(process="Echo", folder="Finance", reference=f"r{i}") for i in range(3)]
    with anyio.fail_after(20):
        results = await dispatcher.run(requests)
    assert [r.ok for r in results] == [True] * 3, results
    list_calls = [c for c in api.calls if c[0] in ("states", "references")]
    assert any(c[0] == "references" for c in list_calls)  # the lost answer's lookup
    assert shared.acquired == len(list_calls)
    assert shared.throttles == [0.1]  # the 429 paused everyone on the budget


@pytest.fixture
async def tenant_with_other_load(start_simulator: Any) -> SimulatorHandle:
    # 85 calls a minute from elsewhere: 14 left, under the budget's low mark (20).
    scenario = load_scenario()
    tenant = scenario.tenants[0]
    fields = {f: getattr(tenant, f) for f in tenant.__dataclass_fields__}
    busy = tenant.__class__(**{**fields, "rate_limit": RateLimitSpec(other_per_minute=85)})
    handle: SimulatorHandle = await start_simulator(
        scenario.__class__(name="busy", tenants=(busy,), time_scale=60.0)
    )
    return handle


async def test_a_client_slows_down_when_the_tenant_runs_low(
    tenant_with_other_load: SimulatorHandle,
) -> None:
    sim = tenant_with_other_load
    credentials = ClientCredentials(client_id=sim.client_id, client_secret=sim.client_secret)
    async with OrchestratorClient(Settings(url=sim.url, credentials=credentials)) as orch:
        budget = orch.dispatcher._watchers.budget
        results = await orch.run_jobs([JobRequest(process="Echo", folder="Shared")], timeout=60)
        assert results[0].ok
        assert budget.cuts >= 1 and budget.rate < budget.capacity
        assert orch.transport.stats.rate_limited == 0
