"""Folder headers, endpoint labels and error responses (pure, sync)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from multidict import CIMultiDict

from async_orch._errors import (
    APIError,
    BadRequestError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    UnauthorizedError,
)
from async_orch._protocol import (
    endpoint_label,
    error_from_response,
    folder_headers,
    header,
    retry_after_from,
)

KEY = "db4528cc-8d0c-4a0c-9d43-3f1e5a7b9c21"

# -- folder headers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        (515116, {"X-UIPATH-OrganizationUnitId": "515116"}),
        (KEY, {"X-UIPATH-FolderKey": KEY}),
        (KEY.upper(), {"X-UIPATH-FolderKey": KEY.upper()}),
        ("{" + KEY + "}", {"X-UIPATH-FolderKey": KEY}),
        ("Shared", {"X-UIPATH-FolderPath": "Shared"}),
        ("Finance/Accounts Payable", {"X-UIPATH-FolderPath": "Finance/Accounts Payable"}),
        ("Finance/Invoices/", {"X-UIPATH-FolderPath": "Finance/Invoices"}),
        ("  Shared ", {"X-UIPATH-FolderPath": "Shared"}),
        ("2024", {"X-UIPATH-FolderPath": "2024"}),  # a string is a path: ints are Ids
        ("../Sibling", {"X-UIPATH-FolderPath": "../Sibling"}),
    ],
)
def test_folder_headers(folder: int | str, expected: dict[str, str]) -> None:
    assert folder_headers(folder) == expected


@pytest.mark.parametrize("path", ["Finanças/Faturas", "経理/請求書", "Tab\there"])
def test_non_ascii_or_unprintable_paths_are_base64_utf16le(path: str) -> None:
    headers = folder_headers(path)
    assert list(headers) == ["X-UIPATH-FolderPath-Encoded"]
    encoded = headers["X-UIPATH-FolderPath-Encoded"]
    assert encoded.isascii()
    assert base64.b64decode(encoded).decode("utf-16-le") == path


def test_encoded_header_matches_a_known_value() -> None:
    # "Ä" is U+00C4: UTF-16LE bytes C4 00 -> base64 "xAA=".
    assert folder_headers("Ä") == {"X-UIPATH-FolderPath-Encoded": "xAA="}


@dataclass
class _Folder:
    id: int
    key: str | None


def test_folder_objects_prefer_the_key() -> None:
    assert folder_headers(_Folder(id=7, key=KEY)) == {"X-UIPATH-FolderKey": KEY}
    assert folder_headers(_Folder(id=7, key=None)) == {"X-UIPATH-OrganizationUnitId": "7"}


@pytest.mark.parametrize("folder", [0, -3, True, "", "   "])
def test_invalid_folders_are_refused(folder: int | str) -> None:
    with pytest.raises(InvalidRequestError):
        folder_headers(folder)


# -- endpoint labels ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "label"),
    [
        ("odata/Jobs", "odata/Jobs"),
        ("/odata/Jobs?$filter=Id%20in%20(1,2)", "odata/Jobs"),
        ("odata/Jobs(123)", "odata/Jobs({id})"),
        ("odata/Jobs(123L)", "odata/Jobs({id})"),
        (
            "odata/Jobs(42)/UiPath.Server.Configuration.OData.StopJob",
            "odata/Jobs({id})/UiPath.Server.Configuration.OData.StopJob",
        ),
        (
            "odata/Jobs/UiPath.Server.Configuration.OData.StartJobs",
            "odata/Jobs/UiPath.Server.Configuration.OData.StartJobs",
        ),
        (
            f"odata/Folders/UiPath.Server.Configuration.OData.GetByKey(identifier={KEY})",
            "odata/Folders/UiPath.Server.Configuration.OData.GetByKey(identifier={id})",
        ),
        (f"odata/Releases('{KEY}')", "odata/Releases({id})"),
        ("api/Things/77/Sub", "api/Things/{id}/Sub"),
    ],
)
def test_endpoint_label(path: str, label: str) -> None:
    assert endpoint_label(path) == label


# -- error responses ---------------------------------------------------------------------

URL = "https://cloud.uipath.com/acme/T/orchestrator_/odata/Jobs"


def err(status: int, body: bytes | str | Mapping[str, object] = b"", **headers: str) -> APIError:
    if isinstance(body, Mapping):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    return error_from_response(status, CIMultiDict(headers), body, method="POST", url=URL, now=NOW)


NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
ERROR_RESULT = {
    "message": "An organization unit is required for this action.",
    "errorCode": 1101,
    "traceId": "00-266fcedb261e5045b3fe9646fc32602c-7de4c5b3f51f8b27-01",
}
ABP_401 = {
    "result": None,
    "targetUrl": None,
    "success": False,
    "error": {
        "code": 0,
        "message": "You are not authenticated!",
        "details": "You should be authenticated (sign in) in order to perform this operation.",
        "validationErrors": None,
    },
    "unAuthorizedRequest": True,
    "__abp": True,
}


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, UnauthorizedError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (422, BadRequestError),
        (429, RateLimitedError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
        (418, APIError),
        (405, APIError),
    ],
)
def test_status_picks_the_class(status: int, cls: type[APIError]) -> None:
    error = err(status, ERROR_RESULT)
    assert type(error) is cls
    assert error.status == status
    assert error.method == "POST"
    assert error.url == URL


def test_error_result_body_fills_the_attributes() -> None:
    error = err(400, ERROR_RESULT)
    assert error.message == "An organization unit is required for this action."
    assert error.error_code == 1101
    assert error.trace_id == ERROR_RESULT["traceId"]
    assert str(error) == (
        f"POST {URL} -> HTTP 400, errorCode 1101: An organization unit is required for this action."
    )


def test_abp_body_gives_message_and_details() -> None:
    error = err(401, ABP_401)
    assert error.message == (
        "You are not authenticated! You should be authenticated (sign in) in order to "
        "perform this operation."
    )
    assert error.error_code == 0


def test_cloud_2020_body_prefers_the_top_level_message() -> None:
    error = err(401, {"message": "You are not authenticated!", "errorCode": 0, **ABP_401})
    assert error.message == "You are not authenticated!"


def test_keys_are_read_case_insensitively() -> None:
    error = err(404, {"Message": "Robot does not exist.", "ErrorCode": 1002, "TraceId": "t"})
    assert (error.message, error.error_code, error.trace_id) == ("Robot does not exist.", 1002, "t")


def test_rfc7807_problem_details() -> None:
    error = err(
        409,
        {"type": "about:blank", "title": "Conflict", "detail": "Job is not running", "status": 409},
    )
    assert error.message == "Conflict: Job is not running"


def test_oauth_style_error() -> None:
    error = err(400, {"error": "invalid_request", "error_description": "bad filter"})
    assert error.message == "invalid_request: bad filter"


def test_html_body_says_so() -> None:
    error = err(
        404, "<!DOCTYPE html><html><body>Sign in</body></html>", **{"Content-Type": "text/html"}
    )
    assert isinstance(error, NotFoundError)
    assert "HTML page instead of JSON" in error.message
    assert "404 Not Found" in error.message


def test_empty_body_says_so() -> None:
    error = err(502)
    assert error.message == "502 Bad Gateway with an empty body"


def test_empty_401_quotes_www_authenticate() -> None:
    error = err(
        401,
        **{
            "WWW-Authenticate": 'Bearer error="invalid_token", '
            'error_description="The token expired at 12:00"'
        },
    )
    assert error.message == (
        "401 Unauthorized with an empty body (invalid_token: The token expired at 12:00)"
    )


def test_plain_text_body_is_quoted_on_one_line() -> None:
    error = err(500, "Internal\n  error\r\nhappened")
    assert error.message == "500 Internal Server Error: Internal error happened"


def test_json_without_a_message_quotes_the_body() -> None:
    error = err(400, {"unexpected": 1})
    assert error.message == '400 Bad Request: {"unexpected": 1}'


def test_undecodable_bytes_do_not_break_the_mapping() -> None:
    error = err(500, b"\xff\xfe\x00garbage")
    assert isinstance(error, ServerError)
    assert "500 Internal Server Error" in error.message


def test_body_is_kept_truncated() -> None:
    error = err(400, {"message": "m", "pad": "x" * 5000})
    assert len(error.body) == 2000


def test_trace_id_falls_back_to_the_request_id_header() -> None:
    error = err(500, "oops", **{"X-Request-Id": "req-9"})
    assert error.trace_id == "req-9"


def test_429_retry_after_seconds() -> None:
    error = err(429, ERROR_RESULT, **{"Retry-After": "17"})
    assert isinstance(error, RateLimitedError)
    assert error.retry_after == 17.0


def test_429_retry_after_http_date_is_measured_from_the_date_header() -> None:
    error = err(
        429,
        ERROR_RESULT,
        **{
            "Retry-After": "Wed, 01 Jan 2025 00:00:45 GMT",
            "Date": "Wed, 01 Jan 2025 00:00:00 GMT",  # the server's clock, not ours (NOW)
        },
    )
    assert isinstance(error, RateLimitedError)
    assert error.retry_after == 45.0


def test_429_retry_after_in_the_json_body() -> None:
    error = err(429, {"message": "slow down", "retry_after": 12})
    assert isinstance(error, RateLimitedError)
    assert error.retry_after == 12.0


def test_429_without_retry_after() -> None:
    error = err(429, ERROR_RESULT)
    assert isinstance(error, RateLimitedError)
    assert error.retry_after is None


def test_retry_after_header_wins_and_garbage_falls_back_to_the_body() -> None:
    body = json.dumps({"retryAfter": "9"}).encode()
    assert retry_after_from({"Retry-After": "3"}, body) == 3.0
    assert retry_after_from({"Retry-After": "later"}, body) == 9.0
    assert retry_after_from({"Retry-After": "Wed, 01 Jan 2025 00:00:45 GMT"}) is None
    assert retry_after_from({}, b"not json") is None


def test_header_lookup_is_case_insensitive_on_plain_dicts() -> None:
    assert header({"retry-after": "5"}, "Retry-After") == "5"
    assert header({"A": "1"}, "b") is None
