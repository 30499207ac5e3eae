"""A list budget shared by a fleet of workers through Redis (the ``redis`` extra).

Why a rolling log in a Lua script, not ``INCR`` with an expiry per window:
Orchestrator counts its 100 a minute over a rolling window, to the second
(orchestrator-api.md §4). Fixed windows (a counter per clock minute) let 100
calls through at 12:00:59 and 100 more at 12:01:00: 200 in two seconds, which
the server refuses. So the budget keeps the time of every call of the last
window in a sorted set and decides in one Lua script, which Redis runs
atomically: drop the calls that left the window, count the rest, add this one
if it fits, else answer how long until the oldest leaves. The script reads the
time from Redis (``TIME``), so hosts with skewed clocks still share one window.
A 429 seen by any worker sets a pause key that every worker's next ``acquire``
honours.

If Redis cannot be reached, list calls go on under each client's own adaptive
budget (a warning says so): losing the coordinator must not stop the fleet's
watching, and the server's 429s still slow everyone down.
"""

from __future__ import annotations

import itertools
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio

from async_orch._errors import ConfigurationError
from async_orch._list_budget import LIST_WINDOW
from async_orch._logs import get_logger
from async_orch._shared_budget import check_budget

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = ["RedisListBudget"]

log = get_logger("async_orch.list_budget")

_WARN_EVERY = 30.0  # seconds between two warnings that Redis is unreachable

# KEYS[1]: the sorted set of call times (ms), KEYS[2]: the pause-until key (ms).
# ARGV[1]: limit, ARGV[2]: window (ms), ARGV[3]: this call's unique member.
# Returns 0 when the call was counted, else the milliseconds to wait.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if paused > now then
  return paused - now
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""

# KEYS[1]: the pause-until key (ms). ARGV[1]: the pause (ms). Only ever extends it.
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = now + tonumber(ARGV[1])
local paused = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ms > paused then
  redis.call('SET', KEYS[1], until_ms, 'PX', tonumber(ARGV[1]) + 1000)
end
return 0
"""


class RedisListBudget:
    """At most ``per_minute`` list calls in any window for every worker sharing
    ``key`` on one Redis: give each worker's client one, with the same key.

    Args:
        url: the Redis URL (``redis://host:6379/0``; a password in it is never logged).
        per_minute: list calls the fleet may make per window (the tenant allows
            100 for all its callers: leave room for the others).
        key: names the tenant's budget in Redis; workers of one tenant use the same.
        window: the window in seconds (60, as Orchestrator counts).

    Raises:
        ConfigurationError: bad arguments, or the ``redis`` extra is not installed.
    """

    def __init__(
        self,
        url: str,
        *,
        per_minute: int = 60,
        key: str = "default",
        window: float = LIST_WINDOW,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        check_budget(per_minute, window)
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - parsed lazily: a bad port raises here
        except ValueError as exc:
            raise ConfigurationError(
                f"the list budget's Redis URL is malformed ({exc}): use redis://HOST:PORT/DB"
            ) from None
        if parts.scheme not in ("redis", "rediss", "unix") or not (parts.hostname or parts.path):
            raise ConfigurationError(
                "the list budget's Redis URL must look like redis://HOST:PORT/DB "
                f"(or rediss://, unix://), got scheme {parts.scheme!r}"
            )
        try:
            import redis.asyncio as redis_asyncio
        except ImportError as exc:
            raise ConfigurationError(
                "a Redis list budget needs the redis extra: pip install 'async-orch[redis]'"
            ) from exc
        self.per_minute = per_minute
        self.window = window
        self._where = f"{parts.scheme}://{parts.hostname or parts.path}:{parts.port or ''}"
        self._keys = [f"async-orch:list-budget:{key}:calls", f"async-orch:list-budget:{key}:pause"]
        self._sleep = sleep
        self._redis: Redis = redis_asyncio.Redis.from_url(
            url, socket_timeout=5.0, socket_connect_timeout=5.0
        )
        self._acquire: AsyncScript = self._redis.register_script(_ACQUIRE)
        self._pause: AsyncScript = self._redis.register_script(_PAUSE)
        self._member = uuid.uuid4().hex
        self._counter = itertools.count()
        self._warned_at = -math.inf
        self.unreachable = 0  # calls let through because Redis could not be asked

    def __repr__(self) -> str:
        return f"RedisListBudget({self._where}, per_minute={self.per_minute})"

    async def acquire(self) -> None:
        window_ms = round(self.window * 1000)
        while True:
            member = f"{self._member}:{next(self._counter)}"
            wait_ms = await self._call(self._acquire, [self.per_minute, window_ms, member])
            if wait_ms is None or wait_ms <= 0:
                return
            await self._sleep(wait_ms / 1000)

    async def throttled(self, retry_after: float) -> None:
        await self._call(self._pause, [max(1, round(retry_after * 1000))], keys=self._keys[1:])

    async def check(self) -> None:
        """Ask Redis once, before anything starts: credentials or a database that
        Redis refuses are a mistake to fix (never a silent fall-back); a Redis that
        cannot be reached is let through here, as later (each client's own budget).

        Raises:
            ConfigurationError: Redis refused the credentials or the database.
        """
        from redis.exceptions import AuthenticationError, ResponseError

        try:
            await self._redis.ping()
        except (AuthenticationError, ResponseError) as exc:
            raise ConfigurationError(
                f"the list budget's Redis at {self._where} refused the connection: "
                f"{type(exc).__name__}: {exc}; check the password and database in "
                "--list-budget-redis (redis://:PASSWORD@HOST:PORT/DB)"
            ) from None
        except Exception:
            return

    async def aclose(self) -> None:
        await self._redis.aclose()

    async def _call(
        self, script: AsyncScript, args: list[Any], *, keys: list[str] | None = None
    ) -> int | None:
        """Run a script; None when Redis could not be asked (logged, rate-limited)."""
        from redis.exceptions import RedisError

        try:
            return int(await script(keys=keys or self._keys, args=args))
        except (RedisError, OSError) as exc:
            self.unreachable += 1
            now = time.monotonic()
            if now - self._warned_at >= _WARN_EVERY:
                self._warned_at = now
                log.warning(
                    "async_orch.list_budget_unreachable",
                    redis=self._where,
                    error=type(exc).__name__,
                    fallback="each client's own list budget",
                )
            return None
