"""``async-orch simulator`` in a process of its own, for the benchmark scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any


def echo_tenant_scenario(
    *,
    script: str,
    seed: int,
    time_scale: float,
    organization: str,
    client: tuple[str, str],
    process: str,
    duration: str,
    folders: list[tuple[str, int, int]],
) -> str:
    """A scenario of one tenant whose one process echoes its inputs, limited to 100
    list calls a minute as Automation Cloud is, with ``folders`` as (path, capacity,
    robots); ``duration`` is the TOML value of the process's simulated seconds."""
    client_id, client_secret = client
    folder_text = "\n".join(
        f'[[tenants.folders]]\npath = "{name}"\ncapacity = {capacity}\nrobots = {robots}\n'
        for name, capacity, robots in folders
    )
    return f"""# Written by benchmarks/{script}
seed = {seed}
time_scale = {time_scale}

[[tenants]]
organization = "{organization}"
name = "DefaultTenant"
[tenants.rate_limit]
jobs_list = 100          # GET /odata/Jobs per tenant, as on Automation Cloud
window_seconds = 60
[[tenants.credentials]]
client_id = "{client_id}"
client_secret = "{client_secret}"
scopes = ["OR.Folders.Read", "OR.Execution.Read", "OR.Jobs"]
[[tenants.processes]]
name = "{process}"
duration = {duration}
outputs = "echo"

{folder_text}"""


def attachments_scenario(*, time_scale: float = 1.0, more_processes: str = "") -> str:
    """A scenario for big inputs and outputs (benchmarks/bench_attachments.py and
    tests/test_big_payloads.py): one tenant whose application may upload attachments
    (OR.Folders.Write), an Echo process whose outputs over 10,000 characters come
    back as an OutputFile, folder Shared; ``more_processes``: more
    ``[[tenants.processes]]`` tables."""
    return f"""seed = 5
time_scale = {time_scale}
[[tenants]]
organization = "big"
name = "T"
[[tenants.credentials]]
client_id = "app"
client_secret = "secret"
scopes = ["OR.Folders.Read", "OR.Folders.Write", "OR.Execution.Read", "OR.Jobs"]
[[tenants.processes]]
name = "Echo"
duration = 1
outputs = "echo"
[tenants.processes.lifecycle]
output_file_over = 10000     # outputs over 10,000 characters come back as OutputFile
output_limit = 1000000
{more_processes}
[[tenants.folders]]
path = "Shared"
capacity = 50
"""


def launch_simulator(
    args: list[str], *, log: Path, admin_token: str
) -> tuple[subprocess.Popen[str], str]:
    """Start ``async-orch simulator ARGS`` (stderr to ``log``); return the process and
    the first line it printed: its URL when it started, else whatever it said."""
    command = [sys.executable, "-m", "async_orch", "simulator", *args]
    with log.open("w", encoding="utf-8") as err:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env={**os.environ, "ASYNC_ORCH_SIMULATOR_ADMIN_TOKEN": admin_token},
        )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def did_not_start(first_line: str, log: Path) -> str:
    """Why a simulator process gave no URL: what it printed (its stderr's end, kept in
    ``log``) and, when an import failed, the likely fix."""
    said = log.read_text(encoding="utf-8", errors="replace").strip()[-2000:]
    if "No module named" in said:  # the traceback's last line says it all
        return (
            f"the simulator did not start; it said: {said.splitlines()[-1]}\n"
            f"{sys.executable} lacks async-orch's dependencies: run the benchmark with "
            "the project's venv, .venv/bin/python benchmarks/..."
        )
    return f"the simulator did not start; it said: {said or first_line or 'nothing'}"


def simulator_stats(root: str, admin_token: str) -> dict[str, Any]:
    """The simulator's admin stats (requests, rejections, jobs by Reference)."""
    request = urllib.request.Request(
        f"{root}/_simulator/stats", headers={"Authorization": f"Bearer {admin_token}"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        data: dict[str, Any] = json.load(response)
    return data


def cli_env(home: Path, **settings: str) -> dict[str, str]:
    """The environment of an ``async-orch`` process: none of ours inherited, its state and
    config under ``home``, then ``settings`` (UIPATH_URL=..., ASYNC_ORCH_TIMEOUT=...)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("UIPATH_", "ASYNC_ORCH_", "XDG_"))
    }
    env.update(
        XDG_STATE_HOME=str(home / "state"),
        XDG_CONFIG_HOME=str(home / "config"),
        PYTHONUNBUFFERED="1",
        **settings,
    )
    return env
