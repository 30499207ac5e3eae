"""`dispatch --webhook-listen HOST:PORT`: serve a WebhookReceiver for the run."""

from __future__ import annotations

import argparse
import errno
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from aiohttp import web

from async_orch._errors import ConfigurationError
from async_orch._webhooks import WebhookReceiver

if TYPE_CHECKING:
    from async_orch.simulator import SimulatorHandle

__all__ = [
    "SECRET_ENV",
    "WEBHOOK_EVENTS",
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


def describe_counts(counts: Mapping[str, int]) -> str:
    """One line for the end of a run: events accepted, and refused by reason."""
    refused = {kind: counts.get(kind, 0) for kind in _REFUSALS if counts.get(kind, 0)}
    line = f"webhook events: {counts.get('accepted', 0)} accepted, {sum(refused.values())} refused"
    if refused:
        line += f" ({'; '.join(f'{n} {_REFUSALS[kind]}' for kind, n in refused.items())})"
    if not counts:
        line += " (none arrived: is the webhook created in Orchestrator with this URL?)"
    return line


def subscribe_embedded(sim: SimulatorHandle, url: str, secret: str) -> None:
    """Create the webhook on the embedded simulator (its first tenant, the one the run
    uses), as `POST /odata/Webhooks` would: the run's receiver gets its job events."""
    dto = {
        "Name": "async-orch dispatch",
        "Url": _reachable(url),
        "Secret": secret,
        "Enabled": True,
        "SubscribeToAllEvents": False,
        "Events": [{"EventType": event} for event in WEBHOOK_EVENTS],
        "AllowInsecureSsl": False,
    }
    sim.simulator.webhooks.create(sim.simulator.tenants[0], dto)


def _reachable(url: str) -> str:
    """A wildcard address (0.0.0.0, ::) is where to listen, not where to post: loopback."""
    return url.replace("//0.0.0.0:", "//127.0.0.1:", 1).replace("//[::]:", "//[::1]:", 1)
