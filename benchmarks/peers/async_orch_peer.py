"""Peer (d): async-orch, ``OrchestratorClient.run_jobs`` with its default limits."""

from __future__ import annotations

import anyio

from async_orch import ClientCredentials, JobRequest, OrchestratorClient, Settings
from peers.common import Run, parse_args

_OUTCOME_STATE = {"successful": "Successful", "faulted": "Faulted", "stopped": "Stopped"}


async def _main(run: Run) -> str:
    args = run.args
    settings = Settings(
        url=args.url,
        credentials=ClientCredentials(client_id=args.client_id, client_secret=args.client_secret),
    )
    requests = [
        JobRequest(process=args.process, folder=run.folder(i), inputs={"n": i})
        for i in range(args.count)
    ]
    async with OrchestratorClient(settings) as orch:
        results = await orch.run_jobs(requests, timeout=run.time_left())
    note = ""
    for result in results:
        if result.handle is not None:
            run.tally.started += 1
        state = _OUTCOME_STATE.get(result.outcome.value)
        if state is not None:
            run.tally.by_state[state] += 1
        elif result.outcome.value == "timed_out":
            note = "deadline"
        elif result.error is not None:
            run.tally.error(result.error)
        else:
            run.tally.errors[result.outcome.value] += 1
    return note


def main() -> None:
    args = parse_args(__doc__ or "")
    run = Run("async-orch", args)
    note = anyio.run(_main, run)
    run.finish(note)


if __name__ == "__main__":
    main()
