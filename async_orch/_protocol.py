"""Orchestrator's HTTP conventions, as pure functions: folder headers, error bodies.

Nothing here performs I/O or reads a clock; the transport feeds these
functions what it sent and received.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any, Protocol

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
from async_orch._retries import parse_retry_after

__all__ = [
    "FolderLike",
    "endpoint_label",
    "error_from_response",
    "folder_headers",
    "header",
    "looks_like_html",
    "rate_limit_remaining",
    "retry_after_from",
    "said_revoked",
]


# -- folder context -----------------------------------------------------------------

_GUID = re.compile(r"^\{?[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\}?$")


class FolderLike(Protocol):
    """Anything that identifies a folder by Key and Id, such as ``models.Folder``."""

    @property
    def id(self) -> int: ...

    @property
    def key(self) -> str | None: ...


def folder_headers(folder: int | str | FolderLike) -> dict[str, str]:
    """The one header that puts a request in a folder (orchestrator-api.md §2).

    * int: ``X-UIPATH-OrganizationUnitId`` (the folder Id; note that it can
      change after a licence change, the Key cannot);
    * a GUID string: ``X-UIPATH-FolderKey``;
    * any other string, a full path such as ``Finance/Invoices``:
      ``X-UIPATH-FolderPath`` when it is printable ASCII, else
      ``X-UIPATH-FolderPath-Encoded``, Base64 of its UTF-16LE bytes, as the
      official SDK does (header values cannot carry other characters). A
      trailing "/" is dropped: the docs forbid it.
    * a folder object: its Key if it has one, else its Id.

    Raises:
        InvalidRequestError: an Id below 1 or an empty path.
    """
    if isinstance(folder, bool):
        raise InvalidRequestError(f"a folder is an Id, Key or path, not {folder!r}")
    if isinstance(folder, int):
        if folder < 1:
            raise InvalidRequestError(f"folder Id must be a positive integer, got {folder}")
        return {"X-UIPATH-OrganizationUnitId": str(folder)}
    if not isinstance(folder, str):
        return folder_headers(folder.key) if folder.key else folder_headers(folder.id)
    text = folder.strip()
    if _GUID.match(text):
        return {"X-UIPATH-FolderKey": text.strip("{}")}
    path = text.rstrip("/") if text != "/" else text
    if not path:
        raise InvalidRequestError("folder path is empty")
    if path.isascii() and path.isprintable():
        return {"X-UIPATH-FolderPath": path}
    encoded = base64.b64encode(path.encode("utf-16-le")).decode("ascii")
    return {"X-UIPATH-FolderPath-Encoded": encoded}


# -- endpoint labels for counters ----------------------------------------------------

_ID_IN_PARENS = re.compile(
    r"\((?:(?P<name>\w+)=)?'?(?:\d+L?|[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12})'?\)"
)
_ID_SEGMENT = re.compile(r"^(?:\d+|[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12})$")


def endpoint_label(path: str) -> str:
    """A low-cardinality name for a request path: ids and keys become ``{id}``.

    ``odata/Jobs(123)`` -> ``odata/Jobs({id})``; the query string is dropped.
    """
    path = path.split("?", 1)[0].strip("/")
    path = _ID_IN_PARENS.sub(
        lambda m: f"({m['name']}={{id}})" if m["name"] else "({id})",
        path,
    )
    return "/".join("{id}" if _ID_SEGMENT.match(s) else s for s in path.split("/"))


# -- error responses -----------------------------------------------------------------

_ERROR_CLASSES: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: BadRequestError,
}


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value, looked up case-insensitively in any mapping."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def _get_ci(data: Mapping[str, Any], *names: str) -> Any:
    """The first of ``names`` present in a JSON object, ignoring case."""
    folded = {k.lower(): v for k, v in data.items() if isinstance(k, str)}
    for name in names:
        value = folded.get(name.lower())
        if value is not None and value != "":
            return value
    return None


def _decode_json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def looks_like_html(body: bytes, content_type: str | None) -> bool:
    """True for an HTML page (a sign-in page, a portal, a proxy's error page)."""
    if content_type and "html" in content_type.lower():
        return True
    return body.lstrip()[:15].lower().startswith((b"<!doctype", b"<html"))


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _describe(data: Any) -> tuple[str | None, Any, str | None]:
    """(message, error code, trace id) from the JSON error shapes Orchestrator uses.

    * ErrorResult ``{"message", "errorCode", "traceId"}`` (orchestrator-api.md §1e);
    * ABP ``{"error": {"code", "message", "details"}, "__abp": true}``;
    * RFC 7807 ``{"title", "detail"}``;
    * OAuth ``{"error": "invalid_client", "error_description": ...}``.
    """
    if not isinstance(data, Mapping):
        return None, None, None
    message = _get_ci(data, "message")
    code = _get_ci(data, "errorCode", "code")
    trace_id = _get_ci(data, "traceId", "requestId")
    nested = _get_ci(data, "error")
    if isinstance(nested, Mapping):
        inner = _get_ci(nested, "message")
        details = _get_ci(nested, "details")
        if message is None and inner is not None:
            message = f"{inner} {details}" if details and details != inner else inner
        if code is None:
            code = _get_ci(nested, "code")
    elif isinstance(nested, str) and message is None:
        description = _get_ci(data, "error_description")
        message = f"{nested}: {description}" if description else nested
    if message is None:
        title, detail = _get_ci(data, "title"), _get_ci(data, "detail")
        if title or detail:
            message = ": ".join(str(p) for p in (title, detail) if p)
    return (None if message is None else str(message)), code, trace_id


def _bearer_error(headers: Mapping[str, str]) -> str | None:
    """What a ``WWW-Authenticate: Bearer error=..., error_description=...`` says."""
    value = header(headers, "WWW-Authenticate")
    if not value:
        return None
    fields = dict(re.findall(r'(\w+)="([^"]*)"', value))
    parts = [fields.get("error"), fields.get("error_description")]
    text = ": ".join(p for p in parts if p)
    return text or None


def rate_limit_remaining(headers: Mapping[str, str]) -> int | None:
    """``X-RateLimit-Remaining``: list calls left in the tenant's window (orchestrator-
    api.md §4; it reads 0 below 10). None when absent or not a count (on-premises
    Orchestrator has no list limit)."""
    value = header(headers, "X-RateLimit-Remaining")
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())


def said_revoked(headers: Mapping[str, str]) -> bool:
    """True when a 401's ``WWW-Authenticate`` says the bearer token was revoked
    (RFC 6750 §3: ``error="invalid_token"``, with a description naming the cause)."""
    described = _bearer_error(headers) or ""
    return "invalid_token" in described and "revoked" in described.lower()


def retry_after_from(
    headers: Mapping[str, str], body: bytes = b"", *, now: datetime | None = None
) -> float | None:
    """Seconds the server asked us to wait, from ``Retry-After`` or a JSON ``retry_after``.

    An HTTP-date is measured from the response's ``Date`` header (the server's
    own clock), else from ``now``; with neither it cannot be used. Edge
    throttling may put the wait in the body instead (orchestrator-api.md §4).
    """
    value = header(headers, "Retry-After")
    if value is not None:
        reference = now
        date = header(headers, "Date")
        if date:
            with contextlib.suppress(TypeError, ValueError, IndexError):
                reference = parsedate_to_datetime(date)
        seconds = parse_retry_after(value, now=reference)
        if seconds is not None:
            return seconds
    data = _decode_json(body) if body else None
    if isinstance(data, Mapping):
        raw = _get_ci(data, "retry_after", "retryAfter")
        if isinstance(raw, int | float | str) and not isinstance(raw, bool):
            return parse_retry_after(str(raw), now=None)
    return None


def error_from_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str,
    url: str,
    now: datetime | None = None,
) -> APIError:
    """The APIError subclass for an error response, filled from its body.

    400/422 BadRequestError, 401 UnauthorizedError, 403 PermissionDeniedError,
    404 NotFoundError, 409 ConflictError, 429 RateLimitedError (with
    ``retry_after``), 5xx ServerError, any other status APIError. The message
    is the server's; for an HTML page or an empty or non-JSON body it says so.

    Args:
        status, headers, body: the response.
        method, url: the request, for the message.
        now: reference time for an HTTP-date ``Retry-After`` without a ``Date``.
    """
    text = body.decode("utf-8", errors="replace")
    data = _decode_json(body) if body.strip() else None
    message, code, trace_id = _describe(data)
    if message is None:
        reason = f"{status} {_reason(status)}"
        if not body.strip():
            bearer = _bearer_error(headers) if status == 401 else None
            message = f"{reason} with an empty body" + (f" ({bearer})" if bearer else "")
        elif looks_like_html(body, header(headers, "Content-Type")):
            message = (
                f"{reason} with an HTML page instead of JSON (a wrong URL, a proxy, "
                "or a sign-in page?)"
            )
        else:
            message = f"{reason}: {_one_line(text)}"
    if trace_id is None:
        trace_id = header(headers, "X-Request-Id")
    if isinstance(code, bool) or not isinstance(code, int | str | None):
        code = str(code)
    common: dict[str, Any] = {
        "status": status,
        "method": method,
        "url": url,
        "message": message,
        "error_code": code,
        "trace_id": None if trace_id is None else str(trace_id),
        "body": text,
        "retry_after": retry_after_from(headers, body, now=now) if status in (429, 503) else None,
    }
    if status == 429:
        return RateLimitedError(**common)
    if 500 <= status <= 599:
        return ServerError(**common)
    return _ERROR_CLASSES.get(status, APIError)(**common)
