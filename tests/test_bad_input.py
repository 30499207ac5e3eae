"""Hostile input to the library (issue 11 point 4): one InvalidRequestError saying what
to fix, never a RecursionError, ValueError or UnicodeEncodeError from deep inside, and
a batch holding an invalid request starts nothing at all."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from test_dispatcher_support import START_JOBS, fast_poll, fast_settings, requests_to, scenario

from async_orch._client import OrchestratorClient
from async_orch._config import Settings, StaticToken
from async_orch._errors import ConfigurationError, InvalidRequestError
from async_orch._jobs import JobRequest, checked_requests
from async_orch._jsonvalues import MAX_DEPTH, json_problem, loads_strict
from async_orch._models import Job, dump_input_arguments, needs_input_file, parse_input_arguments


def nested(depth: int) -> Any:
    """A list ``depth`` levels deep, built without recursion."""
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


# Each: JSON text (as a user writes it) and what the message must say.
HOSTILE_TEXT = [
    ('{"a": ' + "[" * 1_000 + "]" * 1_000 + "}", "nested more than 64 levels deep"),
    ('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested more than 64 levels deep"),
    ('{"a": "\\ud800"}', "lone UTF-16 surrogate (\\ud800)"),
    ('{"a": "x\udcff"}', "holds the byte 0xff, which is not UTF-8"),
    ('{"a": ' + "7" * 4_301 + "}", "integer of more than 4,300 digits"),
    ('{"a": NaN}', "holds NaN, which is not JSON"),
    ('{"a": Infinity}', "holds Infinity"),
    ('{"a": -Infinity}', "holds -Infinity"),
    ('{"a": 1e400}', "the number 1e400, beyond what a double holds"),
    ('{"a": -1e400}', "the number -1e400"),
]
IDS = ["deep-1000", "deep-100000", "surrogate", "bad-byte", "big-int", "nan", "inf",
       "-inf", "1e400", "-1e400"]  # fmt: skip


@pytest.mark.parametrize(("text", "needle"), HOSTILE_TEXT, ids=IDS)
def test_hostile_json_text_is_one_invalid_request_error(text: str, needle: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_input_arguments(text)
    message = str(caught.value)
    assert needle in message
    assert message.startswith("InputArguments: the JSON ")
    assert "\n" not in message


# The same values handed to the library as Python objects.
HOSTILE_VALUES = [
    (nested(1_000), "nested more than 64 levels deep"),
    (nested(100_000), "nested more than 64 levels deep"),
    ("\ud800", "lone UTF-16 surrogate (\\ud800)"),
    ({"k\udfff": 1}, "lone UTF-16 surrogate (\\udfff)"),
    (10**4_300, "integer of more than 4,300 digits"),
    (float("nan"), "holds NaN, Infinity"),
    (float("-inf"), "holds NaN, Infinity"),
]
VALUE_IDS = ["deep-1000", "deep-100000", "surrogate", "surrogate-key", "big-int", "nan", "-inf"]


@pytest.mark.parametrize(("value", "needle"), HOSTILE_VALUES, ids=VALUE_IDS)
def test_hostile_inputs_are_refused_naming_the_argument(value: Any, needle: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        dump_input_arguments({"fine": 1, "bad": value})
    assert str(caught.value).startswith("input argument 'bad' ")
    assert needle in str(caught.value)


def test_nesting_up_to_the_limit_is_accepted_and_one_more_level_refused() -> None:
    # The arguments object is one level; its values may nest MAX_DEPTH - 1 more.
    assert dump_input_arguments({"a": nested(MAX_DEPTH - 1)}).startswith('{"a":[[')
    with pytest.raises(InvalidRequestError, match="nested more than 64"):
        dump_input_arguments({"a": nested(MAX_DEPTH)})
    text = json.dumps({"a": nested(MAX_DEPTH - 1)})
    assert parse_input_arguments(text) == {"a": nested(MAX_DEPTH - 1)}
    with pytest.raises(InvalidRequestError, match="nested more than 64"):
        parse_input_arguments(json.dumps({"a": nested(MAX_DEPTH)}))


def test_a_key_with_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="input argument '\\\\ud800' holds a lone"):
        dump_input_arguments({"\ud800": 1})


def test_ordinary_values_pass_every_check() -> None:
    value = {"s": "café 🎉", "n": -3, "f": 2.5, "big": 10**100, "l": [None, True], "o": {}}
    assert json_problem(value) is None
    assert loads_strict(json.dumps(value)) == value


def test_inputs_over_the_limit_are_accepted_to_go_as_an_input_file() -> None:
    # Over 10,000 UTF-16 units they are uploaded as an attachment (test_big_payloads).
    request = JobRequest(process="Echo", folder="Shared", inputs={"x": "é" * 10_000})
    request.check()
    assert needs_input_file(dump_input_arguments(request.inputs or {}))


@pytest.mark.parametrize("field", ["process", "folder", "reference"])
def test_a_lone_surrogate_in_a_name_is_refused_when_the_request_is_built(field: str) -> None:
    fields: dict[str, Any] = {"process": "Echo", "folder": "Shared", field: "ab\ud800"}
    with pytest.raises(InvalidRequestError, match=f"JobRequest.{field} holds a lone UTF-16"):
        JobRequest(**fields)


def test_a_job_record_whose_outputs_nest_too_deep_keeps_them_as_text() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    job = Job.from_api({"Id": 1, "State": "Successful", "OutputArguments": deep})
    assert job.output_arguments is None and job.output_arguments_raw == deep


def test_checked_requests_lists_every_mistake_up_to_20_one_a_line() -> None:
    good = JobRequest(process="Echo", folder="Shared")
    bad = JobRequest(process="Echo", folder="Shared", priority="Urgent")
    requests = [good, bad, good, *[bad] * 24]
    with pytest.raises(InvalidRequestError) as caught:
        checked_requests(requests)
    lines = str(caught.value).splitlines()
    assert len(lines) == 21
    assert lines[0].startswith("requests[1]: job_priority must be one of")
    assert lines[1].startswith("requests[3]: ")
    assert lines[-1] == "... and 5 more in requests; nothing was started"
    assert checked_requests([good, good]) == [good, good]


def _mixed_batch() -> list[JobRequest]:
    """Valid requests around invalid ones of every kind the library can be handed."""
    good = [JobRequest(process="Echo", folder="HR", inputs={"n": n}) for n in range(3)]
    return [
        good[0],
        JobRequest(process="Echo", folder="HR", priority="High", specific_priority=90),
        good[1],
        JobRequest(process="Echo", folder="HR", inputs={"deep": nested(1_000)}),
        JobRequest(process="Echo", folder="HR", inputs={"s": "\ud800"}),
        JobRequest(process="Echo", folder="HR", inputs={"n": 10**5_000}),
        JobRequest(process="Echo", folder="HR", inputs={"f": float("inf")}),
        JobRequest(process="Echo", folder="HR", priority="Urgent"),
        JobRequest(process="Echo", folder="HR", jobs_count=0),
        good[2],
    ]


MIXED_MISTAKES = [
    "requests[1]: give job_priority (Low/Normal/High) or specific_priority_value",
    "requests[3]: input argument 'deep' is nested more than 64 levels deep",
    "requests[4]: input argument 's' holds a lone UTF-16 surrogate",
    "requests[5]: input argument 'n' holds an integer of more than 4,300 digits",
    "requests[6]: input argument 'f' holds NaN, Infinity",
    "requests[7]: job_priority must be one of",
    "requests[8]: jobs_count must be at least 1",
]


async def test_a_batch_with_an_invalid_request_starts_nothing(
    start_simulator: Callable[..., Any],
) -> None:
    sim = await start_simulator(scenario(), time_scale=50.0)
    batch = _mixed_batch()
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        with pytest.raises(InvalidRequestError) as by_run:
            await orch.run_jobs(batch)
        with pytest.raises(InvalidRequestError) as by_start:
            await orch.start_jobs(batch)
        with pytest.raises(InvalidRequestError) as by_iter:
            async with contextlib.aclosing(orch.iter_jobs(batch)) as results:
                async for _ in results:
                    pass
    for caught in (by_run, by_start, by_iter):
        lines = str(caught.value).splitlines()
        assert len(lines) == len(MIXED_MISTAKES)
        for line, expected in zip(lines, MIXED_MISTAKES, strict=True):
            assert line.startswith(expected), line
    assert requests_to(sim, START_JOBS) == 0
    assert sim.simulator.stats()["jobs"]["created"] == 0


URL = "https://cloud.uipath.com/org/tenant/orchestrator_"
# Each: an OrchestratorClient keyword of the wrong kind, and what the message says.
WRONG_ARGUMENTS = [
    ({"webhooks": "secret"}, "webhooks must be a WebhookReceiver (e.g. webhooks=Webhook"),
    ({"poll": {"min_interval": 1}}, "poll must be a PollPolicy (e.g. poll=PollPolicy("),
    ({"limits": 16}, "limits must be a DispatchLimits (e.g. limits=DispatchLimits("),
    ({"hooks": "x"}, "hooks must be a list of TransportHooks"),
    ({"hooks": [object()]}, "hooks must be a list of TransportHooks"),
    ({"list_budget": 60}, "list_budget must be a shared list budget"),
    ({"session": "x" * 10_000}, "session must be a ClientSession"),
]


@pytest.mark.parametrize(("keywords", "message"), WRONG_ARGUMENTS)
def test_a_client_argument_of_the_wrong_kind_is_one_clear_error(
    keywords: dict[str, Any], message: str
) -> None:
    # It failed as an AttributeError from deep inside ('str' object has no attribute
    # 'new_pace' for webhooks="secret"), or later still (new-user review h9).
    settings = Settings(url=URL, credentials=StaticToken(token="t"))
    with pytest.raises(ConfigurationError) as raised:
        OrchestratorClient(settings, **keywords)
    text = str(raised.value)
    assert text.startswith(message), text
    assert len(text) < 200  # short: a huge value is cut


def test_settings_of_the_wrong_kind_is_one_clear_error() -> None:
    with pytest.raises(ConfigurationError, match=r"^settings must be a Settings \(e\.g\."):
        OrchestratorClient(URL)  # type: ignore[arg-type]
