"""The server restarts between start and wait: with a state file it remembers its
jobs; without one it forgets them, and the client reports them lost per job.

The simulator is stopped and a new one started on the same port, in-process, over
real sockets; the client keeps its URL (and gets 401 for its old token: renewed).
"""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import cli_harness as cli
import pytest
from test_dispatcher_support import fast_poll, fast_settings, scenario

from async_orch._client import OrchestratorClient
from async_orch._errors import JobLostError
from async_orch._jobs import JobRequest, Outcome
from async_orch._starting import Started
from async_orch.simulator import SimulatorHandle, run_simulator

SCENARIO = scenario(echo=(20.0, 30.0))  # at time scale 50: about half a second a job


class Restartable:
    """One simulator at a time on one port: ``restart()`` stops it and starts anew."""

    def __init__(self, stack: AsyncExitStack, **options: Any) -> None:
        self._stack = stack
        self._options = {"time_scale": 50.0, **options}
        self._current: AsyncExitStack | None = None
        self.port = 0

    async def start(self) -> SimulatorHandle:
        inner = AsyncExitStack()
        handle: SimulatorHandle = await inner.enter_async_context(
            run_simulator(SCENARIO, port=self.port, **self._options)
        )
        self.port, self._current = handle.port, inner
        self._stack.push_async_callback(inner.aclose)
        return handle

    async def restart(self) -> SimulatorHandle:
        assert self._current is not None
        await self._current.aclose()
        return await self.start()


@asynccontextmanager
async def restartable(**options: Any) -> AsyncIterator[Restartable]:
    async with AsyncExitStack() as stack:
        yield Restartable(stack, **options)


def _requests(tag: str, n: int = 5) -> list[JobRequest]:
    return [JobRequest(process="Echo", folder="HR", inputs={"tag": tag, "n": i}) for i in range(n)]


async def _start_then_restart(
    sims: Restartable,
) -> tuple[SimulatorHandle, OrchestratorClient, list[Any], Callable[[], Any]]:
    """Start 5 jobs, restart the server; return (new server, open client, handles, closer)."""
    sim = await sims.start()
    stack = AsyncExitStack()
    orch = await stack.enter_async_context(OrchestratorClient(fast_settings(sim), poll=fast_poll()))
    started = await orch.start_jobs(_requests("before"))
    assert all(isinstance(s, Started) for s in started)
    handles = [h for s in started if isinstance(s, Started) for h in s.handles]
    return await sims.restart(), orch, handles, stack.aclose


async def _start_restart_run(**options: Any) -> tuple[list[Any], list[Any]]:
    """Start 5 jobs, restart, then run 5 more with the first 5 as handles."""
    async with restartable(**options) as sims:
        _sim, orch, handles, close = await _start_then_restart(sims)
        try:
            results = await orch.run_jobs(_requests("after"), handles=handles, timeout=60)
        finally:
            await close()
    return results, handles


async def test_with_a_state_file_a_restart_forgets_nothing(tmp_path: Path) -> None:
    state = tmp_path / "sim.sqlite"
    async with restartable(state=state) as sims:
        sim, orch, handles, close = await _start_then_restart(sims)
        try:
            # The jobs are still there, with the same Keys and References.
            engine_jobs = {j.id: j for j in sim.simulator.tenants[0].engine.jobs()}
            for handle in handles:
                assert engine_jobs[handle.job_id].key == handle.job_key
                assert engine_jobs[handle.job_id].reference == handle.reference
            results = await orch.run_jobs(_requests("after"), handles=handles, timeout=60)
        finally:
            await close()

    assert [r.outcome for r in results] == [Outcome.SUCCESSFUL] * 10
    assert [r.outputs for r in results[:5]] == [
        r.request.inputs for r in results[:5] if r.request is not None
    ]
    assert [r.outputs for r in results[5:]] == [{"tag": "before", "n": n} for n in range(5)]
    assert all(r.error is None for r in results)
    ids = [r.job_id for r in results]
    assert len(set(ids)) == 10  # new jobs got new ids: the counter survived
    stats = sim.simulator.stats()["jobs"]
    assert stats["created"] == 10 and stats["duplicate_references"] == {}
    assert state.stat().st_mode & 0o777 == 0o600


@pytest.mark.slow
async def test_without_a_state_file_old_jobs_are_reported_lost_and_ids_never_repeat() -> None:
    results, handles = await _start_restart_run()

    new, old = results[:5], results[5:]
    assert [r.outcome for r in new] == [Outcome.SUCCESSFUL] * 5
    assert [r.outcome for r in old] == [Outcome.UNKNOWN] * 5
    for result, handle in zip(old, handles, strict=True):
        assert isinstance(result.error, JobLostError), result.error
        assert result.error.job_id == handle.job_id and "404" in str(result.error)
        assert result.error.reference == handle.reference
    assert min(r.job_id or 0 for r in new) > max(h.job_id for h in handles)


@pytest.mark.slow
async def test_a_server_that_hands_out_old_ids_again_does_not_crash_the_batch() -> None:
    """The simulator before state files (and any server that forgets): a fixed
    clock makes both runs start their ids at the same value, so the new jobs get
    the ids of the old ones; on the old code: ``ValueError: already watched``."""
    results, handles = await _start_restart_run(wall_clock=lambda: 1.7e9)

    new, old = results[:5], results[5:]
    assert {r.job_id for r in new} == {h.job_id for h in handles}  # the ids were reused
    assert [r.outcome for r in new] == [Outcome.SUCCESSFUL] * 5
    assert [r.outputs["tag"] for r in new] == ["after"] * 5  # their own outputs
    assert [r.outcome for r in old] == [Outcome.UNKNOWN] * 5
    assert all(isinstance(r.error, JobLostError) for r in old)
    assert sorted(r.index for r in results) == list(range(10))


async def test_a_job_whose_id_now_names_another_job_is_reported_lost() -> None:
    async with restartable(wall_clock=lambda: 1.7e9) as sims:
        _sim, orch, handles, close = await _start_then_restart(sims)
        try:
            # Someone else's jobs take the old ids on the new server.
            others = await orch.start_jobs(_requests("someone else"))
            other_handles = [h for s in others if isinstance(s, Started) for h in s.handles]
            assert {h.job_id for h in other_handles} == {h.job_id for h in handles}
            old = await orch.wait_jobs(handles, timeout=60)
            theirs = await orch.wait_jobs(other_handles, timeout=60)
        finally:
            await close()

    assert [r.outcome for r in old] == [Outcome.UNKNOWN] * 5
    for result in old:
        assert isinstance(result.error, JobLostError)
        # Same seed, same first id: even the Keys repeat; the Reference tells them apart.
        assert "now names another job (Reference" in str(result.error)
        assert result.job is None  # the other job's record is not passed off as ours
    assert collections.Counter(r.outcome for r in theirs) == {Outcome.SUCCESSFUL: 5}


async def test_two_handles_with_one_id_are_both_reported(tmp_path: Path) -> None:
    """A journal can hold two jobs with one id (the server reused it mid-run):
    waiting for both does not refuse the batch; one is followed, one reported."""
    async with restartable(wall_clock=lambda: 1.7e9) as sims:
        _sim, orch, handles, close = await _start_then_restart(sims)
        try:
            again = await orch.start_jobs(_requests("after"))
            new_handles = [h for s in again if isinstance(s, Started) for h in s.handles]
            results = await orch.wait_jobs([*handles, *new_handles], timeout=60)
        finally:
            await close()

    assert [r.outcome for r in results[5:]] == [Outcome.SUCCESSFUL] * 5
    assert [r.outcome for r in results[:5]] == [Outcome.UNKNOWN] * 5
    assert all(isinstance(r.error, JobLostError) for r in results[:5])


@pytest.mark.slow
@pytest.mark.parametrize("keeps_state", [True, False], ids=["state-file", "forgetful"])
async def test_resume_after_a_restart(tmp_path: Path, keeps_state: bool) -> None:
    """`dispatch --journal` killed mid-run, the server restarted, then `--resume`.
    With a state file: every job done once. Without (ids reused): no crash; the
    journaled jobs the server forgot are reported lost, the others run."""
    count = 20
    options: dict[str, Any] = {"wall_clock": lambda: 1.7e9}
    if keeps_state:
        options["state"] = tmp_path / "sim.sqlite"
    env = cli.cli_env(tmp_path, UIPATH_CLIENT_ID="app", UIPATH_CLIENT_SECRET="secret")
    journal = tmp_path / "batch.sqlite"
    async with restartable(**options) as sims:
        sim = await sims.start()
        await cli.dispatch_killed_midway(
            journal, "--url", sim.url, "--process", "Echo", "--folder", "HR",
            "--count", str(count), "--inputs", '{"n": 7}', "--rate", "10",
            env=env,
        )  # fmt: skip
        started_before, _ = cli.journal_counts(journal)
        assert started_before < count, "the kill came too late to test anything"
        sim = await sims.restart()
        resumed = await cli.run_cli(
            "dispatch", "--resume", str(journal), "--rate", "50", "--format", "jsonl", env=env
        )
        jobs = cli.simulator_jobs(sim)

    assert "Traceback" not in resumed.stderr
    rows = resumed.rows()
    assert [r["index"] for r in rows] == list(range(count))
    outcomes = collections.Counter(r["outcome"] for r in rows)
    if keeps_state:
        assert resumed.returncode == 0, resumed.stderr
        assert outcomes == {"successful": count}
        assert jobs["created"] == count and jobs["duplicate_references"] == {}
        assert set(jobs["by_reference"].values()) == {1}
    else:
        assert resumed.returncode == 1, resumed.stderr
        assert outcomes["unknown"] >= 1 and outcomes["successful"] >= count - started_before
        assert outcomes["unknown"] + outcomes["successful"] == count
        lost = [r for r in rows if r["outcome"] == "unknown"]
        assert all("is lost" in r["info"] for r in lost), lost[0]
        assert len({r["job_id"] for r in rows}) < count  # the new jobs took old ids
    # Every request's job is journaled on its own row, final (on the journal of
    # schema 1, keyed by id, the new jobs with old ids were not recorded at all).
    assert cli.journal_counts(journal) == (count, count)
