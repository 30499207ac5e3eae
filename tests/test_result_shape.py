"""One result shape: every ``result.X`` the README and docs mention is an attribute
of JobResult, and ``to_dict`` (the CLI's and the journal's row) agrees with them."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from async_orch import JobHandle, JobRequest, JobResult, JobState, Outcome
from async_orch._cli.output import COLUMNS
from async_orch._models import Job

ROOT = Path(__file__).resolve().parent.parent
MENTION = re.compile(r"\bresult\.([a-z_]+)\b(?!\.py)")


def _documented() -> set[str]:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return {name for page in pages for name in MENTION.findall(page.read_text("utf-8"))}


def test_the_documented_result_fields_are_attributes() -> None:
    documented = _documented()
    # The fields issue 15 asks for, whatever the prose says today.
    documented |= {"folder", "job_id", "key", "state", "outputs", "error", "created"}
    documented |= {"started", "ended", "attempts", "reference", "request"}
    missing = sorted(name for name in documented if not hasattr(JobResult, name))
    assert missing == []


def _finished() -> JobResult:
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    job = Job(
        id=7,
        key="6f9619ff-8b86-d011-b42d-00c04fc964ff",
        state=JobState.SUCCESSFUL,
        raw_state="Successful",
        reference="ref-7",
        creation_time=created,
        start_time=created.replace(minute=5),
        end_time=created.replace(minute=6),
        output_arguments={"n": 1},
    )
    handle = JobHandle(
        job_id=7,
        job_key=job.key,
        folder_id=3,
        folder_key=None,
        folder_path="Finance",
        reference="ref-7",
    )
    request = JobRequest(process="Echo", folder=3, reference="ref-7")
    return JobResult(
        index=0, request=request, outcome=Outcome.SUCCESSFUL, handle=handle, job=job, attempts=1
    )


def test_the_attributes_and_the_row_agree() -> None:
    result = _finished()
    assert (result.folder, result.job_id, result.key, result.reference) == (
        "Finance",
        7,
        "6f9619ff-8b86-d011-b42d-00c04fc964ff",
        "ref-7",
    )
    assert result.state is JobState.SUCCESSFUL and result.outputs == {"n": 1}
    assert result.started is not None and result.ended is not None
    row = result.to_dict()
    assert tuple(row) == COLUMNS
    assert row["folder"] == result.folder and row["job_key"] == result.key
    assert row["created"] == "2026-01-02T03:04:05Z" and row["ended"] == "2026-01-02T03:06:05Z"


def test_a_request_that_started_nothing_names_its_request() -> None:
    request = JobRequest(process="Echo", folder="HR", reference="r-1")
    result = JobResult(index=0, request=request, outcome=Outcome.NOT_STARTED)
    assert (result.folder, result.reference, result.process) == ("HR", "r-1", "Echo")
    assert result.job_id is None and result.key is None and result.created is None


def test_a_wait_only_result_has_no_request() -> None:
    handle = JobHandle(
        job_id=1, job_key=None, folder_id=2, folder_key=None, folder_path="HR", reference=None
    )
    result = JobResult(index=0, request=None, outcome=Outcome.UNKNOWN, handle=handle)
    assert result.request is None and result.folder == "HR" and result.process is None
