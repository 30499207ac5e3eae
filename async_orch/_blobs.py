"""One blob transfer (an attachment's content), streamed with a size cap.

Attachments carry inputs and outputs too large for InputArguments/OutputArguments
(orchestrator-api.md §8): ``POST /odata/Attachments`` or ``GET
/odata/Attachments({key})`` answers a BlobFileAccess ``{Uri, Verb, Headers:
{Keys, Values}, RequiresAuth}``, and the content is PUT to or read from ``Uri``
with those headers (and the bearer token when RequiresAuth). A download is read
in chunks and stops at ``max_bytes``, so memory stays bounded however large the
blob is; :class:`~async_orch._resources.OrchestratorAPI` limits how many run at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from async_orch._errors import ResponseDecodeError, TransportError

__all__ = ["BlobAccess", "BlobTooLargeError", "read_capped"]

_CHUNK = 64 * 1024


class BlobTooLargeError(ResponseDecodeError):
    """A blob longer than the caller's cap (nothing past the cap was read)."""


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


async def read_capped(response: aiohttp.ClientResponse, max_bytes: int, url: str) -> bytes:
    """The response body, read in chunks; raise BlobTooLargeError past ``max_bytes``."""
    declared = response.content_length
    if declared is not None and declared > max_bytes:
        raise BlobTooLargeError(_too_large(url, max_bytes))
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise BlobTooLargeError(_too_large(url, max_bytes))
            chunks.append(chunk)
    except aiohttp.ClientError as exc:
        raise TransportError(f"blob read failed: {exc}", method="GET", url=url) from exc
    return b"".join(chunks)


def _too_large(url: str, max_bytes: int) -> str:
    return (
        f"the attachment at {url.split('?')[0]} is larger than {max_bytes:,} bytes, the "
        "most async-orch reads into memory (OrchestratorAPI max_attachment_bytes); "
        "raise that cap, or have the process write large results elsewhere"
    )
