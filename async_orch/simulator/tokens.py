"""Issued access tokens: signed JWTs bound to a tenant, scopes and folders.

Real tokens are signed JWTs (RS256) carrying ``exp``, ``iss``, ``client_id`` and
``scope`` (orchestrator-api.md §8, the Automation Suite 2.2510 API guide sample);
clients must treat them as opaque. The simulator's have those claims too, signed
with HS256 under a key drawn at start (ASSUMPTION: the algorithm is invisible to
clients, and the standard library has no RSA). A token is accepted only if its
signature holds and this simulator issued it, so tokens do not outlive a restart
(state.py does not keep them). Lifetimes run on the real clock (clients compute
expiry from ``expires_in`` in real seconds). A token can be revoked one at a time
or per tenant (fault injection).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

__all__ = ["USER_SCOPES", "AccessToken", "TokenStore", "jwt_claims"]


@dataclass(slots=True, kw_only=True)
class AccessToken:
    """One issued token. ``scopes`` is ``None`` for user tokens (all scopes)."""

    value: str
    tenant_key: str
    scopes: frozenset[str] | None
    expires_at: float
    flow: str  # "client_credentials" | "refresh_token" | "onprem"
    subject: str
    # The folder paths (casefolded) an external application is assigned to; None: all.
    folders: frozenset[str] | None = None
    revoked: bool = False

    def allows(self, any_of: frozenset[str]) -> bool:
        """True if the token carries at least one of the scopes in *any_of*.

        ``OR.Default`` is the scope of a fine-grained (folder-assigned) external
        application (orchestrator-api.md §8): its rights come from the roles it holds
        in its folders. ASSUMPTION: those roles grant every endpoint the simulator
        serves; the folder assignment alone limits what it sees.
        """
        return (
            self.scopes is None or "OR.Default" in self.scopes or not self.scopes.isdisjoint(any_of)
        )

    def sees(self, folder_path: str) -> bool:
        """True if the token may use the folder at *folder_path*.

        ASSUMPTION: an assignment to a folder covers its subfolders (roles are
        inherited down the folder tree in modern folders).
        """
        if self.folders is None:
            return True
        path = folder_path.casefold()
        return any(path == f or path.startswith(f + "/") for f in self.folders)


USER_SCOPES = ("openid", "profile", "email", "offline_access")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def jwt_claims(value: str) -> dict[str, Any]:
    """The claims of a JWT, unverified (for tests and diagnostics only)."""
    payload = value.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


class TokenStore:
    """Issues, checks and revokes tokens; time is passed in."""

    def __init__(self, signing_key: bytes | None = None) -> None:
        self._tokens: dict[str, AccessToken] = {}
        self._key = signing_key or secrets.token_bytes(32)

    def _sign(self, claims: dict[str, Any]) -> str:
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signed = f"{header}.{body}"
        mac = hmac.new(self._key, signed.encode("ascii"), hashlib.sha256).digest()
        return f"{signed}.{_b64(mac)}"

    def _signature_holds(self, value: str) -> bool:
        signed, _, mac = value.rpartition(".")
        expected = hmac.new(self._key, signed.encode("ascii", "replace"), hashlib.sha256)
        return secrets.compare_digest(_b64(expected.digest()), mac)

    def issue(
        self,
        *,
        tenant_key: str,
        scopes: frozenset[str] | None,
        lifetime: float,
        now: float,
        flow: str,
        subject: str,
        issuer: str,
        folders: frozenset[str] | None = None,
    ) -> AccessToken:
        self._purge(now)
        # ``now`` is the simulator's clock (monotonic, maybe scaled); JWT times are
        # Unix seconds (RFC 7519), which a client decoding ``exp`` compares with its own.
        epoch = int(time.time())
        claims: dict[str, Any] = {
            "iss": issuer,
            "nbf": epoch,
            "iat": epoch,
            "exp": epoch + int(lifetime),
            "aud": "OrchestratorApiUserAccess",  # ASSUMPTION: the audience's name
            "client_id": subject if flow == "client_credentials" else "simulator",
            "sub": subject,
            # A user token carries the user's rights, not OR scopes; ASSUMPTION: the
            # scopes of the legacy flow's answer (orchestrator-api.md §1b).
            "scope": sorted(scopes) if scopes is not None else list(USER_SCOPES),
            "prt_id": tenant_key,  # ASSUMPTION: how the tenant is named in a token
            "jti": uuid.uuid4().hex,
        }
        token = AccessToken(
            value=self._sign(claims),
            tenant_key=tenant_key,
            scopes=scopes,
            expires_at=now + lifetime,
            flow=flow,
            subject=subject,
            folders=folders,
        )
        self._tokens[token.value] = token
        return token

    def check(self, value: str, *, now: float) -> tuple[AccessToken | None, str]:
        """Return ``(token, "")`` if usable, else ``(token or None, reason)``."""
        token = self._tokens.get(value) if self._signature_holds(value) else None
        if token is None:
            return None, "unknown token (not signed by this simulator, or issued before a restart)"
        if token.revoked:
            return token, "token was revoked"
        if now >= token.expires_at:
            return token, "token expired"
        return token, ""

    def revoke(self, *, tenant_key: str | None = None) -> int:
        """Revoke every live token (of one tenant if given); return how many."""
        count = 0
        for token in self._tokens.values():
            if not token.revoked and (tenant_key is None or token.tenant_key == tenant_key):
                token.revoked = True
                count += 1
        return count

    def reassign(self, *, tenant_key: str, subject: str, folders: tuple[str, ...] | None) -> None:
        """Give the client-credentials tokens of *subject* these folders (None: all):
        folder access is checked per call, not fixed in the token (core.py)."""
        assigned = None if folders is None else frozenset(f.casefold() for f in folders)
        for token in self._tokens.values():
            if (token.tenant_key, token.subject, token.flow) == (
                tenant_key,
                subject,
                "client_credentials",
            ):
                token.folders = assigned

    def _purge(self, now: float) -> None:
        # Keep expired tokens for a day so a late call still reads "expired".
        stale = [v for v, t in self._tokens.items() if now - t.expires_at > 86_400]
        for value in stale:
            del self._tokens[value]
