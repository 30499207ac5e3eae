"""Peer (a): ``requests``, one job at a time: start it, poll it to the end, next.

The style of the users' reports (one script, ``time.sleep`` between polls).
"""

from __future__ import annotations

import time

import requests

from peers.common import Run, parse_args
from peers.requests_script import Script


def main() -> None:
    args = parse_args(__doc__ or "")
    run = Run("sequential-requests", args)
    script = Script(
        url=args.url,
        token_url=args.token_url,
        client_id=args.client_id,
        client_secret=args.client_secret,
        scope=args.scope,
        process=args.process,
        folders=args.folder,
    )
    note = ""
    with requests.Session() as session:
        for index in range(args.count):
            if run.time_left() <= 0:
                note = "deadline"
                break
            folder = run.folder(index)
            try:
                job_id = script.start(session, folder, {"n": index})
                run.tally.started += 1
                job = script.state(session, folder, job_id)
                while not script.is_final(job):
                    if run.time_left() <= 0:
                        break
                    time.sleep(args.poll_interval)
                    job = script.state(session, folder, job_id)
            except requests.RequestException as exc:
                run.tally.error(exc)
                continue
            if script.is_final(job):
                run.tally.by_state[job["State"]] += 1
    run.finish(note)


if __name__ == "__main__":
    main()
