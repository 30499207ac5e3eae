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
