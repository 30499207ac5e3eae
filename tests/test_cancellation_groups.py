"""reraise: what a task group wrapped comes out as the caller's typed error; and what
is said of the results a batch ended by an error does not return."""

from __future__ import annotations

import pytest
import structlog

from async_orch._cancellation import reason_of, report_unreturned_results, reraise
from async_orch._errors import AuthenticationError, ClientClosedError, InvalidRequestError


def _auth() -> AuthenticationError:
    return AuthenticationError("token refused")


def test_a_group_of_one_fatal_error_type_comes_out_as_its_first() -> None:
    # A token refused while several tasks call at once: each task fails alike.
    first = _auth()
    group = ExceptionGroup("tg", [first, ExceptionGroup("inner", [_auth(), _auth()])])
    with pytest.raises(AuthenticationError) as caught:
        reraise(group)
    assert caught.value is first
    assert reason_of(group) == "AuthenticationError"


def test_closed_client_errors_beside_one_fatal_type_still_collapse() -> None:
    group = ExceptionGroup("tg", [ClientClosedError(), _auth(), _auth()])
    with pytest.raises(AuthenticationError):
        reraise(group)


def test_a_group_of_different_errors_stays_a_group() -> None:
    group = ExceptionGroup("tg", [_auth(), InvalidRequestError("bad")])
    with pytest.raises(ExceptionGroup):
        reraise(group)
    other = ExceptionGroup("tg", [ValueError("a"), ValueError("b")])  # not ours: kept
    with pytest.raises(ExceptionGroup):
        reraise(other)


def test_one_error_ending_two_batches_gets_one_note_and_each_batch_its_warning() -> None:
    """A token refused ends every batch of a client with the same exception object
    (review h11): each batch's results are logged, the note is added once."""
    from async_orch import JobRequest, Outcome
    from async_orch._jobs import JobResult

    shared = _auth()
    request = JobRequest(process="Echo", folder="Shared")
    with structlog.testing.capture_logs() as logs:
        for outcome in (Outcome.SUCCESSFUL, Outcome.FAULTED):
            result = JobResult(index=0, request=request, outcome=outcome)
            report_unreturned_results(shared, [result])
    [note] = shared.__notes__
    assert note.startswith("1 job(s) of the batch had ended before this error (1 successful)")
    said = [e["by_outcome"] for e in logs if e["event"] == "async_orch.results_not_returned"]
    assert said == [{"successful": 1}, {"faulted": 1}]


async def test_every_protected_call_is_shielded_and_given_the_abandon_wait() -> None:
    """StartShield makes its first scope with anyio.CancelScope and the next ones from
    that scope's class (cheaper): both kinds must shield a StartJobs in flight from
    its batch's cancellation, and both get ABANDON_START_WAIT once it is abandoned."""
    import anyio

    from async_orch._cancellation import ABANDON_START_WAIT, StartShield

    shield = StartShield()
    entered = [anyio.Event(), anyio.Event()]
    answer = anyio.Event()
    finished: list[int] = []
    scopes: list[anyio.CancelScope] = []

    async def post(n: int) -> None:
        with shield.protect() as scope:
            scopes.append(scope)
            entered[n].set()
            await answer.wait()  # the StartJobs answer, still to come
            finished.append(n)

    async def server() -> None:  # answers both calls well after the cancellation
        await entered[1].wait()
        for _ in range(20):
            await anyio.lowlevel.checkpoint()
        answer.set()

    async with anyio.create_task_group() as outer:
        outer.start_soon(server)
        async with anyio.create_task_group() as batch:
            batch.start_soon(post, 0)
            await entered[0].wait()
            batch.start_soon(post, 1)
            await entered[1].wait()
            batch.cancel_scope.cancel()  # the batch is cancelled with both calls in flight
            shield.abandon()
    assert finished == [0, 1]  # neither call was cut off
    assert type(scopes[1]) is type(scopes[0])
    assert isinstance(scopes[1], anyio.CancelScope) and scopes[1].shield
    limit = anyio.current_time() + ABANDON_START_WAIT
    assert all(s.deadline <= limit for s in scopes)
    assert shield.uncertain == []
