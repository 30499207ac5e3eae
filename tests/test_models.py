"""Pure tests of the DTO records: parsing what Orchestrator sends, refusing bad starts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_schema_validator import OAS30Validator
from referencing import Registry
from referencing.jsonschema import DRAFT4
from samples import POSTMAN_JOB

from async_orch._errors import InvalidRequestError, ResponseDecodeError
from async_orch._models import (
    INPUT_ARGUMENTS_MAX_LENGTH,
    CreatedJob,
    Folder,
    Job,
    JobPriority,
    Release,
    StartRequest,
    StartStrategy,
    created_job_of,
    dump_input_arguments,
    format_datetime,
    needs_input_file,
    parse_datetime,
    parse_input_arguments,
    parse_job_state_row,
)
from async_orch._states import JobState

SPEC = Path(__file__).parent / "spec" / "orchestrator.yaml"

# A finished job as Jobs({id}) returns it, with the fields async-orch reads.
FINISHED_JOB = {
    "Key": "1c7222dc-7f1b-4f3e-9b53-3f5c1c1b2a10",
    "StartTime": "2018-01-15T18:18:02.79Z",
    "EndTime": "2018-01-15T18:18:47.587Z",
    "State": "Successful",
    "SubState": None,
    "JobPriority": "Normal",
    "Source": "Manual",
    "BatchExecutionKey": "8c5302a7-4b1e-4c43-8f59-0d5e0b5c1d11",
    "Info": "Job completed",
    "CreationTime": "2018-01-15T18:18:01.623Z",
    "ReleaseName": "Invoices_Prod",
    "InputArguments": '{"customer":"Zoë","amount":12.5}',
    "OutputArguments": '{"total":42,"lines":["a","b"],"ok":true}',
    "HostMachineName": "ROBOT-01",
    "OrganizationUnitId": 515116,
    "OrganizationUnitFullyQualifiedName": "Finance/Accounts Payable",
    "Reference": "batch42-item7",
    "Id": 125161,
    "HasMediaRecorded": False,  # unknown to the model: ignored
    "Robot": {"Id": 3, "Name": "r"},  # unknown to the model: ignored
}

# F8 sample from orchestrator-api.md §3.1.
SHARED_FOLDER = {
    "Key": "db4528cc-1a2b-4c3d-8e9f-0a1b2c3d4e5f",
    "DisplayName": "Shared",
    "FullyQualifiedName": "Shared",
    "FullyQualifiedNameOrderable": "Shared",
    "Description": None,
    "ProvisionType": "Automatic",
    "PermissionModel": "FineGrained",
    "ParentId": None,
    "ParentKey": None,
    "IsActive": True,
    "FeedType": "Processes",
    "Id": 515116,
}

RELEASE = {
    "Key": "5b754c63-5d1a-4c37-bb9b-74b69e4934bf",
    "ProcessKey": "Invoices",
    "ProcessVersion": "1.0.3",
    "IsLatestVersion": True,
    "Name": "Invoices_Prod",
    "InputArguments": '{"customer":"nobody"}',
    "JobPriority": "Normal",
    "OrganizationUnitId": 515116,
    "OrganizationUnitFullyQualifiedName": "Shared",
    "FolderKey": "db4528cc-1a2b-4c3d-8e9f-0a1b2c3d4e5f",
    "ProcessType": "Process",
    "Id": 77,
    "Arguments": {"Input": "[]", "Output": "[]"},
}


@pytest.fixture(scope="module")
def schema_errors() -> Any:
    """Validate a dict against a component schema of UiPath's OpenAPI description."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec = yaml.load(SPEC.read_text(encoding="utf-8"), Loader=loader)
    registry: Registry[Any] = Registry().with_resource("urn:spec", DRAFT4.create_resource(spec))

    def errors(instance: dict[str, Any], schema: str) -> list[str]:
        validator = OAS30Validator(
            {"$ref": f"urn:spec#/components/schemas/{schema}"},
            registry=registry,
            format_checker=OAS30Validator.FORMAT_CHECKER,
        )
        return [error.message for error in validator.iter_errors(instance)]

    return errors


# -- timestamps ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2018-09-21T13:28:31.1449691Z", datetime(2018, 9, 21, 13, 28, 31, 144969, tzinfo=UTC)),
        ("2018-01-15T18:18:02.79Z", datetime(2018, 1, 15, 18, 18, 2, 790000, tzinfo=UTC)),
        ("2018-01-15T18:18:02.1234567890Z", datetime(2018, 1, 15, 18, 18, 2, 123456, tzinfo=UTC)),
        ("2018-01-15 18:18:02.79Z", datetime(2018, 1, 15, 18, 18, 2, 790000, tzinfo=UTC)),
        ("2018-01-15T18:18:02Z", datetime(2018, 1, 15, 18, 18, 2, tzinfo=UTC)),
        ("2018-01-15T18:18:02.5z", datetime(2018, 1, 15, 18, 18, 2, 500000, tzinfo=UTC)),
        ("2018-01-15T20:18:02.1+02:00", datetime(2018, 1, 15, 18, 18, 2, 100000, tzinfo=UTC)),
        ("2018-01-15T16:48:02-0130", datetime(2018, 1, 15, 18, 18, 2, tzinfo=UTC)),
        # No offset: Orchestrator's timestamps are UTC.
        ("2018-01-15T18:18:02.000", datetime(2018, 1, 15, 18, 18, 2, tzinfo=UTC)),
    ],
)
def test_parse_datetime_reads_orchestrator_timestamps(text: str, expected: datetime) -> None:
    parsed = parse_datetime(text)
    assert parsed == expected
    assert parsed is not None
    assert parsed.tzinfo is UTC


def test_parse_datetime_passes_none_through() -> None:
    assert parse_datetime(None) is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "2018-01-15",
        "2018-13-01T00:00:00Z",
        "2018-13-01T00:00:00.25Z",
        "1516040282",
    ],
)
def test_parse_datetime_rejects_non_timestamps(text: str) -> None:
    with pytest.raises(ValueError, match="timestamp"):
        parse_datetime(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "2024-01-02T03:04:05Z"),
        (datetime(2024, 1, 2, 3, 4, 5, 250000, tzinfo=UTC), "2024-01-02T03:04:05.25Z"),
        (datetime(2024, 1, 2, 3, 4, 5, 1, tzinfo=UTC), "2024-01-02T03:04:05.000001Z"),
        (
            datetime(2024, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))),
            "2024-01-02T03:04:05Z",
        ),
    ],
)
def test_format_datetime_writes_utc_with_z_and_round_trips(value: datetime, text: str) -> None:
    assert format_datetime(value) == text
    assert parse_datetime(text) == value


def test_format_datetime_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="naive"):
        format_datetime(datetime(2024, 1, 2, 3, 4, 5))  # noqa: DTZ001


# -- Folder ---------------------------------------------------------------------------


def test_folder_from_api_reads_the_sample_and_ignores_extra_fields() -> None:
    folder = Folder.from_api(SHARED_FOLDER)
    assert folder == Folder(
        id=515116,
        key="db4528cc-1a2b-4c3d-8e9f-0a1b2c3d4e5f",
        display_name="Shared",
        fully_qualified_name="Shared",
        provision_type="Automatic",
        permission_model="FineGrained",
        feed_type="Processes",
    )


def test_folder_path_falls_back_to_display_name() -> None:
    folder = Folder.from_api({"Id": 1, "DisplayName": "Robots"})
    assert folder.fully_qualified_name == "Robots"
    assert folder.key is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"DisplayName": "x"}, "FolderDto without Id"),
        ({"Id": 1}, "FolderDto without DisplayName"),
        ({"Id": "1", "DisplayName": "x"}, r"FolderDto.Id should be an integer, got str"),
        ({"Id": True, "DisplayName": "x"}, r"FolderDto.Id should be an integer, got bool"),
        ({"Id": 1, "DisplayName": "x", "ParentKey": 5}, r"FolderDto.ParentKey should be a string"),
        (
            {"Id": 1, "DisplayName": "x", "IsPersonal": "no"},
            r"FolderDto.IsPersonal should be a bool",
        ),
    ],
)
def test_folder_from_api_names_what_is_wrong(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ResponseDecodeError, match=message):
        Folder.from_api(data)


def test_from_api_refuses_a_non_object() -> None:
    with pytest.raises(ResponseDecodeError, match="expected a FolderDto object, got list"):
        Folder.from_api([1, 2])  # type: ignore[arg-type]


# -- Release -------------------------------------------------------------------------


def test_release_from_api_parses_default_inputs() -> None:
    release = Release.from_api(RELEASE)
    assert release.key == "5b754c63-5d1a-4c37-bb9b-74b69e4934bf"
    assert release.name == "Invoices_Prod"
    assert release.process_key == "Invoices"
    assert release.process_version == "1.0.3"
    assert release.folder_id == 515116
    assert release.folder_key == "db4528cc-1a2b-4c3d-8e9f-0a1b2c3d4e5f"
    assert release.folder_name == "Shared"
    assert release.input_arguments_default == {"customer": "nobody"}
    assert release.input_arguments_default_raw is None


def test_release_keeps_malformed_default_inputs_as_text() -> None:
    release = Release.from_api({**RELEASE, "InputArguments": "{not json"})
    assert release.input_arguments_default is None
    assert release.input_arguments_default_raw == "{not json"


def test_release_needs_its_key() -> None:
    data = {k: v for k, v in RELEASE.items() if k != "Key"}
    with pytest.raises(ResponseDecodeError, match="ReleaseDto without Key"):
        Release.from_api(data)


# -- Job -----------------------------------------------------------------------------


def test_job_from_api_reads_the_start_jobs_sample() -> None:
    job = Job.from_api(POSTMAN_JOB)
    assert job.id == 160856
    assert job.key == "b618cdfd-8714-4dbf-9a00-0586a8953c90"
    assert job.state is JobState.PENDING
    assert job.raw_state == "Pending"
    assert not job.is_terminal
    assert job.creation_time == datetime(2018, 9, 21, 13, 28, 31, 144969, tzinfo=UTC)
    assert job.start_time is None
    assert job.end_time is None
    assert job.input_arguments == {"greeting": "Aloha"}
    assert job.output_arguments is None
    assert job.output_arguments_raw is None
    assert job.release_name == "Heyyo_playground"
    assert job.batch_execution_key == "abbbb5de-d46a-4b9b-8f73-8a3247be0a0e"


def test_a_start_reads_the_fields_it_needs_as_job_from_api_reads_them() -> None:
    created = created_job_of(dict(POSTMAN_JOB))
    job = Job.from_api(POSTMAN_JOB)
    assert type(created) is CreatedJob
    assert created == (job.id, job.key, job.state, job.reference, job.creation_time)


_START_FIELDS = ("id", "key", "state", "reference", "creation_time")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("Id", "160856"),
        ("Id", True),
        ("Id", None),
        ("Id", 160856.0),
        ("State", 2),
        ("State", None),
        ("State", "Launching"),
        ("State", "pending"),
        ("Key", 5),
        ("Key", None),
        ("Reference", ["r"]),
        ("Reference", None),
        ("CreationTime", "yesterday"),
        ("CreationTime", 1537536511),
        ("CreationTime", None),
        ("CreationTime", "2018-09-21T13:28:31Z"),
        ("CreationTime", "2018-09-21 13:28:31+02:00"),
        ("CreationTime", "2018-09-21T13:28:31.1449691"),
        ("CreationTime", "0001-01-01T00:00:00+05:00"),  # before year 1 in UTC
        ("CreationTime", "9999-12-31T23:59:59-05:00"),  # after year 9999 in UTC
    ],
)
def test_a_start_reads_an_unusual_row_as_job_from_api_does(field: str, value: object) -> None:
    # The same fields, or the same error naming the field at fault.
    row = dict(POSTMAN_JOB, **{field: value})
    try:
        expected: object = Job.from_api(row)
    except ResponseDecodeError as exc:
        with pytest.raises(ResponseDecodeError) as caught:
            created_job_of(row)
        assert str(caught.value) == str(exc)
        return
    created = created_job_of(row)
    assert [getattr(created, f) for f in _START_FIELDS] == [
        getattr(expected, f) for f in _START_FIELDS
    ]


def test_a_start_does_not_fail_on_a_field_it_does_not_read() -> None:
    # A created job is not lost over an odd field a start has no use for (the
    # job's full record is read, and checked, once it has ended).
    row = dict(POSTMAN_JOB, OrganizationUnitId="Finance", InputArguments=7)
    with pytest.raises(ResponseDecodeError):
        Job.from_api(row)
    created = created_job_of(row)
    assert created == created_job_of(dict(POSTMAN_JOB))


def test_job_from_api_reads_a_finished_job() -> None:
    job = Job.from_api(FINISHED_JOB)
    assert job.state is JobState.SUCCESSFUL
    assert job.is_terminal
    assert job.output_arguments == {"total": 42, "lines": ["a", "b"], "ok": True}
    assert job.input_arguments == {"customer": "Zoë", "amount": 12.5}
    assert job.start_time == datetime(2018, 1, 15, 18, 18, 2, 790000, tzinfo=UTC)
    assert job.end_time == datetime(2018, 1, 15, 18, 18, 47, 587000, tzinfo=UTC)
    assert job.folder_id == 515116
    assert job.folder_name == "Finance/Accounts Payable"
    assert job.reference == "batch42-item7"
    assert job.host_machine_name == "ROBOT-01"
    assert job.info == "Job completed"


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("Cancelled", JobState.UNKNOWN),  # newer services; not in the v20 spec
        ("successful", JobState.SUCCESSFUL),
        ("Successful", JobState.SUCCESSFUL),  # the API's spelling: the fast lookup
        ("RUNNING", JobState.RUNNING),
        (5, JobState.SUCCESSFUL),  # the documented numeric value
        (42, JobState.UNKNOWN),
    ],
)
def test_job_state_is_parsed_defensively_and_the_raw_value_kept(
    raw: object, state: JobState
) -> None:
    job = Job.from_api({"Id": 1, "State": raw})
    assert job.state is state
    assert job.raw_state == str(raw)


def test_a_job_built_in_code_writes_its_state_name() -> None:
    job = Job(id=3, state=JobState.RUNNING, output_arguments={"x": 1})
    assert job.raw_state == "Running"
    assert job.output_arguments == {"x": 1}


def test_job_needs_id_and_state() -> None:
    with pytest.raises(ResponseDecodeError, match="JobDto without State"):
        Job.from_api({"Id": 1})
    with pytest.raises(ResponseDecodeError, match="JobDto without Id"):
        Job.from_api({"State": "Running"})
    with pytest.raises(ResponseDecodeError, match=r"JobDto.State should be a string"):
        Job.from_api({"Id": 1, "State": ["Running"]})


def test_a_state_row_gives_id_and_state_with_the_same_checks_as_a_job() -> None:
    assert parse_job_state_row({"Id": 7, "State": "Running"}) == (7, JobState.RUNNING)
    assert parse_job_state_row({"Id": 7, "State": 5}) == (7, JobState.SUCCESSFUL)
    assert parse_job_state_row({"Id": 7, "State": "Cancelled"}) == (7, JobState.UNKNOWN)
    with pytest.raises(ResponseDecodeError, match="JobDto without State"):
        parse_job_state_row({"Id": 1})
    with pytest.raises(ResponseDecodeError, match="JobDto without Id"):
        parse_job_state_row({"State": "Running"})
    with pytest.raises(ResponseDecodeError, match=r"JobDto.Id should be an integer"):
        parse_job_state_row({"Id": True, "State": "Running"})
    with pytest.raises(ResponseDecodeError, match=r"JobDto.State should be a string"):
        parse_job_state_row({"Id": 1, "State": ["Running"]})
    with pytest.raises(ResponseDecodeError, match="expected a JobDto object"):
        parse_job_state_row(["Id", 1])


def test_job_reads_a_minimal_list_row() -> None:
    # What a list call with $select=Id,State,Key returns.
    job = Job.from_api({"Id": 7, "State": "Running", "Key": "k"})
    assert (job.id, job.state, job.key) == (7, JobState.RUNNING, "k")


@pytest.mark.parametrize("text", ["{oops", "[1, 2]", '"just text"', "null", ""])
def test_job_keeps_output_text_that_is_not_an_object(text: str) -> None:
    job = Job.from_api({"Id": 1, "State": "Successful", "OutputArguments": text})
    assert job.output_arguments is None
    assert job.output_arguments_raw == text


def test_job_reads_output_file_and_job_error() -> None:
    error = {"code": "Robot.Crash", "title": "Robot crashed", "detail": "x", "status": 500}
    job = Job.from_api(
        {
            "Id": 1,
            "State": "Faulted",
            "OutputArguments": None,
            "OutputFile": "0f8fad5b-d9cb-469f-a165-70867728950e",
            "JobError": error,
            "ErrorCode": "Robot.Crash",
            "Info": "Execution error : System.Exception: boom",
        }
    )
    assert job.output_file == "0f8fad5b-d9cb-469f-a165-70867728950e"
    assert job.job_error == error
    assert job.error_code == "Robot.Crash"
    assert job.state is JobState.FAULTED


def test_job_names_a_bad_timestamp() -> None:
    with pytest.raises(ResponseDecodeError, match=r"JobDto.EndTime should be an ISO-8601"):
        Job.from_api({"Id": 1, "State": "Successful", "EndTime": "last tuesday"})


def test_job_names_a_bad_job_error() -> None:
    with pytest.raises(ResponseDecodeError, match=r"JobDto.JobError should be an object"):
        Job.from_api({"Id": 1, "State": "Faulted", "JobError": "boom"})


_JOB_VARIANTS: list[dict[str, Any]] = [
    FINISHED_JOB,
    POSTMAN_JOB,
    {"Id": 7, "State": "Running"},
    {"Id": 7, "State": 5},  # a documented number
    {"Id": 7, "State": "Brand new"},  # unknown: kept raw
    {"Id": 7, "State": ""},
    {**FINISHED_JOB, "OutputArguments": "[1, 2]"},
    {**FINISHED_JOB, "InputArguments": "{oops"},
    {**FINISHED_JOB, "EndTime": "2018-01-15T18:18:47+02:00"},  # an offset: the slow parser
    {**FINISHED_JOB, "JobError": {"code": "X"}, "ErrorCode": "X"},
    {**FINISHED_JOB, "OrganizationUnitId": True},  # refused: a boolean is no id
    {**FINISHED_JOB, "Key": 12},
    {**FINISHED_JOB, "EndTime": "last tuesday"},
    {**FINISHED_JOB, "EndTime": 12},
    {**FINISHED_JOB, "JobError": "boom"},
    {**FINISHED_JOB, "OutputArguments": {"already": "parsed"}},
    {**FINISHED_JOB, "Id": "7"},
    {**FINISHED_JOB, "Id": True},
    {"State": "Running"},
]


@pytest.mark.parametrize("data", _JOB_VARIANTS)
def test_job_reading_of_plain_dicts_matches_the_checked_reading(data: dict[str, Any]) -> None:
    # from_api reads the usual JobDto in one loop; it must agree with the
    # field-by-field reading on every value, and fail with its message.
    try:
        expected = Job._from_api_checked(data)
    except ResponseDecodeError as exc:
        with pytest.raises(ResponseDecodeError) as raised:
            Job.from_api(data)
        assert str(raised.value) == str(exc)
    else:
        assert Job.from_api(data) == expected


def test_the_usual_job_dto_takes_the_one_loop_reading() -> None:
    from async_orch._models import _job_from_plain_dict

    assert _job_from_plain_dict(FINISHED_JOB) == Job._from_api_checked(FINISHED_JOB)


# -- parse_input_arguments / dump_input_arguments ----------------------------------------


def test_parse_input_arguments_returns_the_object() -> None:
    assert parse_input_arguments('{"name": "value", "n": [1, 2]}') == {"name": "value", "n": [1, 2]}


def test_parse_input_arguments_explains_malformed_json() -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_input_arguments("{name: 1}")
    message = str(info.value)
    assert message.startswith(
        """InputArguments must be a JSON object, e.g. '{"name": "value"}': """
    )
    assert "line 1 column 2" in message


@pytest.mark.parametrize(
    ("text", "kind"),
    [("[1]", "array"), ("3", "number"), ('"x"', "string"), ("null", "null"), ("true", "boolean")],
)
def test_parse_input_arguments_wants_an_object(text: str, kind: str) -> None:
    with pytest.raises(InvalidRequestError, match=f"must be a JSON object.*got a JSON {kind}"):
        parse_input_arguments(text)


def test_dump_input_arguments_is_compact_and_keeps_non_ascii() -> None:
    assert dump_input_arguments({"name": "Zoë", "n": [1, 2]}) == '{"name":"Zoë","n":[1,2]}'


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"when": datetime(2024, 1, 1, tzinfo=UTC)},
            "input argument 'when' cannot be sent as JSON",
        ),
        ({"ok": 1, "tags": {"a", "b"}}, "input argument 'tags' cannot be sent as JSON"),
        ({"ratio": float("nan")}, "input argument 'ratio' holds NaN, Infinity"),
        ({1: "x"}, "input argument names must be strings, got 1"),
    ],
)
def test_dump_input_arguments_names_the_bad_argument(
    arguments: dict[Any, Any], message: str
) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        dump_input_arguments(arguments)


def test_dump_input_arguments_refuses_non_mappings() -> None:
    with pytest.raises(InvalidRequestError, match=r"must be a dict .* got list"):
        dump_input_arguments([("a", 1)])  # type: ignore[arg-type]


def _arguments_of_length(length: int, filler: str = "x") -> dict[str, str]:
    overhead = len('{"a":""}')
    return {"a": filler * (length - overhead)}


def test_input_arguments_over_10000_characters_go_as_an_input_file() -> None:
    at_limit = dump_input_arguments(_arguments_of_length(INPUT_ARGUMENTS_MAX_LENGTH))
    assert len(at_limit) == 10_000 and not needs_input_file(at_limit)
    assert needs_input_file(dump_input_arguments(_arguments_of_length(10_001)))


def test_input_arguments_length_counts_utf16_units_like_the_server() -> None:
    # 5,000 emoji are 5,000 Python characters but 10,000 UTF-16 code units.
    text = dump_input_arguments({"a": "😀" * 5000})
    assert len(text) < 10_000 and needs_input_file(text)


# -- StartRequest --------------------------------------------------------------------------

KEY = "5b754c63-5d1a-4c37-bb9b-74b69e4934bf"


def test_start_request_default_body() -> None:
    assert StartRequest(release_key=KEY).to_api() == {
        "startInfo": {
            "ReleaseKey": KEY,
            "Strategy": "ModernJobsCount",
            "JobsCount": 1,
            "Source": "Manual",
        }
    }


def test_start_request_full_body_matches_the_spec(schema_errors: Any) -> None:
    request = StartRequest(
        release_name="Invoices_Prod",
        strategy=StartStrategy.JOBS_COUNT,
        jobs_count=3,
        machine_session_ids=[11, 12],
        job_priority=JobPriority.HIGH,
        runtime_type="Unattended",
        reference="batch42-item7",
        input_arguments={"customer": "Zoë", "amount": 12.5},
        batch_execution_key="8c5302a7-4b1e-4c43-8f59-0d5e0b5c1d11",
    )
    body = request.to_api()
    assert body == {
        "startInfo": {
            "ReleaseName": "Invoices_Prod",
            "Strategy": "JobsCount",
            "JobsCount": 3,
            "MachineSessionIds": [11, 12],
            "Source": "Manual",
            "JobPriority": "High",
            "RuntimeType": "Unattended",
            "Reference": "batch42-item7",
            "InputArguments": '{"customer":"Zoë","amount":12.5}',
            "BatchExecutionKey": "8c5302a7-4b1e-4c43-8f59-0d5e0b5c1d11",
        }
    }
    assert schema_errors(body["startInfo"], "StartProcessDto") == []


def _body_filtered_of_nones(request: StartRequest) -> dict[str, Any]:
    """The StartJobs body as a dict of every field, in the body's order, less the
    Nones: what to_api's field-by-field build must equal, order included."""
    counted = request.strategy in (StartStrategy.JOBS_COUNT, StartStrategy.MODERN_JOBS_COUNT)
    every = {
        "ReleaseKey": request.release_key,
        "ReleaseName": request.release_name,
        "Strategy": str(request.strategy),
        "JobsCount": request.jobs_count if counted else None,
        "RobotIds": list(request.robot_ids) if request.robot_ids else None,
        "NoOfRobots": request.no_of_robots,
        "MachineSessionIds": (
            list(request.machine_session_ids) if request.machine_session_ids else None
        ),
        "Source": request.source,
        "JobPriority": None if request.job_priority is None else str(request.job_priority),
        "SpecificPriorityValue": request.specific_priority_value,
        "RuntimeType": request.runtime_type,
        "Reference": request.reference,
        "InputArguments": request.input_arguments_json,
        "InputFile": request.input_file,
        "BatchExecutionKey": request.batch_execution_key,
    }
    return {"startInfo": {k: v for k, v in every.items() if v is not None}}


@pytest.mark.parametrize(
    "fields",
    [
        {"release_key": KEY},
        {"release_name": "P", "strategy": "JobsCount", "jobs_count": 4, "source": "Assistant"},
        {"release_key": KEY, "strategy": "Specific", "robot_ids": [1, 2], "reference": "r"},
        {"release_key": KEY, "strategy": "RobotCount", "no_of_robots": 3},
        {
            "release_key": KEY,
            "strategy": "All",
            "job_priority": "Low",
            "runtime_type": "NonProduction",
        },
        {
            "release_key": KEY,
            "machine_session_ids": [7],
            "specific_priority_value": 55,
            "input_arguments": {"a": [1, {"b": None}]},
            "batch_execution_key": "8c5302a7-4b1e-4c43-8f59-0d5e0b5c1d11",
        },
        {
            "release_key": KEY,
            "input_file": "0b5f8a44-2c1e-4b0e-9f3a-6d2b7f1c9e21",
            "reference": "x" * 128,
        },
    ],
)
def test_start_request_body_is_every_set_field_in_order(fields: dict[str, Any]) -> None:
    request = StartRequest(**fields)
    body = request.to_api()
    expected = _body_filtered_of_nones(request)
    assert body == expected
    assert list(body["startInfo"]) == list(expected["startInfo"])  # the order, too


def test_start_request_specific_sends_robot_ids_and_no_jobs_count() -> None:
    request = StartRequest(release_key=KEY, strategy=StartStrategy.SPECIFIC, robot_ids=[1553])
    info = request.to_api()["startInfo"]
    assert info["RobotIds"] == [1553]
    assert "JobsCount" not in info
    assert request.robot_ids == (1553,)  # stored as a tuple


def test_start_request_robot_count_sends_no_of_robots() -> None:
    info = StartRequest(release_key=KEY, strategy="RobotCount", no_of_robots=2).to_api()[  # type: ignore[arg-type]
        "startInfo"
    ]
    assert info["Strategy"] == "RobotCount"
    assert info["NoOfRobots"] == 2
    assert "JobsCount" not in info


def test_start_request_accepts_api_spellings_as_strings() -> None:
    request = StartRequest(release_key=KEY, strategy="all", job_priority="low")  # type: ignore[arg-type]
    assert request.strategy is StartStrategy.ALL
    assert request.job_priority is JobPriority.LOW
    assert request.to_api()["startInfo"]["Strategy"] == "All"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of release_key"),
        ({"release_key": KEY, "release_name": "x"}, "exactly one of release_key"),
        ({"release_key": "  "}, "non-empty"),
        ({"release_key": KEY, "strategy": "Sometimes"}, "strategy must be one of All, Specific"),
        ({"release_key": KEY, "strategy": "Specific"}, "Specific needs robot_ids"),
        ({"release_key": KEY, "strategy": "Specific", "robot_ids": []}, "Specific needs robot_ids"),
        ({"release_key": KEY, "robot_ids": [1]}, "robot_ids only apply to strategy Specific"),
        ({"release_key": KEY, "robot_ids": ["1"]}, "robot_ids must hold integer ids"),
        (
            {"release_key": KEY, "strategy": "Specific", "robot_ids": "1,2"},
            "robot_ids must be a list of integer ids",
        ),
        ({"release_key": KEY, "strategy": 3}, "strategy must be one of"),
        ({"release_key": KEY, "source": ""}, "source must not be empty"),
        ({"release_key": KEY, "jobs_count": 0}, "jobs_count must be at least 1"),
        ({"release_key": KEY, "jobs_count": 2.0}, "jobs_count must be an integer"),
        (
            {"release_key": KEY, "strategy": "Specific", "robot_ids": [1], "jobs_count": 5},
            "jobs_count only applies to JobsCount/ModernJobsCount",
        ),
        ({"release_key": KEY, "strategy": "RobotCount"}, "RobotCount needs no_of_robots >= 1"),
        (
            {"release_key": KEY, "no_of_robots": 2},
            "no_of_robots only applies to strategy RobotCount",
        ),
        ({"release_key": KEY, "specific_priority_value": 0}, "from 1 to 100"),
        ({"release_key": KEY, "specific_priority_value": 101}, "from 1 to 100"),
        ({"release_key": KEY, "job_priority": "Urgent"}, "job_priority must be one of Low"),
        ({"release_key": KEY, "reference": "r" * 129}, "reference is 129 characters"),
        ({"release_key": KEY, "reference": ""}, "reference must not be empty"),
        (
            {"release_key": KEY, "batch_execution_key": "batch-1"},
            "batch_execution_key must be a UUID",
        ),
        ({"release_key": KEY, "input_arguments": ["a"]}, "input_arguments must be a dict"),
        (
            {"release_key": KEY, "input_arguments": {"when": datetime(2024, 1, 1, tzinfo=UTC)}},
            "input argument 'when'",
        ),
    ],
)
def test_start_request_refuses_what_orchestrator_would_reject(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        StartRequest(**kwargs)


def test_start_request_reference_limit_is_128_characters() -> None:
    info = StartRequest(release_key=KEY, reference="r" * 128).to_api()["startInfo"]
    assert info["Reference"] == "r" * 128


def test_start_request_sends_the_inputs_encoded_when_built() -> None:
    # Encoded once (a batch must not encode each input again per call or re-post):
    # what was checked is what is sent, even if the dict changes afterwards.
    inputs: dict[str, Any] = {"a": 1}
    request = StartRequest(release_key=KEY, input_arguments=inputs)
    inputs["b"] = object()
    assert request.to_api()["startInfo"]["InputArguments"] == '{"a":1}'


def test_start_request_keeps_large_inputs_for_the_upload() -> None:
    # OrchestratorAPI.start_jobs uploads them and sends InputFile (test_big_payloads.py).
    body = StartRequest(release_key=KEY, input_arguments=_arguments_of_length(10_001)).to_api()
    assert needs_input_file(body["startInfo"]["InputArguments"])


def test_records_are_frozen() -> None:
    job = Job.from_api(POSTMAN_JOB)
    with pytest.raises(AttributeError):
        job.state = JobState.RUNNING  # type: ignore[misc]


def test_a_job_handle_from_a_dict_names_what_is_missing() -> None:
    import pytest

    from async_orch import JobHandle

    with pytest.raises(ValueError, match=r"needs 'job_id' .*got the fields \['folder_id'\]"):
        JobHandle.from_dict({"folder_id": 1})
    with pytest.raises(ValueError, match=r"not \[1, 2\]"):
        JobHandle.from_dict([1, 2])  # type: ignore[arg-type]
    handle = JobHandle.from_dict({"job_id": 5, "folder_id": 1})
    assert (handle.job_id, handle.folder_id) == (5, 1)
