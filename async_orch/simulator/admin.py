"""The admin API under ``/_simulator/``: not part of Orchestrator, never faulted.

* ``GET  /_simulator/stats``          counters (see :meth:`Simulator.stats`)
* ``POST /_simulator/reset-stats``    zero request, rejection and fault counters
* ``GET  /_simulator/faults``         current fault settings
* ``POST /_simulator/faults``         change them: a JSON object of settings
  (see faults.py); ``"clear": true`` first resets every fault to off
* ``POST /_simulator/revoke-tokens``  revoke all tokens, or ``{"tenant": "org/name"}``
* ``POST /_simulator/runtimes``       the tenant admin's fix (robots.py): ``{"tenant":
  "org/name", "machine": "VM-1", "online": true}`` and/or ``{"unattended_licenses": 8}``;
  Pending jobs are then re-evaluated. 400 for a tenant without machines.
* ``POST /_simulator/access``         an external application's access from now on:
  ``{"tenant": "org/name", "client_id": "app", "scopes": [...], "folders": [...]}``
  (``tenant`` may be left out when one tenant has that client id; ``folders``: declared
  paths, null for every folder; absent: unchanged). Its tokens see the new folders at
  their next call and keep their scopes until renewed (core.py ``change_access``).
  400 for an unknown client id or folder.
* ``GET  /_simulator/scenario``       tenants, URLs, folders, processes, credentials
  (secrets redacted: the client id and the first characters of the secret)
* ``GET  /_simulator/webhooks``       per tenant, the webhook subscriptions (never their
  secret), the last deliveries and their counts (webhooks.py); the simulator's own
  record: Orchestrator neither stores nor retries deliveries

Every admin call needs ``Authorization: Bearer <admin token>``: the token is
drawn at start and printed by ``async-orch simulator`` (or taken from
``ASYNC_ORCH_SIMULATOR_ADMIN_TOKEN``); in-process, ``handle.admin_headers``.
Without it anyone who reaches the port could change faults or revoke tokens.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from async_orch._errors import ConfigurationError
from async_orch.simulator.responses import json_response

if TYPE_CHECKING:
    from async_orch.simulator.core import Simulator

__all__ = ["ADMIN_PREFIX", "add_admin_routes"]

ADMIN_PREFIX = "/_simulator"

_Handler = Callable[[web.Request], Awaitable[web.Response]]


async def _json_object(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested too deep
        raise web.HTTPBadRequest(
            text='{"error": "the body must be a JSON object"}', content_type="application/json"
        ) from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(
            text='{"error": "the body must be a JSON object"}', content_type="application/json"
        )
    return data


def _names(value: object, *, spaces: bool) -> bool:
    """True for a JSON array of non-empty strings (with spaces if *spaces*)."""
    return isinstance(value, list) and all(
        isinstance(v, str) and v.strip() and (spaces or " " not in v) for v in value
    )


def add_admin_routes(app: web.Application, sim: Simulator, *, token: str) -> None:
    """Register the admin endpoints on *app*, each asking for *token*."""
    expected = f"Bearer {token}".encode()

    def guarded(handler: _Handler) -> _Handler:
        async def check(request: web.Request) -> web.Response:
            given = request.headers.get("Authorization", "").strip().encode()
            if not token or not hmac.compare_digest(given, expected):
                return json_response(
                    {
                        "error": "the simulator's admin API needs 'Authorization: Bearer "
                        "<admin token>'; async-orch simulator prints the token at start"
                    },
                    status=401,
                )
            return await handler(request)

        return check

    async def stats(request: web.Request) -> web.Response:
        return json_response(sim.stats())

    async def reset_stats(request: web.Request) -> web.Response:
        sim.reset_stats()
        return json_response(sim.stats())

    async def get_faults(request: web.Request) -> web.Response:
        return json_response(sim.faults.settings.to_dict())

    async def set_faults(request: web.Request) -> web.Response:
        data = await _json_object(request)
        clear = bool(data.pop("clear", False))
        try:
            settings = sim.set_faults(data, clear=clear)
        except ConfigurationError as exc:
            return json_response({"error": str(exc)}, status=400)
        return json_response(settings.to_dict())

    async def revoke_tokens(request: web.Request) -> web.Response:
        data = await _json_object(request)
        tenant = data.get("tenant")
        if tenant is not None and (
            not isinstance(tenant, str) or sim.tenant_by_key(tenant) is None
        ):
            known = ", ".join(t.key for t in sim.tenants)
            return json_response(
                {"error": f"unknown tenant {tenant!r}; known: {known}"}, status=400
            )
        return json_response({"revoked": sim.revoke_tokens(tenant)})

    async def change_runtimes(request: web.Request) -> web.Response:
        data = await _json_object(request)
        try:
            tenant = sim.tenant_by_key(str(data.get("tenant", ""))) or (
                sim.tenants[0] if "tenant" not in data and len(sim.tenants) == 1 else None
            )
            if tenant is None:
                raise ValueError(f"unknown tenant {data.get('tenant')!r}")
            machine, online = data.get("machine"), data.get("online")
            licenses = data.get("unattended_licenses")
            if machine is not None and not isinstance(machine, str):
                raise ValueError("machine must be a machine name")
            if online is not None and not isinstance(online, bool):
                raise ValueError("online must be true or false")
            if licenses is not None and (
                isinstance(licenses, bool) or not isinstance(licenses, int) or licenses < 0
            ):
                raise ValueError("unattended_licenses must be an integer >= 0")
            tenant.engine.change_runtimes(
                sim.sim_now(), machine=machine, online=online, licenses=licenses
            )
        except (KeyError, ValueError) as exc:
            return json_response({"error": str(exc).strip("'\"")}, status=400)
        assert tenant.engine.runtimes is not None
        return json_response(tenant.engine.runtimes.describe())

    async def change_access(request: web.Request) -> web.Response:
        data = await _json_object(request)
        try:
            unknown = sorted(set(data) - {"tenant", "client_id", "scopes", "folders"})
            if unknown:
                raise ValueError(f"unknown field(s): {', '.join(unknown)}")
            client_id = data.get("client_id")
            if not isinstance(client_id, str) or not client_id:
                raise ValueError("client_id must name an external application of the scenario")
            tenants = [t.key for t in sim.tenants]
            if "tenant" in data:
                tenant = sim.tenant_by_key(str(data["tenant"]))
                if tenant is None:
                    raise ValueError(
                        f"unknown tenant {data['tenant']!r}; known: {', '.join(tenants)}"
                    )
            else:  # the tenant holding that client id, if only one does
                holders = [
                    t
                    for t in sim.tenants
                    if any(c.client_id == client_id for c in t.spec.credentials)
                ]
                if len(holders) != 1:
                    ids = sorted({c.client_id for t in sim.tenants for c in t.spec.credentials})
                    raise ValueError(
                        f"unknown client_id {client_id!r}; known: {', '.join(ids)}"
                        if not holders
                        else f"{client_id!r} is in several tenants: name one ({', '.join(tenants)})"
                    )
                tenant = holders[0]
            if "scopes" not in data and "folders" not in data:
                raise ValueError("nothing to change: give scopes and/or folders")
            scopes = data.get("scopes", ...)
            if scopes is not ... and not _names(scopes, spaces=False):
                raise ValueError("scopes must be an array of scope names (no spaces)")
            folders = data.get("folders", ...)
            if folders not in (..., None) and not _names(folders, spaces=True):
                raise ValueError("folders must be null or an array of folder paths")
            credential = sim.change_access(
                tenant,
                client_id,
                scopes=... if scopes is ... else tuple(scopes),
                folders=folders if folders in (..., None) else tuple(folders),
            )
        except ValueError as exc:
            return json_response({"error": str(exc)}, status=400)
        return json_response(
            {
                "tenant": tenant.key,
                "client_id": credential.client_id,
                "scopes": list(credential.scopes),
                "folders": list(credential.folders) if credential.folders is not None else None,
            }
        )

    async def scenario(request: web.Request) -> web.Response:
        root = f"{request.scheme}://{request.host}"
        return json_response({"root_url": root, **sim.describe()})

    app.router.add_get(f"{ADMIN_PREFIX}/stats", guarded(stats))
    app.router.add_post(f"{ADMIN_PREFIX}/reset-stats", guarded(reset_stats))
    app.router.add_get(f"{ADMIN_PREFIX}/faults", guarded(get_faults))
    app.router.add_post(f"{ADMIN_PREFIX}/faults", guarded(set_faults))
    app.router.add_post(f"{ADMIN_PREFIX}/revoke-tokens", guarded(revoke_tokens))

    async def webhooks(request: web.Request) -> web.Response:
        return json_response(sim.webhooks.view())

    app.router.add_get(f"{ADMIN_PREFIX}/scenario", guarded(scenario))
    app.router.add_get(f"{ADMIN_PREFIX}/webhooks", guarded(webhooks))
    app.router.add_post(f"{ADMIN_PREFIX}/runtimes", guarded(change_runtimes))
    app.router.add_post(f"{ADMIN_PREFIX}/access", guarded(change_access))
