"""Malformed requests and settings are refused before anything starts, with a
message naming what is wrong, never a TypeError from deep inside a batch after
other jobs were started."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from test_dispatcher_support import START_JOBS, fast_poll, fast_settings, requests_to, scenario

from async_orch._client import OrchestratorClient
from async_orch._dispatcher import DispatchLimits
from async_orch._errors import ConfigurationError, InvalidRequestError
from async_orch._jobs import JobRequest, checked_requests, start_body
from async_orch._jsonvalues import MAX_DEPTH
from async_orch._models import JobPriority, StartStrategy
from async_orch._options import Hooks, StopPolicy


def refused(**fields: Any) -> str:
    arguments: dict[str, Any] = {"process": "Echo", "folder": "Shared", **fields}
    with pytest.raises(InvalidRequestError) as caught:
        JobRequest(**arguments)
    return str(caught.value)


def test_inputs_given_as_json_text_are_refused_with_the_fix() -> None:
    message = refused(inputs='{"a": 1}')
    assert "JobRequest.inputs must be a dict" in message
    assert "pass a dict, not JSON text" in message
    assert "got list" in refused(inputs=[1, 2])


def test_process_folder_and_reference_of_the_wrong_type_are_refused() -> None:
    assert "JobRequest.process must be the process name (a string), got NoneType" in refused(
        process=None
    )
    # folder=None is allowed: the client's default folder (tests/test_default_folder.py).
    assert "got ''" in refused(folder="")
    assert "got True" in refused(folder=True)
    assert "JobRequest.reference must be a string, got int" in refused(reference=7)


@pytest.mark.parametrize("timeout", [0, -1, math.nan, math.inf, "30"])
def test_a_job_timeout_must_be_a_positive_finite_number(timeout: object) -> None:
    assert "JobRequest.timeout must be a positive number of seconds" in refused(timeout=timeout)


def test_well_formed_requests_are_accepted() -> None:
    request = JobRequest(process="Echo", folder=42, inputs={"a": 1}, timeout=2.5)
    assert request.folder == 42
    assert JobRequest(process="Echo", folder="Finance/Invoices").inputs is None


@pytest.mark.parametrize("grace", [-1, math.nan, math.inf, "5"])
def test_a_stop_grace_must_be_zero_or_more_seconds(grace: object) -> None:
    with pytest.raises(InvalidRequestError, match=r"StopPolicy\.grace must be zero or a positive"):
        StopPolicy(on_timeout=True, grace=grace)  # type: ignore[arg-type]
    assert StopPolicy(on_timeout=True, grace=0).grace == 0


@pytest.mark.parametrize("seconds", [0, -1, math.nan, math.inf, "5"])
def test_a_pending_timeout_must_be_positive_seconds(seconds: object) -> None:
    with pytest.raises(InvalidRequestError, match=r"StopPolicy\.pending_timeout must be"):
        StopPolicy(pending_timeout=seconds)  # type: ignore[arg-type]
    assert StopPolicy(pending_timeout=0.5).pending_timeout == 0.5


def test_stop_policy_and_hooks_refuse_what_they_cannot_use() -> None:
    with pytest.raises(InvalidRequestError, match=r"StopPolicy\.on_timeout must be True or False"):
        StopPolicy(on_timeout="yes")  # type: ignore[arg-type]
    with pytest.raises(
        InvalidRequestError, match=r"StopPolicy\.on_cancel must be True, False or None"
    ):
        StopPolicy(on_cancel=1)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match=r"Hooks\.on_started must be a function or None"):
        Hooks(on_started="persist")  # type: ignore[arg-type]


def test_stopping_on_cancel_follows_stopping_on_timeout_unless_said() -> None:
    assert not StopPolicy().stops_on_cancel
    assert StopPolicy(on_timeout=True).stops_on_cancel
    assert not StopPolicy(on_timeout=True, on_cancel=False).stops_on_cancel
    assert StopPolicy(on_cancel=True).stops_on_cancel


def test_priority_and_strategy_names_become_enum_members() -> None:
    request = JobRequest(process="Echo", folder="HR", priority="high", strategy="modernjobscount")
    assert request.priority is JobPriority.HIGH
    assert request.strategy is StartStrategy.MODERN_JOBS_COUNT
    assert JobRequest(process="Echo", folder="HR").strategy is StartStrategy.MODERN_JOBS_COUNT
    text: str = "High"
    assert request.priority == text  # still equal to the text users compare with
    unknown = JobRequest(process="Echo", folder="HR", priority="Urgent")
    with pytest.raises(InvalidRequestError, match="must be one of Low, Normal, High; got 'Urgent'"):
        unknown.check()  # refused with the batch, by name


def test_limits_of_the_wrong_type_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="max_in_flight must be a number, got 'x'"):
        DispatchLimits(max_in_flight="x")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="per_folder must be a number"):
        DispatchLimits(per_folder=2.5)  # type: ignore[arg-type]


async def test_a_bad_item_refuses_the_whole_batch_before_any_job_starts(
    start_simulator: Callable[..., Any],
) -> None:
    sim = await start_simulator(scenario(), time_scale=50.0)
    good = JobRequest(process="Echo", folder="HR", inputs={"n": 1})
    not_a_request: Any = {"process": "Echo", "folder": "HR"}
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        with pytest.raises(InvalidRequestError, match=r"requests\[1\] is a dict, not a JobRequest"):
            await orch.run_jobs([good, not_a_request])
        with pytest.raises(InvalidRequestError, match=r"requests\[1\] is a dict"):
            await orch.start_jobs([good, not_a_request])
        with pytest.raises(InvalidRequestError, match="requests must be a list of JobRequest"):
            await orch.run_jobs(good)  # type: ignore[arg-type]
        with pytest.raises(InvalidRequestError, match="requests is None: give a list"):
            await orch.run_jobs(None)  # type: ignore[arg-type]
        with pytest.raises(InvalidRequestError, match="timeout must be a positive number"):
            await orch.run_jobs([good], timeout=-1)
        with pytest.raises(InvalidRequestError, match=r"stop must be a StopPolicy \(e.g. stop="):
            await orch.run_jobs([good], stop=True)  # type: ignore[arg-type]
        with pytest.raises(InvalidRequestError, match="hooks must be a Hooks"):
            await orch.wait_jobs([], hooks=print)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="max_in_flight must be a number"):
            orch.set_limits(max_in_flight="x")  # type: ignore[arg-type]
    assert requests_to(sim, START_JOBS) == 0


def test_every_mistake_of_a_batch_comes_in_one_error_duplicate_references_included() -> None:
    requests = [
        JobRequest(process="Echo", folder="Shared", reference="r1"),
        JobRequest(process="Echo", folder="Shared", reference="r1"),
        JobRequest(process="Echo", folder="Shared", inputs={"x": math.nan}),
        JobRequest(process="Echo", folder="Shared", jobs_count=0),
    ]
    with pytest.raises(InvalidRequestError) as caught:
        checked_requests(requests)
    lines = str(caught.value).splitlines()
    assert [line.split(":")[0] for line in lines if line.startswith("requests[")] == [
        "requests[1]",
        "requests[2]",
        "requests[3]",
    ], lines
    assert "reference 'r1' is also requests[0]'s" in lines[1] + lines[0]


CHECKED_SHAPES: list[dict[str, Any]] = [
    {"inputs": {"a": 1, "text": "é\u2028"}},
    {"folder": 3},
    {"priority": "high", "strategy": "jobscount", "jobs_count": 3, "runtime_type": "Unattended"},
    {"inputs": {}, "specific_priority": 7},
    {"strategy": "Specific", "robot_ids": [1, 2], "machine_session_ids": [5]},
]


@pytest.mark.parametrize("fields", CHECKED_SHAPES)
def test_a_checked_request_s_body_is_the_one_a_full_build_makes(fields: dict[str, Any]) -> None:
    # A batch builds each body without checking again what checked_requests checked:
    # every field, the inputs' text included, must come out as the checked build's.
    request = JobRequest(**{"process": "Echo", "folder": "Shared", **fields})
    inputs_json = checked_requests([request]).inputs_json[0]
    fast = start_body(
        request, release_key="K", reference="batch-1", inputs_json=inputs_json, checked=True
    )
    full = start_body(request, release_key="K", reference="batch-1")
    assert fast == full
    assert fast.input_arguments_json == full.input_arguments_json
    assert fast.to_api() == full.to_api()


def test_a_checked_build_still_refuses_what_changed_or_was_never_checked() -> None:
    # The id lists given may change after the check (review of 859370d: emptied, or
    # filled, they skipped the strategy's checks); a release without a key is no
    # checked field: all are refused as a full build refuses them.
    robots = [1, 2]
    request = JobRequest(process="Echo", folder="Shared", strategy="Specific", robot_ids=robots)
    checked_requests([request])
    robots.append("x")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="robot_ids must hold integer ids"):
        start_body(request, release_key="K", reference="r", checked=True)
    robots.clear()
    with pytest.raises(InvalidRequestError, match="strategy Specific needs robot_ids"):
        start_body(request, release_key="K", reference="r", checked=True)
    later: list[int] = []
    counted = JobRequest(process="Echo", folder="Shared", robot_ids=later)
    checked_requests([counted])
    later.append(4)
    with pytest.raises(InvalidRequestError, match="robot_ids only apply to strategy Specific"):
        start_body(counted, release_key="K", reference="r", checked=True)
    machines = [7]
    on = JobRequest(process="Echo", folder="Shared", machine_session_ids=machines)
    checked_requests([on])
    machines.append("y")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="machine_session_ids must hold integer ids"):
        start_body(on, release_key="K", reference="r", checked=True)
    plain = JobRequest(process="Echo", folder="Shared")
    with pytest.raises(InvalidRequestError, match="exactly one of release_key"):
        start_body(plain, release_key=None, reference="r", checked=True)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="non-empty string"):
        start_body(plain, release_key=" ", reference="r", checked=True)


class LyingKeys(dict[Any, Any]):
    def __iter__(self) -> Any:
        return iter([str(key) for key in dict.keys(self)])


class EqualToAll(int):
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = int.__hash__


class Unhashable(int):
    def __hash__(self) -> int:
        raise ValueError("no hash")


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def mistakes_of(requests: list[JobRequest]) -> list[str]:
    """The lines of checked_requests' refusal (none: accepted)."""
    try:
        checked_requests(requests)
    except InvalidRequestError as exc:
        return [line for line in str(exc).splitlines() if line.startswith("requests[")]
    return []


def test_a_batch_checks_every_request_as_if_it_came_alone() -> None:
    # Requests of one shape are checked in full once, then only for their Reference
    # and inputs: each mistake must still come out as it does for the request alone.
    good: dict[str, Any] = {"process": "Echo", "folder": "Shared"}
    wrong: list[dict[str, Any]] = [
        {"reference": "r" * 129},
        {"inputs": {"x": math.nan}},
        {"inputs": {"deep": nested(MAX_DEPTH + 5)}},
        {"inputs": {"s": "\ud800"}},
        {"jobs_count": True},
        {"jobs_count": 1.0},
        {"priority": "High", "specific_priority": 5},
        {"specific_priority": 7.0},
        # From the review of 7c86f67: a Mapping whose iteration lies about its keys.
        {"inputs": LyingKeys({1: "v"})},
    ]
    for fields in wrong:
        alone = mistakes_of([JobRequest(**{**good, **fields})])
        assert alone, fields
        after = mistakes_of([JobRequest(**good), JobRequest(**{**good, **fields})])
        assert after == [alone[0].replace("requests[0]", "requests[1]", 1)], fields
    # A value equal to every other is no shape of its own; one that cannot be
    # hashed is checked in full, no traceback (review of 7c86f67).
    [refused] = mistakes_of(
        [
            JobRequest(**good, specific_priority=EqualToAll(5)),
            JobRequest(**good, specific_priority=EqualToAll(500)),
        ]
    )
    assert refused.startswith("requests[1]: specific_priority_value must be an integer from 1")
    assert mistakes_of([JobRequest(**good, jobs_count=Unhashable(2))] * 2) == []
    # Accepted requests get the inputs' text a full check gives, whatever came first.
    batch = [JobRequest(**good, inputs={"n": n, "t": "é" * n}) for n in range(3)]
    batch += [JobRequest(**good), JobRequest(**good, inputs={}), JobRequest(**good, reference="")]
    assert checked_requests(batch).inputs_json == [
        checked_requests([request]).inputs_json[0] for request in batch
    ]
