"""Typed records for the Orchestrator DTOs async-orch reads and writes.

Each record is a frozen, slotted dataclass with snake_case fields. ``from_api``
(reading a DTO) and ``StartRequest.to_api`` (the one body async-orch writes) are
the only places where the API's PascalCase names appear.

Reading is tolerant, writing is strict:

- ``from_api`` ignores fields it does not know, treats a missing field like
  ``null``, keeps an unknown ``State`` as ``JobState.UNKNOWN`` (the text stays in
  ``raw_state``), and keeps argument text that is not a JSON object in a
  ``*_raw`` field instead of failing. Only a missing ``Id`` (or ``State`` for a
  job, ``DisplayName`` for a folder, ``Key``/``Name`` for a release), or a value
  of the wrong JSON type, raises :class:`~async_orch._errors.ResponseDecodeError`.
- ``StartRequest.to_api`` leaves out ``None`` fields: the OpenAPI description marks no field
  nullable, so an omitted field is the form that validates against it.
- :class:`StartRequest` refuses, with :class:`~async_orch._errors.InvalidRequestError`,
  what Orchestrator would reject (StartProcessDto in the v20 OpenAPI description,
  orchestrator-api.md §3.3 and §5), before anything is sent.

Timestamps are aware UTC datetimes; :func:`parse_datetime` and
:func:`format_datetime` convert them from and to the API's ISO-8601 text.
"""

from __future__ import annotations

import enum
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, NamedTuple, TypeVar

from async_orch._errors import InvalidRequestError, ResponseDecodeError
from async_orch._jsonvalues import (
    MAX_DEPTH,
    JSONSyntaxError,
    json_problem,
    loads_strict,
    text_problem,
    utf16_length,
)
from async_orch._records import record_builder
from async_orch._states import BY_API_NAME, JobState

__all__ = [
    "INPUT_ARGUMENTS_MAX_LENGTH",
    "REFERENCE_MAX_LENGTH",
    "CreatedJob",
    "Folder",
    "Job",
    "JobPriority",
    "Release",
    "StartRequest",
    "StartStrategy",
    "created_job_of",
    "dump_input_arguments",
    "format_datetime",
    "needs_input_file",
    "parse_datetime",
    "parse_input_arguments",
    "parse_job_state_row",
    "parse_job_state_rows",
    "reference_problem",
]

INPUT_ARGUMENTS_MAX_LENGTH = 10_000
"""StartProcessDto.InputArguments maxLength (spec; the official SDK uses the same cut-off)."""

REFERENCE_MAX_LENGTH = 128
"""StartProcessDto.Reference maxLength (spec)."""


class StartStrategy(enum.StrEnum):
    """StartProcessDto.Strategy: which robots run the job.

    ``MODERN_JOBS_COUNT`` (with ``jobs_count``) is the one for modern folders;
    ``SPECIFIC``, ``ROBOT_COUNT`` and ``ALL`` only make sense in classic folders.
    """

    ALL = "All"
    SPECIFIC = "Specific"
    ROBOT_COUNT = "RobotCount"
    JOBS_COUNT = "JobsCount"
    MODERN_JOBS_COUNT = "ModernJobsCount"


class JobPriority(enum.StrEnum):
    """StartProcessDto.JobPriority; when omitted the release's priority applies."""

    LOW = "Low"
    NORMAL = "Normal"
    HIGH = "High"


# -- timestamps ------------------------------------------------------------------

_ISO_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})"
    r"(?:[.,](\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))?"
)


def parse_datetime(value: str | None) -> datetime | None:
    """Parse an Orchestrator timestamp into an aware UTC datetime.

    Orchestrator writes ``2018-09-21T13:28:31.1449691Z``: UTC, ``Z``, and from
    zero to seven fractional digits (.NET ticks). Digits past the sixth are
    dropped (datetime holds microseconds). An explicit offset is converted to
    UTC; a timestamp without any offset is taken as UTC, which is what
    Orchestrator means by it.

    Args:
        value: the text, or None (returned as None).

    Raises:
        ValueError: the text is not an ISO-8601 date and time.
    """
    if value is None:
        return None
    if len(value) >= 20 and value[10] == "T" and value[-1] == "Z":
        # What Orchestrator sends: the C parser reads it (seven fractional
        # digits included, cut to six) in a twentieth of the time.
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass  # the reading below says what is wrong
    match = _ISO_DATETIME.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"not an ISO-8601 timestamp: {value!r}")
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    micro = int((fraction or "")[:6].ljust(6, "0"))
    tz: timezone = UTC
    if sign is not None and not zulu:
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        tz = timezone(-offset if sign == "-" else offset)
    try:
        parsed = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=tz
        )
    except ValueError as exc:
        raise ValueError(f"not a valid timestamp: {value!r} ({exc})") from exc
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:  # 0001-01-01T00:00:00+05:00 is before year 1 in UTC
        raise ValueError(f"not a valid timestamp: {value!r} ({exc})") from exc


def format_datetime(value: datetime) -> str:
    """Write an aware datetime the way Orchestrator does: UTC with ``Z``.

    Fractional digits are written only as far as needed
    (``2024-01-02T03:04:05.25Z``), so :func:`parse_datetime` gives back the
    same instant.

    Raises:
        ValueError: ``value`` is naive; its time zone would be a guess.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"refusing to format a naive datetime ({value!r}): attach a time zone")
    utc = value.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += "." + f"{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


# -- arguments -------------------------------------------------------------------

_INPUT_EXAMPLE = """InputArguments must be a JSON object, e.g. '{"name": "value"}'"""


def parse_input_arguments(text: str) -> dict[str, Any]:
    """Parse user-supplied InputArguments text (a CLI option or file) into a dict.

    Raises:
        InvalidRequestError: the text is not JSON, is JSON but not an object, or
            holds what Orchestrator cannot carry (:mod:`async_orch._jsonvalues`);
            the message shows an example and where the JSON went wrong.
    """
    try:
        value = loads_strict(text)
    except JSONSyntaxError as exc:
        raise InvalidRequestError(f"{_INPUT_EXAMPLE}: {exc}") from None
    except InvalidRequestError as exc:
        raise InvalidRequestError(f"InputArguments: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidRequestError(f"{_INPUT_EXAMPLE}: got a JSON {_json_type_name(value)}")
    return value


def dump_input_arguments(arguments: Mapping[str, Any]) -> str:
    """Serialize InputArguments the way StartJobs wants them: compact JSON text.

    Non-ASCII text is kept as is (``ensure_ascii=False``), so the 10,000-character
    limit is not eaten by ``\\uXXXX`` escapes. Longer text is fine here: it is
    sent as an attachment (``InputFile``, see :func:`needs_input_file`).

    Raises:
        InvalidRequestError: not a mapping, a key that is not a string, or a value
            JSON cannot represent (the message names its key).
    """
    if not isinstance(arguments, Mapping):
        raise InvalidRequestError(
            f"input_arguments must be a dict of argument name to value, "
            f"got {type(arguments).__name__}"
        )
    for key in arguments:
        if not isinstance(key, str):
            raise InvalidRequestError(
                f"input argument names must be strings, got {key!r} ({type(key).__name__})"
            )
    try:
        text = _dumps(dict(arguments))
    except (TypeError, ValueError, RecursionError) as exc:
        raise _unsendable(arguments, exc) from None
    # What the encoder lets through: lone surrogates, and nesting deeper than
    # MAX_DEPTH. Cheap tests first (in C); the walk only when one could be there.
    if (not text.isascii() and text_problem(text) is not None) or (
        text.count("{") + text.count("[") > MAX_DEPTH
    ):
        problem = _argument_problem(arguments)
        if problem is not None:
            raise problem
    return text


def needs_input_file(text: str) -> bool:
    """Whether InputArguments text is too long to send inline: longer than 10,000
    UTF-16 units (.NET string length), it goes as an attachment and ``InputFile``,
    as the official SDK does (orchestrator-api.md §5 and §8)."""
    if 2 * len(text) <= INPUT_ARGUMENTS_MAX_LENGTH:
        return False  # a character is at most two UTF-16 units: no need to count them
    return utf16_length(text) > INPUT_ARGUMENTS_MAX_LENGTH


def _argument_problem(arguments: Mapping[str, Any]) -> InvalidRequestError | None:
    """The first argument JSON cannot carry to Orchestrator (:mod:`async_orch._jsonvalues`)."""
    for key, value in arguments.items():
        # The arguments object is level 1: its values may nest MAX_DEPTH - 1 more.
        problem = text_problem(key) or json_problem(value, max_depth=MAX_DEPTH - 1)
        if problem is not None:
            return InvalidRequestError(f"input argument {key!r} {problem}")
    return None


def _unsendable(arguments: Mapping[str, Any], exc: Exception) -> InvalidRequestError:
    """Why the encoder failed, naming the argument at fault."""
    problem = _argument_problem(arguments)
    if problem is not None:
        return problem
    for key, value in arguments.items():
        try:
            _dumps(value)
        except (TypeError, ValueError, RecursionError) as item_exc:
            return InvalidRequestError(f"input argument {key!r} cannot be sent as JSON: {item_exc}")
    return InvalidRequestError(f"input_arguments cannot be sent as JSON: {exc}")


# allow_nan=False: NaN/Infinity are not JSON and .NET's parser rejects them.
# One encoder for every call: json.dumps would build one per call with these options.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _dumps(value: Any) -> str:
    return _ENCODER.encode(value)


def reference_problem(reference: str) -> str | None:
    """Why Orchestrator would refuse ``reference`` as a job's Reference, or None."""
    if not reference:
        return "must not be empty; leave it None instead"
    if not reference.isascii() and (problem := text_problem(reference)) is not None:
        return problem
    length = len(reference)
    if 2 * length > REFERENCE_MAX_LENGTH:  # (a character is at most two UTF-16 units)
        length = utf16_length(reference)
    if length > REFERENCE_MAX_LENGTH:
        return (
            f"is {length} characters; Orchestrator accepts at most "
            f"{REFERENCE_MAX_LENGTH}: {reference[:40]!r}..."
        )
    return None


def _json_type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _parse_arguments_text(text: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """Split argument text into (parsed object, raw text kept when not an object)."""
    if text is None:
        return None, None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested ~1,000 deep
        return None, text
    if isinstance(value, dict):
        return value, None
    return None, text


# -- reading helpers ---------------------------------------------------------------


class _Reader:
    """Typed access to one DTO's fields; wrong types raise ResponseDecodeError."""

    __slots__ = ("_data", "_dto")

    def __init__(self, data: object, dto: str) -> None:
        if not isinstance(data, Mapping):
            raise ResponseDecodeError(
                f"expected a {dto} object, got {type(data).__name__}: {str(data)[:200]!r}"
            )
        self._data: Mapping[str, Any] = data
        self._dto = dto

    def _fail(self, name: str, expected: str) -> ResponseDecodeError:
        value = self._data.get(name)
        return ResponseDecodeError(
            f"{self._dto}.{name} should be {expected}, got {type(value).__name__}: "
            f"{str(value)[:200]!r}"
        )

    def missing(self, name: str) -> ResponseDecodeError:
        return ResponseDecodeError(f"{self._dto} without {name}: {dict(self._data)!r:.300}")

    def required_int(self, name: str) -> int:
        value = self.opt_int(name)
        if value is None:
            raise self.missing(name)
        return value

    def required_str(self, name: str) -> str:
        value = self.opt_str(name)
        if value is None:
            raise self.missing(name)
        return value

    def opt_int(self, name: str) -> int | None:
        value = self._data.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(name, "an integer")
        return value

    def opt_str(self, name: str) -> str | None:
        value = self._data.get(name)
        if value is None or isinstance(value, str):
            return value
        raise self._fail(name, "a string")

    def opt_bool(self, name: str) -> bool | None:
        value = self._data.get(name)
        if value is None or isinstance(value, bool):
            return value
        raise self._fail(name, "a boolean")

    def opt_dict(self, name: str) -> dict[str, Any] | None:
        value = self._data.get(name)
        if value is None:
            return None
        if isinstance(value, Mapping):
            return dict(value)
        raise self._fail(name, "an object")

    def opt_datetime(self, name: str) -> datetime | None:
        value = self.opt_str(name)
        try:
            return parse_datetime(value)
        except ValueError as exc:
            raise self._fail(name, "an ISO-8601 timestamp") from exc

    def raw(self, name: str) -> Any:
        return self._data.get(name)


# -- Folder ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Folder:
    """A folder (FolderDto, ``GET /odata/Folders``).

    ``id`` goes in ``X-UIPATH-OrganizationUnitId`` but can change (after a licence
    change, orchestrator-api.md §2); ``key`` does not. ``fully_qualified_name`` is
    the "/"-joined path; when the server leaves it out it falls back to
    ``display_name``. Enum-like fields (``folder_type``...) stay strings so a
    value newer than the spec does not break reading.
    """

    id: int
    key: str | None = None
    display_name: str
    fully_qualified_name: str
    description: str | None = None
    folder_type: str | None = None
    is_personal: bool | None = None
    provision_type: str | None = None
    permission_model: str | None = None
    feed_type: str | None = None
    parent_id: int | None = None
    parent_key: str | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Folder:
        """Read a FolderDto. Raises ResponseDecodeError without Id or DisplayName."""
        r = _Reader(data, "FolderDto")
        display_name = r.required_str("DisplayName")
        return cls(
            id=r.required_int("Id"),
            key=r.opt_str("Key"),
            display_name=display_name,
            fully_qualified_name=r.opt_str("FullyQualifiedName") or display_name,
            description=r.opt_str("Description"),
            folder_type=r.opt_str("FolderType"),
            is_personal=r.opt_bool("IsPersonal"),
            provision_type=r.opt_str("ProvisionType"),
            permission_model=r.opt_str("PermissionModel"),
            feed_type=r.opt_str("FeedType"),
            parent_id=r.opt_int("ParentId"),
            parent_key=r.opt_str("ParentKey"),
        )


# -- Release ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Release:
    """A process as deployed to a folder (ReleaseDto, ``GET /odata/Releases``).

    ``key`` is the ReleaseKey that StartJobs takes. ``input_arguments_default``
    holds the release's default inputs (ReleaseDto.InputArguments, JSON text) as
    a dict; text that is not a JSON object is kept in
    ``input_arguments_default_raw`` instead.
    """

    id: int
    key: str
    name: str
    process_key: str | None = None
    process_version: str | None = None
    is_latest_version: bool | None = None
    description: str | None = None
    folder_id: int | None = None
    folder_key: str | None = None
    folder_name: str | None = None
    process_type: str | None = None
    job_priority: str | None = None
    specific_priority_value: int | None = None
    entry_point_path: str | None = None
    input_arguments_default: dict[str, Any] | None = None
    input_arguments_default_raw: str | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Release:
        """Read a ReleaseDto. Raises ResponseDecodeError without Id, Key or Name."""
        r = _Reader(data, "ReleaseDto")
        defaults, defaults_raw = _parse_arguments_text(r.opt_str("InputArguments"))
        return cls(
            id=r.required_int("Id"),
            key=r.required_str("Key"),
            name=r.required_str("Name"),
            process_key=r.opt_str("ProcessKey"),
            process_version=r.opt_str("ProcessVersion"),
            is_latest_version=r.opt_bool("IsLatestVersion"),
            description=r.opt_str("Description"),
            folder_id=r.opt_int("OrganizationUnitId"),
            folder_key=r.opt_str("FolderKey"),
            folder_name=r.opt_str("OrganizationUnitFullyQualifiedName"),
            process_type=r.opt_str("ProcessType"),
            job_priority=r.opt_str("JobPriority"),
            specific_priority_value=r.opt_int("SpecificPriorityValue"),
            entry_point_path=r.opt_str("EntryPointPath"),
            input_arguments_default=defaults,
            input_arguments_default_raw=defaults_raw,
        )


# -- Job ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """One job (JobDto: StartJobs, ``GET /odata/Jobs``, ``GET /odata/Jobs({id})``).

    ``state`` is ``JobState.UNKNOWN`` when the server sends a State this version
    does not know; ``raw_state`` always holds what it sent (when building a Job
    yourself, leave it out and it is the state's name).

    Arguments arrive as JSON *text*. ``input_arguments``/``output_arguments`` hold
    the parsed object, or None when the server sent null, which the list endpoint
    always does (orchestrator-api.md §3.4): read the job by id for its outputs.
    Text that is not a JSON object (malformed, or another JSON type) does not make
    reading fail: the parsed field is None and the text is kept in
    ``input_arguments_raw``/``output_arguments_raw``, which are None otherwise.
    Large outputs are stored as an attachment whose id is ``output_file``.

    ``folder_id``/``folder_name`` are OrganizationUnitId and
    OrganizationUnitFullyQualifiedName. ``job_error`` is the JobErrorDto as
    received (``code``, ``title``, ``detail``, ``category``, ...).
    """

    id: int
    key: str | None = None
    state: JobState
    raw_state: str = ""  # empty: the state's own name
    sub_state: str | None = None
    info: str | None = None
    creation_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    reference: str | None = None
    release_name: str | None = None
    folder_id: int | None = None
    folder_key: str | None = None
    folder_name: str | None = None
    batch_execution_key: str | None = None
    source: str | None = None
    job_priority: str | None = None
    host_machine_name: str | None = None
    input_arguments: dict[str, Any] | None = None
    input_arguments_raw: str | None = None
    input_file: str | None = None
    output_arguments: dict[str, Any] | None = None
    output_arguments_raw: str | None = None
    output_file: str | None = None
    job_error: dict[str, Any] | None = None
    error_code: str | None = None

    def __post_init__(self) -> None:
        if not self.raw_state:
            object.__setattr__(self, "raw_state", self.state.value)

    @property
    def is_terminal(self) -> bool:
        """True once the job has ended (Successful, Faulted or Stopped)."""
        return self.state.is_terminal

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Job:
        """Read a JobDto. Raises ResponseDecodeError without Id or State.

        ``State`` may be the name (what the API sends) or the documented number.
        """
        if type(data) is dict:
            job = _job_from_plain_dict(data)
            if job is not None:
                return job
        return cls._from_api_checked(data)

    @classmethod
    def _from_api_checked(cls, data: Mapping[str, Any]) -> Job:
        """from_api field by field, with an error naming the field at fault."""
        r = _Reader(data, "JobDto")
        raw_state = _raw_state(r)
        inputs, inputs_raw = _parse_arguments_text(r.opt_str("InputArguments"))
        outputs, outputs_raw = _parse_arguments_text(r.opt_str("OutputArguments"))
        return cls(
            id=r.required_int("Id"),
            key=r.opt_str("Key"),
            state=JobState.parse(raw_state),
            raw_state=str(raw_state),
            sub_state=r.opt_str("SubState"),
            info=r.opt_str("Info"),
            creation_time=r.opt_datetime("CreationTime"),
            start_time=r.opt_datetime("StartTime"),
            end_time=r.opt_datetime("EndTime"),
            reference=r.opt_str("Reference"),
            release_name=r.opt_str("ReleaseName"),
            folder_id=r.opt_int("OrganizationUnitId"),
            folder_key=r.opt_str("FolderKey"),
            folder_name=r.opt_str("OrganizationUnitFullyQualifiedName"),
            batch_execution_key=r.opt_str("BatchExecutionKey"),
            source=r.opt_str("Source"),
            job_priority=r.opt_str("JobPriority"),
            host_machine_name=r.opt_str("HostMachineName"),
            input_arguments=inputs,
            input_arguments_raw=inputs_raw,
            input_file=r.opt_str("InputFile"),
            output_arguments=outputs,
            output_arguments_raw=outputs_raw,
            output_file=r.opt_str("OutputFile"),
            job_error=r.opt_dict("JobError"),
            error_code=r.opt_str("ErrorCode"),
        )


# JobDto string fields read as they are: (Job field, JobDto field).
_JOB_TEXT_FIELDS = (
    ("key", "Key"),
    ("sub_state", "SubState"),
    ("info", "Info"),
    ("reference", "Reference"),
    ("release_name", "ReleaseName"),
    ("folder_key", "FolderKey"),
    ("folder_name", "OrganizationUnitFullyQualifiedName"),
    ("batch_execution_key", "BatchExecutionKey"),
    ("source", "Source"),
    ("job_priority", "JobPriority"),
    ("host_machine_name", "HostMachineName"),
    ("input_file", "InputFile"),
    ("output_file", "OutputFile"),
    ("error_code", "ErrorCode"),
)
_JOB_TIME_FIELDS = (
    ("creation_time", "CreationTime"),
    ("start_time", "StartTime"),
    ("end_time", "EndTime"),
)


def _job_from_plain_dict(data: dict[str, Any]) -> Job | None:
    """Job.from_api for the usual JobDto (a dict of well-typed fields), with one
    plain loop instead of a checked call per field: a batch reads two JobDtos per
    job. None when any field is unusual: the checked reading then says which."""
    job_id, state = data.get("Id"), data.get("State")
    if type(job_id) is not int or type(state) is not str:
        return None
    fields: dict[str, Any] = {}
    for name, key in _JOB_TEXT_FIELDS:
        value = data.get(key)
        if value is not None and type(value) is not str:
            return None
        fields[name] = value
    for name, key in _JOB_TIME_FIELDS:
        value = data.get(key)
        if value is not None:
            if type(value) is not str:
                return None
            try:
                value = parse_datetime(value)
            except ValueError:
                return None
        fields[name] = value
    folder_id, job_error = data.get("OrganizationUnitId"), data.get("JobError")
    if folder_id is not None and type(folder_id) is not int:
        return None
    if job_error is not None and type(job_error) is not dict:
        return None
    inputs, outputs = data.get("InputArguments"), data.get("OutputArguments")
    if (inputs is not None and type(inputs) is not str) or (
        outputs is not None and type(outputs) is not str
    ):
        return None
    fields["input_arguments"], fields["input_arguments_raw"] = _parse_arguments_text(inputs)
    fields["output_arguments"], fields["output_arguments_raw"] = _parse_arguments_text(outputs)
    return Job(
        id=job_id,
        state=JobState.parse(state),
        raw_state=state,
        folder_id=folder_id,
        job_error=None if job_error is None else dict(job_error),
        **fields,
    )


class CreatedJob(NamedTuple):
    """What starting a job needs of StartJobs' answer about a job it created.

    A batch reads each job in full once it has ended, so a whole :class:`Job`
    built from the answer would be thrown away (it was about 4 % of the client's
    work a job: benchmarks/bench_dispatch.py).
    """

    id: int
    key: str | None
    state: JobState
    reference: str | None
    creation_time: datetime | None


def created_job_of(row: dict[str, Any]) -> CreatedJob | Job:
    """One JobDto of StartJobs' answer, as a :class:`CreatedJob` when its Id,
    State, Key, Reference and CreationTime are the usual well-typed values (its
    other fields are not read); any other row is read in full by
    :meth:`Job.from_api`, whose error names the field at fault."""
    if type(row) is dict:
        job_id, state, key = row.get("Id"), row.get("State"), row.get("Key")
        reference, created = row.get("Reference"), row.get("CreationTime")
        if (
            type(job_id) is int
            and type(state) is str
            and (key is None or type(key) is str)
            and (reference is None or type(reference) is str)
            and (created is None or type(created) is str)
        ):
            try:
                creation_time = parse_datetime(created)
            except ValueError:
                pass  # Job.from_api says what is wrong with it
            else:
                return CreatedJob(job_id, key, JobState.parse(state), reference, creation_time)
    return Job.from_api(row)


def parse_job_state_row(row: object) -> tuple[int, JobState]:
    """Read only Id and State from a JobDto, as a ``$select=Id,State`` list returns.

    Watching jobs reads thousands of such rows; building a whole :class:`Job`
    for each would be wasted work. Same checks and errors as :meth:`Job.from_api`.
    (:func:`parse_job_state_rows` reads the usual row itself, without this call.)
    """
    r = _Reader(row, "JobDto")
    return r.required_int("Id"), JobState.parse(_raw_state(r))


def parse_job_state_rows(
    rows: Iterable[object],
) -> tuple[list[tuple[int, JobState]], int, list[int]]:
    """Id and State of each row of a list answer, how many rows were skipped
    because they could not be read (no integer Id, a State that is missing, null
    or not a string or number, not an object), and the Ids of the skipped rows
    that had an integer Id.

    One bad row must not void the answer about every other job: a job whose row
    is skipped is simply not in the result, and the poller reads such a job by
    id, which settles it (or finds it lost). Its Id says the server listed it, so
    a range answer's poller does not take it for ended (PollPlanner.observe_range).
    """
    parsed: list[tuple[int, JobState]] = []
    skipped = 0
    unread: list[int] = []
    by_name = BY_API_NAME
    for row in rows:
        # The usual row read here, without a call (a list answer is up to 1,000
        # rows, every second); anything else as parse_job_state_row reads it.
        if type(row) is dict:
            job_id, name = row.get("Id"), row.get("State")
            if type(job_id) is int and type(name) is str:
                state = by_name.get(name)
                if state is not None:
                    parsed.append((job_id, state))
                    continue
        try:
            parsed.append(parse_job_state_row(row))
        except ResponseDecodeError:
            skipped += 1
            job_id = row.get("Id") if type(row) is dict else None
            if type(job_id) is int:
                unread.append(job_id)
    return parsed, skipped, unread


def _raw_state(r: _Reader) -> str | int:
    raw_state = r.raw("State")
    if raw_state is None:
        raise r.missing("State")
    if not isinstance(raw_state, str | int) or isinstance(raw_state, bool):
        raise r._fail("State", "a string")
    return raw_state


# -- StartRequest ---------------------------------------------------------------------

#: The strategies that start ``jobs_count`` jobs.
COUNT_STRATEGIES = frozenset({StartStrategy.JOBS_COUNT, StartStrategy.MODERN_JOBS_COUNT})


@dataclass(frozen=True, slots=True, kw_only=True)
class StartRequest:
    """What to start: the StartProcessDto fields a caller needs.

    Checked when built, ``input_arguments`` encoded then, once (into
    ``input_arguments_json``, which :meth:`to_api` sends: a later change to the
    dict is not sent). Every check raises
    :class:`~async_orch._errors.InvalidRequestError` saying what to fix.

    Attributes:
        release_key: ReleaseDto.Key of the process; give this or ``release_name``.
        release_name: the release's Name; Orchestrator looks it up when there is
            no key.
        strategy: which robots run it. ``ModernJobsCount`` (modern folders) and
            ``JobsCount`` start ``jobs_count`` jobs; ``Specific`` one per id in
            ``robot_ids``; ``RobotCount`` (deprecated) ``no_of_robots`` jobs;
            ``All`` one per robot.
        jobs_count: how many jobs to create with a count strategy (>= 1); only
            those strategies use it, so leave it at 1 otherwise.
        robot_ids: robots for ``Specific`` (required there, refused elsewhere).
        machine_session_ids: machines to run on; empty means the first free one.
        no_of_robots: for ``RobotCount`` only (>= 1).
        job_priority: Low/Normal/High; None keeps the release's priority.
        specific_priority_value: finer priority, 1 to 100.
        runtime_type: a StartProcessDto.RuntimeType value such as "Unattended";
            sent as given, since that list grows with every release.
        source: StartProcessDto.Source, "Manual" unless you know better.
        reference: your correlation id (at most 128 characters); it is echoed in
            JobDto.Reference and lets a lost start be found again.
        input_arguments: argument name -> JSON-compatible value; sent as compact
            JSON text, inline up to 10,000 characters (UTF-16 units), else
            uploaded as an attachment by ``OrchestratorAPI.start_jobs``.
        input_file: an attachment Id (``POST /odata/Attachments``) holding the
            inputs; StartJobs refuses it together with ``input_arguments``.
        batch_execution_key: a UUID grouping the started jobs; Orchestrator makes
            one up when absent.
        input_arguments_json: ``input_arguments`` as :func:`dump_input_arguments`
            encodes them; give it when you have it (a batch encodes each request's
            inputs once), else it is made when built.
    """

    release_key: str | None = None
    release_name: str | None = None
    strategy: StartStrategy = StartStrategy.MODERN_JOBS_COUNT
    jobs_count: int = 1
    robot_ids: Sequence[int] | None = None
    machine_session_ids: Sequence[int] | None = None
    no_of_robots: int | None = None
    job_priority: JobPriority | None = None
    specific_priority_value: int | None = None
    runtime_type: str | None = None
    source: str = "Manual"
    reference: str | None = None
    input_arguments: dict[str, Any] | None = None
    batch_execution_key: str | None = None
    input_file: str | None = None
    input_arguments_json: str | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Accept the API's spelling as plain strings too (CLI, config files).
        object.__setattr__(self, "strategy", _coerce_enum(StartStrategy, self.strategy, "strategy"))
        if self.job_priority is not None:
            object.__setattr__(
                self, "job_priority", _coerce_enum(JobPriority, self.job_priority, "job_priority")
            )
        for name in ("robot_ids", "machine_session_ids"):
            ids = getattr(self, name)
            if ids is not None:
                object.__setattr__(self, name, id_tuple(ids, name))
        self._check()
        if self.input_arguments is not None and self.input_arguments_json is None:
            text = dump_input_arguments(self.input_arguments)
            object.__setattr__(self, "input_arguments_json", text)

    def _check(self) -> None:
        if (self.release_key is None) == (self.release_name is None):
            raise InvalidRequestError(
                "give exactly one of release_key (the process's Key) or release_name"
            )
        release = self.release_key if self.release_key is not None else self.release_name
        if not isinstance(release, str) or not release.strip():
            raise InvalidRequestError(
                f"release_key/release_name must be a non-empty string, got {release!r}"
            )
        self._check_strategy()
        self._check_exclusive()
        if self.specific_priority_value is not None and not (
            _is_int(self.specific_priority_value) and 1 <= self.specific_priority_value <= 100
        ):
            raise InvalidRequestError(
                f"specific_priority_value must be an integer from 1 to 100, "
                f"got {self.specific_priority_value!r}"
            )
        if self.reference is not None and (problem := reference_problem(self.reference)):
            raise InvalidRequestError(f"reference {problem}")
        _check_uuid(self.batch_execution_key, "batch_execution_key must be a UUID")
        _check_uuid(self.input_file, "input_file must be an attachment Id (a UUID)")
        if not self.source:
            raise InvalidRequestError('source must not be empty (use "Manual")')

    def _check_exclusive(self) -> None:
        # Both pairs are a 400 InvalidArgument on the real service ("A job cannot
        # have both input file and input arguments"; "Cannot set a specific priority
        # value when a standard job priority setting is selected": orchestrator-api.md §8).
        if self.input_file is not None and self.input_arguments is not None:
            raise InvalidRequestError(
                "give input_arguments or input_file, not both: Orchestrator refuses a job "
                "with both (large inputs are uploaded as an input file for you)"
            )
        if self.job_priority is not None and self.specific_priority_value is not None:
            raise InvalidRequestError(
                "give job_priority (Low/Normal/High) or specific_priority_value (1-100), "
                "not both: Orchestrator refuses a specific value with a standard priority"
            )

    def _check_strategy(self) -> None:
        strategy = self.strategy
        if not _is_int(self.jobs_count):
            raise InvalidRequestError(f"jobs_count must be an integer, got {self.jobs_count!r}")
        if strategy in COUNT_STRATEGIES:
            # UNCONFIRMED: no documented maximum JobsCount per call; none is enforced.
            if self.jobs_count < 1:
                raise InvalidRequestError(
                    f"jobs_count must be at least 1 with strategy {strategy}, got {self.jobs_count}"
                )
        elif self.jobs_count != 1:
            raise InvalidRequestError(
                f"jobs_count only applies to JobsCount/ModernJobsCount, not {strategy}; "
                f"{_STRATEGY_HOW[strategy]}"
            )
        if strategy is StartStrategy.SPECIFIC:
            if not self.robot_ids:
                raise InvalidRequestError(
                    "strategy Specific needs robot_ids (the robots to run on); in a modern "
                    "folder use ModernJobsCount with jobs_count instead"
                )
        elif self.robot_ids:
            raise InvalidRequestError(
                f"robot_ids only apply to strategy Specific, not {strategy}; "
                "set strategy='Specific' or drop robot_ids"
            )
        if strategy is StartStrategy.ROBOT_COUNT:
            if self.no_of_robots is None or not _is_int(self.no_of_robots) or self.no_of_robots < 1:
                raise InvalidRequestError(
                    f"strategy RobotCount needs no_of_robots >= 1, got {self.no_of_robots!r} "
                    "(RobotCount is deprecated: prefer ModernJobsCount with jobs_count)"
                )
        elif self.no_of_robots is not None:
            raise InvalidRequestError(
                f"no_of_robots only applies to strategy RobotCount, not {strategy}"
            )

    def to_api(self) -> dict[str, Any]:
        """The StartJobs body: ``{"startInfo": {...}}`` with None fields left out."""
        # Nothing checked again: every field was checked (and the inputs encoded)
        # when built. A start builds one a job: each field is put in, in the
        # body's order, only when set (a test holds this to a dict filtered of Nones).
        info: dict[str, Any] = {}
        value: Any  # each field in turn
        if (value := self.release_key) is not None:
            info["ReleaseKey"] = value
        if (value := self.release_name) is not None:
            info["ReleaseName"] = value
        info["Strategy"] = str(self.strategy)
        if self.strategy in COUNT_STRATEGIES and (value := self.jobs_count) is not None:
            info["JobsCount"] = value
        if self.robot_ids:
            info["RobotIds"] = list(self.robot_ids)
        if (value := self.no_of_robots) is not None:
            info["NoOfRobots"] = value
        if self.machine_session_ids:
            info["MachineSessionIds"] = list(self.machine_session_ids)
        if (value := self.source) is not None:
            info["Source"] = value
        if (value := self.job_priority) is not None:
            info["JobPriority"] = str(value)
        if (value := self.specific_priority_value) is not None:
            info["SpecificPriorityValue"] = value
        if (value := self.runtime_type) is not None:
            info["RuntimeType"] = value
        if (value := self.reference) is not None:
            info["Reference"] = value
        if (value := self.input_arguments_json) is not None:
            info["InputArguments"] = value
        if (value := self.input_file) is not None:
            info["InputFile"] = value
        if (value := self.batch_execution_key) is not None:
            info["BatchExecutionKey"] = value
        return {"startInfo": info}


def prechecked_start_request(
    *,
    release_key: str,
    strategy: StartStrategy,
    jobs_count: int,
    robot_ids: tuple[int, ...] | None,
    machine_session_ids: tuple[int, ...] | None,
    job_priority: JobPriority | None,
    specific_priority_value: int | None,
    runtime_type: str | None,
    reference: str | None,
    input_arguments: dict[str, Any] | None,
    input_arguments_json: str | None,
) -> StartRequest:
    """A StartRequest built without its checks: for a batch's request that passed
    them already (``_jobs.checked_requests`` built one from the same fields), now
    with its release key and Reference. A start builds one per job, and the checks
    are most of a build's cost; ``_jobs.start_body`` decides when this applies.
    Built by ``_records`` (a quarter of the cost of setting each frozen field)."""
    return _build_start_request(
        release_key=release_key,
        release_name=None,
        strategy=strategy,
        jobs_count=jobs_count,
        robot_ids=robot_ids,
        machine_session_ids=machine_session_ids,
        no_of_robots=None,
        job_priority=job_priority,
        specific_priority_value=specific_priority_value,
        runtime_type=runtime_type,
        source="Manual",
        reference=reference,
        input_arguments=input_arguments,
        batch_execution_key=None,
        input_file=None,
        input_arguments_json=input_arguments_json,
    )


_build_start_request = record_builder(StartRequest)


def _check_uuid(value: object, must: str) -> None:
    if value is None:
        return
    try:
        uuid.UUID(value)  # type: ignore[arg-type]
    except (ValueError, TypeError, AttributeError) as exc:
        raise InvalidRequestError(f"{must}, got {value!r}") from exc


_STRATEGY_HOW = {
    StartStrategy.ALL: "All starts one job per robot",
    StartStrategy.SPECIFIC: "Specific starts one job per id in robot_ids",
    StartStrategy.ROBOT_COUNT: "RobotCount starts no_of_robots jobs",
}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_E = TypeVar("_E", bound=enum.StrEnum)


def _coerce_enum(kind: type[_E], value: object, name: str) -> _E:
    if isinstance(value, kind):
        return value
    if isinstance(value, str):
        try:
            return kind(value)  # the exact spelling, as the API writes it
        except ValueError:
            pass
        for member in kind:
            if member.value.lower() == value.lower():
                return member
    choices = ", ".join(member.value for member in kind)
    raise InvalidRequestError(f"{name} must be one of {choices}; got {value!r}")


def id_tuple(ids: object, name: str) -> tuple[int, ...]:
    if isinstance(ids, str | bytes) or not isinstance(ids, Sequence):
        raise InvalidRequestError(f"{name} must be a list of integer ids, got {ids!r}")
    for item in ids:
        if not _is_int(item):
            raise InvalidRequestError(f"{name} must hold integer ids, got {item!r}")
    return tuple(ids)
