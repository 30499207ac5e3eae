"""Length limits counted in UTF-16 units, as .NET counts a string (issue 14 point 6).

Orchestrator's maxLengths (Reference 128, InputArguments 10,000, ...) are .NET
string lengths (orchestrator-api.md §8): a character outside the BMP counts twice.
The client's checks and the simulator's must agree at every boundary, so a request
the client lets through is never refused by the simulator, and the reverse.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from test_big_payloads import SCENARIO, _folder
from test_dispatcher_support import engine_jobs, fast_poll, fast_settings

from async_orch._client import OrchestratorClient
from async_orch._errors import ConfigurationError
from async_orch._jobs import JobRequest, Outcome
from async_orch._jsonvalues import utf16_length
from async_orch._models import needs_input_file, reference_problem
from async_orch.simulator import parse_scenario
from async_orch.simulator.problems import ApiProblem
from async_orch.simulator.start_request import parse_start_jobs

EMOJI = "🙂"  # one code point, two UTF-16 units


def test_utf16_length_counts_astral_characters_twice() -> None:
    assert utf16_length("abc") == 3
    assert utf16_length("é") == 1
    assert utf16_length(EMOJI) == 2
    assert utf16_length("a" + EMOJI * 3) == 7


def _simulator_accepts(**fields: str) -> bool:
    try:
        parse_start_jobs({"startInfo": {"ReleaseName": "Echo", **fields}}, _folder())
    except ApiProblem:
        return False
    return True


@pytest.mark.parametrize(
    ("reference", "allowed"),
    [
        ("x" * 128, True),
        ("x" * 129, False),
        (EMOJI * 64, True),  # 64 characters, 128 units
        (EMOJI * 65, False),  # 65 characters: Python's len() would let it pass
        ("x" * 127 + EMOJI, False),  # 128 characters, 129 units
        ("é" * 128, True),  # BMP: one unit each
    ],
)
def test_client_and_simulator_agree_on_reference_length(reference: str, allowed: bool) -> None:
    assert (reference_problem(reference) is None) is allowed
    assert _simulator_accepts(Reference=reference) is allowed


@pytest.mark.parametrize(
    ("text", "needs_file"),
    [
        # Around 5,000 characters, where needs_input_file stops short of counting
        # units (a character is at most two): the count decides past it.
        (EMOJI * 5_000, False),  # 10,000 units
        (EMOJI * 5_000 + "x", True),  # 10,001 units
        ("x" * 5_001, False),
        ("x" * 10_000, False),
        ("x" * 10_001, True),
        ("\udcff" * 5_001, False),  # a lone surrogate is one unit (refused elsewhere)
    ],
)
def test_input_arguments_go_as_a_file_past_10000_units(text: str, needs_file: bool) -> None:
    assert needs_input_file(text) is needs_file


@pytest.mark.parametrize(
    ("body", "inline"),
    [
        ("x" * 9_992, True),  # 10,000 units with the 8 of {"s":""}
        ("x" * 9_982 + EMOJI * 5, True),  # 9,995 characters, 10,000 units
        ("x" * 9_981 + EMOJI * 6, False),  # 9,995 characters, 10,001 units
    ],
)
def test_client_and_simulator_agree_on_input_arguments_length(body: str, inline: bool) -> None:
    inputs = '{"s":"' + body + '"}'
    assert json.loads(inputs) == {"s": body}
    assert (not needs_input_file(inputs)) is inline
    assert _simulator_accepts(InputArguments=inputs) is inline


@pytest.mark.parametrize(
    ("field", "limit"),
    [("EnvironmentVariables", 4000), ("ParentOperationId", 128), ("TraceId", 255)],
)
def test_simulator_counts_other_start_fields_in_utf16_units(field: str, limit: int) -> None:
    assert _simulator_accepts(**{field: EMOJI * (limit // 2)})
    with pytest.raises(ApiProblem, match=f"{field} is {(limit // 2 + 1) * 2} characters long"):
        parse_start_jobs(
            {"startInfo": {"ReleaseName": "Echo", field: EMOJI * (limit // 2 + 1)}}, _folder()
        )


def test_scenario_names_count_utf16_units() -> None:
    ok = SCENARIO.replace('path = "Shared"', f'path = "{EMOJI * 57}"')  # 114 units
    parse_scenario(ok, name="ok")
    too_long = SCENARIO.replace('path = "Shared"', f'path = "{EMOJI * 58}"')  # 116 units
    with pytest.raises(ConfigurationError, match="at most 115 characters"):
        parse_scenario(too_long, name="long")


async def test_a_reference_of_128_units_round_trips(start_simulator: Callable[..., Any]) -> None:
    sim = await start_simulator(parse_scenario(SCENARIO, name="utf16"), time_scale=100.0)
    reference = "é" + EMOJI * 63 + "x"  # 65 characters, 128 units
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        (result,) = await orch.run_jobs(
            [JobRequest(process="Echo", folder="Shared", reference=reference)]
        )
    assert result.outcome is Outcome.SUCCESSFUL
    assert result.handle is not None and result.handle.reference == reference
    (job,) = engine_jobs(sim)
    assert job.reference == reference
