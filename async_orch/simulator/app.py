"""The aiohttp application: one catch-all route that matches paths like ASP.NET.

aiohttp's router is case-sensitive, Orchestrator's is not, so every non-admin
request goes to :func:`_dispatch`, which matches the path itself
(:mod:`routes`), applies injected faults, calls the endpoint and counts the result.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from async_orch._logs import get_logger
from async_orch.simulator.admin import add_admin_routes
from async_orch.simulator.attachments import MAX_BLOB_BYTES
from async_orch.simulator.faults import FaultPlan
from async_orch.simulator.identity import authenticate_user, client_credentials_token, legacy_token
from async_orch.simulator.odata import ODataError
from async_orch.simulator.orchestrator import handle_orchestrator
from async_orch.simulator.problems import INVALID_REQUEST, ApiProblem, Unauthenticated
from async_orch.simulator.responses import (
    problem_response,
    token_error_response,
    unauthenticated_response,
)
from async_orch.simulator.routes import Endpoint, RouteMatch, match_route

if TYPE_CHECKING:
    from async_orch.simulator.core import Simulator

__all__ = ["MAX_REQUEST_LINE", "PARSER_LINE_LIMIT", "build_app", "request_line_too_long"]

log = get_logger("async_orch.simulator")

_Handler = Callable[["Simulator", web.Request, RouteMatch], Awaitable[web.Response]]
_TOKEN_HANDLERS: dict[Endpoint, _Handler] = {
    Endpoint.TOKEN: client_credentials_token,
    Endpoint.LEGACY_TOKEN: legacy_token,
    Endpoint.AUTHENTICATE: authenticate_user,
}
# UNCONFIRMED: Orchestrator's errorCode for "no such route"; ASP.NET's wording.
_NO_ROUTE_CODE = 0
#: Longest request line (method, target with its query string, version) served.
#: ASSUMPTION: Orchestrator's real URL limit is unconfirmed (orchestrator-api.md §8).
#: 8,192 bytes is Kestrel's default MaxRequestLineSize, and Kestrel answers a longer
#: line with 414 URI Too Long and no body; so does the simulator. (On premises, IIS
#: request filtering would answer 404.15 for a query string over 2,048 bytes and
#: 404.14 for a URL over 4,096: a 404 a client cannot tell from a wrong route. The
#: client stays under 2,048 either way: async_orch._url_lists.)
MAX_REQUEST_LINE = 8192
#: aiohttp's own request-line limit, set above MAX_REQUEST_LINE so that the 414
#: decides (aiohttp would answer 400 first at its default of 8,190).
PARSER_LINE_LIMIT = 4 * MAX_REQUEST_LINE


def request_line_too_long(method: str, raw_target: str) -> bool:
    """Whether ``METHOD target HTTP/1.1`` is longer than :data:`MAX_REQUEST_LINE`."""
    return len(method) + 1 + len(raw_target) + len(" HTTP/1.1") > MAX_REQUEST_LINE


def build_app(sim: Simulator, *, admin_token: str) -> web.Application:
    """An application serving *sim*: Orchestrator, identity and admin endpoints
    (the admin ones ask for *admin_token*)."""
    # Request bodies up to the blob store's own limit (aiohttp's default, 1 MiB, would
    # refuse a blob PUT of a 1.1 MB input with 413 before the store sees it).
    app = web.Application(client_max_size=MAX_BLOB_BYTES + 1024 * 1024)
    add_admin_routes(app, sim, token=admin_token)

    async def dispatch(request: web.Request) -> web.StreamResponse:
        if request_line_too_long(request.method, request.raw_path):
            sim.requests.record("(uri too long)", 414)
            return web.Response(status=414)
        match = match_route(request.method, request.path)
        if match is None:
            sim.requests.record("(no route)", 404)
            return problem_response(
                ApiProblem(
                    404,
                    f"No HTTP resource was found that matches the request URI '{request.url}'.",
                    _NO_ROUTE_CODE,
                )
            )
        response = await _serve(sim, request, match)
        sim.requests.record(match.endpoint.value, response.status if response else "dropped")
        return response if response is not None else _dropped(request)

    app.router.add_route("*", "/{tail:.*}", dispatch)

    async def deliver_webhooks(app: web.Application) -> AsyncIterator[None]:
        # The one background task of the simulator, owned by the application: set
        # up and torn down by runner.setup()/cleanup(), which may run in different
        # tasks (so no task group can span them); cancelled and awaited here.
        task = asyncio.create_task(sim.webhooks.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(deliver_webhooks)
    return app


async def _serve(sim: Simulator, request: web.Request, match: RouteMatch) -> web.Response | None:
    """Answer one matched request; None means: close the connection unanswered."""
    sim.revoke_if_due()
    endpoint = match.endpoint
    if not match.method_allowed and endpoint is not Endpoint.TOKEN:
        # The token endpoint answers a wrong method itself (invalid_request).
        return problem_response(
            ApiProblem(
                405,
                f"The requested resource does not support http method '{request.method}'.",
                _NO_ROUTE_CODE,
                headers={"Allow": endpoint.method},
            )
        )
    plan = sim.faults.plan(
        now=sim.real_now(),
        token_route=endpoint.is_token,
        start_jobs=endpoint is Endpoint.START_JOBS,
    )
    if plan.outcome != "none" or plan.delay or plan.late:
        log.info(
            "async_orch.simulator.fault_injected",
            endpoint=endpoint.value,
            outcome=plan.outcome,
            delay=plan.delay,
            late=plan.late,
        )
    if plan.late:
        # Modelled gateway behaviour (faults.py, late_completion): the whole request
        # is held here, so it is served even once its client has hung up.
        await request.read()
        await asyncio.sleep(plan.late)
    if plan.delay:
        await asyncio.sleep(plan.delay)
    if plan.outcome == "drop":
        return None
    if plan.outcome in ("server_error", "throttle"):
        return _injected(plan, token_route=endpoint.is_token)

    response = await _answer(sim, request, match)
    if plan.outcome == "ambiguous" and response.status == 201:
        # The jobs exist now; the client just never learns it.
        if sim.faults.settings.ambiguous_start_mode == "drop":
            return None
        return web.Response(status=504, text="upstream request timeout", content_type="text/plain")
    return response


async def _answer(sim: Simulator, request: web.Request, match: RouteMatch) -> web.Response:
    try:
        if match.endpoint.is_token:
            return await _TOKEN_HANDLERS[match.endpoint](sim, request, match)
        return await handle_orchestrator(sim, request, match)
    except Unauthenticated as exc:
        sim.requests.reject(401)
        log.info("async_orch.simulator.unauthenticated", reason=exc.reason, path=request.path)
        return unauthenticated_response(exc.reason, token_sent="Authorization" in request.headers)
    except ApiProblem as exc:
        return problem_response(exc)
    except ODataError as exc:
        # UNCONFIRMED: the errorCode of an invalid OData query (1000 "Invalid request!").
        return problem_response(ApiProblem(400, exc.message, INVALID_REQUEST))


def _injected(plan: FaultPlan, *, token_route: bool) -> web.Response:
    """A 5xx or 429 that did not come from the endpoint itself."""
    if plan.outcome == "throttle":
        retry_after = str(plan.retry_after or 1)
        if token_route:
            response = token_error_response("too_many_requests", "Too many requests.", status=429)
            response.headers["Retry-After"] = retry_after
            return response
        return problem_response(
            ApiProblem(
                429,
                "Too many requests. Retry after the number of seconds in Retry-After.",
                0,
                headers={"Retry-After": retry_after, "X-RateLimit-Remaining": "0"},
            )
        )
    status = plan.status or 500
    if status == 500:
        return problem_response(ApiProblem(500, "An error has occurred.", 0))
    # Gateways in front of the service answer with short non-JSON bodies.
    reason = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}[status]
    return web.Response(status=status, text=f"{status} {reason}", content_type="text/plain")


def _dropped(request: web.Request) -> web.Response:
    """Close the connection without an answer; the returned response is never sent."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=499)
