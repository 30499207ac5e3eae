"""Every session honours HTTP(S)_PROXY / NO_PROXY and a CA bundle.

The proxy tests go through a real forwarding proxy (tests/forward_proxy.py) in
its own process on a loopback port, to the simulator over real sockets.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from conftest import serve_on_loopback

from async_orch._client import OrchestratorClient
from async_orch._config import ClientCredentials, Settings
from async_orch._errors import ConfigurationError, TransportError
from async_orch._http import AiohttpSender
from async_orch._retries import RetryPolicy
from async_orch._sessions import choose_proxy, new_session
from async_orch._transport import Transport
from async_orch.loadtest.target import probe_simulator
from async_orch.simulator import SimulatorHandle

PROXY_SCRIPT = Path(__file__).with_name("forward_proxy.py")
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


@dataclass
class Proxy:
    url: str

    async def seen(self) -> dict[str, Any]:
        # Straight to the proxy (no proxy for this session: it ignores the environment).
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.url}/_proxy/count") as response,
        ):
            data: dict[str, Any] = await response.json()
            return data

    async def forwarded(self) -> int:
        return int((await self.seen())["forwarded"])


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(PROXY_SCRIPT), stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        assert line.startswith(b"port "), line
        yield Proxy(f"http://127.0.0.1:{int(line.split()[1])}")
    finally:
        process.kill()
        await process.wait()


def _settings(sim: SimulatorHandle, **overrides: Any) -> Settings:
    credentials = ClientCredentials(client_id=sim.client_id, client_secret=sim.client_secret)
    return Settings(url=sim.url, credentials=credentials, **overrides)


async def _folders(settings: Settings) -> int:
    async with OrchestratorClient(settings) as orch:
        return len(await orch.api.list_folders())


@pytest.mark.slow
async def test_requests_go_through_the_proxy_named_by_http_proxy(
    fast_simulator: SimulatorHandle, proxy: Proxy, no_proxy_env: pytest.MonkeyPatch
) -> None:
    no_proxy_env.setenv("HTTP_PROXY", proxy.url)
    assert await _folders(_settings(fast_simulator)) > 0
    # The token request and the Folders call both went through it.
    assert await proxy.forwarded() == 2
    # The load test's simulator probe too (its admin API needs the token).
    no_proxy_env.setenv("ASYNC_ORCH_SIMULATOR_ADMIN_TOKEN", fast_simulator.admin_token)
    assert await probe_simulator(fast_simulator.url) is not None
    assert await proxy.forwarded() == 3


@pytest.mark.slow
async def test_proxy_credentials_from_the_url_are_sent_to_the_proxy(
    fast_simulator: SimulatorHandle, proxy: Proxy, no_proxy_env: pytest.MonkeyPatch
) -> None:
    no_proxy_env.setenv("http_proxy", proxy.url.replace("http://", "http://me:pw@"))
    assert await _folders(_settings(fast_simulator)) > 0
    expected = aiohttp.encode_basic_auth("me", "pw")
    assert (await proxy.seen())["authorization"] == [expected, expected]


@pytest.mark.slow
async def test_no_proxy_bypasses_the_proxy(
    fast_simulator: SimulatorHandle, proxy: Proxy, no_proxy_env: pytest.MonkeyPatch
) -> None:
    no_proxy_env.setenv("HTTP_PROXY", proxy.url)
    no_proxy_env.setenv("NO_PROXY", "localhost,127.0.0.1")
    assert await _folders(_settings(fast_simulator)) > 0
    assert await proxy.forwarded() == 0


@pytest.mark.slow
async def test_hosts_that_need_different_proxies_are_decided_per_request(
    fast_simulator: SimulatorHandle, proxy: Proxy, no_proxy_env: pytest.MonkeyPatch
) -> None:
    # The token endpoint (named "localhost") is exempt; Orchestrator (127.0.0.1) is not.
    no_proxy_env.setenv("HTTP_PROXY", proxy.url)
    no_proxy_env.setenv("NO_PROXY", "localhost")
    token_url = fast_simulator.root_url.replace("127.0.0.1", "localhost") + (
        "/identity_/connect/token"
    )
    settings = _settings(fast_simulator, identity_url=token_url)
    assert choose_proxy([settings.orchestrator.base, token_url]).per_request
    assert await _folders(settings) > 0
    assert await proxy.forwarded() == 1  # the Folders call only


def test_proxy_is_decided_once_when_every_host_agrees(no_proxy_env: pytest.MonkeyPatch) -> None:
    assert choose_proxy(["https://cloud.uipath.com/a/b/orchestrator_"]).proxy is None
    no_proxy_env.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    choice = choose_proxy(
        ["https://cloud.uipath.com/a/b/orchestrator_", "https://cloud.uipath.com/x"]
    )
    assert (str(choice.proxy), choice.per_request) == ("http://proxy.corp:3128", False)
    no_proxy_env.setenv("NO_PROXY", ".uipath.com")
    assert choose_proxy(["https://cloud.uipath.com/a"]).proxy is None


# -- CA bundle -------------------------------------------------------------------------------


def _make_ca_and_server_cert(tmp: Path) -> tuple[Path, Path, Path]:
    """A private CA, and a cert for 127.0.0.1 it signed (with the openssl command)."""
    ca_key, ca_cert = tmp / "ca.key", tmp / "ca.pem"
    key, csr, cert = tmp / "server.key", tmp / "server.csr", tmp / "server.pem"
    ext = tmp / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out",
        str(ca_cert), "-days", "2", "-subj", "/CN=async-orch test CA")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", "/CN=127.0.0.1")  # fmt: skip
    run("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))  # fmt: skip
    return ca_cert, cert, key


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """An https server on 127.0.0.1 answering 200 to anything, and its CA's PEM file."""
    ca_cert, cert, key = _make_ca_and_server_cert(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"value": []})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", ok)
    async with serve_on_loopback(app, ssl_context=context) as url:
        yield url, ca_cert


@pytest.mark.slow  # openssl makes the CA
async def test_ca_bundle_setting_makes_a_private_ca_trusted(
    tls_server: tuple[str, Path], no_proxy_env: pytest.MonkeyPatch
) -> None:
    url, ca = tls_server
    from async_orch._config import StaticToken

    def settings(**extra: Any) -> Settings:
        return Settings(url=url, credentials=StaticToken(token="t"), **extra)

    async with Transport(settings(ca_bundle=str(ca))) as transport:
        assert (await transport.request("GET", "odata/Folders")).status == 200
    async with Transport(settings()) as transport:
        with pytest.raises(TransportError, match="cannot connect") as caught:
            await transport.request("GET", "odata/Folders")
        assert not caught.value.may_have_reached_server


def test_ca_bundle_is_read_from_the_environment(tmp_path: Path) -> None:
    pem = tmp_path / "corp.pem"
    pem.write_text("")
    env = {"UIPATH_URL": "https://orch.corp/", "UIPATH_ACCESS_TOKEN": "t"}
    assert Settings.from_env({**env, "SSL_CERT_FILE": str(pem)}).ca_bundle == str(pem)
    other = tmp_path / "other.pem"
    other.write_text("")
    both = {**env, "SSL_CERT_FILE": str(pem), "ASYNC_ORCH_CA_BUNDLE": str(other)}
    assert Settings.from_env(both).ca_bundle == str(other)
    with pytest.raises(ConfigurationError, match=r"missing\.pem"):
        Settings.from_env({**env, "ASYNC_ORCH_CA_BUNDLE": str(tmp_path / "missing.pem")})


async def test_a_ca_bundle_that_is_not_pem_is_one_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(ConfigurationError, match="cannot load the CA bundle"):
        new_session(["https://orch.corp"], ca_bundle=str(junk))


async def _refusing_proxy(status: bytes) -> asyncio.Server:
    """A proxy answering every CONNECT with ``status``."""

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    return await asyncio.start_server(refuse, "127.0.0.1", 0)


@pytest.mark.parametrize(
    ("status", "says"),
    [
        (b"407 Proxy Authentication Required", "USER:PASSWORD@"),
        (b"403 Forbidden", "check the proxy"),
    ],
)
async def test_a_proxy_refusing_the_tunnel_is_a_request_that_never_left(
    no_proxy_env: pytest.MonkeyPatch, status: bytes, says: str
) -> None:
    # Not "may have reached the server": a StartJobs refused there started nothing.
    server = await _refusing_proxy(status)
    port = server.sockets[0].getsockname()[1]
    no_proxy_env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    try:
        async with new_session(["https://orch.corp/org/tenant/orchestrator_"]) as session:
            sender = AiohttpSender(session)
            with pytest.raises(TransportError, match="proxy refused") as caught:
                await sender.send("POST", "https://orch.corp/odata/Jobs", headers={})
    finally:
        server.close()
    assert caught.value.may_have_reached_server is False
    assert says in str(caught.value) and status.split()[0].decode() in str(caught.value)


async def test_a_netrc_entry_for_the_host_is_one_clear_error_with_a_proxy_holding_credentials(
    no_proxy_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Credentials in the proxy URL make the session read the environment per request,
    # .netrc included: aiohttp refused its Basic credentials next to the bearer token
    # with a bare ValueError (a traceback).
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password secret\n")
    netrc.chmod(0o600)
    no_proxy_env.setenv("NETRC", str(netrc))
    no_proxy_env.setenv("HTTP_PROXY", "http://me:pw@127.0.0.1:9")
    url = "http://127.0.0.1:9/org/tenant/orchestrator_/odata/Folders"
    async with new_session([url]) as session:
        with pytest.raises(
            ConfigurationError, match=r"\.netrc entry .* for 127\.0\.0\.1"
        ) as caught:
            await AiohttpSender(session).send("GET", url, headers={"Authorization": "Bearer t"})
    assert "secret" not in str(caught.value)


async def test_an_unreachable_proxy_is_named_as_the_proxy_in_the_error(
    fast_simulator: SimulatorHandle, no_proxy_env: pytest.MonkeyPatch
) -> None:
    # A socket bound but not listening: connecting to it is refused, and no other
    # process can take the port while the test holds it.
    with socket.socket() as closed_port:
        closed_port.bind(("127.0.0.1", 0))
        port = closed_port.getsockname()[1]
        no_proxy_env.setenv("HTTPS_PROXY", f"http://me:s3cret@127.0.0.1:{port}")
        no_proxy_env.setenv("HTTP_PROXY", f"http://me:s3cret@127.0.0.1:{port}")
        with pytest.raises(TransportError) as caught:
            await _folders(_settings(fast_simulator, retry=RetryPolicy(attempts=1)))
    message = str(caught.value)
    assert f"proxy 127.0.0.1:{port}" in message, message
    assert "HTTPS_PROXY" in message and "NO_PROXY" in message, message
    assert "s3cret" not in message and "me:" not in message, message
