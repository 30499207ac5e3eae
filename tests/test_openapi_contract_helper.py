"""The contract helper itself: hand-made bodies that must pass, and ones that must fail."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from openapi_contract import load_contract, operation_id_for, validate_response
from samples import POSTMAN_JOB

START_JOBS = "/odata/Jobs/UiPath.Server.Configuration.OData.StartJobs"
STOP_JOBS = "/odata/Jobs/UiPath.Server.Configuration.OData.StopJobs"
STOP_JOB = "/odata/Jobs(160856)/UiPath.Server.Configuration.OData.StopJob"

# The 201 body of a real StartJobs call (Postman collection sample, 2018).
START_JOBS_201: dict[str, Any] = {
    "@odata.context": "https://beta.uipath.com/odata/$metadata#Jobs",
    "value": [POSTMAN_JOB],
}

FINISHED_JOB: dict[str, Any] = {
    "Key": "1c7222dc-1d3a-4fd2-b3a3-a8a8d9b3a0f1",
    "StartTime": "2018-01-15T18:18:02.79Z",
    "EndTime": "2018-01-15T18:18:47.587Z",
    "State": "Successful",
    "JobPriority": "Normal",
    "SpecificPriorityValue": 45,
    "Source": "Manual",
    "SourceType": "Manual",
    "BatchExecutionKey": "8c5302a7-3c6d-4b8e-9d83-2c1f2e2b6a10",
    "Info": "Job completed",
    "CreationTime": "2018-01-15T18:18:01.623Z",
    "LastModificationTime": "2018-01-15T18:18:47.6Z",
    "StartingScheduleId": None,
    "ReleaseName": "Invoices_Production",
    "Type": "Unattended",
    "InputArguments": None,
    "OutputArguments": None,
    "HostMachineName": "ROBOT-01",
    "Reference": "batch42-item7",
    "OrganizationUnitId": 515116,
    "OrganizationUnitFullyQualifiedName": "Shared/Finance",
    "RuntimeType": "Unattended",
    "ProcessType": "Process",
    "Id": 125161,
}

JOBS_PAGE: dict[str, Any] = {
    "@odata.context": "https://cloud.uipath.com/org/tenant/orchestrator_/odata/$metadata#Jobs",
    "@odata.count": 2,
    "value": [FINISHED_JOB, {**FINISHED_JOB, "Id": 125162, "State": "Faulted", "EndTime": None}],
}

# Shaped like a real Folders response (FullyQualifiedNameOrderable and IsActive
# are sent by the service but absent from the description).
FOLDERS_PAGE: dict[str, Any] = {
    "@odata.context": "https://cloud.uipath.com/org/tenant/orchestrator_/odata/$metadata#Folders",
    "@odata.count": 2,
    "value": [
        {
            "Key": "db4528cc-7c2b-4e8c-9f7e-f1a2b3c4d5e6",
            "DisplayName": "Shared",
            "FullyQualifiedName": "Shared",
            "FullyQualifiedNameOrderable": "Shared",
            "Description": None,
            "FolderType": "Standard",
            "ProvisionType": "Automatic",
            "PermissionModel": "FineGrained",
            "ParentId": None,
            "ParentKey": None,
            "IsActive": True,
            "FeedType": "Processes",
            "Id": 515116,
        },
        {
            "Key": "0f0e1d2c-3b4a-4958-8776-a5b4c3d2e1f0",
            "DisplayName": "Finance",
            "FullyQualifiedName": "Shared/Finance",
            "FolderType": "Standard",
            "ParentId": 515116,
            "ParentKey": "db4528cc-7c2b-4e8c-9f7e-f1a2b3c4d5e6",
            "Id": 515117,
        },
    ],
}

RELEASE: dict[str, Any] = {
    "Key": "5b754c63-5d1a-4c37-bb9b-74b69e4934bf",
    "ProcessKey": "Invoices",
    "ProcessVersion": "1.0.3",
    "IsLatestVersion": True,
    "IsProcessDeleted": False,
    "Description": None,
    "Name": "Invoices_Production",
    "EntryPointPath": "Main.xaml",
    "InputArguments": None,
    "ProcessType": "Process",
    "JobPriority": "Normal",
    "SpecificPriorityValue": 45,
    "FolderKey": "0f0e1d2c-3b4a-4958-8776-a5b4c3d2e1f0",
    "OrganizationUnitId": 515117,
    "OrganizationUnitFullyQualifiedName": "Shared/Finance",
    "TargetFramework": "Windows",
    "Tags": [],
    "CreationTime": "2024-01-02T03:04:05.06Z",
    "Id": 42,
}
RELEASES_PAGE: dict[str, Any] = {
    "@odata.context": "https://cloud.uipath.com/org/tenant/orchestrator_/odata/$metadata#Releases",
    "value": [RELEASE],
}


def failure(method: str, path: str, status: int, body: Any, **kwargs: Any) -> str:
    with pytest.raises(AssertionError) as caught:
        validate_response(method, path, status, body, **kwargs)
    return str(caught.value)


def with_job(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(JOBS_PAGE)
    body["value"][0].update(changes)
    return body


# ------------------------------------------------------------------ operations


@pytest.mark.parametrize(
    ("method", "path", "operation_id"),
    [
        ("GET", "/odata/Folders", "Folders_Get"),
        ("GET", "/odata/Releases", "Releases_Get"),
        ("GET", "/odata/Jobs", "Jobs_Get"),
        ("get", "/odata/Jobs?$filter=Id%20in%20(1,2)&$top=50", "Jobs_Get"),
        ("GET", "/odata/Jobs(5)", "Jobs_GetById"),
        ("POST", START_JOBS, "Jobs_StartJobs"),
        ("POST", STOP_JOBS, "Jobs_StopJobs"),
        # The single-job stop is called Jobs_StopJobById in the description.
        ("POST", STOP_JOB, "Jobs_StopJobById"),
    ],
)
def test_paths_resolve_to_their_operations(method: str, path: str, operation_id: str) -> None:
    assert operation_id_for(method, path) == operation_id


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("GET", "/odata/Nope", "the OpenAPI description has no path matching '/odata/Nope'"),
        ("GET", "/odata/Jobs(abc)", "no path matching '/odata/Jobs(abc)'"),
        ("DELETE", "/odata/Jobs", "has no DELETE operation on '/odata/Jobs' (it has GET)"),
        ("GET", "odata/Jobs", "path 'odata/Jobs' must start with '/'"),
    ],
)
def test_unknown_paths_and_operations_fail(method: str, path: str, message: str) -> None:
    assert message in failure(method, path, 200, {"value": []})


def test_the_description_is_loaded_once() -> None:
    assert load_contract() is load_contract()
    assert load_contract().load_seconds > 0


# -------------------------------------------------------------- valid bodies


def test_valid_job_list() -> None:
    validate_response("GET", "/odata/Jobs", 200, JOBS_PAGE)


def test_empty_job_list() -> None:
    validate_response("GET", "/odata/Jobs", 200, {"@odata.count": 0, "value": []})


def test_valid_single_job() -> None:
    validate_response("GET", "/odata/Jobs(125161)", 200, FINISHED_JOB)


def test_valid_start_jobs_201_as_sent_by_orchestrator() -> None:
    validate_response(
        "POST",
        START_JOBS,
        201,
        START_JOBS_201,
        content_type="application/json; odata.metadata=minimal; odata.streaming=true",
    )


def test_valid_folder_list_with_properties_the_description_omits() -> None:
    validate_response("GET", "/odata/Folders", 200, FOLDERS_PAGE)


def test_valid_release_list() -> None:
    validate_response("GET", "/odata/Releases", 200, RELEASES_PAGE)


@pytest.mark.parametrize("empty", [None, "", b""])
def test_stop_operations_have_empty_bodies(empty: Any) -> None:
    validate_response("POST", STOP_JOBS, 200, empty)
    validate_response("POST", STOP_JOB, 200, empty)


def test_strict_mode_accepts_bodies_without_nulls() -> None:
    job = {k: v for k, v in FINISHED_JOB.items() if v is not None}
    validate_response("GET", "/odata/Jobs(1)", 200, job, allow_null_optionals=False)


def test_forbid_undeclared_accepts_declared_properties_and_odata_annotations() -> None:
    validate_response("GET", "/odata/Jobs", 200, JOBS_PAGE, forbid_undeclared=True)


# ------------------------------------------------------------ invalid bodies


def test_wrong_state_enum_fails() -> None:
    message = failure("GET", "/odata/Jobs", 200, with_job(State="Done"))
    assert "$.value[0].State: 'Done' is not one of: Pending, Running, Stopping" in message


def test_id_as_string_fails() -> None:
    message = failure("GET", "/odata/Jobs", 200, with_job(Id="125161"))
    assert "$.value[0].Id: '125161' is not of type 'integer'" in message


def test_boolean_is_not_an_integer() -> None:
    message = failure("GET", "/odata/Jobs(1)", 200, {**FINISHED_JOB, "Id": True})
    assert "$.Id: True is not of type 'integer'" in message


def test_missing_required_folder_display_name_fails() -> None:
    body = copy.deepcopy(FOLDERS_PAGE)
    del body["value"][1]["DisplayName"]
    message = failure("GET", "/odata/Folders", 200, body)
    assert "$.value[1]: 'DisplayName' is a required property" in message


def test_missing_required_release_fields_fail() -> None:
    release = {k: v for k, v in RELEASE.items() if k not in {"ProcessKey", "ProcessVersion"}}
    message = failure("GET", "/odata/Releases", 200, {"value": [release]})
    assert "'ProcessKey' is a required property" in message
    assert "'ProcessVersion' is a required property" in message


def test_null_in_a_required_property_fails() -> None:
    body = copy.deepcopy(FOLDERS_PAGE)
    body["value"][0]["DisplayName"] = None
    message = failure("GET", "/odata/Folders", 200, body)
    assert "$.value[0].DisplayName: null is not allowed here" in message


def test_strict_mode_refuses_every_null() -> None:
    message = failure("POST", START_JOBS, 201, START_JOBS_201, allow_null_optionals=False)
    assert "(5 problem(s))" in message
    assert "$.value[0].StartTime: null is not allowed" in message


def test_formats_are_checked() -> None:
    body = with_job(
        CreationTime="2018-01-15 18:18:01",
        StartTime="2018-01-15T18:18:02.79",  # no offset
        Key="not-a-guid",
        OrganizationUnitId=2**63,
    )
    message = failure("GET", "/odata/Jobs", 200, body)
    assert "$.value[0].CreationTime: '2018-01-15 18:18:01' is not a 'date-time'" in message
    assert "$.value[0].StartTime: '2018-01-15T18:18:02.79' is not a 'date-time'" in message
    assert "$.value[0].Key: 'not-a-guid' is not a 'uuid'" in message
    assert "$.value[0].OrganizationUnitId: 9223372036854775808 is not a 'int64'" in message


def test_ranges_and_lengths_are_checked() -> None:
    message = failure("GET", "/odata/Jobs(1)", 200, {**FINISHED_JOB, "SpecificPriorityValue": 0})
    assert "$.SpecificPriorityValue: 0 is less than the minimum of 1" in message
    body = copy.deepcopy(FOLDERS_PAGE)
    body["value"][0]["DisplayName"] = ""
    assert "should be non-empty" in failure("GET", "/odata/Folders", 200, body)


def test_every_violation_is_listed() -> None:
    body = copy.deepcopy(JOBS_PAGE)
    body["value"][0]["State"] = "Done"
    body["value"][1]["Id"] = "x"
    message = failure("GET", "/odata/Jobs", 200, body)
    assert "Jobs_Get (GET /odata/Jobs) response 200 does not match" in message
    assert "ODataValueOfIEnumerableOfJobDto (2 problem(s))" in message
    assert "$.value[0].State" in message
    assert "$.value[1].Id" in message


def test_long_listings_are_capped() -> None:
    body = {"value": [{**FINISHED_JOB, "State": "Done"} for _ in range(100)]}
    message = failure("GET", "/odata/Jobs", 200, body)
    assert "(100 problem(s))" in message
    assert "... and 60 more" in message


def test_undeclared_properties_fail_only_when_forbidden() -> None:
    message = failure("GET", "/odata/Folders", 200, FOLDERS_PAGE, forbid_undeclared=True)
    assert "$.value[0].FullyQualifiedNameOrderable: 'FullyQualifiedNameOrderable' is not" in (
        message
    )
    assert "$.value[0].IsActive" in message
    assert "(2 problem(s))" in message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"@odata.count": 0}, "an OData collection (ODataValueOfIEnumerableOfJobDto) must have"),
        ({"value": [], "@odata.count": "2"}, "$['@odata.count']: '2' is not a non-negative"),
        ({"value": [], "@odata.count": True}, "$['@odata.count']: True is not a non-negative"),
        ({"value": [], "@odata.count": -1}, "$['@odata.count']: -1 is not a non-negative"),
        ({"value": [], "@odata.context": 5}, "$['@odata.context']: 5 is not a string"),
        ({"value": {}}, "$.value: {} is not of type 'array'"),
        ({"value": [None]}, "$.value[0]: null is not allowed here"),
        ([], "$: [] is not of type 'object'"),
        (None, "$: null is not allowed here"),
    ],
)
def test_broken_envelopes_fail(body: Any, message: str) -> None:
    assert message in failure("GET", "/odata/Jobs", 200, body)


def test_undeclared_status_fails() -> None:
    message = failure("GET", "/odata/Jobs", 404, {"message": "nope", "errorCode": 1002})
    assert message == "Jobs_Get (GET /odata/Jobs) declares no response 404 (declared: 200)"


def test_start_jobs_declares_201_not_200() -> None:
    message = failure("POST", START_JOBS, 200, START_JOBS_201)
    assert "declares no response 200 (declared: 201)" in message


def test_undeclared_content_type_fails() -> None:
    message = failure("GET", "/odata/Jobs", 200, JOBS_PAGE, content_type="text/html")
    assert "response 200 has no content type 'text/html' (declared: application/json)" in message


def test_body_on_an_empty_response_fails() -> None:
    message = failure("POST", STOP_JOBS, 200, {"value": []})
    assert "the description declares no body, got {'value': []}" in message
