"""The one place aiohttp client sessions are made: proxies and trusted CAs.

Every component that talks HTTP (the transport and its token manager,
``async-orch check``, the load test's probes) gets its session from
:func:`new_session` or :func:`session_for`, so all of them honour:

* ``HTTPS_PROXY`` / ``HTTP_PROXY`` (any case, ``user:pass@`` allowed) and
  ``NO_PROXY``, read the way aiohttp's ``trust_env=True`` reads them (urllib's
  ``getproxies`` and ``proxy_bypass``);
* a CA bundle (``Settings.ca_bundle``: ``ASYNC_ORCH_CA_BUNDLE`` or ``SSL_CERT_FILE``)
  that replaces the system's CAs, as curl's ``--cacert`` does.

Why not simply ``trust_env=True``: aiohttp then looks the proxy up in a worker
thread and reads ``~/.netrc`` in another, for every request (measured: about twice
the client CPU per request on loopback), and a ``.netrc`` entry for the
Orchestrator host would add Basic credentials that clash with the bearer token
(aiohttp raises ValueError). A session talks to one or two hosts (Orchestrator,
the token endpoint), so the proxy is decided once, when the session is made; only
when those hosts need different proxies, or the proxy URL holds credentials, does
the session fall back to ``trust_env=True``.

These sessions never resend a request by themselves (aiohttp does so once for an
idempotent request whose kept-alive connection dropped): the transport's retry
policy, counters and hooks see every try.
"""

from __future__ import annotations

import os
import ssl
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from async_orch._config import ConnectionLimits, Settings
from async_orch._errors import ConfigurationError
from async_orch._jsonvalues import shown

__all__ = [
    "ProxyChoice",
    "check_proxies",
    "choose_proxy",
    "new_session",
    "request_timeout",
    "session_for",
    "ssl_context",
]

# The proxies aiohttp reads from the environment (helpers.proxies_from_env), by scheme.
_PROXY_SCHEMES = ("http", "https", "ws", "wss")


@dataclass(frozen=True, slots=True)
class ProxyChoice:
    """How a session reaches its hosts.

    Attributes:
        proxy: the one proxy for every host (None: direct), when ``per_request`` is False.
        per_request: let aiohttp decide per request (``trust_env=True``): the hosts
            disagree (one is in NO_PROXY, say), or the proxy URL holds credentials
            (aiohttp deprecates passing them to the session).
    """

    proxy: URL | None = None
    per_request: bool = False


def _proxy_for(url: str) -> tuple[URL | None, aiohttp.BasicAuth | None]:
    try:
        return get_env_proxy_for_url(URL(url))
    except LookupError:  # no proxy for this scheme, or the host is in NO_PROXY
        return None, None


def choose_proxy(urls: Iterable[str]) -> ProxyChoice:
    """The proxy (from the environment) for a session that will reach ``urls``."""
    choices = {_proxy_for(url) for url in urls}
    proxy, auth = choices.pop() if len(choices) == 1 else (None, None)
    if choices or auth is not None:  # several choices (one was popped), or credentials
        return ProxyChoice(per_request=True)
    return ProxyChoice(proxy)


def _proxy_variable(scheme: str, value: str) -> str:
    """The variable a proxy URL came from: ``{scheme}_proxy`` in some case (urllib
    prefers the lowercase one)."""
    names = [n for n, v in os.environ.items() if n.lower() == f"{scheme}_proxy" and v == value]
    return min(names, key=lambda n: n != n.lower(), default=f"{scheme.upper()}_PROXY")


def _proxy_problem(value: str) -> str | None:
    """Why aiohttp could not use ``value`` as a proxy URL, or None."""
    try:
        url = URL(value)
        port = url.port
    except ValueError as exc:  # an unclosed [, a bad port, a host IDNA refuses
        return f"not a valid URL ({exc})"
    if url.scheme not in ("http", "https") or not url.host or port is None:
        return "not an http:// URL with a host"
    return None


def check_proxies() -> None:
    """Refuse a proxy variable aiohttp would fail on deep inside a request (an
    AssertionError for ``htp://x``, a ValueError for ``http://[::1``).

    Raises:
        ConfigurationError: naming the variable and the fix.
    """
    proxies = urllib.request.getproxies_environment()  # what aiohttp reads
    for scheme in _PROXY_SCHEMES:
        value = proxies.get(scheme)
        if value is None or (problem := _proxy_problem(value)) is None:
            continue
        variable = _proxy_variable(scheme, value)
        # A proxy URL may hold user:password@: then it is not shown.
        what = "" if "@" in value else f" {shown(value)}"
        raise ConfigurationError(
            f"proxy variable {variable}{what} is {problem}; write it like "
            f"http://proxy.example.com:3128, or unset {variable}"
        )


def ssl_context(ca_bundle: str | None) -> ssl.SSLContext | bool:
    """What to verify servers with: the bundle's CAs only, or (True) the system's."""
    if ca_bundle is None:
        return True
    try:
        return ssl.create_default_context(cafile=ca_bundle)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"cannot load the CA bundle {ca_bundle!r}: {exc}; give a PEM file of trusted "
            "certificates (ASYNC_ORCH_CA_BUNDLE or SSL_CERT_FILE)"
        ) from None


def new_session(
    urls: Iterable[str],
    *,
    ca_bundle: str | None = None,
    limits: ConnectionLimits | None = None,
    timeout: aiohttp.ClientTimeout | None = None,
) -> aiohttp.ClientSession:
    """A session for reaching ``urls`` through the environment's proxy, if any.

    Call it inside a running event loop; the caller closes the session.

    Raises:
        ConfigurationError: the CA bundle cannot be loaded, or a proxy variable is
            not a usable URL.
    """
    check_proxies()
    limits = limits or ConnectionLimits()
    connector = aiohttp.TCPConnector(
        limit=limits.max_connections,
        limit_per_host=limits.per_host,
        ssl=ssl_context(ca_bundle),
    )
    choice = choose_proxy(urls)
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=timeout or aiohttp.ClientTimeout(total=60),
        proxy=choice.proxy,
        trust_env=choice.per_request,
    )
    # One owner for retries: aiohttp would silently send an idempotent request again
    # when a kept-alive connection drops under it, unseen by the transport's policy,
    # counters and hooks. (aiohttp's own test client turns it off the same way.)
    if hasattr(session, "_retry_connection"):
        session._retry_connection = False
    return session


def request_timeout(settings: Settings) -> aiohttp.ClientTimeout:
    """The per-request timeout of ``settings`` (``ASYNC_ORCH_TIMEOUT`` and
    ``ASYNC_ORCH_CONNECT_TIMEOUT``), as aiohttp takes it."""
    # sock_connect, not connect: aiohttp's "connect" also counts the wait for a
    # free pooled connection, which is long by design when many requests queue.
    return aiohttp.ClientTimeout(
        total=settings.timeout.total, sock_connect=settings.timeout.connect
    )


def session_for(
    settings: Settings, *, timeout: aiohttp.ClientTimeout | None = None
) -> aiohttp.ClientSession:
    """A session for the Orchestrator and token endpoint of ``settings``."""
    urls = [settings.orchestrator.base]
    if settings.token_url is not None:
        urls.append(settings.token_url)
    return new_session(urls, ca_bundle=settings.ca_bundle, limits=settings.limits, timeout=timeout)
