"""The StartJobs race over real sockets: a client that gives up on a StartJobs the
server still completes (issue 11, point 2).

The simulator's ``late_completion`` fault holds every StartJobs longer than the
client's request timeout and completes it anyway, as a server behind a gateway
does. The old client looked the Reference up once, at once, found nothing and
posted again: both calls then created a job (17 duplicates in 60). Now each
ambiguous start is looked up again after the reconcile window, so its job is
found and adopted, and never posted twice. Scaled down: a 0.3 s client timeout
against 0.8 s answers, a 1.2 s window.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

from test_dispatcher_support import FOLDERS, START_JOBS, fast_poll, scenario

from async_orch._client import OrchestratorClient
from async_orch._config import ClientCredentials, RequestTimeouts, RetryPolicy, Settings
from async_orch._dispatcher import DispatchLimits
from async_orch._errors import UncertainStartError
from async_orch._jobs import JobRequest, Outcome
from async_orch.simulator import SimulatorHandle

JOBS = 60
CLIENT_TIMEOUT = 0.3  # seconds the client waits for any answer
SERVER_DELAY = 0.8  # seconds the server takes to complete a StartJobs
WINDOW = 1.2  # reconcile window: longer than the server may still be at work


async def test_a_start_the_client_gave_up_on_is_adopted_not_posted_again(
    start_simulator: Callable[..., Any],
) -> None:
    sim: SimulatorHandle = await start_simulator(
        scenario(),
        time_scale=200.0,
        seed=3,
        faults={"late_completion_rate": 1.0, "late_completion_seconds": SERVER_DELAY},
    )
    settings = Settings(
        url=sim.url,
        credentials=ClientCredentials(client_id=sim.client_id, client_secret=sim.client_secret),
        timeout=RequestTimeouts(total=CLIENT_TIMEOUT, connect=CLIENT_TIMEOUT),
        retry=RetryPolicy(wait_initial=0.01, wait_max=0.05, wait_jitter=0.01,
                          reconcile_window=WINDOW),
    )  # fmt: skip
    requests = [JobRequest(process="Echo", folder=FOLDERS[i % 4]) for i in range(JOBS)]
    async with OrchestratorClient(
        settings, limits=DispatchLimits(max_in_flight=JOBS), poll=fast_poll(budget=6000)
    ) as orch:
        results = await orch.run_jobs(requests)

    stats = sim.simulator.stats()
    assert stats["faults"]["late_completion"] >= JOBS  # every StartJobs was held
    # Each Reference has exactly one job, from a single StartJobs call.
    assert set(stats["jobs"]["by_reference"].values()) == {1}, stats["jobs"]
    assert stats["jobs"]["duplicate_references"] == {}
    # Every request is started (its job adopted) or reported uncertain, never guessed.
    outcomes = collections.Counter(r.outcome for r in results)
    assert set(outcomes) <= {Outcome.SUCCESSFUL, Outcome.UNCERTAIN}, outcomes
    for result in results:
        if result.outcome is Outcome.UNCERTAIN:
            assert isinstance(result.error, UncertainStartError)
            assert result.error.reference in stats["jobs"]["by_reference"]
    # The timeouts made every start ambiguous, and none was posted twice.
    requests_seen = stats["requests"][START_JOBS]
    assert sum(requests_seen.values()) == JOBS, requests_seen
    assert outcomes[Outcome.SUCCESSFUL] >= JOBS // 2, outcomes  # most were found and adopted
