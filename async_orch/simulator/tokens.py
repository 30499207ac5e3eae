"""Issued access tokens: opaque random strings bound to a tenant and scopes.

Lifetimes run on the real clock (clients compute expiry from ``expires_in`` in
real seconds). A token can be revoked one at a time or per tenant (fault injection).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

__all__ = ["AccessToken", "TokenStore"]


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


class TokenStore:
    """Issues, checks and revokes tokens; time is passed in."""

    def __init__(self) -> None:
        self._tokens: dict[str, AccessToken] = {}

    def issue(
        self,
        *,
        tenant_key: str,
        scopes: frozenset[str] | None,
        lifetime: float,
        now: float,
        flow: str,
        subject: str,
        folders: frozenset[str] | None = None,
    ) -> AccessToken:
        self._purge(now)
        token = AccessToken(
            value=secrets.token_urlsafe(48),
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
        token = self._tokens.get(value)
        if token is None:
            return None, "unknown token"
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

    def _purge(self, now: float) -> None:
        # Keep expired tokens for a day so a late call still reads "expired".
        stale = [v for v, t in self._tokens.items() if now - t.expires_at > 86_400]
        for value in stale:
            del self._tokens[value]
