"""Peer (b): ``requests`` in a thread pool; each thread starts and polls its own job.

``--poll-list`` polls with ``GET /odata/Jobs?$filter=Id eq N`` (the rate-limited
list, as many scripts do) instead of ``GET /odata/Jobs({id})``. A script that
meets an error (``raise_for_status``) loses track of that job.
"""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait

import requests

from peers.common import Run, parse_args
from peers.requests_script import Script


def main() -> None:
    poll_list = "--poll-list" in sys.argv
    if poll_list:
        sys.argv.remove("--poll-list")
    args = parse_args(__doc__ or "")
    run = Run("threaded-requests-list" if poll_list else "threaded-requests", args)
    script = Script(
        url=args.url,
        token_url=args.token_url,
        client_id=args.client_id,
        client_secret=args.client_secret,
        scope=args.scope,
        process=args.process,
        folders=args.folder,
        poll_list=poll_list,
    )
    local = threading.local()
    lock = threading.Lock()

    def one(index: int) -> None:
        if run.time_left() <= 0:
            return
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        folder = run.folder(index)
        try:
            job_id = script.start(session, folder, {"n": index})
            with lock:
                run.tally.started += 1
            job = script.state(session, folder, job_id)
            while not script.is_final(job):
                if run.time_left() <= 0:
                    return
                time.sleep(args.poll_interval)
                job = script.state(session, folder, job_id)
        except requests.RequestException as exc:
            with lock:
                run.tally.error(exc)
            return
        with lock:
            run.tally.by_state[job["State"]] += 1

    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(one, index) for index in range(args.count)]
        wait(futures)
    note = "" if run.time_left() > 0 else "deadline"
    run.finish(note)


if __name__ == "__main__":
    main()
