"""RedisListBudget against a real redis-server (started per test on a Unix socket):
workers sharing one key share one rolling window exactly, a 429 pauses them all,
and an unreachable Redis falls back to each client's own budget."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
import structlog

from async_orch import ConfigurationError, RedisListBudget

pytestmark = pytest.mark.slow  # starts redis-server


class Waited(Exception):
    """Raised by the injected sleep: the budget asked to wait this long."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


async def refuse_to_wait(seconds: float) -> None:
    raise Waited(seconds)


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (.ci/run installs it with apt-get)")
    socket = tmp_path / "redis.sock"
    process = subprocess.Popen(
        [server, "--port", "0", "--unixsocket", str(socket), "--save", "", "--appendonly", "no"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:  # wait for its own word that it is ready
            if "ready to accept connections" in line.lower():
                break
        else:
            pytest.fail(f"redis-server exited with {process.wait()} before it was ready")
        yield f"unix://{socket}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


async def test_workers_sharing_a_key_share_one_rolling_window_exactly(redis_url: str) -> None:
    workers = [
        RedisListBudget(redis_url, per_minute=5, key="acme/tenant", sleep=refuse_to_wait)
        for _ in range(3)
    ]
    other_tenant = RedisListBudget(redis_url, per_minute=5, key="acme/other", sleep=refuse_to_wait)
    try:
        for worker in [*workers, *workers[:2]]:  # 5 calls, from three workers
            await worker.acquire()
        with pytest.raises(Waited) as waited:
            await workers[2].acquire()  # the 6th waits for the first to leave the window
        assert 55 < waited.value.seconds <= 60
        await other_tenant.acquire()  # another key, another budget
    finally:
        for budget in [*workers, other_tenant]:
            await budget.aclose()


async def test_concurrent_acquires_never_exceed_the_limit(redis_url: str) -> None:
    workers = [RedisListBudget(redis_url, per_minute=7, sleep=refuse_to_wait) for _ in range(4)]
    granted = 0

    async def take(budget: RedisListBudget) -> None:
        nonlocal granted
        try:
            await budget.acquire()
            granted += 1
        except Waited:
            pass

    try:
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                for worker in workers:
                    tg.start_soon(take, worker)
        assert granted == 7
    finally:
        for worker in workers:
            await worker.aclose()


async def test_a_429_seen_by_one_worker_pauses_every_worker(redis_url: str) -> None:
    first = RedisListBudget(redis_url, per_minute=50, sleep=refuse_to_wait)
    second = RedisListBudget(redis_url, per_minute=50, sleep=refuse_to_wait)
    try:
        await first.throttled(20.0)
        with pytest.raises(Waited) as waited:
            await second.acquire()
        assert 19 < waited.value.seconds <= 20
    finally:
        await first.aclose()
        await second.aclose()


async def test_an_unreachable_redis_lets_calls_through_with_a_warning(tmp_path: Path) -> None:
    budget = RedisListBudget(f"unix://{tmp_path}/nothing.sock", per_minute=1, sleep=refuse_to_wait)
    try:
        with structlog.testing.capture_logs() as logs:
            await budget.acquire()
            await budget.acquire()  # over the limit, but nobody can count: let through
        assert budget.unreachable == 2
        warnings = [e for e in logs if e["event"] == "async_orch.list_budget_unreachable"]
        assert len(warnings) == 1  # once, not per call
    finally:
        await budget.aclose()


def test_bad_arguments_are_one_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="redis://HOST:PORT"):
        RedisListBudget("http://localhost:6379")
    with pytest.raises(ConfigurationError, match="per_minute"):
        RedisListBudget("redis://localhost", per_minute=0)


def test_the_password_in_the_url_is_never_shown() -> None:
    budget = RedisListBudget("redis://:s3cret@localhost:6379/0")
    assert "s3cret" not in repr(budget)


async def test_a_refused_password_or_database_is_a_mistake_not_a_fall_back(
    redis_url: str,
) -> None:
    # (A wrong password is refused the same way, as AuthenticationError: this
    # server has none to check.)
    for url, needle in [(f"{redis_url}?db=99999", "refused the connection: ResponseError")]:
        budget = RedisListBudget(url, per_minute=5)
        try:
            with pytest.raises(ConfigurationError, match=needle) as refused:
                await budget.check()
            assert "wrong-pw" not in str(refused.value)
        finally:
            await budget.aclose()
    budget = RedisListBudget(redis_url, per_minute=5)
    try:
        await budget.check()  # a Redis that takes us: fine
    finally:
        await budget.aclose()


def test_a_malformed_url_is_one_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="malformed") as caught:
        RedisListBudget("redis://:s3cretPW@[::1")
    assert "s3cretPW" not in str(caught.value)
