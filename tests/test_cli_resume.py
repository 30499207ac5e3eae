"""`async-orch dispatch --resume`: nothing lost, nothing started twice."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cli_harness import (
    SIGKILL,
    cli_env,
    finish,
    journal_counts,
    run_cli,
    simulator_jobs,
    spawn_cli,
    wait_until,
)
from conftest import SimClient

from async_orch._journal import Journal, JournalTarget, RequestRecord
from async_orch.simulator import SimulatorHandle

pytestmark = pytest.mark.slow  # every test here starts a process

TIME_SCALE = 20.0  # an Echo job (2 s pickup + 1-2 s run) takes about 0.2 s
DEAD_INPUTS = '{"i":0,"by":"dead"}'  # the StartJobs of a run that died, told apart


def unstarted_journal(path: Path, sim: SimulatorHandle, name: str, count: int) -> None:
    """A journal of ``count`` Echo requests (References NAME-0, ...) with no job
    recorded, as a run leaves it when it dies right after writing its requests."""
    records = [
        RequestRecord(index=i, reference=f"{name}-{i}", folder="Shared", process="Echo",
                      inputs={"i": i})
        for i in range(count)
    ]  # fmt: skip
    target = JournalTarget(url=sim.url, organization="demo", tenant="DefaultTenant")
    Journal.create(path, target=target, batch_id=name, requests=records).close()


async def test_sigkill_mid_dispatch_then_resume_loses_nothing_and_duplicates_nothing(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=TIME_SCALE)
    env = cli_env(tmp_path)
    journal = tmp_path / "batch.sqlite"
    count = 40
    # --rate spreads the starts over about two seconds, so the kill lands with
    # some jobs started (some of them finished) and others never started.
    process = await spawn_cli(
        "dispatch", "--url", sim.url, "--process", "Echo", "--folder", "Shared",
        "--folder", "HR", "--count", str(count), "--inputs", '{"n": 7}',
        "--rate", "20", "--journal", str(journal), "--quiet",
        env=env,
    )  # fmt: skip
    await wait_until(lambda: journal_counts(journal)[0] >= 8, process=process)
    process.send_signal(SIGKILL)
    killed = await finish(process)
    assert killed.returncode == -SIGKILL
    started_before, _ = journal_counts(journal)
    assert started_before < count, "the kill came too late to test anything"

    resumed = await run_cli(
        "dispatch", "--resume", str(journal), "--rate", "50", "--format", "jsonl", env=env
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {journal}" in resumed.stderr
    rows = resumed.rows()
    assert len(rows) == count
    assert [r["index"] for r in rows] == list(range(count))
    assert {r["outcome"] for r in rows} == {"successful"}
    assert all(r["outputs"] == {"n": 7} for r in rows)

    jobs = simulator_jobs(sim)
    references = {r["reference"] for r in rows}
    assert len(references) == count
    assert jobs["by_reference"] == dict.fromkeys(references, 1)  # each created exactly once
    assert jobs["duplicate_references"] == {}
    assert jobs["created"] == count
    assert journal_counts(journal) == (count, count)


async def test_resume_finds_jobs_whose_start_was_never_recorded_by_reference(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    """The process died after StartJobs reached the server but before the journal
    heard of the job: the resume must adopt it, not start it again."""
    sim: SimulatorHandle = await start_simulator(time_scale=TIME_SCALE)
    path = tmp_path / "lost.sqlite"
    unstarted_journal(path, sim, "lost", 4)
    async with aiohttp.ClientSession() as http:
        orch = SimClient(sim, http)
        for i in (0, 2):  # started "by the dead process", never journaled
            await orch.start(
                "Shared", "Echo", Reference=f"lost-{i}", InputArguments=f'{{"i": {i}}}'
            )

    resumed = await run_cli("dispatch", "--resume", str(path), env=cli_env(tmp_path))
    assert resumed.returncode == 0, resumed.stderr
    assert "found 2 by Reference; starting 2" in resumed.stderr
    assert [(r["reference"], r["outputs"]) for r in resumed.rows()] == [
        (f"lost-{i}", {"i": i}) for i in range(4)
    ]
    jobs = simulator_jobs(sim)
    assert jobs["by_reference"] == {f"lost-{i}": 1 for i in range(4)}
    assert jobs["duplicate_references"] == {}


async def test_resuming_a_finished_journal_starts_nothing_and_reports_it_again(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=TIME_SCALE)
    env = cli_env(tmp_path)
    journal = tmp_path / "done.sqlite"
    first = await run_cli(
        "dispatch", "--url", sim.url, "--process", "Echo", "--folder", "HR", "--count", "3",
        "--journal", str(journal), env=env,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    again = await run_cli("dispatch", "--resume", str(journal), env=env)
    assert again.returncode == 0, again.stderr
    assert "3 jobs finished, 0 to re-attach to, 0 to look up" in again.stderr
    assert again.stderr.count("0/0 done") == 1, again.stderr  # once, not again at the end
    assert again.rows() == first.rows()
    assert simulator_jobs(sim)["created"] == 3


async def test_resume_against_another_tenant_is_refused_with_exit_2(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=TIME_SCALE)
    env = cli_env(tmp_path)
    journal = tmp_path / "other.sqlite"
    first = await run_cli(
        "dispatch", "--url", sim.url, "--process", "Echo", "--folder", "HR",
        "--journal", str(journal), env=env,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    other = sim.url.replace("/DefaultTenant/", "/OtherTenant/")
    refused = await run_cli("dispatch", "--resume", str(journal), "--url", other, env=env)
    assert refused.returncode == 2
    assert "belongs to" in refused.stderr and "tenant DefaultTenant" in refused.stderr
    assert "OtherTenant" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert simulator_jobs(sim)["created"] == 1


async def test_a_second_resume_is_refused_while_a_dispatch_writes_the_journal(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    # On the real clock DailyReport runs 20-60 s: the dispatch holds its journal
    # for the whole test, until it is killed.
    sim: SimulatorHandle = await start_simulator(time_scale=1.0)
    env = cli_env(tmp_path)
    journal = tmp_path / "busy.sqlite"
    process = await spawn_cli(
        "dispatch", "--url", sim.url, "--process", "DailyReport", "--folder", "Shared",
        "--count", "2", "--journal", str(journal), "--quiet",
        env=env,
    )  # fmt: skip
    await wait_until(lambda: journal_counts(journal)[0] == 2, process=process)

    second = await run_cli("dispatch", "--resume", str(journal), env=env)
    assert second.returncode == 2, second.stderr
    assert second.stderr.startswith(
        f"error: journal {journal} is in use by another async-orch process "
        f"(pid {process.pid} on host {socket.gethostname()}, since "
    ), second.stderr
    assert "Traceback" not in second.stderr
    shown = await run_cli("jobs", "--journal", str(journal), env=env)  # readers are welcome
    assert len(shown.rows()) == 2
    all_done = all(r["outcome"] == "successful" for r in shown.rows())
    assert shown.returncode == (0 if all_done else 1), shown.stderr  # as documented
    assert process.returncode is None  # refused while the dispatch was still running

    process.send_signal(SIGKILL)
    assert (await finish(process)).returncode == -SIGKILL
    with Journal.open(journal) as reopened:  # the lock went with it: nothing to clean up
        assert len(reopened.jobs()) == 2
    assert simulator_jobs(sim)["created"] == 2  # the refused resume started nothing


async def test_a_start_the_killed_run_sent_that_completes_late_is_adopted_not_started_twice(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    """The process died with a StartJobs in flight that a gateway completes later
    (the simulator's late_completion fault). The old resume looked the Reference up
    once, at once, found nothing and started it again: two jobs. Now it looks again
    once the reconcile window has passed since it took the journal, and adopts it.

    No timing assumption makes this pass: the job is created LATE seconds after the
    POST, which comes before the resume takes the journal, and WINDOW > LATE."""
    late, window = 4.0, 8.0
    sim: SimulatorHandle = await start_simulator(time_scale=TIME_SCALE)
    path = tmp_path / "inflight.sqlite"
    unstarted_journal(path, sim, "inflight", 3)
    sim.simulator.set_faults({"late_completion_rate": 1.0, "late_completion_seconds": late})
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.3)) as http:
        orch = SimClient(sim, http)
        await orch.headers("Shared")  # the token, before the client gives up early
        with contextlib.suppress(TimeoutError):  # "the dead process" posts, then is gone
            await orch.start("Shared", "Echo", Reference="inflight-0", InputArguments=DEAD_INPUTS)
    sim.simulator.set_faults({}, clear=True)  # the held StartJobs still completes

    resumed = await run_cli(
        "dispatch", "--resume", str(path),
        env=cli_env(tmp_path, ASYNC_ORCH_RECONCILE_WINDOW=str(window)),
    )  # fmt: skip
    # The held StartJobs has created its job by now, or does so soon: wait for it.
    engine = sim.simulator.tenants[0].engine
    await wait_until(lambda: any(j.input_arguments == DEAD_INPUTS for j in engine.jobs()))
    jobs = simulator_jobs(sim)
    assert jobs["by_reference"] == {f"inflight-{i}": 1 for i in range(3)}, jobs  # was 2, 1, 1
    assert jobs["duplicate_references"] == {}
    assert resumed.returncode == 0, resumed.stderr
    assert "looking them up again in" in resumed.stderr
    outputs = [r["outputs"] for r in resumed.rows()]
    assert outputs == [{"i": 0, "by": "dead"}, {"i": 1}, {"i": 2}]  # the held one, adopted
