"""The simulator's state file and job ids, without sockets (see
test_simulator_restart.py for restarts over HTTP)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import FakeClock

from async_orch._errors import ConfigurationError
from async_orch.simulator import Simulator
from async_orch.simulator.core import first_job_id
from async_orch.simulator.engine import StartOrder


def _start(sim: Simulator, reference: str, count: int = 1) -> list[int]:
    tenant = sim.tenants[0]
    folder = next(iter(tenant.world))
    order = StartOrder(
        folder=folder, release=folder.releases[0], robots=(None,) * count, reference=reference
    )
    return [j.id for j in tenant.engine.start_jobs(sim.sim_now(), order)]


def _snapshot(sim: Simulator) -> list[tuple[Any, ...]]:
    engine = sim.tenants[0].engine
    engine.advance(sim.sim_now())
    return [
        (j.id, j.key, j.reference, j.state, j.creation_time, j.start_time, j.end_time)
        for j in engine.jobs()
    ]


def test_a_restart_on_the_state_file_gives_back_the_same_jobs(tmp_path: Path) -> None:
    clock, state = FakeClock(), tmp_path / "sim.sqlite"
    first = Simulator(state=state, clock=clock, wall_clock=lambda: 1.8e9)
    ids = _start(first, "a", count=3) + _start(first, "b")
    clock.advance(5)
    engine = first.tenants[0].engine
    engine.stop_jobs(first.sim_now(), engine.job(ids[0]).folder.id, [ids[0]], "Kill")  # type: ignore[union-attr]
    before = _snapshot(first)
    first.close()

    # Another wall clock: the ids and times come from the file, not from it.
    second = Simulator(state=state, clock=FakeClock(), wall_clock=lambda: 1.8e9)
    assert _snapshot(second)[: len(before)] == before
    (next_id,) = _start(second, "c")
    assert next_id == ids[-1] + 1
    assert second.sim_now() >= max(b[4] for b in before)  # time never goes back
    second.close()


def test_a_state_file_of_another_scenario_or_seed_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "sim.sqlite"
    Simulator(state=state, seed=1).close()
    with pytest.raises(ConfigurationError, match="holds the state of another scenario"):
        Simulator(state=state, seed=2)
    not_sqlite = tmp_path / "notes.txt"
    not_sqlite.write_text("hello\n" * 100)
    with pytest.raises(ConfigurationError, match=r"cannot use .* as a simulator state file"):
        Simulator(state=not_sqlite)


def test_without_a_state_file_later_runs_start_above_earlier_ones() -> None:
    early = Simulator(wall_clock=lambda: 1.8e9)
    late = Simulator(wall_clock=lambda: 1.8e9 + 1)
    (a,) = _start(early, "x")
    (b,) = _start(late, "x")
    assert b - a == 10_000  # a run may create 10,000 jobs a second before they could meet
    assert first_job_id(1.8e9) == a
    # The Keys differ too, although the seed is the same.
    assert early.tenants[0].engine.job(a).key != late.tenants[0].engine.job(b).key  # type: ignore[union-attr]


def test_a_state_file_in_use_by_another_simulator_is_refused(tmp_path: Path) -> None:
    # Two simulators on one file would hand out the same job ids.
    state = tmp_path / "sim.sqlite"
    first = Simulator(state=state)
    with pytest.raises(ConfigurationError, match="in use by another simulator"):
        Simulator(state=state)
    first.close()
    Simulator(state=state).close()  # free again once the first one stopped


def test_another_sqlite_file_is_refused_before_anything_is_written_to_it(tmp_path: Path) -> None:
    import sqlite3

    journal = tmp_path / "journal.sqlite"
    with sqlite3.connect(journal) as db:
        db.execute("CREATE TABLE requests (idx INTEGER PRIMARY KEY)")
    db.close()
    with pytest.raises(ConfigurationError, match="is not a simulator state file"):
        Simulator(state=journal)
    with sqlite3.connect(journal) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    db.close()
    assert tables == {"requests"}  # untouched
