"""The pure rules of exactly-once starts: References, and which failures may
have created a job (plain sync tests)."""

from __future__ import annotations

import pytest

from async_orch._errors import (
    BadRequestError,
    OrchestratorError,
    RateLimitedError,
    ResponseDecodeError,
    ServerError,
    StartAnswerUnreadableError,
    TransportError,
)
from async_orch._jobs import JobRequest, Outcome
from async_orch._starting import batch_references, may_have_started
from async_orch._states import JobState


def request(reference: str | None = None) -> JobRequest:
    return JobRequest(process="Echo", folder="Shared", reference=reference)


def test_references_keep_the_users_and_number_the_others_under_a_prefix() -> None:
    references = batch_references([request(), request("mine"), request()], prefix="ao-b1")
    assert references == ["ao-b1-0", "mine", "ao-b1-2"]


def test_generated_references_differ_from_one_batch_to_the_next() -> None:
    first, second = batch_references([request()]), batch_references([request()])
    assert first != second
    assert first[0].startswith("async-orch-") and len(first[0]) <= 128


def test_references_too_long_or_shared_are_refused_with_the_requests_named() -> None:
    with pytest.raises(
        OrchestratorError,
        match="request 1: reference is 129 characters; Orchestrator accepts at most",
    ):
        batch_references([request(), request("x" * 129)])
    # Counted as StartJobs counts it (UTF-16 units), as JobRequest.check() does.
    with pytest.raises(OrchestratorError, match="reference is 200 characters"):
        batch_references([request("\N{GRINNING FACE}" * 100)])
    with pytest.raises(OrchestratorError, match="requests 0 and 2 share the reference 'same'"):
        batch_references([request("same"), request(), request("same")])


def api_error(kind: type[ServerError | RateLimitedError | BadRequestError], status: int,
              retry_after: float | None = None) -> OrchestratorError:  # fmt: skip
    return kind(status=status, method="POST", url="u", message="m", retry_after=retry_after)


@pytest.mark.parametrize(
    ("error", "maybe"),
    [
        (TransportError("reset", method="POST", url="u"), True),
        (TransportError("refused", method="POST", url="u", may_have_reached_server=False), False),
        (api_error(ServerError, 500), True),
        (api_error(ServerError, 502), True),
        (api_error(ServerError, 503), True),  # a proxy's 503 may come after forwarding
        (api_error(ServerError, 503, retry_after=5.0), False),  # a deliberate "not now"
        (api_error(RateLimitedError, 429, retry_after=5.0), False),
        (api_error(BadRequestError, 400), False),
        (StartAnswerUnreadableError("StartJobs answered 201 but ..."), True),  # jobs exist
        (ResponseDecodeError("expected a FolderDto object"), False),  # not StartJobs' answer
    ],
)
def test_which_start_failures_may_have_created_jobs(error: OrchestratorError, maybe: bool) -> None:
    assert may_have_started(error) is maybe


def test_only_final_states_have_an_outcome() -> None:
    assert Outcome.of_final(JobState.SUCCESSFUL) is Outcome.SUCCESSFUL
    assert Outcome.of_final(JobState.FAULTED) is Outcome.FAULTED
    assert Outcome.of_final(JobState.STOPPED) is Outcome.STOPPED
    assert Outcome.of_final(JobState.RUNNING) is None
