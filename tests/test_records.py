"""_records.record_builder: the records a batch builds for every job, built without
a call a field, are the same records their classes' constructors build."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from datetime import UTC, datetime
from typing import Any

import pytest

from async_orch import JobRequest
from async_orch._batch_run import _build_result
from async_orch._http import Response, _build_response
from async_orch._jobs import JobHandle, JobResult, Outcome, _build_handle
from async_orch._models import StartRequest, _build_start_request
from async_orch._poller import Finished, _build_finished
from async_orch._records import record_builder
from async_orch._starting import Started, _build_started
from async_orch._states import JobState

HANDLE: dict[str, Any] = {
    "job_id": 7,
    "job_key": "b618cdfd-8714-4dbf-9a00-0586a8953c90",
    "folder_id": 3,
    "folder_key": None,
    "folder_path": "Finance",
    "reference": "r-7",
    "created": datetime(2026, 12, 6, 5, 0, tzinfo=UTC),
}


def _cases() -> list[tuple[Any, type[Any], dict[str, Any]]]:
    handle = JobHandle(**HANDLE)
    start = StartRequest(release_key="k-1", input_arguments={"n": 1}, reference="r-7")
    start_fields = {f.name: getattr(start, f.name) for f in dataclasses.fields(StartRequest)}
    return [
        (_build_handle, JobHandle, HANDLE),
        (
            _build_response,
            Response,
            {"status": 200, "headers": {"Date": "x"}, "body": b"{}", "url": "http://h/odata"},
        ),
        (
            _build_started,
            Started,
            {
                "index": 3,
                "request": JobRequest(process="Work", folder="Finance"),
                "handles": [handle],
                "attempts": 1,
            },
        ),
        (_build_start_request, StartRequest, start_fields),
        (
            _build_finished,
            Finished,
            {
                "handle": handle,
                "job": None,
                "state": JobState.RUNNING,
                "timed_out": True,
                "detected": datetime(2026, 12, 6, tzinfo=UTC),
                "error": None,
                "stop_sent": "Kill",
                "stuck_pending_for": None,
                "suspended": False,
            },
        ),
        (
            _build_result,
            JobResult,
            {
                "index": 4,
                "request": JobRequest(process="Work", folder="Finance"),
                "outcome": Outcome.UNKNOWN,
                "handle": handle,
                "job": None,
                "error": None,
                "attempts": 2,
                "detected": None,
                "timed_out": False,
                "last_state": JobState.PENDING,
                "stop_sent": None,
                "note": "a note",
            },
        ),
    ]


@pytest.mark.parametrize(("build", "cls", "values"), _cases())
def test_a_built_record_is_the_record_its_class_builds(
    build: Any, cls: type[Any], values: dict[str, Any]
) -> None:
    built, constructed = build(**values), cls(**values)
    assert type(built) is cls
    assert built == constructed
    assert repr(built) == repr(constructed)
    try:
        expected_hash = hash(constructed)
    except TypeError:  # a field holds a dict: neither is hashable
        with pytest.raises(TypeError):
            hash(built)
    else:
        assert hash(built) == expected_hash
    assert pickle.loads(pickle.dumps(built)) == constructed
    assert copy.deepcopy(built) == constructed
    assert dataclasses.replace(built) == constructed
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.__setattr__(dataclasses.fields(cls)[0].name, None)


@pytest.mark.parametrize(("build", "cls", "values"), _cases())
def test_a_builder_takes_every_field_and_nothing_else(
    build: Any, cls: type[Any], values: dict[str, Any]
) -> None:
    # A field added to the class is a field the builder asks for: no stale copy.
    first = dataclasses.fields(cls)[0].name
    with pytest.raises(TypeError, match=first):
        build(**{k: v for k, v in values.items() if k != first})
    with pytest.raises(TypeError, match="unexpected"):
        build(**values, extra=1)


def test_only_a_slotted_dataclass_on_object_gets_a_builder() -> None:
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Base:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Derived(Base):
        b: int

    for cls in (NoSlots, Derived):
        with pytest.raises(TypeError, match="not a slotted dataclass"):
            record_builder(cls)
    assert record_builder(Base)(a=1) == Base(1)


def test_a_handle_of_a_subclass_is_built_by_the_subclass() -> None:
    @dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
    class MyHandle(JobHandle):
        pass

    from async_orch._models import CreatedJob, Folder

    job = CreatedJob(7, None, JobState.PENDING, "r-7", None)
    folder = Folder(id=3, key=None, display_name="Finance", fully_qualified_name="Finance")
    assert type(MyHandle.of(job, folder)) is MyHandle
    assert JobHandle.of(job, folder) == JobHandle(
        job_id=7,
        job_key=None,
        folder_id=3,
        folder_key=None,
        folder_path="Finance",
        reference="r-7",
    )


@pytest.mark.parametrize("name", ["record", "twin", "cls"])
def test_a_field_named_as_the_builders_own_locals_is_built_right(name: str) -> None:
    # Review: the generated build() named its locals record/twin/cls; a field
    # named "record" was stored as the record itself (no error), "twin"/"cls" raised.
    cls = dataclasses.make_dataclass(
        "C", [(name, int), ("b", int)], frozen=True, slots=True, kw_only=True
    )
    built: Any = record_builder(cls)(**{name: 1, "b": 2})
    assert type(built) is cls and built == cls(**{name: 1, "b": 2})
