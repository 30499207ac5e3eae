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


# Where a short secret stands as a value, as an echo of what was sent puts it: after
# "=" or ":" (with one space or none) or an opening quote. In prose ("wrong
# client_secret", "the App ID") the same letters are a word of the server's own.
_AS_VALUE = r"(?:(?<=[=:'\"])|(?<=[=:] ))"


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each secret replaced by ``[redacted]``.

    Used on text a server sent back, which might echo what it was given. A secret
    shorter than ``_PLAIN_MIN`` characters is replaced only where it stands as a
    value (``client_secret=abc``, ``"abc"``, ``password: abc``, or the whole text),
    not where it is a word of the message: replacing "wrong" in "Unknown client_id
    or wrong client_secret", or "x" everywhere ("E[redacted]ternal Applications"),
    garbles the message and, by marking the word, gives the secret away.
    """
    # Longest first, so a secret containing another is replaced whole.
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        if len(secret) >= _PLAIN_MIN:
            text = text.replace(secret, REDACTED)
        elif text.strip() == secret:
            text = REDACTED
        else:
            # No letter or digit glued to its end (where that end is one).
            after = r"(?!\w)" if re.match(r"\w", secret[-1]) else ""
            text = re.sub(_AS_VALUE + re.escape(secret) + after, REDACTED, text)
    return text
