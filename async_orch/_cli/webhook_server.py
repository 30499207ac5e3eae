"""`dispatch --webhook-listen HOST:PORT`: serve a WebhookReceiver for the run."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from async_orch._errors import ConfigurationError
from async_orch._webhooks import WebhookReceiver

__all__ = ["SECRET_ENV", "listen_address", "serve_webhooks"]

#: Where the webhook's secret comes from: never a flag (it would show in `ps`).
SECRET_ENV = "ASYNC_ORCH_WEBHOOK_SECRET"


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
                "pick a free port"
            ) from None
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
        yield f"http://{shown}:{bound_port}/"
    finally:
        await runner.cleanup()
