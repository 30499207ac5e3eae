"""The three ways to get a token: Identity Server, legacy account service, on-premises.

* ``POST [/{org}]/identity_/connect/token`` (and ``/identity/connect/token``, the
  on-premises shape): OAuth 2.0 client credentials, **form-encoded only**. Errors
  follow IdentityServer4's token endpoint: every error is 400 with
  ``{"error": ...}``; a body that is not ``application/x-www-form-urlencoded`` gets
  ``invalid_request`` (IdentityServer4 ``TokenEndpoint.ProcessAsync``), a bad
  client ``invalid_client``, a missing grant type ``unsupported_grant_type``, a
  scope not granted ``invalid_scope`` (also reported by users of the real
  service). UNCONFIRMED: UiPath's own samples of these bodies; the
  ``error_description`` texts are ours and name the fix.
* ``POST /oauth/token``: the retired account.uipath.com refresh-token flow, **JSON
  only**, with ``X-UIPATH-TenantName``. Adds an ``id_token`` to the answer.
* ``POST /api/Account/Authenticate`` (Automation Suite: ``/{org}/{tenant}/api/
  account/authenticate``): username/password, answered with an ABP AjaxResponse
  whose ``result`` is the token; refused with 400 ``{"message": "Invalid
  credentials, failed to login.", "errorCode": 1000, "resourceIds": null}``.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from aiohttp import web

from async_orch._logs import get_logger
from async_orch.simulator.problems import INVALID_REQUEST, abp_error_body
from async_orch.simulator.responses import json_response, token_error_response
from async_orch.simulator.scenario import ClientCredential

if TYPE_CHECKING:
    from async_orch.simulator.core import Simulator, TenantRuntime
    from async_orch.simulator.routes import RouteMatch

__all__ = ["authenticate_user", "client_credentials_token", "legacy_token"]

log = get_logger("async_orch.simulator.identity")

_FORM = "application/x-www-form-urlencoded"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# Grant types IdentityServer knows but this kind of application may not use.
_KNOWN_GRANTS = frozenset({"authorization_code", "password", "refresh_token", "implicit"})


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _issuer(request: web.Request) -> str:
    """The Identity Server that answered: ``{origin}/identity_`` on cloud (its server
    URL in the OpenAPI description), ``{origin}/identity`` on-premises."""
    hosted = "/identity_/" in request.path.lower()
    return f"{_origin(request)}/identity{'_' if hosted else ''}"


def _same(expected: str, given: str) -> bool:
    """Constant-time comparison that also accepts non-ASCII input."""
    return secrets.compare_digest(
        expected.encode("utf-8", "surrogatepass"), given.encode("utf-8", "surrogatepass")
    )


def _client_from_basic(header: str) -> tuple[str, str] | None:
    """client_id/secret from ``Authorization: Basic`` (RFC 6749 section 2.3.1)."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (unquote_plus(client_id), unquote_plus(secret)) if sep else None


async def client_credentials_token(
    sim: Simulator, request: web.Request, match: RouteMatch
) -> web.Response:
    """``POST /identity_/connect/token`` with ``grant_type=client_credentials``."""
    if request.method != "POST" or request.content_type != _FORM:
        if request.method != "POST":
            got = f"a {request.method} request"
        elif request.content_type == "application/json":
            got = "a JSON body"
        else:
            got = f"Content-Type {request.content_type!r}"
        return token_error_response(
            "invalid_request",
            "The request body must be form-encoded (application/x-www-form-urlencoded), not "
            f"JSON, and sent with POST; got {got}. Send client_id, client_secret, "
            "grant_type=client_credentials and scope as form fields "
            "(requests/aiohttp: data={...}, not json={...}).",
        )
    form = await request.post()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    client_id, secret = fields.get("client_id"), fields.get("client_secret")
    basic = _client_from_basic(request.headers.get("Authorization", ""))
    if basic and not client_id:
        client_id, secret = basic

    found = _find_client(sim, client_id or "", organization=match.organization)
    if found is None or not _same(found[1].client_secret, secret or ""):
        where = f" of organization {match.organization!r}" if match.organization else ""
        log.debug("async_orch.simulator.token_refused", reason="invalid_client")
        return token_error_response(
            "invalid_client",
            f"Unknown client_id or wrong client_secret{where}: use the App ID and App Secret "
            "of an external application (Admin > External Applications).",
        )
    tenant, credential = found

    grant_type = fields.get("grant_type")
    if not grant_type:
        return token_error_response(
            "unsupported_grant_type", "grant_type is missing: send grant_type=client_credentials."
        )
    if grant_type != "client_credentials":
        return token_error_response(
            "unsupported_grant_type" if grant_type not in _KNOWN_GRANTS else "unauthorized_client",
            f"grant_type {grant_type!r} is not allowed for this application: "
            "send grant_type=client_credentials.",
        )

    granted = frozenset(credential.scopes)
    requested = frozenset(fields.get("scope", "").split()) or granted
    missing = sorted(requested - granted)
    if missing:
        return token_error_response(
            "invalid_scope",
            f"Scope(s) not granted to this application: {' '.join(missing)}. Request only "
            f"granted scopes ({' '.join(credential.scopes)}) or grant more in External "
            "Applications.",
        )
    lifetime = tenant.spec.expires_in
    token = sim.tokens.issue(
        tenant_key=tenant.key,
        scopes=requested,
        lifetime=lifetime,
        now=sim.real_now(),
        flow="client_credentials",
        subject=credential.client_id,
        issuer=_issuer(request),
        folders=(
            None
            if credential.folders is None
            else frozenset(f.casefold() for f in credential.folders)
        ),
    )
    log.debug("async_orch.simulator.token_issued", flow="client_credentials", tenant=tenant.key)
    body = {
        "access_token": token.value,
        "expires_in": lifetime,
        "token_type": "Bearer",
        "scope": " ".join(sorted(requested)),
    }
    return json_response(body, headers=_NO_STORE)


def _find_client(
    sim: Simulator, client_id: str, *, organization: str | None
) -> tuple[TenantRuntime, ClientCredential] | None:
    for tenant in sim.tenants:
        if organization and tenant.spec.organization.casefold() != organization.casefold():
            continue
        for credential in tenant.spec.credentials:
            if credential.client_id == client_id:
                return tenant, credential
    return None


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, ValueError, RecursionError):  # nested too deep: 400
        return _NOT_JSON


_NOT_JSON = object()


async def legacy_token(sim: Simulator, request: web.Request, match: RouteMatch) -> web.Response:
    """``POST /oauth/token``: ``{grant_type: refresh_token, client_id, refresh_token}``.

    The documented form is a JSON body plus ``X-UIPATH-TenantName`` (F3, F9). The
    forum thread in user-reports/ shows two more facts: a form body *labelled*
    ``application/json`` got a 400, while a plain form body without the tenant
    header got a token (the account service accepted both encodings). So JSON and
    form bodies are accepted, a body that lies about its type is refused, and
    the tenant header is optional when the refresh token identifies the tenant.
    """
    if request.content_type == _FORM:
        body: Any = dict(await request.post())
    else:
        body = await _json_body(request) if request.method == "POST" else _NOT_JSON
    if not isinstance(body, dict):
        return token_error_response(
            "invalid_request",
            "The request body is not valid JSON although it is sent as "
            f"{request.content_type or 'no content type'}: send JSON with grant_type, client_id "
            "and refresh_token (requests: json={...}; data={...} form-encodes the body but "
            "leaves your Content-Type: application/json header in place).",
        )
    tenant_name = request.headers.get("X-UIPATH-TenantName", "").strip()
    if body.get("grant_type") != "refresh_token":
        return token_error_response(
            "unsupported_grant_type", "grant_type must be refresh_token for this endpoint."
        )
    for tenant in sim.tenants:
        # UNCONFIRMED: how the account service picked the tenant without the header;
        # here the refresh token alone decides then.
        if tenant_name and tenant.spec.name.casefold() != tenant_name.casefold():
            continue
        for cred in tenant.spec.refresh_tokens:
            if cred.client_id == body.get("client_id") and _same(
                cred.refresh_token, str(body.get("refresh_token", ""))
            ):
                lifetime = tenant.spec.legacy_expires_in
                token = sim.tokens.issue(
                    tenant_key=tenant.key,
                    scopes=None,
                    lifetime=lifetime,
                    now=sim.real_now(),
                    flow="refresh_token",
                    subject=cred.client_id,
                    issuer=f"{_origin(request)}/",
                )
                return json_response(
                    {
                        "access_token": token.value,
                        "id_token": _fake_id_token(tenant.key, lifetime, sim.real_now()),
                        "scope": "openid profile email offline_access",
                        "expires_in": lifetime,
                        "token_type": "Bearer",
                    },
                    headers=_NO_STORE,
                )
    # The account service (Auth0) answers an unknown refresh token with 403 invalid_grant.
    return token_error_response(
        "invalid_grant",
        f"Unknown or invalid refresh token for tenant {tenant_name!r} (client_id and User Key "
        "come from the tenant's API Access panel).",
        status=403,
    )


def _fake_id_token(subject: str, lifetime: int, now: float) -> str:
    """A JWT-shaped, unsigned-looking string: clients should not parse it anyway."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    claims = {"sub": subject, "iat": int(now), "exp": int(now) + lifetime, "iss": "simulator"}
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.{secrets.token_urlsafe(32)}"


_VALIDATION_FAILED = "Your request is not valid!"
_LOGIN_FAILED = "Invalid credentials, failed to login."


async def authenticate_user(
    sim: Simulator, request: web.Request, match: RouteMatch
) -> web.Response:
    """``POST /api/Account/Authenticate`` (on-premises ROPC)."""
    body = await _json_body(request)
    if not isinstance(body, dict):
        return json_response(
            abp_error_body(
                _VALIDATION_FAILED,
                'The body must be JSON: {"tenancyName": ..., "usernameOrEmailAddress": ..., '
                '"password": ...}. With requests use json={...}, not data={...}.',
            ),
            status=400,
        )
    # ASP.NET binds JSON properties case-insensitively: camelCase and PascalCase both work.
    fields = {str(k).lower(): v for k, v in body.items()}
    tenancy = fields.get("tenancyname")
    username = fields.get("usernameoremailaddress")
    password = fields.get("password")
    missing = [
        name
        for name, value in (("usernameOrEmailAddress", username), ("password", password))
        if not isinstance(value, str) or not value
    ]
    if missing:
        response = abp_error_body(
            _VALIDATION_FAILED, "The following errors were detected during validation."
        )
        response["error"]["validationErrors"] = [
            {"message": f"The {name} field is required.", "members": [name]} for name in missing
        ]
        return json_response(response, status=400)

    if match.tenant is not None:
        # Automation Suite: the path names the tenant. ASSUMPTION: a tenancyName in
        # the body is not needed then, and one naming another tenant fails.
        tenant = sim.tenant(match.organization or "", match.tenant)
        named = tenancy.strip().casefold() if isinstance(tenancy, str) else ""
        if tenant is not None and named and named != tenant.spec.tenancy_name.casefold():
            tenant = None
    else:
        tenant = next(
            (
                t
                for t in sim.tenants
                if isinstance(tenancy, str) and t.spec.tenancy_name.casefold() == tenancy.casefold()
            ),
            sim.tenants[0] if tenancy is None and len(sim.tenants) == 1 else None,
        )
    user = None
    if tenant is not None:
        user = next(
            (u for u in tenant.spec.users if u.username.casefold() == str(username).casefold()),
            None,
        )
    if tenant is None or user is None or not _same(user.password, str(password)):
        # Today's body, 400 (orchestrator-api.md §8: forum threads 145593, 166216).
        # ASSUMPTION: an unknown tenancy name gets the same answer; the simulator
        # says which it was only in its own header.
        hint = (
            f"no tenant with tenancy name {tenancy!r}"
            if tenant is None
            else "wrong user name or password"
        )
        return json_response(
            {"message": _LOGIN_FAILED, "errorCode": INVALID_REQUEST, "resourceIds": None},
            status=400,
            headers={"X-Simulator-Hint": hint},
        )
    lifetime = tenant.spec.onprem_expires_in
    token = sim.tokens.issue(
        tenant_key=tenant.key,
        scopes=None,
        lifetime=lifetime,
        now=sim.real_now(),
        flow="onprem",
        subject=user.username,
        issuer=f"{_origin(request)}/identity",  # ASSUMPTION: the on-premises issuer
    )
    return json_response(
        {
            "result": token.value,
            "targetUrl": None,
            "success": True,
            "error": None,
            "unAuthorizedRequest": False,
            "__abp": True,
        }
    )
