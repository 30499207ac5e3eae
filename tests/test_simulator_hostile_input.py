"""The simulator as a server facing hostile input: 400 with an error body, never 500."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from conftest import SimClient

from async_orch.simulator import SimulatorHandle

START_JOBS = "/odata/Jobs/UiPath.Server.Configuration.OData.StartJobs"
DEEP = 1_000


def _assert_odata_error(status: int, body: Any) -> None:
    assert status == 400, body
    assert isinstance(body, dict) and body["message"] and "errorCode" in body and body["traceId"]


@pytest.mark.parametrize(
    "filter_text",
    [
        "(" * DEEP + "Id eq 1" + ")" * DEEP,
        "not (" * DEEP + "Id eq 1" + ")" * DEEP,
        "not " * DEEP + "HasMediaRecorded",
        "Id eq 1 and " * 500 + "Id eq 1",  # within the 8 KB request line
    ],
    ids=["parentheses", "not-groups", "not-chain", "and-chain"],
)
async def test_deeply_nested_filter_is_a_400_with_an_odata_error(
    simulator: SimulatorHandle, orch: SimClient, filter_text: str
) -> None:
    status, body, _ = await orch.get(
        "/odata/Jobs", folder="Shared", params={"$filter": filter_text}
    )
    _assert_odata_error(status, body)
    assert "$filter" in body["message"]
    # The server is still fine afterwards.
    assert (await orch.get("/odata/Jobs", folder="Shared"))[0] == 200


async def test_filter_nested_within_the_limit_still_works(
    simulator: SimulatorHandle, orch: SimClient
) -> None:
    (job,) = await orch.start("Shared")
    depth = 50
    text = "(" * depth + f"Id eq {job['Id']}" + ")" * depth
    status, body, _ = await orch.get("/odata/Jobs", folder="Shared", params={"$filter": text})
    assert status == 200 and [j["Id"] for j in body["value"]] == [job["Id"]]


@pytest.mark.parametrize("opener", ["[", '{"a":'])
async def test_deeply_nested_json_body_is_a_400_with_an_odata_error(
    simulator: SimulatorHandle, orch: SimClient, opener: str
) -> None:
    closer = "]" if opener == "[" else "}"
    body_text = '{"startInfo": ' + opener * 100_000 + "1" + closer * 100_000 + "}"
    headers = {**await orch.headers("Shared"), "Content-Type": "application/json"}
    status, body, _ = await orch.post(START_JOBS, headers=headers, data=body_text)
    _assert_odata_error(status, body)
    assert simulator.simulator.stats()["jobs"]["created"] == 0


async def test_deeply_nested_input_arguments_are_refused_or_taken_never_a_500(
    simulator: SimulatorHandle, orch: SimClient
) -> None:
    """Nested just below the JSON parser's own limit: the body parses, and what
    follows (validation, the job's InputArguments) must not crash either."""
    nested = "[" * 900 + "]" * 900
    body_text = '{"startInfo": {"ReleaseName": "Echo", "InputArguments": {"a": ' + nested + "}}}"
    headers = {**await orch.headers("Shared"), "Content-Type": "application/json"}
    status, body, _ = await orch.post(START_JOBS, headers=headers, data=body_text)
    assert status in (201, 400), body
    if status == 400:
        _assert_odata_error(status, body)


async def test_deeply_nested_token_bodies_are_refused(
    simulator: SimulatorHandle, http: aiohttp.ClientSession
) -> None:
    nested = "[" * 100_000 + "]" * 100_000
    for path in ("/oauth/token", "/api/Account/Authenticate"):
        async with http.post(
            simulator.root_url + path,
            data=nested,
            headers={"Content-Type": "application/json"},
        ) as response:
            assert response.status == 400, path
            assert isinstance(await response.json(), dict)
