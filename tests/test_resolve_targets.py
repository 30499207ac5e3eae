"""Looking up each request's folder and release before a batch starts."""

from __future__ import annotations

import anyio.lowlevel
import pytest
from fakes import FakeAPI

from async_orch._errors import ClientClosedError, FolderNotFoundError
from async_orch._jobs import JobRequest
from async_orch._models import Folder
from async_orch._seams import FolderRef
from async_orch._starting import resolve_targets


class ClosedAPI(FakeAPI):
    """A client closed under the batch: every lookup fails alike."""

    async def resolve_folder(self, ref: FolderRef) -> Folder:
        await anyio.lowlevel.checkpoint()
        raise ClientClosedError()


async def test_a_client_closed_under_the_lookups_is_one_error_not_a_group() -> None:
    requests = [JobRequest(process="Echo", folder=folder) for folder in ("Shared", "Finance", "HR")]
    with pytest.raises(ClientClosedError):  # an ExceptionGroup of three before
        await resolve_targets(ClosedAPI(), requests)


async def test_a_lookup_that_fails_is_that_requests_target() -> None:
    requests = [
        JobRequest(process="Echo", folder="Shared"),
        JobRequest(process="Echo", folder="Nowhere"),
    ]
    found = await resolve_targets(FakeAPI(), requests)
    assert isinstance(found[0], tuple) and found[0][0].fully_qualified_name == "Shared"
    assert isinstance(found[1], FolderNotFoundError)
