"""Shared fixtures: a running Orchestrator simulator and a small client for it.

* ``fake_clock``: a :class:`FakeClock` (real seconds that only move when told).
* ``start_simulator``: start more simulators, with any :func:`run_simulator` option;
  all are stopped at the end of the test.
* ``simulator``: the demo scenario on 127.0.0.1:<free port>, driven by
  ``fake_clock`` (time_scale 1), so jobs move only when the test advances the clock.
* ``fast_simulator``: the demo scenario on the real clock at time_scale 3600, for
  end-to-end tests that simply wait for jobs to finish (a 90 s job takes 25 ms).
* ``orch``: a :class:`SimClient` bound to ``simulator``: tokens and folder-aware
  requests in one line.

``serve_on_loopback(app)``: an aiohttp application of the test's own on
127.0.0.1:<free port>, for the duration of an ``async with``.

``aioresponses_mock()``: aioresponses, made to work with aiohttp 3.14, for the tests
of the aiohttp layer itself (others send through ``fakes.FakeSender``).

Autouse: structlog reset around every test (the CLI's configuration must not leak
from one test into the next), and a test that starts a process without the ``slow``
marker fails, naming the marker (so ``pytest -m "not slow"`` stays in-process).
"""

from __future__ import annotations

import base64
import signal
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from types import SimpleNamespace
from typing import Any
from unittest.mock import patch

import aiohttp
import aiohttp.typedefs
import aiohttp.web
import pytest
import structlog
from aioresponses import aioresponses
from aioresponses import core as aioresponses_core

from async_orch.simulator import SimulatorHandle, run_simulator

DEMO_SCOPES = "OR.Folders.Read OR.Execution.Read OR.Jobs"

# A suite started in the background (`cmd &` in a non-interactive shell) inherits
# SIGINT ignored, and so would every simulator and CLI the tests start and then stop
# with SIGINT, as a user's Ctrl-C does: they would never stop. Handled here, it is
# back to the default in every process the tests start.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


class FakeClock:
    """A monotonic clock for tests: ``clock()`` reads it, ``advance()`` moves it."""

    def __init__(self, start: float = 10_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        assert seconds >= 0, "a monotonic clock never goes back"
        self.now += seconds


def folder_header(folder: int | str, how: str = "auto") -> dict[str, str]:
    """The folder header for an Id (int) or a path/key (str).

    *how*: "id", "key", "path", "encoded" or "auto" (Id for ints, the plain path for
    ASCII strings, the encoded path otherwise, as the official SDK does).
    """
    if how == "auto" and isinstance(folder, int):
        how = "id"
    elif how == "auto":
        how = "path" if str(folder).isascii() else "encoded"
    if how == "id":
        return {"X-UIPATH-OrganizationUnitId": str(folder)}
    if how == "key":
        return {"X-UIPATH-FolderKey": str(folder)}
    if how == "path":
        return {"X-UIPATH-FolderPath": str(folder)}
    encoded = base64.b64encode(str(folder).encode("utf-16-le")).decode("ascii")
    return {"X-UIPATH-FolderPath-Encoded": encoded}


class SimClient:
    """Thin helpers over an aiohttp session for talking to a running simulator."""

    def __init__(self, handle: SimulatorHandle, session: aiohttp.ClientSession) -> None:
        self.handle = handle
        self.session = session
        self._token: str | None = None

    async def token(
        self,
        scope: str | None = DEMO_SCOPES,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
    ) -> str:
        """A fresh client-credentials token (the demo client unless told otherwise)."""
        form = {
            "grant_type": "client_credentials",
            "client_id": client_id or self.handle.client_id,
            "client_secret": client_secret or self.handle.client_secret,
        }
        if scope is not None:
            form["scope"] = scope
        async with self.session.post(self.handle.token_url, data=form) as response:
            body = await response.json()
            assert response.status == 200, body
            return str(body["access_token"])

    async def headers(self, folder: int | str | None = None, how: str = "auto") -> dict[str, str]:
        if self._token is None:
            self._token = await self.token()
        headers = {"Authorization": f"Bearer {self._token}"}
        if folder is not None:
            headers.update(folder_header(folder, how))
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        folder: int | str | None = None,
        how: str = "auto",
        headers: dict[str, str] | None = None,
        base: str | None = None,
        **kwargs: Any,
    ) -> tuple[int, Any, Any]:
        """Send to ``base + path`` (base: the demo tenant's orchestrator_ URL).

        Returns (status, parsed JSON body or text or None, response headers).
        """
        all_headers = await self.headers(folder, how) if headers is None else headers
        url = (base or self.handle.url) + path
        async with self.session.request(method, url, headers=all_headers, **kwargs) as response:
            text = await response.text()
            body: Any = None
            if text:
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = text
            return response.status, body, response.headers

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Any, Any]:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> tuple[int, Any, Any]:
        return await self.request("POST", path, **kwargs)

    async def folders(self) -> dict[str, dict[str, Any]]:
        """FolderDto by FullyQualifiedName."""
        status, body, _ = await self.get("/odata/Folders")
        assert status == 200, body
        return {f["FullyQualifiedName"]: f for f in body["value"]}

    async def release_key(self, folder: str, name: str) -> str:
        status, body, _ = await self.get(
            "/odata/Releases", folder=folder, params={"$filter": f"Name eq '{name}'"}
        )
        assert status == 200, body
        (release,) = body["value"]
        return str(release["Key"])

    async def start(
        self, folder: str, process: str = "Echo", **start_info: Any
    ) -> list[dict[str, Any]]:
        """StartJobs by release name; returns the JobDtos (asserts 201)."""
        info = {"ReleaseName": process, **start_info}
        status, body, _ = await self.post(
            "/odata/Jobs/UiPath.Server.Configuration.OData.StartJobs",
            folder=folder,
            json={"startInfo": info},
        )
        assert status == 201, body
        return list(body["value"])

    async def job(self, folder: str, job_id: int) -> dict[str, Any]:
        status, body, _ = await self.get(f"/odata/Jobs({job_id})", folder=folder)
        assert status == 200, body
        return dict(body)


class _MockedResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 builds responses without the ``stream_writer`` that
    aiohttp 3.14 requires; give it an empty one (tests only)."""

    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


@contextmanager
def aioresponses_mock() -> Iterator[aioresponses]:
    """``aioresponses()`` with its responses built the way aiohttp 3.14 needs, only
    while it is active."""
    with (
        patch.object(aioresponses_core, "ClientResponse", _MockedResponse),
        aioresponses() as mock,
    ):
        yield mock


@pytest.fixture(autouse=True)
def _processes_only_in_slow_tests(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if request.node.get_closest_marker("slow") is not None:
        return

    def refuse(self: subprocess.Popen[Any], args: Any, *rest: Any, **options: Any) -> None:
        raise AssertionError(f"this test starts a process ({args!r}): mark it @pytest.mark.slow")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """Each test starts and ends with structlog unconfigured (the CLI configures it)."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def start_simulator() -> AsyncIterator[Callable[..., Any]]:
    """``handle = await start_simulator(**run_simulator_options)``; stopped after the test."""
    async with AsyncExitStack() as stack:

        async def start(*args: Any, **kwargs: Any) -> SimulatorHandle:
            return await stack.enter_async_context(run_simulator(*args, **kwargs))

        yield start


@pytest.fixture
async def simulator(start_simulator: Callable[..., Any], fake_clock: FakeClock) -> SimulatorHandle:
    handle: SimulatorHandle = await start_simulator(clock=fake_clock, time_scale=1.0)
    return handle


@pytest.fixture
async def fast_simulator(start_simulator: Callable[..., Any]) -> SimulatorHandle:
    handle: SimulatorHandle = await start_simulator(time_scale=3600.0)
    return handle


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def orch(simulator: SimulatorHandle, http: aiohttp.ClientSession) -> SimClient:
    return SimClient(simulator, http)


@asynccontextmanager
async def serve_on_loopback(
    app: aiohttp.web.Application, *, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1:<free port> (over TLS with ``ssl_context``) until the
    block ends; its root URL, without a trailing slash."""
    runner = aiohttp.web.AppRunner(app, access_log=None)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    scheme = "https" if ssl_context is not None else "http"
    try:
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def add_simulator_middleware(
    monkeypatch: pytest.MonkeyPatch, middleware: aiohttp.typedefs.Middleware
) -> None:
    """Run ``middleware`` (say, a recorder) in front of every simulator this test starts."""
    from async_orch.simulator.core import Simulator

    make_app = Simulator.make_app

    def app_with_middleware(sim: Simulator, *, admin_token: str) -> aiohttp.web.Application:
        app = make_app(sim, admin_token=admin_token)
        app.middlewares.append(middleware)
        return app

    monkeypatch.setattr(Simulator, "make_app", app_with_middleware)
