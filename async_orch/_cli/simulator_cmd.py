"""`async-orch simulator`: run the local Orchestrator simulator until Ctrl-C.

The first line printed is the Orchestrator base URL alone, so scripts can read it;
then the token URL, credentials, the admin token, folders and a ready-to-paste curl
line. The admin token (for ``/_simulator/...``) is drawn at random, or taken from
``ASYNC_ORCH_SIMULATOR_ADMIN_TOKEN`` so scripts can choose it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from async_orch._cli.common import configure_logging, exit_codes, positive
from async_orch._errors import ConfigurationError

if TYPE_CHECKING:
    from async_orch.simulator import SimulatorHandle

__all__ = ["DEFAULT_PORT", "add_parser", "run"]

DEFAULT_PORT = 8765
ADMIN_TOKEN_ENV = "ASYNC_ORCH_SIMULATOR_ADMIN_TOKEN"

EXAMPLES = (
    exit_codes(
        "0    stopped (Ctrl-C, SIGTERM): its normal end",
        "1    cannot listen on --host:--port (in use, or not this machine's)",
        interrupted=False,
    )
    + """
examples:
  async-orch simulator                          # demo scenario on http://127.0.0.1:8765
  async-orch simulator --port 0 --time-scale 60 # any free port; a 60 s job takes 1 s
  async-orch simulator --scenario my.toml --fault server_error_rate=0.05 --fault drop_rate=0.01
  async-orch simulator --state sim.sqlite       # jobs and ids survive a restart
"""
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "simulator",
        usage="%(prog)s [--port N] [--scenario NAME_OR_FILE] [--fault KEY=VALUE...] [options]",
        help="run a local Orchestrator simulator to try scripts against",
        description="Serve a simulated UiPath Orchestrator (cloud and on-premises URL shapes, "
        "client-credentials tokens, folders, releases, jobs) until Ctrl-C.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help=f"port to bind; 0 picks a free one (default {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--scenario",
        default=None,
        metavar="FILE",
        help="scenario TOML file, or a built-in one: demo (default), realistic",
    )
    parser.add_argument(
        "--time-scale",
        type=positive,
        default=None,
        metavar="X",
        help="simulated seconds per real second (default: the scenario's)",
    )
    parser.add_argument("--seed", type=int, default=None, help="RNG seed (default: the scenario's)")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="inject a fault, e.g. server_error_rate=0.05, drop_rate=0.01, "
        "throttle_burst_seconds=5 (repeatable)",
    )
    parser.add_argument(
        "--state",
        default=None,
        metavar="FILE",
        help="keep jobs, ids and References in this SQLite file, so a restart remembers "
        "them as a real Orchestrator does (default: none; ids never repeat across runs)",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log faults and refusals (-vv: more)"
    )


def _port(text: str) -> int:
    """A TCP port for argparse: 0-65535 (bind() would fail with a traceback otherwise)."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a port; give a number from 0 to 65535 (0: any free port)"
        )
    return port


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; 0 on a clean stop, 2 on a configuration error."""
    configure_logging(args.verbose)
    try:
        return asyncio.run(_serve(args))
    except KeyboardInterrupt:
        print("simulator stopped", file=sys.stderr, flush=True)
        return 0
    except ConfigurationError as exc:
        print(f"async-orch simulator: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"async-orch simulator: cannot listen on {args.host}:{args.port}: {exc}",
            file=sys.stderr,
        )
        return 1


async def _serve(args: argparse.Namespace) -> int:
    from async_orch.simulator import FaultSettings, run_simulator
    from async_orch.simulator.faults import parse_fault_assignment

    faults = None
    if args.fault:
        assignments = dict(parse_fault_assignment(text) for text in args.fault)
        faults = FaultSettings.from_mapping(assignments, where="--fault")
    scenario = Path(args.scenario) if args.scenario else None
    async with run_simulator(
        scenario,
        host=args.host,
        port=args.port,
        time_scale=args.time_scale,
        seed=args.seed,
        faults=faults,
        state=Path(args.state) if args.state else None,
        admin_token=os.environ.get(ADMIN_TOKEN_ENV) or None,
    ) as sim:
        print(sim.url, flush=True)
        print(_banner(sim), flush=True)
        if sim.exposed:
            print(
                f"warning: listening on {args.host}, reachable from other machines: anyone who "
                "can reach the port can use the demo credentials and start jobs. The admin "
                "API needs the admin token. Use --host 127.0.0.1 unless you mean it.",
                file=sys.stderr,
                flush=True,
            )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows: no SIGTERM
            loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()  # Ctrl-C cancels this task; the context manager cleans up
    print("simulator stopped", file=sys.stderr, flush=True)
    return 0


def _banner(sim: SimulatorHandle) -> str:
    simulator = sim.simulator
    scenario = simulator.scenario
    scope = " ".join(
        s for s in ("OR.Folders.Read", "OR.Execution.Read", "OR.Jobs") if s in sim.scopes
    ) or " ".join(sim.scopes)
    token_call = (
        f"curl -s {shlex.quote(sim.token_url)} -d grant_type=client_credentials "
        f"-d client_id={shlex.quote(sim.client_id)} "
        f"-d client_secret={shlex.quote(sim.client_secret)} "
        f"-d {shlex.quote('scope=' + scope)}"
    )
    extract = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])'"
    curl = (
        f"TOKEN=$({token_call} | {extract}) && "
        f'curl -s -H "Authorization: Bearer $TOKEN" {shlex.quote(sim.url + "/odata/Folders")}'
    )
    lines = [
        f"Orchestrator simulator: scenario {scenario.name!r}, time scale {scenario.time_scale:g}x, "
        f"seed {scenario.seed}. Ctrl-C stops it.",
        f"  Orchestrator URL   {sim.url}",
        f"  Token URL          {sim.token_url}   (form-encoded, grant_type=client_credentials)",
        f"  Client ID          {sim.client_id}",
        f"  Client secret      {sim.client_secret}",
        f"  Granted scopes     {' '.join(sim.scopes)}",
        "  In another terminal, to dispatch, resume, list or stop jobs on it, paste:",
        f"    export UIPATH_URL={shlex.quote(sim.url)} "
        f"UIPATH_CLIENT_ID={shlex.quote(sim.client_id)} "
        f"UIPATH_CLIENT_SECRET={shlex.quote(sim.client_secret)}",
    ]
    for tenant in simulator.tenants:
        spec = tenant.spec
        lines.append(f"  Tenant {spec.key}:")
        for folder in tenant.world:
            processes = ", ".join(r.name for r in folder.releases)
            lines.append(
                f"    folder {folder.path!r} (Id {folder.id}, capacity {folder.capacity}): "
                f"{processes}"
            )
        for user in spec.users:
            lines.append(
                f"    on-premises login: POST {sim.root_url}/api/Account/Authenticate "
                f"tenancyName={spec.tenancy_name} user={user.username} password={user.password}"
            )
    if simulator.state is not None:
        lines.append(f"  State file         {simulator.state.path} (jobs survive a restart)")
    lines += [
        f"  Admin token        {sim.admin_token}   (Authorization: Bearer ... on /_simulator/)",
        f"  Stats              curl -s -H 'Authorization: Bearer {sim.admin_token}' "
        f"{sim.root_url}/_simulator/stats",
        "",
        "Try:",
        f"  {curl}",
    ]
    return "\n".join(lines)
