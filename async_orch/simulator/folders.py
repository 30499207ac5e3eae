"""Which folder a request addresses, from its folder headers.

Orchestrator accepts one of (API guide, "Building API requests"):

* ``X-UIPATH-OrganizationUnitId``: the folder Id (int64)
* ``X-UIPATH-FolderKey``: the folder Key (GUID)
* ``X-UIPATH-FolderPath``: the FullyQualifiedName, e.g. ``Finance/Accounts Payable``
* ``X-UIPATH-FolderPath-Encoded``: base64 of the UTF-16LE bytes of the path (for
  non-ASCII paths)

If several are sent, the first of FolderKey, FolderPath-Encoded, FolderPath,
OrganizationUnitId wins (UNCONFIRMED: the precedence of the real service). A leading
"/" on a path is ignored; the relative forms ("." and "..") are not supported.

A folder the caller may not use (an external application not assigned to it)
answers exactly like a folder that does not exist: 400, errorCode 1100 (the
message and code are paired in orchestrator-api.md §8).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping

from async_orch.simulator.problems import ORGANIZATION_UNIT_REQUIRED, ApiProblem
from async_orch.simulator.world import Folder, World

__all__ = ["FOLDER_HEADERS", "resolve_folder"]

FOLDER_HEADERS = (
    "X-UIPATH-FolderKey",
    "X-UIPATH-FolderPath-Encoded",
    "X-UIPATH-FolderPath",
    "X-UIPATH-OrganizationUnitId",
)

_REQUIRED = "An organization unit is required for this action."
_NO_ACCESS = "Folder does not exist or the user does not have access to the folder."
# 400 with errorCode 1100 (orchestrator-api.md §8: UiPath/skills playbooks,
# uipath-python PR 822); an application not assigned to the folder gets it too.
FOLDER_NOT_FOUND = 1100
_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def resolve_folder(
    headers: Mapping[str, str],
    world: World,
    *,
    visible: Callable[[Folder], bool] = lambda folder: True,
) -> Folder:
    """Return the addressed folder or raise :class:`ApiProblem` (400): 1100 when it
    does not exist or is not *visible* to the caller, 1101 when no header names one."""
    for name in FOLDER_HEADERS:
        value = headers.get(name)
        if value is not None and value.strip():
            folder = _lookup(name, value.strip(), world)
            if folder is None or not visible(folder):
                raise ApiProblem(400, _NO_ACCESS, FOLDER_NOT_FOUND)
            return folder
    raise ApiProblem(400, _REQUIRED, ORGANIZATION_UNIT_REQUIRED)


def _lookup(header: str, value: str, world: World) -> Folder | None:
    if header == "X-UIPATH-OrganizationUnitId":
        try:
            folder_id = int(value)
        except ValueError:
            # The forum mistake: the organization name in this header. The real
            # service answers 1101 as if no header were sent; the hint is ours.
            raise ApiProblem(
                400,
                f"{_REQUIRED} X-UIPATH-OrganizationUnitId must be the numeric folder Id "
                f"(the Id field of GET /odata/Folders), not {value[:60]!r}.",
                ORGANIZATION_UNIT_REQUIRED,
            ) from None
        return world.folder_by_id(folder_id)
    if header == "X-UIPATH-FolderKey":
        return world.folder_by_key(value) if _GUID.fullmatch(value) else None
    if header == "X-UIPATH-FolderPath-Encoded":
        value = _decode_path(value)
    return world.folder_by_path(value.removeprefix("/"))


def _decode_path(value: str) -> str:
    try:
        raw = base64.b64decode(value, validate=True)
        return raw.decode("utf-16-le")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ApiProblem(
            400,
            "X-UIPATH-FolderPath-Encoded must be the base64 of the folder path encoded "
            'as UTF-16LE, e.g. base64("Finance".encode("utf-16-le")).',
        ) from None
