"""Peer (c): the official UiPath Python SDK (``uipath-platform``), asyncio.

``processes.invoke_async`` (StartJobs by ReleaseName, folder by path header) for
every job at once under ``asyncio.gather``, each then polling
``jobs.retrieve_async`` (``GET Jobs/...GetByKey(identifier=KEY)``) until its job
ends.

The SDK's client-credentials flow always asks ``cloud.uipath.com`` (or alpha /
staging) for the token, so it cannot log in to a local server; the token is
fetched here and handed over as the SDK's ``UIPATH_ACCESS_TOKEN`` would be
(``UiPath(base_url=..., secret=token)``, the same as ``UIPATH_URL`` +
``UIPATH_ACCESS_TOKEN``). The services are created once and shared, so all
jobs use one httpx connection pool per service.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from uipath.platform import UiPath

from peers.common import TERMINAL_STATES, Run, parse_args


def _token(args: Any) -> str:
    response = httpx.post(
        args.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": args.client_id,
            "client_secret": args.client_secret,
            "scope": args.scope,
        },
        timeout=60,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


async def _main(run: Run) -> str:
    args = run.args
    base_url = args.url.rstrip("/").removesuffix("/orchestrator_")
    sdk = UiPath(base_url=base_url, secret=_token(args))
    processes, jobs = sdk.processes, sdk.jobs

    async def one(index: int) -> None:
        folder = run.folder(index)
        try:
            job = await processes.invoke_async(args.process, {"n": index}, folder_path=folder)
            run.tally.started += 1
            while job.state not in TERMINAL_STATES:
                await asyncio.sleep(args.poll_interval)
                job = await jobs.retrieve_async(str(job.key), folder_path=folder)
        except Exception as exc:  # every failure of the SDK counts as a lost job
            run.tally.error(exc)
            return
        run.tally.by_state[str(job.state)] += 1

    note = ""
    try:
        await asyncio.wait_for(
            asyncio.gather(*(one(i) for i in range(args.count))), timeout=run.time_left()
        )
    except TimeoutError:
        note = "deadline"
    finally:
        await processes.aclose()
        await jobs.aclose()
    return note


def main() -> None:
    args = parse_args(__doc__ or "")
    run = Run("uipath-sdk", args)
    note = asyncio.run(_main(run))
    run.finish(note)


if __name__ == "__main__":
    main()
