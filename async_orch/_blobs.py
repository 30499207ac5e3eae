"""One blob transfer (an attachment's content), streamed with a size cap.

Attachments carry inputs and outputs too large for InputArguments/OutputArguments
(orchestrator-api.md §8): ``POST /odata/Attachments`` or ``GET
/odata/Attachments({key})`` answers a BlobFileAccess ``{Uri, Verb, Headers:
{Keys, Values}, RequiresAuth}``, and the content is PUT to or read from ``Uri``
with those headers (and the bearer token when RequiresAuth). A download is read
in chunks and stops at ``max_bytes`` (the sender's ``max_body``), so memory stays
bounded however large the blob is; :class:`~async_orch._resources.OrchestratorAPI`
limits how many run at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from async_orch._errors import BlobTooLargeError, ResponseDecodeError

__all__ = ["BlobAccess", "BlobTooLargeError", "check_blob_size"]


@dataclass(frozen=True, slots=True)
class BlobAccess:
    """A BlobFileAccessDto: where and how to transfer an attachment's content."""

    uri: str
    verb: str | None = None
    requires_auth: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_api(cls, attachment: Any) -> BlobAccess:
        """Read ``BlobFileAccess`` from an attachment answer.

        Raises:
            ResponseDecodeError: no BlobFileAccess with a Uri.
        """
        access = attachment.get("BlobFileAccess") if isinstance(attachment, dict) else None
        if not isinstance(access, dict) or not isinstance(access.get("Uri"), str):
            raise ResponseDecodeError(
                f"expected an attachment with BlobFileAccess.Uri, got {str(attachment)[:200]!r}"
            )
        raw = access.get("Headers") or {}
        keys = raw.get("Keys") or [] if isinstance(raw, dict) else []
        values = raw.get("Values") or [] if isinstance(raw, dict) else []
        return cls(
            uri=access["Uri"],
            verb=access.get("Verb"),
            requires_auth=access.get("RequiresAuth") is True,
            headers={str(k): str(v) for k, v in zip(keys, values, strict=False)},
        )


def check_blob_size(size: int, max_bytes: int, url: str) -> None:
    """Raise BlobTooLargeError when ``size`` bytes (read so far, or declared) pass
    ``max_bytes``."""
    if size > max_bytes:
        raise BlobTooLargeError(_too_large(url, max_bytes))


def _too_large(url: str, max_bytes: int) -> str:
    return (
        f"the attachment at {url.split('?')[0]} is larger than {max_bytes:,} bytes, the "
        "most async-orch reads into memory (OrchestratorAPI max_attachment_bytes); "
        "raise that cap, or have the process write large results elsewhere"
    )
