"""Exit codes and help of every command (issue 15 point 6): `--help` lists the exit
codes and examples, a mistyped option gets a hint and the usage in one line, and a
closed pipe ends quietly with the code of the rows written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_harness import cli_env

from async_orch._cli import main
from async_orch._cli.output import emit_rows

COMMANDS = ["dispatch", "check", "jobs", "stop", "loadtest", "simulator"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_lists_exit_codes_and_two_examples(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as leaving:
        main([command, "--help"])
    assert leaving.value.code == 0
    text = capsys.readouterr().out
    assert text.count("exit codes") == 1, text  # one block, every case in it
    codes = text.split("exit codes:\n", 1)[1].split("\n\n", 1)[0]
    numbers = [line.split()[0] for line in codes.splitlines() if line[2:3].isdigit()]
    if command == "simulator":
        # Ctrl-C is how a simulator stops: 0, never 130 (new-user review h9: help said 130).
        assert numbers == ["0", "1", "2"], codes
    else:
        assert numbers[-2:] == ["2", "130"]
    assert codes.splitlines()[0].split()[0] in {"0", "1"}
    if command == "dispatch":
        assert "--dry-run" in codes
    examples = text.split("examples:\n", 1)[1]
    assert sum(line.startswith(f"  async-orch {command}") for line in examples.splitlines()) >= 2


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["jobs", "--jurnal", "x.sqlite"], "did you mean --journal?"),
        (["dispatch", "--simulator", "--process", "Echo", "--cont", "3"], "did you mean --count?"),
        (["stop", "--journal", "j", "--kll"], "did you mean --kill?"),
        # A prefix of a flag is a typo too, never taken for the flag (no abbreviations).
        (["dispatch", "--proces", "Echo", "--folder", "Shared"], "did you mean --process?"),
        (["jobs", "--journ", "x.sqlite"], "did you mean --journal?"),
        (["check", "--fold", "Shared"], "did you mean --folder?"),
    ],
    ids=["jobs", "dispatch", "stop", "dispatch-prefix", "jobs-prefix", "check-prefix"],
)
def test_a_mistyped_option_gets_a_hint_and_the_usage_in_one_line(
    argv: list[str], hint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as leaving:
        main(argv)
    assert leaving.value.code == 2
    error, usage = capsys.readouterr().err.splitlines()
    assert error.startswith(f"async-orch {argv[0]}: error: unrecognized arguments: ")
    assert hint in error
    assert usage.startswith(f"usage: async-orch {argv[0]} ") and len(usage) <= 120


@pytest.mark.parametrize(
    ("argv", "command", "said"),
    [
        (["-vv", "dispatch", "--simulator"], "dispatch", "-vv goes after the command: "),
        (["-v", "--simulator", "check"], "check", "-v --simulator go after the command: "),
    ],
    ids=["vv", "two"],
)
def test_a_commands_flag_before_the_command_says_where_it_goes(
    argv: list[str], command: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as leaving:
        main(argv)
    assert leaving.value.code == 2
    (error,) = capsys.readouterr().err.splitlines()
    assert error.startswith(f"async-orch {command}: error: {said}async-orch {command} -v")
    assert "did you mean" not in error


def test_a_flag_no_command_takes_before_the_command_is_unrecognized(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["-x", "dispatch"])
    assert "unrecognized arguments: -x" in capsys.readouterr().err


def test_rows_to_a_closed_pipe_end_quietly() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    with os.fdopen(write_end, "w", encoding="utf-8") as stream:
        rows = [{"index": i, "outcome": "successful", "note": "x" * 200} for i in range(2_000)]
        emit_rows(rows, fmt="jsonl", output=None, stream=stream)  # does not raise
        stream.write("more\n")
        stream.flush()  # the stream now goes to devnull: no second failure


@pytest.mark.slow
def test_dispatch_into_head_exits_with_the_code_of_its_rows(tmp_path: Path) -> None:
    command = (
        f"{sys.executable} -m async_orch dispatch --simulator --time-scale 3600 --quiet "
        "--process Echo --folder Shared --count 400 | head -c 100 > /dev/null; "
        'echo "code=${PIPESTATUS[0]}"'
    )
    env = {**cli_env(tmp_path), "ASYNC_ORCH_STATE_DIR": str(tmp_path)}
    done = subprocess.run(
        ["bash", "-c", command], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.stdout.strip() == "code=0", (done.stdout, done.stderr)
    assert "Broken pipe" not in done.stderr and "Traceback" not in done.stderr


def test_loadtest_profile_is_now_load_profile_and_the_old_name_warns(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from async_orch._cli import build_parser
    from async_orch._cli.loadtest_cmd import _plan as plan_from_args

    parser = build_parser()
    base = ["loadtest", "--simulator", "--process", "Echo", "--folder", "Shared"]
    new = plan_from_args(parser.parse_args([*base, "--load-profile", "constant:5:60"]))
    assert capsys.readouterr().err == ""
    old = plan_from_args(parser.parse_args([*base, "--profile", "constant:5:60"]))
    assert old.profile == new.profile
    assert "warning: loadtest --profile is now --load-profile" in capsys.readouterr().err


def test_a_table_says_why_jobs_did_not_succeed_under_it() -> None:
    import io as text_io

    from async_orch._cli.output import write_rows

    rows = [
        {"index": 0, "folder": "Sandbox", "outcome": "not_started", "info": "HTTP 409: assign"},
        {"index": 1, "folder": "Shared", "outcome": "successful", "info": "Job completed"},
    ] + [{"index": i, "outcome": "stuck_pending", "info": f"stuck {i}"} for i in range(2, 14)]
    out = text_io.StringIO()
    write_rows(rows, "table", out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("INDEX") and len(lines) == 1 + len(rows) + 10 + 1
    assert lines[1 + len(rows)] == "0  not_started: HTTP 409: assign"
    assert "Job completed" not in out.getvalue()  # a success needs no reason
    assert lines[-1] == "... and 3 more (all of them: --format jsonl or csv)"


def test_a_simulator_that_cannot_listen_exits_1_with_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["simulator", "--port", str(port)])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"async-orch simulator: cannot listen on 127.0.0.1:{port}: ")
    assert not any("Traceback" in line for line in err)
