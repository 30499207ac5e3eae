"""Attachments and their blob store: large inputs (InputFile) and outputs (OutputFile).

From orchestrator-api.md §8 (the official SDK, uipath-platform 0.2.41):
``POST /odata/Attachments`` with ``{"Name": ...}`` and a folder header answers
``{Id, Name, BlobFileAccess: {Uri, Verb, Headers: {Keys, Values}, RequiresAuth}}``;
the content is PUT to ``Uri`` with those headers (plus the bearer token when
RequiresAuth). ``GET /odata/Attachments({key})`` answers the BlobFileAccess to
GET the content; it serves uploaded attachments and jobs' OutputFiles alike.
The v20 OpenAPI describes the POST answer as AttachmentDto without
BlobFileAccess; §8 (the SDK's reading of the real answer) wins.

ASSUMPTIONS: the blob Uri lives under the tenant's base (``odata/BlobFiles({id})``)
and always RequiresAuth (any valid token of the tenant); the ``x-ms-blob-type``
header mirrors Azure blob storage; attachments live in memory only (a state
file does not keep them), and one holds at most :data:`MAX_BLOB_BYTES`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from async_orch.simulator.problems import ITEM_NOT_FOUND, ApiProblem
from async_orch.simulator.responses import odata_response

if TYPE_CHECKING:
    from async_orch.simulator.core import TenantRuntime
    from async_orch.simulator.world import Folder

__all__ = ["MAX_BLOB_BYTES", "AttachmentStore", "StoredAttachment"]

MAX_BLOB_BYTES = 64 * 1024 * 1024
_MAX_NAME = 256  # AttachmentDto.Name maxLength


@dataclass(slots=True)
class StoredAttachment:
    id: str
    name: str
    tenant: str
    folder_id: int
    content: bytes | None = None  # None until PUT


class AttachmentStore:
    """Every uploaded attachment of a simulator run, by Id."""

    def __init__(self) -> None:
        self._items: dict[str, StoredAttachment] = {}

    def create(self, tenant: str, folder_id: int, name: str) -> StoredAttachment:
        item = StoredAttachment(str(uuid.uuid4()), name, tenant, folder_id)
        self._items[item.id] = item
        return item

    def get(self, tenant: str, key: str) -> StoredAttachment | None:
        item = self._items.get(key.lower())
        return item if item is not None and item.tenant == tenant else None

    def input_text(self, tenant: str, folder_id: int, key: str) -> str | None:
        """The uploaded text of an InputFile (None: no such uploaded attachment)."""
        item = self.get(tenant, key)
        if item is None or item.folder_id != folder_id or item.content is None:
            return None
        try:
            return item.content.decode("utf-8")
        except UnicodeDecodeError:
            return None


def _not_found(key: str) -> ApiProblem:
    # UNCONFIRMED: message; 404 with errorCode 1002 (item not found).
    return ApiProblem(404, f"Attachment does not exist (Id {key}).", ITEM_NOT_FOUND)


def _access(base_url: str, key: str, verb: str) -> dict[str, Any]:
    headers = {"Keys": ["x-ms-blob-type"], "Values": ["BlockBlob"]} if verb == "PUT" else {}
    return {
        "Uri": f"{base_url}/odata/BlobFiles({key})",
        "Verb": verb,
        "RequiresAuth": True,
        "Headers": {"Keys": [], "Values": [], **headers},
    }


async def create_attachment(
    tenant: TenantRuntime, store: AttachmentStore, folder: Folder, body: Any, base_url: str
) -> web.Response:
    name = body.get("Name") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name.strip() or len(name) > _MAX_NAME:
        raise ApiProblem(400, f"Name is required: a string of 1 to {_MAX_NAME} characters.")
    item = store.create(tenant.key, folder.id, name)
    answer = {"Id": item.id, "Name": name, "BlobFileAccess": _access(base_url, item.id, "PUT")}
    return odata_response(answer, status=201)


async def get_attachment(
    tenant: TenantRuntime, store: AttachmentStore, folder: Folder, key: str, base_url: str
) -> web.Response:
    item = store.get(tenant.key, key)
    if item is not None and item.folder_id == folder.id:
        name = item.name
    else:
        job = tenant.engine.job_by_output_file(key)
        if job is None or job.folder.id != folder.id:
            raise _not_found(key)
        name = f"{job.key}-output.json"  # ASSUMPTION: the real name is not documented
    answer = {"Id": key.lower(), "Name": name, "BlobFileAccess": _access(base_url, key, "GET")}
    return odata_response(answer)


async def put_blob(
    tenant: TenantRuntime, store: AttachmentStore, request: web.Request, key: str
) -> web.Response:
    item = store.get(tenant.key, key)
    if item is None:
        raise _not_found(key)
    if request.content_length is not None and request.content_length > MAX_BLOB_BYTES:
        raise ApiProblem(413, f"The blob is larger than {MAX_BLOB_BYTES} bytes.")
    item.content = await request.read()
    return web.Response(status=201)


async def get_blob(tenant: TenantRuntime, store: AttachmentStore, key: str) -> web.Response:
    item = store.get(tenant.key, key)
    if item is not None and item.content is not None:
        content = item.content
    else:
        job = tenant.engine.job_by_output_file(key)
        if job is None or job.output_text is None:
            raise _not_found(key)
        content = job.output_text.encode("utf-8")
    return web.Response(body=content, content_type="application/octet-stream")
