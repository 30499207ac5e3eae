"""Keeping secrets out of logs, messages and reprs.

Tokens and secrets are never logged. To tell tokens apart in logs (which one
was refused, when it was replaced) we log a fingerprint: the first 8 hex
digits of its SHA-256, which cannot be turned back into the token.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from async_orch._config import (
    ClientCredentials,
    Credentials,
    PasswordCredentials,
    RefreshTokenCredentials,
)

__all__ = ["REDACTED", "fingerprint", "redact", "secret_values"]

REDACTED = "[redacted]"
_PLAIN_MIN = 8  # characters; see redact()


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
    """``text`` with each secret replaced by ``[redacted]``.

    Used on text a server sent back, which might echo what it was given. A
    secret shorter than ``_PLAIN_MIN`` characters is replaced only where it stands
    alone, not inside a word: replacing a one-letter secret everywhere would
    garble the message ("E[redacted]ternal Applications") and give the secret away.
    """
    # Longest first, so a secret containing another is replaced whole.
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        if len(secret) >= _PLAIN_MIN:
            text = text.replace(secret, REDACTED)
        else:
            # "Alone": no letter or digit glued to either end (where that end is one).
            before = r"(?<!\w)" if re.match(r"\w", secret[0]) else ""
            after = r"(?!\w)" if re.match(r"\w", secret[-1]) else ""
            text = re.sub(before + re.escape(secret) + after, REDACTED, text)
    return text
