"""Error bodies exactly as Orchestrator sends them, and the exceptions that carry them.

Two shapes (see the API reference, section 1e):

* 401: the ABP "You are not authenticated!" body of the 2020 cloud, with top-level
  ``message``/``errorCode`` added to the ABP ``AjaxResponse`` fields.
* 400/403/404/409/429: the modern ErrorResult ``{"message", "errorCode", "traceId"}``
  with a W3C traceparent as ``traceId``.

Error codes: 1000 "Invalid request!" and 1002 "item not found" come from the
response-codes doc; 1101 "An organization unit is required for this action." from a
forum thread. Where the code for a case is not documented it is marked UNCONFIRMED
at the raise site.
"""

from __future__ import annotations

import secrets
from typing import Any

__all__ = [
    "INVALID_REQUEST",
    "ITEM_NOT_FOUND",
    "ORGANIZATION_UNIT_REQUIRED",
    "ApiProblem",
    "Unauthenticated",
    "abp_error_body",
    "abp_unauthenticated_body",
    "modern_error_body",
    "new_trace_id",
]

INVALID_REQUEST = 1000
ITEM_NOT_FOUND = 1002
ORGANIZATION_UNIT_REQUIRED = 1101


class ApiProblem(Exception):
    """An Orchestrator error answer with the modern body."""

    def __init__(
        self,
        status: int,
        message: str,
        error_code: int | str = INVALID_REQUEST,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.message = message
        self.error_code = error_code
        self.headers = headers or {}
        super().__init__(f"{status} {error_code}: {message}")


class Unauthenticated(Exception):
    """A request without a token valid for this tenant: 401 with the ABP body.

    ``reason`` is for logs and the ``X-Simulator-Hint`` header, never the body,
    which is always the same on the real service.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def new_trace_id() -> str:
    """A W3C traceparent string, the format of ``traceId`` in Orchestrator errors."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def modern_error_body(message: str, error_code: int | str) -> dict[str, Any]:
    return {"message": message, "errorCode": error_code, "traceId": new_trace_id()}


def abp_unauthenticated_body(*, token_sent: bool = True) -> dict[str, Any]:
    """The cloud-2020 variant of the ABP 401 body (forum thread F1), verbatim.

    ``unAuthorizedRequest`` is false in F1 (a token was sent, for the wrong URL)
    and true in the forum thread of user-reports/ (no Authorization header reached
    the API). Tying it to whether a token was sent is inferred: UNCONFIRMED.
    """
    message = "You are not authenticated!"
    return {
        "message": message,
        "errorCode": 0,
        "result": None,
        "targetUrl": None,
        "success": False,
        "error": {
            "code": 0,
            "message": message,
            "details": "You should be authenticated (sign in) in order to perform this operation.",
            "validationErrors": None,
        },
        "unAuthorizedRequest": not token_sent,
        "__abp": True,
    }


def abp_error_body(message: str, details: str | None = None) -> dict[str, Any]:
    """An ABP AjaxResponse carrying an error (``success`` false)."""
    return {
        "result": None,
        "targetUrl": None,
        "success": False,
        "error": {"code": 0, "message": message, "details": details, "validationErrors": None},
        "unAuthorizedRequest": False,
        "__abp": True,
    }
