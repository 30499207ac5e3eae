"""The static part of a tenant: folders, releases and robots, with ids and keys.

Built once from a :class:`TenantSpec`. Ids are realistic int64 values and keys are
UUIDs derived from the tenant and the path (uuid5), so a folder's Key and a release's
Key are the same on every run of the same scenario, as they would be on a real
tenant. Lookups by path and name are case-insensitive, like Orchestrator's SQL
Server collation.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from async_orch.simulator.scenario import ProcessSpec, TenantSpec

__all__ = ["Folder", "Release", "Robot", "World", "build_world"]

_NAMESPACE = uuid.UUID("5c1d3a0e-7b7f-4c55-9f0d-2f0b8f6e1a11")
_FOLDER_ID_BASE = 515_116  # the order of magnitude of real cloud folder ids
_RELEASE_ID_BASE = 84_312
_ROBOT_ID_BASE = 1_553
_MACHINE_ID_BASE = 40_117
_PER_TENANT = 100_000  # id offset between tenants of one simulator


def _key(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


@dataclass(frozen=True, slots=True)
class Robot:
    """An unattended robot (and the machine it runs on) in one folder."""

    id: int
    name: str
    machine_id: int
    machine_name: str
    username: str
    folder_id: int


@dataclass(frozen=True, slots=True)
class Release:
    """A process deployed in a folder (the API calls it a release)."""

    id: int
    key: str
    name: str
    process_key: str
    version: str
    version_id: int
    entry_point_id: int
    feed_id: str
    folder_id: int
    folder_key: str
    folder_path: str
    spec: ProcessSpec


@dataclass(frozen=True, slots=True)
class Folder:
    """A modern folder with its robots, releases and robot capacity."""

    id: int
    key: str
    display_name: str
    path: str
    parent_id: int | None
    parent_key: str | None
    description: str
    capacity: int
    robots: tuple[Robot, ...]
    releases: tuple[Release, ...]

    def release_by_key(self, key: str) -> Release | None:
        wanted = key.strip().lower()
        return next((r for r in self.releases if r.key == wanted), None)

    def release_by_name(self, name: str) -> Release | None:
        wanted = name.casefold()
        return next((r for r in self.releases if r.name.casefold() == wanted), None)


class World:
    """The folders of one tenant, indexed by id, key and path."""

    def __init__(self, tenant: TenantSpec, folders: tuple[Folder, ...]) -> None:
        self.tenant = tenant
        self.folders = folders
        self._by_id = {f.id: f for f in folders}
        self._by_key = {f.key: f for f in folders}
        self._by_path = {f.path.casefold(): f for f in folders}
        self.robots = {r.id: r for f in folders for r in f.robots}

    def __iter__(self) -> Iterator[Folder]:
        return iter(self.folders)

    def folder_by_id(self, folder_id: int) -> Folder | None:
        return self._by_id.get(folder_id)

    def folder_by_key(self, key: str) -> Folder | None:
        return self._by_key.get(key.strip().lower())

    def folder_by_path(self, path: str) -> Folder | None:
        return self._by_path.get(path.casefold())


def build_world(tenant: TenantSpec, *, index: int = 0) -> World:
    """Lay out folders, robots and releases of *tenant* (the *index*-th of the scenario)."""
    offset = index * _PER_TENANT
    ids = {
        spec.path.casefold(): _FOLDER_ID_BASE + offset + i for i, spec in enumerate(tenant.folders)
    }
    robot_n = release_n = 0
    folders = []
    for spec in tenant.folders:
        folder_id = ids[spec.path.casefold()]
        folder_key = _key(tenant.key.casefold(), "folder", spec.path.casefold())
        parent = spec.parent_path
        robots = []
        for name in spec.robots:
            robots.append(
                Robot(
                    id=_ROBOT_ID_BASE + offset + robot_n,
                    name=name,
                    machine_id=_MACHINE_ID_BASE + offset + robot_n,
                    machine_name=f"VM-{name}",
                    username=f"svc-{name.lower()}",
                    folder_id=folder_id,
                )
            )
            robot_n += 1
        releases = []
        for process in spec.processes:
            release_id = _RELEASE_ID_BASE + offset + release_n
            releases.append(
                Release(
                    id=release_id,
                    key=_key(tenant.key.casefold(), "release", spec.path.casefold(), process.name),
                    name=process.name,
                    process_key=process.name,
                    version=process.version,
                    version_id=release_id * 3 + 1,
                    entry_point_id=release_id * 7 + 2,
                    feed_id=_key(tenant.key.casefold(), "feed"),
                    folder_id=folder_id,
                    folder_key=folder_key,
                    folder_path=spec.path,
                    spec=process,
                )
            )
            release_n += 1
        folders.append(
            Folder(
                id=folder_id,
                key=folder_key,
                display_name=spec.display_name,
                path=spec.path,
                parent_id=ids[parent.casefold()] if parent else None,
                parent_key=_key(tenant.key.casefold(), "folder", parent.casefold())
                if parent
                else None,
                description=spec.description,
                capacity=spec.capacity,
                robots=tuple(robots),
                releases=tuple(releases),
            )
        )
    return World(tenant, tuple(folders))
