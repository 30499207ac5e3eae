"""Keeping secrets out of logs, messages and reprs.

Tokens and secrets are never logged. To tell tokens apart in logs (which one
was refused, when it was replaced) we log a fingerprint: the first 8 hex
digits of its SHA-256, which cannot be turned back into the token.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from async_orch.config import (
    ClientCredentials,
    Credentials,
    PasswordCredentials,
    RefreshTokenCredentials,
)

__all__ = ["REDACTED", "fingerprint", "redact", "secret_values"]

REDACTED = "[redacted]"


def fingerprint(token: str) -> str:
    """A short, one-way name for a token, safe to log."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:8]


def secret_values(credentials: Credentials) -> tuple[str, ...]:
    """The secret strings inside credentials (ids and user names are not secret)."""
    if isinstance(credentials, ClientCredentials):
        return (credentials.client_secret,)
    if isinstance(credentials, RefreshTokenCredentials):
        return (credentials.refresh_token,)
    if isinstance(credentials, PasswordCredentials):
        return (credentials.password,)
    return (credentials.token,)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret replaced by ``[redacted]``.

    Used on text a server sent back, which might echo what it was given.
    """
    # Longest first, so a secret containing another is replaced whole.
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text
