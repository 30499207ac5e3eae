"""Every Orchestrator route over HTTP: bodies match UiPath's OpenAPI, errors their shapes."""

from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import FakeClock, SimClient
from openapi_contract import validate_response

from async_orch.simulator import SimulatorHandle

START = "/odata/Jobs/UiPath.Server.Configuration.OData.StartJobs"
STOP = "/odata/Jobs/UiPath.Server.Configuration.OData.StopJobs"
TRACE_ID = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01")


def assert_modern_error(body: Any, code: int | str, message: str) -> None:
    assert set(body) == {"message", "errorCode", "traceId"}, body
    assert body["errorCode"] == code, body
    assert message in body["message"], body
    assert TRACE_ID.fullmatch(body["traceId"])


# -- folders and releases -------------------------------------------------------------------


async def test_folders_list_matches_the_spec_and_the_tree(
    simulator: SimulatorHandle, orch: SimClient
) -> None:
    status, body, headers = await orch.get("/odata/Folders")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json; odata.metadata=minimal")
    validate_response("GET", "/odata/Folders", 200, body, forbid_undeclared=False)
    assert body["@odata.context"] == simulator.url + "/odata/$metadata#Folders"
    folders = {f["FullyQualifiedName"]: f for f in body["value"]}
    assert list(folders) == ["Shared", "Finance", "Finance/Comptabilité", "HR"]
    child, parent = folders["Finance/Comptabilité"], folders["Finance"]
    assert (child["DisplayName"], child["ParentId"], child["ParentKey"]) == (
        "Comptabilité",
        parent["Id"],
        parent["Key"],
    )
    assert folders["Shared"]["ParentId"] is None


async def test_folders_query_options(orch: SimClient) -> None:
    status, body, _ = await orch.get(
        "/odata/Folders",
        params={
            "$filter": "ParentId eq null and DisplayName ne 'HR'",
            "$select": "Id,DisplayName",
            "$orderby": "DisplayName desc",
            "$count": "true",
            "$top": "1",
            "$skip": "1",
        },
    )
    assert status == 200, body
    assert body["@odata.count"] == 2
    assert body["value"] == [{"DisplayName": "Finance", "Id": body["value"][0]["Id"]}]
    assert body["@odata.context"].endswith("$metadata#Folders(Id,DisplayName)")


async def test_releases_are_folder_scoped_and_filterable(orch: SimClient) -> None:
    status, body, _ = await orch.get("/odata/Releases", folder="Finance/Comptabilité")
    assert status == 200
    validate_response("GET", "/odata/Releases", 200, body)
    assert [r["Name"] for r in body["value"]] == [
        "Echo",
        "InvoiceProcessing",
        "RapprochementBancaire",
    ]
    invoice = body["value"][1]
    assert invoice["OrganizationUnitFullyQualifiedName"] == "Finance/Comptabilité"
    assert invoice["InputArguments"] == '{"Currency": "EUR"}'
    status, body, _ = await orch.get(
        "/odata/Releases",
        folder="Finance",
        params={"$filter": "ProcessKey eq 'InvoiceProcessing' or Name in ('Nope')"},
    )
    assert status == 200 and [r["Name"] for r in body["value"]] == ["InvoiceProcessing"]
    assert body["value"][0]["Key"] != invoice["Key"]
    status, body, _ = await orch.get("/odata/Releases")
    assert status == 400
    assert_modern_error(body, 1101, "An organization unit is required for this action.")


# -- folder headers -------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["id", "key", "path", "encoded"])
async def test_each_folder_header_form_addresses_the_non_ascii_folder(
    orch: SimClient, how: str
) -> None:
    folder = (await orch.folders())["Finance/Comptabilité"]
    value = {"id": folder["Id"], "key": folder["Key"]}.get(how, "Finance/Comptabilité")
    status, body, _ = await orch.get("/odata/Releases", folder=value, how=how)
    assert status == 200, body
    assert {r["OrganizationUnitId"] for r in body["value"]} == {folder["Id"]}


async def test_folder_header_mistakes(orch: SimClient) -> None:
    status, body, _ = await orch.get("/odata/Jobs", folder="demo", how="id")
    assert status == 400
    assert_modern_error(body, 1101, "must be the numeric folder Id")
    status, body, _ = await orch.get("/odata/Jobs", folder=1, how="id")
    assert status == 400
    assert_modern_error(
        body, 1100, "Folder does not exist or the user does not have access to the folder."
    )


# -- start, read and list jobs -------------------------------------------------------------------


async def test_start_jobs_returns_201_with_pending_jobs(
    simulator: SimulatorHandle, orch: SimClient
) -> None:
    key = await orch.release_key("Finance", "InvoiceProcessing")
    info = {
        "ReleaseKey": key,
        "Strategy": "ModernJobsCount",
        "JobsCount": 3,
        "InputArguments": '{"InvoiceCount": 4}',
        "Reference": "batch42-item7",
        "Source": "Manual",
    }
    status, body, _ = await orch.post(START, folder="Finance", json={"startInfo": info})
    assert status == 201, body
    validate_response("POST", START, 201, body)
    assert body["@odata.context"] == simulator.url + "/odata/$metadata#Jobs"
    jobs = body["value"]
    assert len(jobs) == 3 and len({j["Id"] for j in jobs}) == 3
    assert len({j["BatchExecutionKey"] for j in jobs}) == 1
    for job in jobs:
        assert job["State"] == "Pending" and job["StartTime"] is None and job["EndTime"] is None
        assert (job["Reference"], job["ReleaseName"], job["Type"]) == (
            "batch42-item7",
            "InvoiceProcessing",
            "Unattended",
        )
        assert job["InputArguments"] == '{"InvoiceCount": 4}' and job["OutputArguments"] is None
        assert job["OrganizationUnitFullyQualifiedName"] == "Finance"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?Z", job["CreationTime"])


async def test_start_strategies_over_http(orch: SimClient) -> None:
    assert len(await orch.start("HR")) == 1  # no Strategy, no JobsCount: one job (official SDK)
    assert len(await orch.start("HR", Strategy="All")) == 3  # the demo HR folder has 3 robots
    assert len(await orch.start("HR", Strategy="RobotCount", NoOfRobots=2)) == 2


async def test_start_errors(orch: SimClient) -> None:
    cases: list[tuple[dict[str, Any], int, int | str, str]] = [
        (
            {"startInfo": {"ReleaseName": "Nope"}},
            404,
            1002,
            "no process with name 'Nope' in folder 'Finance'",
        ),
        (
            {
                "startInfo": {
                    "ReleaseName": "Echo",
                    "InputArguments": '{"a": "' + "x" * 10_000 + '"}',
                }
            },
            400,
            1000,
            "the maximum is 10000",
        ),
        (
            {"startInfo": {"ReleaseName": "Echo", "InputArguments": {"a": 1}}},
            400,
            1000,
            "json.dumps",
        ),
        (
            {"startInfo": {"ReleaseName": "Echo", "Strategy": "Specific", "RobotIds": [6]}},
            409,
            "InvalidStartJobRobotIds",
            "Couldn't find the specified unattended user/robot in the current folder",
        ),
        ({"ReleaseName": "Echo"}, 400, 1000, "startInfo is required"),
    ]
    for payload, status, code, message in cases:
        got, body, _ = await orch.post(START, folder="Finance", json=payload)
        assert got == status, body
        assert_modern_error(body, code, message)
    status, body, _ = await orch.post(START, json={"startInfo": {"ReleaseName": "Echo"}})
    assert status == 400
    assert_modern_error(body, 1101, "An organization unit is required")
    status, body, _ = await orch.post(
        START,
        folder="Finance",
        data="{not json",
        headers={**await orch.headers("Finance"), "Content-Type": "application/json"},
    )
    assert status == 400 and "not valid JSON" in body["message"]
    status, body, _ = await orch.post(START, folder="Finance", data={"startInfo": "x"})
    assert status == 415 and "application/json" in body["message"]
    assert orch.handle.simulator.stats()["jobs"]["created"] == 0


async def test_job_by_id_and_by_key_carry_the_arguments_and_the_list_does_not(
    orch: SimClient, fake_clock: FakeClock
) -> None:
    (started,) = await orch.start("Shared", InputArguments='{"greeting": "Aloha"}', Reference="r-1")
    fake_clock.advance(10)  # pickup 2 s + Echo 1-2 s
    job = await orch.job("Shared", started["Id"])
    validate_response("GET", f"/odata/Jobs({started['Id']})", 200, job)
    assert job["State"] == "Successful" and job["Info"] == "Job completed"
    assert job["InputArguments"] == '{"greeting": "Aloha"}'
    assert job["OutputArguments"] == '{"greeting":"Aloha"}'
    assert job["HostMachineName"].startswith("VM-SHARED-")
    assert job["@odata.context"].endswith("/odata/$metadata#Jobs/$entity")

    path = f"/odata/Jobs/UiPath.Server.Configuration.OData.GetByKey(identifier={started['Key']})"
    status, by_key, _ = await orch.get(path, folder="Shared")
    assert status == 200 and by_key["Id"] == started["Id"]
    validate_response(
        "GET", f"/odata/Jobs({started['Id']})", 200, by_key
    )  # not in the spec: same DTO

    status, listing, _ = await orch.get("/odata/Jobs", folder="Shared")
    assert status == 200
    validate_response("GET", "/odata/Jobs", 200, listing)
    (listed,) = listing["value"]
    assert listed["State"] == "Successful"
    assert listed["InputArguments"] is None and listed["OutputArguments"] is None  # 2024 policy


async def test_job_lookups_that_fail(orch: SimClient) -> None:
    (started,) = await orch.start("Shared")
    for path, folder in [
        (f"/odata/Jobs({started['Id']})", "HR"),  # exists, but in another folder
        ("/odata/Jobs(1)", "Shared"),
        (
            "/odata/Jobs/UiPath.Server.Configuration.OData.GetByKey(identifier=0b9f2b9c-8f0e-4b43-9d59-5d2a6c7a1e01)",
            "Shared",
        ),
    ]:
        status, body, _ = await orch.get(path, folder=folder)
        assert status == 404, path
        assert_modern_error(body, 1002, "Job does not exist")
    status, body, _ = await orch.get(f"/odata/Jobs({started['Id']})")
    assert status == 400 and body["errorCode"] == 1101
    status, body, _ = await orch.get(
        f"/odata/Jobs({started['Id']})", folder="Shared", params={"$filter": "Id eq 1"}
    )
    assert status == 400 and "$filter" in body["message"]


async def test_select_and_expand(orch: SimClient, fake_clock: FakeClock) -> None:
    (started,) = await orch.start("Finance", "InvoiceProcessing")
    fake_clock.advance(3)  # running: a robot is assigned
    status, job, _ = await orch.get(
        f"/odata/Jobs({started['Id']})",
        folder="Finance",
        params={"$select": "Id,State", "$expand": "Robot,release,Machine"},
    )
    assert status == 200, job
    assert set(job) == {"@odata.context", "Id", "State", "Robot", "Release", "Machine"}
    assert job["@odata.context"].endswith("$metadata#Jobs(Id,State)/$entity")
    assert (
        job["Robot"]["Name"].startswith("FINANCE-")
        and job["Release"]["Name"] == "InvoiceProcessing"
    )
    assert job["Machine"]["Name"] == "VM-" + job["Robot"]["Name"]
    status, listing, _ = await orch.get(
        "/odata/Jobs", folder="Finance", params={"$expand": "Robot"}
    )
    assert status == 200
    validate_response("GET", "/odata/Jobs", 200, listing)
    status, body, _ = await orch.get("/odata/Jobs", folder="Finance", params={"$expand": "Owner"})
    assert status == 400
    assert_modern_error(body, 1000, "Could not find a navigation property named 'Owner'")


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("State eq 'Successful'", ["a1", "a2"]),
        ("State ne 'Successful'", ["b1", "c1"]),
        ("Reference in ('a1','c1')", ["a1", "c1"]),
        ("startswith(Reference,'a') eq true", ["a1", "a2"]),
        ("contains(tolower(Reference),'1') and not endswith(Reference,'b1')", ["a1", "c1"]),
        ("substringof('a',Reference)", None),  # OData v3: refused under v4, 400
        ("length(Reference) eq 2", None),  # functions not modelled: 400
        ("Release/Name eq 'DailyReport'", ["b1"]),
        ("startswith(Release/Name,'Ec') and Reference ne 'a2'", ["a1", "c1"]),
        ("ReleaseName eq 'Echo' and Reference ne 'a1'", ["a2", "c1"]),
        ("Reference eq 'a1' or Reference eq 'b1'", ["a1", "b1"]),
        ("not (ReleaseName eq 'Echo')", ["b1"]),
        ("Id lt {c1}", ["a1", "a2", "b1"]),
        ("Id le {a2}", ["a1", "a2"]),
        ("Id gt {a2}", ["b1", "c1"]),
        ("Id ge {b1}L", ["b1", "c1"]),
        ("CreationTime ge {t_c1} and ProcessType eq 'Process'", ["c1"]),
        ("EndTime eq null", ["b1", "c1"]),
        ("Key eq {key_b1}", ["b1"]),
    ],
)
async def test_every_filter_operator_through_http(
    orch: SimClient, fake_clock: FakeClock, expression: str, expected: list[str] | None
) -> None:
    jobs = {}
    for reference in ("a1", "a2"):
        (jobs[reference],) = await orch.start("Shared", Reference=reference)
    fake_clock.advance(10)  # a1, a2 succeed
    (jobs["b1"],) = await orch.start("Shared", "DailyReport", Reference="b1")
    fake_clock.advance(1)
    (jobs["c1"],) = await orch.start("Shared", Reference="c1")
    values = {name: job["Id"] for name, job in jobs.items()}
    values.update({f"key_{n}": j["Key"] for n, j in jobs.items()})
    values["t_c1"] = jobs["c1"]["CreationTime"]
    status, body, _ = await orch.get(
        "/odata/Jobs",
        folder="Shared",
        params={"$filter": expression.format(**values), "$orderby": "Id"},
    )
    if expected is None:
        assert status == 400
        assert_modern_error(body, 1000, "")
        return
    assert status == 200, body
    assert [j["Reference"] for j in body["value"]] == expected


async def test_jobs_paging_and_ordering(orch: SimClient) -> None:
    jobs = await orch.start("Shared", JobsCount=7, Reference="page")
    ids = [j["Id"] for j in jobs]
    status, body, _ = await orch.get(
        "/odata/Jobs",
        folder="Shared",
        params={
            "$orderby": "Id desc",
            "$top": "3",
            "$skip": "2",
            "$count": "true",
            "$select": "Id",
        },
    )
    assert status == 200
    assert body["@odata.count"] == 7
    assert body["value"] == [{"Id": i} for i in sorted(ids, reverse=True)[2:5]]
    status, body, _ = await orch.get("/odata/Jobs", folder="Shared", params={"$top": "1001"})
    assert status == 400
    assert_modern_error(body, 1000, "1000")


async def finance_jobs(orch: SimClient, **params: str) -> list[dict[str, Any]]:
    status, body, _ = await orch.get("/odata/Jobs", folder="Finance", params=params)
    assert status == 200, body
    validate_response("GET", "/odata/Jobs", 200, body)
    if "$count" in params:
        return [{"@odata.count": body["@odata.count"]}, *body["value"]]
    jobs: list[dict[str, Any]] = body["value"]
    return jobs


async def test_navigation_paths_orderby_and_count_over_http(
    orch: SimClient, fake_clock: FakeClock
) -> None:
    started = await orch.start("Finance", "InvoiceProcessing", JobsCount=3, Reference="nav")
    fake_clock.advance(3)  # running: robots assigned
    (later,) = await orch.start("Finance", "InvoiceProcessing", Reference="later")
    status, one, _ = await orch.get(
        f"/odata/Jobs({started[0]['Id']})", folder="Finance", params={"$expand": "Robot,Machine"}
    )
    robot, machine = one["Robot"], one["Machine"]["Name"]
    path_filter = f"Robot/Id eq {robot['Id']}L and Machine/Name eq '{machine}'"
    found = await finance_jobs(orch, **{"$filter": path_filter})
    assert started[0]["Id"] in [j["Id"] for j in found]
    # A path reads the navigation property; only $expand puts it in the answer.
    assert all("Robot" not in j and "Machine" not in j for j in found)
    everything = await finance_jobs(orch, **{"$expand": "Robot"})
    for test, is_null in (("eq", True), ("ne", False)):
        params = {"$filter": f"Robot/Id {test} null", "$expand": "Robot", "$select": "Id"}
        expected = [{"Id": j["Id"], "Robot": j["Robot"]} for j in everything]
        wanted = [j for j in expected if (j["Robot"] is None) == is_null]
        assert await finance_jobs(orch, **params) == wanted
    folder_id = later["OrganizationUnitId"]
    count, *page = await finance_jobs(
        orch,
        **{
            "$filter": f"OrganizationUnitId eq {folder_id} and Reference in ('nav','later')",
            "$orderby": "Reference asc,Id desc",
            "$select": "Id,Reference",
            "$count": "true",
            "$top": "2",
            "$skip": "1",
        },
    )
    assert count == {"@odata.count": 4}
    nav_desc = sorted((j["Id"] for j in started), reverse=True)
    assert [j["Id"] for j in page] == nav_desc[:2]  # after 'later'
    status, body, _ = await orch.get(
        "/odata/Releases",
        folder="Finance",
        params={"$filter": f"OrganizationUnitId eq {folder_id}"},
    )
    assert status == 200 and body["value"], body


async def test_an_overlong_request_line_is_414(simulator: SimulatorHandle, orch: SimClient) -> None:
    from async_orch.simulator.app import MAX_REQUEST_LINE

    def in_list(length: int) -> str:
        return "Id in (" + ",".join(["1"] * (length // 2)) + ")"

    fits = in_list(MAX_REQUEST_LINE - 200)
    status, body, _ = await orch.get("/odata/Jobs", folder="Shared", params={"$filter": fits})
    assert status == 200, body  # thousands of values: the 'in' list counts once
    too_long = in_list(MAX_REQUEST_LINE)
    status, body, _ = await orch.get("/odata/Jobs", folder="Shared", params={"$filter": too_long})
    assert status == 414
    assert body in (None, "", b"")
    assert simulator.simulator.stats()["requests"]["(uri too long)"] == {"414": 1}


# -- stop -----------------------------------------------------------------------------------------


async def test_stop_jobs_and_stop_job(orch: SimClient, fake_clock: FakeClock) -> None:
    running, pending = await orch.start("Finance", "InvoiceProcessing", JobsCount=2)
    fake_clock.advance(3)
    status, body, _ = await orch.post(
        STOP, folder="Finance", json={"jobIds": [running["Id"]], "strategy": "SoftStop"}
    )
    assert (status, body) == (200, None)
    validate_response("POST", STOP, 200, body)
    assert (await orch.job("Finance", running["Id"]))["State"] == "Stopping"
    path = f"/odata/Jobs({pending['Id']})/UiPath.Server.Configuration.OData.StopJob"
    status, body, _ = await orch.post(path, folder="Finance", json={"strategy": "Kill"})
    assert (status, body) == (200, None)
    validate_response("POST", path, 200, body)
    assert (await orch.job("Finance", pending["Id"]))["State"] == "Terminating"
    fake_clock.advance(5)
    for job_id in (running["Id"], pending["Id"]):
        job = await orch.job("Finance", job_id)
        assert job["State"] == "Stopped" and job["OutputArguments"] is None
    status, body, _ = await orch.post(
        STOP, folder="Finance", json={"jobIds": [1], "strategy": "Kill"}
    )
    assert status == 404
    assert_modern_error(body, 1002, "Job does not exist")
    status, body, _ = await orch.post(STOP, folder="Finance", json={"jobIds": [running["Id"]]})
    assert status == 400
    assert_modern_error(body, 1000, "strategy is required")


# -- routing --------------------------------------------------------------------------------------


async def test_routes_are_case_insensitive(orch: SimClient) -> None:
    status, body, _ = await orch.get("/ODATA/folders")
    assert status == 200 and len(body["value"]) == 4
    status, body, _ = await orch.post(
        START.lower(), folder="Shared", json={"startinfo": {"releasename": "echo"}}
    )
    assert status == 201, body


async def test_unknown_routes_and_methods(simulator: SimulatorHandle, orch: SimClient) -> None:
    status, body, _ = await orch.get("/odata/Robots")
    assert status == 404
    assert_modern_error(body, 0, "No HTTP resource was found")
    status, body, _ = await orch.get("/nothing/here", base=simulator.root_url)
    assert status == 404
    status, body, headers = await orch.post("/odata/Folders", json={})
    assert status == 405 and headers["Allow"] == "GET"
    assert_modern_error(body, 0, "does not support http method 'POST'")
    requests = simulator.simulator.stats()["requests"]
    assert requests["(no route)"] == {"404": 2}
    assert requests["GET /odata/Folders"] == {"405": 1}
