"""aiohttp responses in the shapes and content types the real services use."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from async_orch.simulator.problems import (
    ApiProblem,
    abp_unauthenticated_body,
    modern_error_body,
)

__all__ = [
    "ODATA_CONTENT_TYPE",
    "json_response",
    "odata_response",
    "problem_response",
    "token_error_response",
    "unauthenticated_response",
]

# What Orchestrator's OData endpoints send (ASP.NET OData defaults).
ODATA_CONTENT_TYPE = (
    "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false"
)
_dumps = functools.partial(json.dumps, ensure_ascii=False, separators=(",", ":"))


def json_response(
    body: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(body, status=status, headers=headers, dumps=_dumps)


def odata_response(
    body: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    response = web.Response(body=_dumps(body).encode("utf-8"), status=status, headers=headers)
    response.headers["Content-Type"] = f"{ODATA_CONTENT_TYPE}; charset=utf-8"
    return response


def problem_response(problem: ApiProblem) -> web.Response:
    """The modern ``{message, errorCode, traceId}`` error."""
    return json_response(
        modern_error_body(problem.message, problem.error_code),
        status=problem.status,
        headers=problem.headers,
    )


#: RFC 6750 §3.1 error descriptions for a refused bearer token, by the simulator's
#: reason. ASSUMPTION: Orchestrator's texts are not documented; "The token expired
#: at ..." is ASP.NET Core JwtBearer's wording, "revoked" is ours.
_BEARER_DESCRIPTIONS = {
    "token was revoked": "The access token has been revoked",
    "token expired": "The token is expired",
}


def unauthenticated_response(reason: str, *, token_sent: bool) -> web.Response:
    """401 with the ABP body. The reason goes in a header only the simulator sends.

    A refused token also gets ``WWW-Authenticate: Bearer error="invalid_token"``
    (RFC 6750 §3: a resource server answers an expired, revoked or otherwise
    invalid token so), with a description when it was revoked or expired.
    """
    headers = {"X-Simulator-Hint": reason[:300]}
    if token_sent:
        challenge = 'Bearer error="invalid_token"'
        description = _BEARER_DESCRIPTIONS.get(reason)
        if description:
            challenge += f', error_description="{description}"'
        headers["WWW-Authenticate"] = challenge
    return json_response(
        abp_unauthenticated_body(token_sent=token_sent), status=401, headers=headers
    )


def token_error_response(error: str, description: str | None, *, status: int = 400) -> web.Response:
    """An OAuth 2.0 error (RFC 6749 section 5.2), as IdentityServer sends it."""
    body = {"error": error}
    if description:
        body["error_description"] = description
    return json_response(body, status=status, headers={"Cache-Control": "no-store"})
