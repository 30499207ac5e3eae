"""Hostile input to `async-orch dispatch` (issue 11 point 4): one line per mistake naming
the file:line or the flag, exit 2, no traceback, no StartJobs and no journal left behind."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_harness import CliRun, assert_one_line_exit_2, cli_env, run_cli, simulator_jobs
from test_dispatcher_support import START_JOBS, requests_to

from async_orch.simulator import SimulatorHandle

pytestmark = pytest.mark.slow  # every test here starts a process

GOOD = '{"folder": "Shared", "process": "Echo", "inputs": {"n": 1}}'


def _row(inputs_text: str) -> str:
    """A JSON Lines row whose inputs are ``inputs_text`` (raw JSON, possibly hostile)."""
    return '{"folder": "Shared", "process": "Echo", "inputs": ' + inputs_text + "}"


def _after_good(inputs_text: str) -> str:
    """A JSON Lines file: a valid job, then one whose inputs are ``inputs_text``."""
    return f"{GOOD}\n{_row(inputs_text)}\n"


# (file name, content, what the one line must say; {path} stands for the file's path).
# A valid job comes first each time: today's main started it, then failed.
HOSTILE_FILES: list[tuple[str, str | bytes, str]] = [
    ("jobs.jsonl", GOOD.encode() + b'\n{"folder": "Shared", "process": "Echo\xed\xa0\x80"}\n',
     "job file {path} is not UTF-8 text (byte 0xed on line 2)"),
    ("jobs.jsonl", _after_good('[' * 1_000 + ']' * 1_000),
     "{path}:2: the JSON is nested more than 64 levels deep"),
    ("jobs.jsonl", _after_good(json.dumps({'a': chr(0xD800)})),
     "{path}:2: the JSON holds a lone UTF-16 surrogate (\\ud800)"),
    ("jobs.jsonl", _after_good('{"n": ' + '9' * 4_301 + '}'),
     "{path}:2: the JSON holds an integer of more than 4,300 digits"),
    ("jobs.jsonl", _after_good('{"n": NaN}'), "{path}:2: the JSON holds NaN, which is not JSON"),
    ("jobs.jsonl", _after_good('{"n": Infinity}'), "{path}:2: the JSON holds Infinity"),
    ("jobs.jsonl", _after_good('{"n": -Infinity}'), "{path}:2: the JSON holds -Infinity"),
    ("jobs.jsonl", _after_good('{"n": 1e400}'), "{path}:2: the JSON holds the number 1e400"),
    ("jobs.csv", 'folder,process,inputs\nShared,Echo,\nShared,Echo,"{""n"": NaN}"\n',
     "{path}:3: InputArguments: the JSON holds NaN"),
    ("jobs.csv", 'folder,process,inputs\nShared,Echo,\nShared,Echo,"' + "x" * 131_073 + '"\n',
     "{path}:3: a value is longer than 131,072 characters"),
    # The open quote swallows the row after it: the mistake is named where the row ends
    # (test_cli_jobfile.py checks the hint that comes with it).
    ("jobs.csv", 'folder,process,inputs\nShared,Echo,\nShared,Echo,"{""n"": 1}\nHR,Echo,\n',
     "{path}:4: InputArguments must be a JSON object"),
]  # fmt: skip
IDS = ["not-utf8", "deep", "surrogate", "big-int", "nan", "infinity", "-infinity", "1e400",
       "csv-nan", "csv-field-limit", "csv-open-quote"]  # fmt: skip


async def _dispatch(sim: SimulatorHandle, tmp_path: Path, *flags: str) -> CliRun:
    return await run_cli("dispatch", "--url", sim.url, "--quiet", *flags, env=cli_env(tmp_path))


def _nothing_started(sim: SimulatorHandle, tmp_path: Path) -> None:
    assert requests_to(sim, START_JOBS) == 0
    assert simulator_jobs(sim)["created"] == 0
    assert not (tmp_path / "state").exists()  # no journal, orphan or not


@pytest.mark.parametrize(("name", "content", "needle"), HOSTILE_FILES, ids=IDS)
async def test_a_hostile_job_file_is_one_line_and_starts_nothing(
    start_simulator: Callable[..., Any],
    tmp_path: Path,
    name: str,
    content: str | bytes,
    needle: str,
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=20.0)
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    run = await _dispatch(sim, tmp_path, "--file", str(path))
    assert_one_line_exit_2(run, "error: " + needle.replace("{path}", str(path)))
    _nothing_started(sim, tmp_path)


async def test_every_mistake_of_a_job_file_is_listed_up_to_20(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=20.0)
    lines = [GOOD, _row("{n: 1}"), '{"folder": "Shared"}', _row('{"n": NaN}'), "[1]"]
    lines += [_row('{"x": 1e999}')] * 30 + [GOOD]
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = await _dispatch(sim, tmp_path, "--file", str(path))
    assert run.returncode == 2 and run.stdout == "" and "Traceback" not in run.stderr
    out = run.stderr.splitlines()
    assert len(out) == 21, run.stderr
    assert out[0].startswith(f"error: {path}:2: not valid JSON: Expecting property name")
    assert out[1] == f"{path}:3: each job needs a 'folder' and a 'process'"
    assert out[2].startswith(f"{path}:4: the JSON holds NaN")
    assert out[3] == f"{path}:5: each line must be a JSON object"
    assert out[4].startswith(f"{path}:6: the JSON holds the number 1e999")
    assert out[19].startswith(f"{path}:21: ")
    assert out[20] == f"... and 14 more in {path}; nothing was started"
    _nothing_started(sim, tmp_path)


async def test_a_reference_used_twice_names_both_lines(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=20.0)
    path = tmp_path / "jobs.csv"
    path.write_text("folder,process,reference\nShared,Echo,r1\nHR,Echo,r2\nHR,Echo,r1\n")
    run = await _dispatch(sim, tmp_path, "--file", str(path))
    assert_one_line_exit_2(run, f"{path}:4: reference 'r1' is also on line 2")
    _nothing_started(sim, tmp_path)


FLAGS = [
    (["--inputs", '{"n": NaN}'], "--inputs: InputArguments: the JSON holds NaN"),
    (["--inputs", '{"n": 1e400}'], "--inputs: InputArguments: the JSON holds the number 1e400"),
    (["--inputs", '{"n": "\\udc00"}'], "--inputs: InputArguments: the JSON holds a lone UTF-16"),
    (["--inputs", "[" * 5_000], "--inputs: InputArguments: the JSON is nested more than 64"),
    (["--timeout", "1e400"], "argument --timeout: '1e400' is not a finite number more than 0"),
    (["--job-timeout", "nan"], "argument --job-timeout: 'nan' is not a finite number"),
    (["--stop-grace", "-5"], "argument --stop-grace: '-5' is not a finite number 0 or more"),
    (["--count", "9" * 5_000], "argument --count: '999"),
    (["--count", "2000000"], "--count is at most 1,000,000 in one dispatch"),
    (["--reference-prefix", "r" * 130], "--reference-prefix is too long"),
    (["--list-budget", "101"], "argument --list-budget: '101' is outside 1..100: the tenant"),
]
FLAG_IDS = ["inputs-nan", "inputs-1e400", "inputs-surrogate", "inputs-deep",
            "timeout-1e400", "job-timeout-nan", "stop-grace-negative", "count-5000-digits",
            "count-2M", "reference-prefix", "list-budget-101"]  # fmt: skip


@pytest.mark.parametrize(("flags", "needle"), FLAGS, ids=FLAG_IDS)
async def test_a_bad_flag_is_one_line_naming_it_and_starts_nothing(
    start_simulator: Callable[..., Any], tmp_path: Path, flags: list[str], needle: str
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=20.0)
    run = await _dispatch(sim, tmp_path, "--process", "Echo", "--folder", "Shared", *flags)
    assert_one_line_exit_2(run, needle)
    _nothing_started(sim, tmp_path)


async def test_undecodable_bytes_in_a_flag_are_named(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=20.0)
    # Python reads argv bytes that are not UTF-8 as lone surrogates (surrogateescape).
    process = b"Ech\xff".decode("utf-8", "surrogateescape")
    run = await _dispatch(sim, tmp_path, "--process", process, "--folder", "Shared")
    assert_one_line_exit_2(run, "--process holds the byte 0xff, which is not UTF-8")
    _nothing_started(sim, tmp_path)


async def test_inputs_too_long_without_the_upload_scope_leave_no_journal(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    """Inputs over 10,000 characters need an upload, so the OR.Folders.Write scope:
    refused before the journal is created, so nothing is left on disk, as for any
    bad input (the default journal, under the state folder, included)."""
    sim: SimulatorHandle = await start_simulator(time_scale=20.0)
    huge = json.dumps({"text": "x" * 10_001})
    journal = tmp_path / "j.sqlite"
    for journal_flags in (["--journal", str(journal)], []):
        run = await _dispatch(
            sim, tmp_path, "--process", "Echo", "--folder", "Shared", "--inputs", huge,
            *journal_flags,
        )  # fmt: skip
        assert_one_line_exit_2(run, "error: the inputs of request 0", "OR.Folders.Write")
        assert not journal.exists()
        _nothing_started(sim, tmp_path)
