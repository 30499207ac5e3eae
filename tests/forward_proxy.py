"""A tiny forwarding HTTP proxy for the proxy tests, run as its own process.

``python forward_proxy.py`` listens on 127.0.0.1, port 0, prints ``port N`` on
stdout, and forwards every absolute-form request (``GET http://host/path``, what
clients send to a plain-http proxy) to its target, counting them. ``GET
/_proxy/count`` (sent to the proxy itself) answers ``{"forwarded": N,
"authorization": [...]}`` with the Proxy-Authorization headers seen.
No CONNECT (https) support: the simulator speaks plain http.
"""

from __future__ import annotations

import asyncio
import sys

import aiohttp
from aiohttp import web

# Hop-by-hop headers (RFC 9110 §7.6.1), and those aiohttp recomputes when relaying.
_DROPPED = frozenset(
    h.lower()
    for h in (
        "Connection", "Keep-Alive", "Proxy-Authorization", "Proxy-Connection", "TE",
        "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length", "Content-Encoding", "Host",
    )
)  # fmt: skip


async def main() -> None:
    forwarded = 0
    proxy_auth: list[str] = []
    upstream = aiohttp.ClientSession(auto_decompress=False)

    async def handle(request: web.Request) -> web.StreamResponse:
        nonlocal forwarded
        if request.path == "/_proxy/count":
            return web.json_response({"forwarded": forwarded, "authorization": proxy_auth})
        forwarded += 1
        if "Proxy-Authorization" in request.headers:
            proxy_auth.append(request.headers["Proxy-Authorization"])
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROPPED}
        async with upstream.request(
            request.method,
            request.url,
            headers=headers,
            data=await request.read(),
            allow_redirects=False,
        ) as answer:
            body = await answer.read()
            kept = {k: v for k, v in answer.headers.items() if k.lower() not in _DROPPED}
            if "Content-Encoding" in answer.headers:
                kept["Content-Encoding"] = answer.headers["Content-Encoding"]
            return web.Response(status=answer.status, headers=kept, body=body)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    sys.stdout.write(f"port {port}\n")
    sys.stdout.flush()
    try:
        await asyncio.Event().wait()  # until killed
    finally:
        await upstream.close()
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
