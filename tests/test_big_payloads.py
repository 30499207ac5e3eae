"""Big inputs and outputs as attachments (issue 13 point 5), over real sockets.

Inputs over 10,000 UTF-16 units are uploaded (POST /odata/Attachments, PUT to the
blob) and started with InputFile; outputs over a process's ``output_file_over``
come back as OutputFile and are downloaded, so ``result.outputs`` is always the
parsed outputs (orchestrator-api.md §8).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from simulator_process import attachments_scenario
from test_dispatcher_support import engine_jobs, fast_poll, fast_settings

from async_orch import _models as models
from async_orch._client import OrchestratorClient
from async_orch._config import DEFAULT_SCOPES, ClientCredentials
from async_orch._errors import ConfigurationError, InvalidRequestError, OutputsUnavailableError
from async_orch._jobs import JobRequest, Outcome
from async_orch._models import JobPriority, StartRequest, needs_input_file
from async_orch.simulator import SimulatorHandle, parse_scenario
from async_orch.simulator.lifecycle import OUTPUT_TOO_LARGE
from async_orch.simulator.problems import ApiProblem
from async_orch.simulator.start_request import parse_start_jobs

SCENARIO = attachments_scenario(
    more_processes="""
[[tenants.processes]]
name = "Capped"
duration = 1
[tenants.processes.lifecycle]
output_limit = 50000
"""
)

ATTACHMENTS = "POST /odata/Attachments"


async def start(start_simulator: Callable[..., Any]) -> SimulatorHandle:
    sim: SimulatorHandle = await start_simulator(
        parse_scenario(SCENARIO, name="big"), time_scale=100.0
    )
    return sim


# Uploads need OR.Folders.Write (or OR.Folders) besides the default scopes (spec:
# Attachments_Post).
SCOPES = f"{DEFAULT_SCOPES} OR.Folders.Write"


def client(sim: SimulatorHandle) -> OrchestratorClient:
    settings = fast_settings(sim)
    assert isinstance(settings.credentials, ClientCredentials)
    credentials = dataclasses.replace(settings.credentials, scopes=SCOPES)
    return OrchestratorClient(
        dataclasses.replace(settings, credentials=credentials), poll=fast_poll()
    )


def payload(i: int, size: int) -> dict[str, Any]:
    # Non-ASCII and an emoji (2 UTF-16 units) so lengths are counted as .NET does.
    return {"Index": i, "Text": ("é🙂" + "x" * 97) * (size // 100)}


async def test_big_inputs_and_outputs_round_trip(start_simulator: Callable[..., Any]) -> None:
    sim = await start(start_simulator)
    inputs = [payload(i, 20_000) for i in range(10)] + [payload(i, 200_000) for i in range(10, 14)]
    requests = [JobRequest(process="Echo", folder="Shared", inputs=p) for p in inputs]
    async with client(sim) as orch:
        results = await orch.run_jobs(requests)

    assert [r.outcome for r in results] == [Outcome.SUCCESSFUL] * len(inputs)
    assert [r.outputs for r in results] == inputs
    assert all(r.error is None for r in results)
    jobs = engine_jobs(sim)
    assert all(j.input_file is not None and j.input_arguments is None for j in jobs)
    assert all(j.output_file is not None and j.output_arguments is None for j in jobs)
    assert sum(sim.simulator.stats()["requests"][ATTACHMENTS].values()) == len(inputs)


async def test_small_inputs_stay_inline(start_simulator: Callable[..., Any]) -> None:
    sim = await start(start_simulator)
    async with client(sim) as orch:
        results = await orch.run_jobs(
            [JobRequest(process="Echo", folder="Shared", inputs={"a": 1})]
        )
    assert results[0].outputs == {"a": 1}
    (job,) = engine_jobs(sim)
    assert job.input_file is None and job.output_file is None
    assert ATTACHMENTS not in sim.simulator.stats()["requests"]


async def test_outputs_past_the_hard_limit_fault_the_job(
    start_simulator: Callable[..., Any],
) -> None:
    sim = await start(start_simulator)
    async with client(sim) as orch:
        (result,) = await orch.run_jobs(
            [JobRequest(process="Capped", folder="Shared", inputs=payload(0, 60_000))]
        )
    assert result.outcome is Outcome.FAULTED
    assert result.info == OUTPUT_TOO_LARGE


async def test_a_failed_download_is_a_per_job_error_not_none(
    start_simulator: Callable[..., Any],
) -> None:
    sim = await start(start_simulator)
    async with client(sim) as orch:
        orch.api.max_attachment_bytes = 1_000  # every OutputFile is now too large to read
        (result,) = await orch.run_jobs(
            [JobRequest(process="Echo", folder="Shared", inputs=payload(0, 20_000))]
        )
    assert result.outcome is Outcome.SUCCESSFUL
    assert isinstance(result.error, OutputsUnavailableError)
    assert "could not be read" in str(result.info)


def test_the_limit_counts_utf16_units() -> None:
    assert not needs_input_file("x" * 10_000)
    assert needs_input_file("x" * 9_999 + "🙂")  # 10,001 UTF-16 units
    assert not needs_input_file("é" * 10_000)


def test_client_refuses_exclusive_start_fields() -> None:
    file_id = "0b9f2b9c-8f0e-4b43-9d59-5d2a6c7a1e01"
    with pytest.raises(InvalidRequestError, match="input_arguments or input_file"):
        StartRequest(release_name="Echo", input_arguments={"a": 1}, input_file=file_id)
    with pytest.raises(InvalidRequestError, match=r"job_priority .* or specific_priority_value"):
        StartRequest(release_name="Echo", job_priority=JobPriority.HIGH, specific_priority_value=90)


def test_simulator_refuses_exclusive_start_fields() -> None:
    world_folder = _folder()
    both_inputs = {"ReleaseName": "Echo", "InputArguments": "{}", "InputFile": "x"}
    with pytest.raises(ApiProblem, match="both input file and input arguments"):
        parse_start_jobs({"startInfo": both_inputs}, world_folder)
    both_priorities = {"ReleaseName": "Echo", "JobPriority": "High", "SpecificPriorityValue": 9}
    with pytest.raises(ApiProblem, match="Cannot set a specific priority value"):
        parse_start_jobs({"startInfo": both_priorities}, world_folder)


def _folder() -> Any:
    from async_orch.simulator.world import build_world

    tenant = parse_scenario(SCENARIO, name="big").tenants[0]
    return next(iter(build_world(tenant, index=0)))


async def test_big_inputs_without_an_upload_scope_are_refused_before_anything_starts(
    start_simulator: Callable[..., Any],
) -> None:
    """Every such start would fail alike (403 on the upload): one clear error first."""
    sim = await start(start_simulator)
    requests = [
        JobRequest(process="Echo", folder="Shared", inputs={"n": 1}),
        JobRequest(process="Echo", folder="Shared", inputs=payload(2, 20_000)),
    ]
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:  # default scopes
        with pytest.raises(ConfigurationError, match="inputs of request 1 are 20,021 characters"):
            await orch.run_jobs(requests)
        with pytest.raises(
            ConfigurationError, match=r"add OR\.Folders\.Write to ASYNC_ORCH_SCOPES"
        ):
            await orch.start_jobs(requests)
        (small,) = await orch.run_jobs(requests[:1])  # inline inputs need no upload
    assert small.outcome is Outcome.SUCCESSFUL
    assert len(engine_jobs(sim)) == 1


async def test_an_input_over_a_mebibyte_round_trips(start_simulator: Callable[..., Any]) -> None:
    """The simulator's blob store takes bodies up to its own limit (64 MiB), not
    aiohttp's default 1 MiB, which answered 413 to a 1.1 MB upload."""
    sim = await start(start_simulator)
    big = payload(0, 1_100_000)
    async with client(sim) as orch:
        (result,) = await orch.run_jobs([JobRequest(process="Echo", folder="Shared", inputs=big)])
    # Uploaded and started (its outputs pass this scenario's hard limit: it faults).
    assert result.outcome is not Outcome.NOT_STARTED, result.error
    (job,) = engine_jobs(sim)
    assert job.input_file is not None


async def test_each_input_is_encoded_once_a_batch(
    start_simulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checking the batch encodes each request's inputs; the upload-scope check and
    the start use that text (each was encoded up to four times: 0.3 s per 100k jobs)."""
    encoded: list[Any] = []
    real_dumps = models._dumps

    def counting_dumps(value: Any) -> str:
        encoded.append(value)
        return real_dumps(value)

    monkeypatch.setattr(models, "_dumps", counting_dumps)
    sim = await start(start_simulator)
    requests = [JobRequest(process="Echo", folder="Shared", inputs={"n": i}) for i in range(5)]
    # Default scopes (no upload scope): the upload-scope check reads every input.
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        results = await orch.run_jobs(requests)
        assert [r.outputs for r in results] == [{"n": i} for i in range(5)]
        assert encoded == [{"n": i} for i in range(5)]
        encoded.clear()
        await orch.start_jobs(requests[:2])
    assert encoded == [{"n": 0}, {"n": 1}]
