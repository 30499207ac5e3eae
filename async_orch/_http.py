"""The one place an HTTP exchange happens, and aiohttp errors become ours.

``send_once`` sends one request and reads the whole response;
:class:`AiohttpSender` is it as the :class:`~async_orch._seams.HTTPSender` seam. Every aiohttp
exception is mapped here (chained with ``from``) so that callers see only
:class:`TransportError` / :class:`RequestTimeoutError`, with
``may_have_reached_server`` telling whether the request could have been acted on:

* False: the connection was never made (refused, DNS, TLS, connect timeout,
  a proxy refusing the tunnel).
* True: anything later (reset, server disconnect, read timeout, truncated
  body, malformed response), because the request may have been received.

A session closed by its owner is :class:`ClientClosedError` (nothing was sent).
"""

from __future__ import annotations

import io
import json
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from async_orch._blobs import check_blob_size
from async_orch._errors import (
    ClientClosedError,
    ConfigurationError,
    RequestTimeoutError,
    ResponseDecodeError,
    TransportError,
)
from async_orch._protocol import header, looks_like_html
from async_orch._records import record_builder

__all__ = ["PROXY_CREDENTIALS_HINT", "AiohttpSender", "Response", "send_once"]

#: The fix for a proxy answering 407 Proxy Authentication Required.
PROXY_CREDENTIALS_HINT = (
    "The proxy wants credentials: give them in the proxy URL "
    "(HTTPS_PROXY=http://USER:PASSWORD@PROXY:PORT, HTTP_PROXY for an http URL)"
)

#: Bodies longer than this are streamed (aiohttp's own threshold for its warning).
_STREAM_BODY_OVER = 1024 * 1024

_CHUNK = 64 * 1024  # a capped body is read this much at a time


_OBJECT_OR_ARRAY = (b"{", b"[")  # the first byte of a JSON body in UTF-8 (Response.json)


@dataclass(frozen=True, slots=True)
class Response:
    """A complete HTTP response.

    Attributes:
        status: HTTP status.
        headers: response headers (case-insensitive when built by ``send_once``).
        body: the raw body (left out of the repr: it may hold a token).
        url: the request URL, for messages.
    """

    status: int
    headers: Mapping[str, str]
    body: bytes = field(repr=False)
    url: str = ""

    def json(self) -> Any:
        """The body parsed as JSON.

        Raises:
            ResponseDecodeError: the body is empty or not JSON (say, an HTML
                sign-in page served by a wrong URL).
        """
        body = self.body
        try:
            if body[:1] in _OBJECT_OR_ARRAY and body[1:2] != b"\x00":
                # What the API sends: UTF-8 from its first byte. Decoded here, as
                # json.loads(bytes) would, without its encoding detection (a Python
                # function, a call every response).
                return json.loads(body.decode("utf-8", "surrogatepass"))
            return json.loads(body)  # bytes: a BOM or UTF-16/32 is detected
        # JSONDecodeError, UnicodeDecodeError; RecursionError: nested ~1,000 deep.
        except (ValueError, RecursionError) as exc:
            if not self.body.strip():
                raise ResponseDecodeError(
                    f"HTTP {self.status} from {self.url} has an empty body where JSON was expected"
                ) from None
            content_type = header(self.headers, "Content-Type")
            head = self.body[:120].decode("utf-8", errors="replace")
            hint = (
                " (an HTML page: the URL probably points at a sign-in or portal page; "
                "check the Orchestrator URL)"
                if looks_like_html(self.body, content_type)
                else ""
            )
            raise ResponseDecodeError(
                f"HTTP {self.status} from {self.url} is not JSON{hint}: "
                f"{content_type or 'no Content-Type'}, starts {head!r}"
            ) from exc


# Two a job (a StartJobs answer, a list or read answer): built without the frozen
# dataclass's per-field object.__setattr__ (_records).
_build_response = record_builder(Response)


async def send_once(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    params: Mapping[str, str] | None = None,
    body: bytes | None = None,
    client_timeout: aiohttp.ClientTimeout | None = None,
    max_body: int | None = None,
) -> Response:
    """Send one request, read the whole response; never raise an aiohttp exception.

    With ``max_body``, a success's body is read in chunks and no further than that.

    Raises:
        BlobTooLargeError: a success's body is longer than ``max_body``.
        TransportError: no usable response (``may_have_reached_server`` as above).
        RequestTimeoutError: the same, for a timeout.
        ClientClosedError: the session is closed.
        ConfigurationError: a .netrc entry clashes with the request's Authorization.
    """
    extra: dict[str, Any] = {} if client_timeout is None else {"timeout": client_timeout}
    # aiohttp writes a bytes body in one go (and warns past 1 MiB that it may block
    # the loop); a file-like body is streamed in chunks. A new one for every try.
    data: bytes | io.BytesIO | None = body
    if body is not None and len(body) > _STREAM_BODY_OVER:
        data = io.BytesIO(body)
    try:
        async with session.request(
            method, url, headers=dict(headers), params=params, data=data, **extra
        ) as response:
            if max_body is not None and response.status < 400:
                content = await _read_capped(response, max_body, url)
            else:
                content = await response.read()
            return _build_response(
                status=response.status, headers=response.headers, body=content, url=url
            )
    except aiohttp.ConnectionTimeoutError as exc:
        raise RequestTimeoutError(
            f"timed out connecting: {exc}", method=method, url=url, may_have_reached_server=False
        ) from exc
    except aiohttp.ClientProxyConnectionError as exc:
        # aiohttp names only host:port, which reads as Orchestrator's: say it is the
        # proxy (never its credentials) and where it came from.
        raise TransportError(
            f"cannot connect to the proxy {exc.host}:{exc.port} (from HTTPS_PROXY/HTTP_PROXY:"
            f" check it, or list this host in NO_PROXY): {exc.os_error}",
            method=method,
            url=url,
            may_have_reached_server=False,
        ) from exc
    except aiohttp.ClientConnectorError as exc:
        # Refused, DNS failure, TLS failure: the request never left.
        raise TransportError(
            f"cannot connect: {exc}", method=method, url=url, may_have_reached_server=False
        ) from exc
    except aiohttp.ClientHttpProxyError as exc:
        # The proxy refused the tunnel (CONNECT) to the server: nothing reached it.
        raise TransportError(
            _proxy_refused(exc), method=method, url=url, may_have_reached_server=False
        ) from exc
    except TimeoutError as exc:
        # A read timeout or the total timeout: the request may be on the server.
        raise RequestTimeoutError(
            f"no complete response in time ({type(exc).__name__})", method=method, url=url
        ) from exc
    except aiohttp.ClientError as exc:
        raise TransportError(
            f"connection failed: {type(exc).__name__}: {exc}", method=method, url=url
        ) from exc
    except ValueError as exc:
        if "AUTHORIZATION" not in str(exc):
            raise
        # A session that reads the environment per request (a proxy URL with
        # credentials: _sessions.py) adds a ~/.netrc entry for the host as Basic
        # credentials, which aiohttp refuses next to our bearer token.
        raise ConfigurationError(
            f"a .netrc entry (~/.netrc or $NETRC) for {URL(url).host} clashes with the "
            "bearer token: aiohttp reads .netrc when the proxy URL holds credentials "
            "(HTTPS_PROXY=http://USER:PASSWORD@...); remove that entry, or point NETRC "
            "at a file without it"
        ) from None
    except RuntimeError as exc:
        # aiohttp's "Session is closed": the application closed the session it
        # lent us (Transport checks first, but it can close while we wait).
        if not session.closed:
            raise
        raise ClientClosedError(session_closed=True) from exc


def _proxy_refused(exc: aiohttp.ClientHttpProxyError) -> str:
    what = f"the proxy refused to connect to the server: HTTP {exc.status} {exc.message}"
    if exc.status == 407:
        return f"{what}. {PROXY_CREDENTIALS_HINT}"
    return f"{what}; check the proxy (HTTPS_PROXY, NO_PROXY)"


async def _read_capped(response: aiohttp.ClientResponse, max_body: int, url: str) -> bytes:
    if response.content_length is not None:
        check_blob_size(response.content_length, max_body, url)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(_CHUNK):
        size += len(chunk)
        check_blob_size(size, max_body, url)
        chunks.append(chunk)
    return b"".join(chunks)


class AiohttpSender:
    """:class:`~async_orch._seams.HTTPSender` over an aiohttp session (not closed here).

    Args:
        session: the session to send with.
        timeout: per-request timeout (the session's if None).
    """

    def __init__(
        self, session: aiohttp.ClientSession, *, timeout: aiohttp.ClientTimeout | None = None
    ) -> None:
        self.session = session
        self._timeout = timeout

    def __repr__(self) -> str:
        return "AiohttpSender()"

    @property
    def closed(self) -> bool:
        return self.session.closed

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        max_body: int | None = None,
    ) -> Coroutine[Any, Any, Response]:
        # send_once's coroutine itself, not one awaiting it: a frame less a request.
        return send_once(
            self.session,
            method,
            url,
            headers=headers,
            params=params,
            body=body,
            client_timeout=self._timeout,
            max_body=max_body,
        )
