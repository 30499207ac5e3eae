"""`dispatch --webhook-listen HOST:PORT`: serve a WebhookReceiver for the run."""

from __future__ import annotations

import argparse
import errno
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from aiohttp import web

from async_orch._errors import ConfigurationError
from async_orch._states import TERMINAL_STATES
from async_orch._webhooks import JobEvent, WebhookReceiver

if TYPE_CHECKING:
    from async_orch.simulator import SimulatorHandle

__all__ = [
    "SECRET_ENV",
    "WEBHOOK_EVENTS",
    "WebhookRun",
    "describe_counts",
    "listen_address",
    "serve_webhooks",
    "subscribe_embedded",
]

#: Where the webhook's secret comes from: never a flag (it would show in `ps`).
SECRET_ENV = "ASYNC_ORCH_WEBHOOK_SECRET"

#: The events that tell a watched job ended (what docs/cli.md says to subscribe to).
WEBHOOK_EVENTS = ("job.completed", "job.faulted", "job.stopped")

_REFUSALS = {  # WebhookReceiver.counts key -> what it means, and what to check
    "bad_signature": f"bad signature: is {SECRET_ENV} the webhook's secret?",
    "unsigned": "unsigned: give the webhook a secret",
    "stale": "stale: is this machine's clock right?",
    "malformed": "not a JSON event",
}


def listen_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) for argparse."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(
            f"expected HOST:PORT such as 0.0.0.0:8080 or 127.0.0.1:0, got {text!r}"
        )
    return host, int(port)


@asynccontextmanager
async def serve_webhooks(receiver: WebhookReceiver, host: str, port: int) -> AsyncIterator[str]:
    """Serve ``receiver`` on ``host:port`` (any path) until the block ends; yields its URL."""
    runner = web.AppRunner(receiver.app(), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise ConfigurationError(
                f"--webhook-listen cannot listen on {host}:{port} ({exc.strerror or exc}); "
                + _listen_fix(exc)
            ) from None
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
        yield f"http://{shown}:{bound_port}/"
    finally:
        await runner.cleanup()


def _listen_fix(exc: OSError) -> str:
    """What to change when listening failed with ``exc``."""
    if exc.errno == errno.EADDRINUSE:
        return "pick a free port (or 0 for any)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "pick a port above 1023, or run with the right to bind this one"
    # EADDRNOTAVAIL, or a name that does not resolve (socket.gaierror).
    return "give an address of this machine: 0.0.0.0 (all), 127.0.0.1, or one of its own"


def describe_counts(
    counts: Mapping[str, int],
    *,
    about_others: int | None = None,
    ended: int = 0,
    created_here: bool = False,
) -> str:
    """One line for the end of a run: events accepted, and refused by reason.

    A webhook is tenant-wide, so ``about_others`` says how many accepted events named
    none of the run's jobs (None: not known). Only when ``ended`` jobs ended and no
    event at all arrived, on a webhook the user created (not ``created_here``), does the
    line ask whether the webhook exists.
    """
    accepted = counts.get("accepted", 0)
    refused = {kind: counts.get(kind, 0) for kind in _REFUSALS if counts.get(kind, 0)}
    line = f"webhook events: {accepted} accepted"
    if accepted and about_others is not None:
        line += (
            f" ({about_others} about other jobs of the tenant)"
            if about_others
            else " (all about this run's jobs)"
        )
    line += f", {sum(refused.values())} refused"
    if refused:
        line += f" ({'; '.join(f'{n} {_REFUSALS[kind]}' for kind, n in refused.items())})"
    if not counts and ended and not created_here:
        line += (
            f" (none arrived though {ended} job{'s' if ended > 1 else ''} ended: is the "
            "webhook created in "
            "Orchestrator with this URL?)"
        )
    return line


_ENDED = frozenset(state.value for state in TERMINAL_STATES)


class WebhookRun:
    """The receiver of one `dispatch` run, and what its closing line needs: the job ids
    each accepted event named, and the jobs that ended while it listened.

    Args:
        receiver: the run's receiver (subscribed to here, before it serves).
        created_here: the CLI created the webhook (the embedded simulator's).
        rows_before: the journal's rows when the run began (a resume's earlier
            ends are not this run's).
    """

    def __init__(
        self,
        receiver: WebhookReceiver,
        *,
        created_here: bool = False,
        rows_before: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        self.receiver = receiver
        self.created_here = created_here
        self._ended_before = _ended_ids(rows_before)
        self._named: dict[str, set[int]] = {}  # EventId -> the job ids it named
        self._ours: set[int] = set()
        self._ended = 0
        receiver.subscribe(self._on_event)

    def _on_event(self, event: JobEvent) -> None:
        self._named.setdefault(event.event_id, set()).add(event.job_id)

    def run_ended(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """The journal's rows at the end of the run."""
        rows = list(rows)
        self._ours = {row["job_id"] for row in rows if row.get("job_id") is not None}
        self._ended = len(_ended_ids(rows) - self._ended_before)

    def describe(self) -> str:
        """The closing line (see :func:`describe_counts`)."""
        others = sum(1 for ids in self._named.values() if ids.isdisjoint(self._ours))
        return describe_counts(
            self.receiver.counts,
            about_others=others,
            ended=self._ended,
            created_here=self.created_here,
        )


def _ended_ids(rows: Iterable[Mapping[str, Any]]) -> set[int]:
    """The job ids of rows whose job ended (Successful, Faulted, Stopped)."""
    return {
        row["job_id"]
        for row in rows
        if row.get("state") in _ENDED and row.get("job_id") is not None
    }


def subscribe_embedded(sim: SimulatorHandle, url: str, secret: str) -> Callable[[], None]:
    """Create the webhook on the embedded simulator (its first tenant, the one the run
    uses), as `POST /odata/Webhooks` would: the run's receiver gets its job events.
    Returns what disables it: called before the receiver closes, events still on
    their way are not sent to a closed port (a warning after a good run)."""
    dto = {
        "Name": "async-orch dispatch",
        "Url": _reachable(url),
        "Secret": secret,
        "Enabled": True,
        "SubscribeToAllEvents": False,
        "Events": [{"EventType": event} for event in WEBHOOK_EVENTS],
        "AllowInsecureSsl": False,
    }
    subscription = sim.simulator.webhooks.create(sim.simulator.tenants[0], dto)

    def disable() -> None:
        subscription.enabled = False

    return disable


def _reachable(url: str) -> str:
    """A wildcard address (0.0.0.0, ::) is where to listen, not where to post: loopback."""
    return url.replace("//0.0.0.0:", "//127.0.0.1:", 1).replace("//[::]:", "//[::1]:", 1)
