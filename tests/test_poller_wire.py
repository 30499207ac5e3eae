"""The JobWatcher against answers a real service (or a proxy before it) may give,
at the wire: aioresponses plays Orchestrator, the client is the real OrchestratorAPI.

* a range answer with one row that cannot be read among good ones;
* a server that refuses range queries (400), where id lists work;
* a read by id that answers another job's record.

Jobs change state only as each test's server says; the watcher polls every few
milliseconds, and ``fail_after`` is only a safety net.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import anyio
import pytest
import structlog
from aioresponses import CallbackResult
from conftest import aioresponses_mock

from async_orch._config import RetryPolicy, Settings, StaticToken
from async_orch._errors import JobLostError
from async_orch._jobs import JobHandle
from async_orch._planner import PollPolicy
from async_orch._poller import Finished, JobWatcher
from async_orch._resources import OrchestratorAPI
from async_orch._states import JobState
from async_orch._transport import Transport

BASE = "https://cloud.uipath.com/acme/DefaultTenant/orchestrator_"
FOLDER_ID = 7
FOLDER = {"Id": FOLDER_ID, "Key": "0f5c9a4e-1d7b-4c1e-9a55-0a1b2c3d4e5f", "DisplayName": "Shared",
          "FullyQualifiedName": "Shared"}  # fmt: skip
LIST = re.compile(re.escape(BASE + "/odata/Jobs") + r"\?.*$")
READ = re.compile(re.escape(BASE + "/odata/Jobs(") + r"(\d+)\)$")
# Range queries for more than 2 jobs of a folder; checks every few milliseconds.
POLICY = PollPolicy(
    list_budget_per_minute=6000,
    min_interval=0.005,
    max_interval=0.05,
    probe_rate_per_second=1000.0,
    range_threshold=2,
)


@dataclass
class Server:
    """Jobs of one folder by Id (their State), answered to list calls and reads by
        id; ``bad_rows`` go into every list answer (in place of the good rows of their
    Ids); ``refuse_ranges``: range queries
        are answered 400; ``read_as``: reads by id of a key answer the job of the value.
        ``after_list``: called after each list answer (say, to end the jobs)."""

    states: dict[int, str]
    bad_rows: list[Any] = field(default_factory=list)
    refuse_ranges: bool = False
    read_as: dict[int, int] = field(default_factory=dict)
    after_list: Callable[[Server], None] = lambda server: None
    ranges: int = 0
    id_lists: int = 0
    reads: list[int] = field(default_factory=list)

    def record(self, job_id: int) -> dict[str, Any]:
        return {"Id": job_id, "State": self.states[job_id], "Reference": "batch-1",
                "OrganizationUnitId": FOLDER_ID,
                "OutputArguments": json.dumps({"n": job_id})}  # fmt: skip

    def list_jobs(self, url: Any, **kwargs: Any) -> CallbackResult:
        query = {k: v[0] for k, v in parse_qs(urlsplit(str(url)).query).items()}
        wanted = str((kwargs.get("params") or {}).get("$filter") or query["$filter"])
        if "Id ge" in wanted:
            self.ranges += 1
            if self.refuse_ranges:
                body = {"message": "The query specified in the URI is not valid.", "errorCode": 0}
                return CallbackResult(status=400, payload=body)
            unfinished = ("Pending", "Running", "Stopping", "Terminating", "Suspended", "Resumed")
            listed = {i for i, s in self.states.items() if s in unfinished}
        else:  # Id in (...)
            self.id_lists += 1
            listed = {int(i) for i in re.findall(r"\d+", wanted)}
        replaced = {row["Id"] for row in self.bad_rows if type(row.get("Id")) is int}
        rows: list[Any] = [{"Id": i, "State": s} for i, s in self.states.items()
                           if i in listed and i not in replaced]  # fmt: skip
        rows += self.bad_rows
        self.after_list(self)
        return CallbackResult(status=200, payload={"value": rows})

    def read_job(self, url: Any, **kwargs: Any) -> CallbackResult:
        match = READ.match(str(url))
        assert match is not None, url
        job_id = int(match.group(1))
        self.reads.append(job_id)
        return CallbackResult(status=200, payload=self.record(self.read_as.get(job_id, job_id)))


def end_all(server: Server) -> None:
    for job_id in server.states:
        server.states[job_id] = "Successful"


@pytest.fixture
async def api() -> AsyncIterator[OrchestratorAPI]:
    async def no_sleep(seconds: float) -> None:
        return None

    settings = Settings(
        url=BASE,
        credentials=StaticToken(token="t0k3n"),
        retry=RetryPolicy(attempts=2, wait_initial=0.0, wait_jitter=0.0),
    )
    async with aiohttp.ClientSession() as session:
        yield OrchestratorAPI(Transport(settings, session=session, sleep=no_sleep))


def handle(job_id: int) -> JobHandle:
    return JobHandle(job_id=job_id, job_key=None, folder_id=FOLDER_ID, folder_key=None,
                     folder_path="Shared", reference="batch-1")  # fmt: skip


async def watch(
    api: OrchestratorAPI,
    server: Server,
    job_ids: list[int],
    seen: list[tuple[int, JobState]] | None = None,
) -> tuple[list[Finished], list[MutableMapping[str, Any]]]:
    """Watch ``job_ids`` until they all leave the watcher; their records and the logs."""

    def on_state(h: JobHandle, old: JobState | None, new: JobState) -> None:
        if seen is not None:
            seen.append((h.job_id, new))

    finished: list[Finished] = []

    async def collect(item: Finished) -> None:
        finished.append(item)

    watcher = JobWatcher(api, policy=POLICY, on_state=on_state)
    for job_id in job_ids:
        watcher.watch(handle(job_id))
    watcher.close()
    with aioresponses_mock() as wire, structlog.testing.capture_logs() as logs:
        wire.get(re.compile(re.escape(BASE + "/odata/Folders") + r"\?.*$"),
                 payload={"value": [FOLDER]}, repeat=True)  # fmt: skip
        wire.get(LIST, callback=server.list_jobs, repeat=True)
        wire.get(READ, callback=server.read_job, repeat=True)
        with anyio.fail_after(10):  # a safety net: the old code never got there
            await watcher.run(collect)
    return finished, logs


async def test_one_bad_row_in_a_range_answer_is_skipped_and_its_job_read_by_id(
    api: OrchestratorAPI,
) -> None:
    # Job 2's row has no usable State (null), and it holds job data that must not
    # reach a log; the other rows are good. Everything ends after the first answer.
    server = Server(states={1: "Running", 2: "Running", 3: "Pending", 4: "Successful"},
                    after_list=end_all)  # fmt: skip
    server.bad_rows = [{"Id": 2, "State": None, "InputArguments": "{\"iban\": \"DE89 3704\"}"},
                       {"State": "Running"}, {"Id": True, "State": "Running"}]  # fmt: skip
    seen: list[tuple[int, JobState]] = []

    finished, logs = await watch(api, server, [1, 2, 3, 4], seen)

    by_id = {f.handle.job_id: f for f in finished}
    assert sorted(by_id) == [1, 2, 3, 4]
    assert all(f.error is None and f.state is JobState.SUCCESSFUL for f in finished)
    assert all(f.job is not None and f.job.output_arguments == {"n": i} for i, f in by_id.items())
    # The good rows of the first range answer applied (only it saw them unfinished).
    assert (1, JobState.RUNNING) in seen and (3, JobState.PENDING) in seen
    # Job 2 is listed (its bad row is in every answer), so not taken for ended: a
    # second range call finds 1 and 3 ended, and 2, alone, goes to an id list at
    # max_interval, whose answer without it has it read by id.
    assert (server.ranges, server.id_lists) == (2, 1)
    assert sorted(server.reads) == [1, 2, 3, 4]  # job 2 read by id, once
    skipped = [e for e in logs if e["event"] == "async_orch.job_rows_skipped"]
    # One line per answer (the later answers have the bad rows too).
    assert (skipped[0]["skipped"], skipped[0]["rows"]) == (3, 5)
    assert "DE89" not in repr(logs)


async def test_a_bad_row_in_an_id_list_answer_is_skipped_too(api: OrchestratorAPI) -> None:
    # Two jobs: an id list. Job 2's row is unreadable (a bool State): it is read by
    # id (a list answer without it), job 1 from its row.
    server = Server(states={1: "Successful", 2: "Successful"}, bad_rows=[{"Id": 2, "State": False}])

    finished, logs = await watch(api, server, [1, 2])

    assert sorted(f.handle.job_id for f in finished) == [1, 2]
    assert all(f.error is None and f.state is JobState.SUCCESSFUL for f in finished)
    assert server.id_lists == 1 and sorted(server.reads) == [1, 2]
    assert [e["skipped"] for e in logs if e["event"] == "async_orch.job_rows_skipped"] == [1]


async def test_refused_range_queries_fall_back_to_id_lists_and_the_batch_ends(
    api: OrchestratorAPI,
) -> None:
    # The server does not take the range filter (say, no 'or' between State terms):
    # 400, every time. Id lists work; the jobs end after the first one.
    server = Server(states=dict.fromkeys(range(1, 6), "Running"), refuse_ranges=True)
    server.after_list = lambda s: end_all(s) if s.id_lists else None

    finished, logs = await watch(api, server, [1, 2, 3, 4, 5])

    assert sorted(f.handle.job_id for f in finished) == [1, 2, 3, 4, 5]
    assert all(f.error is None and f.state is JobState.SUCCESSFUL for f in finished)
    assert server.ranges == 1  # refused once: never asked again
    assert server.id_lists >= 1
    warnings = [e for e in logs if e["event"] == "async_orch.range_queries_off"]
    assert len(warnings) == 1 and warnings[0]["log_level"] == "warning"
    assert "HTTP 400" in warnings[0]["error"] and "id lists for good" in warnings[0]["note"]


async def test_a_read_by_id_answering_another_job_is_never_adopted(api: OrchestratorAPI) -> None:
    # Jobs 1 and 2 of one StartJobs (same Reference, no Key known); a proxy answers
    # job 2's record to every read of job 1.
    server = Server(states={1: "Successful", 2: "Successful"}, read_as={1: 2})

    finished, logs = await watch(api, server, [1, 2])

    by_id = {f.handle.job_id: f for f in finished}
    assert sorted(by_id) == [1, 2]
    assert by_id[2].error is None and by_id[2].job is not None and by_id[2].job.id == 2
    lost = by_id[1]
    assert isinstance(lost.error, JobLostError)
    assert "another job (Id 2)" in str(lost.error)
    assert lost.job is None  # job 2's outputs are never reported as job 1's
    assert server.reads.count(1) == 3
    wrong = [e for e in logs if e["event"] == "async_orch.fetch_wrong_job"]
    assert {(e["job_id"], e["answered_id"]) for e in wrong} == {(1, 2)}
