"""Machines, unattended runtimes and the tenant's licences: who can run a job, and why not.

Off unless a tenant declares ``[[tenants.machines]]``; without it every folder keeps its
own ``capacity`` (the demo). With it, robot slots are the tenant's, not the folder's:

* a machine has a number of unattended runtimes (jobs it runs at once) and serves one
  or more folders; a job of a folder runs on a free runtime of an online machine that
  serves the folder;
* ``unattended_licenses`` caps the runtimes in use across the tenant (default: no cap
  beyond the runtimes themselves).

Real outcomes reproduced (orchestrator-api.md section 8):

* a folder no machine with runtimes serves: StartJobs is refused, 409 with errorCode
  2818 "Could not find a machine with Unattended or NonProduction runtimes" (UiPath/skills
  maestro playbook ``no-suitable-runtime-machine.md``);
* Specific robot ids not in the folder: 409 ``InvalidStartJobRobotIds`` "Couldn't find the
  specified unattended user/robot in the current folder." (docs.uipath.com orchestrator
  user-guide alerts-troubleshooting); see start_request.py;
* no free licence, no online machine: jobs are created and stay Pending; Orchestrator
  does not re-evaluate such reasons on its own (UiPath/skills ``job-pending-no-host.md``,
  ``job-pending-stale-dispatch.md``).

ASSUMPTION (not in our sources): what makes the real service pick such jobs up later.
The simulator re-evaluates Pending jobs when a runtime frees (a job ends) and when the
admin API changes a machine or the licence count (``POST /_simulator/runtimes``), which
stands for the tenant admin fixing the cause.

The pending reasons are the ``JobPendingReasons`` names of ``ValidationResultDto.ErrorCodes``
in the OpenAPI description (spec/orchestrator.yaml, ValidateDynamicJob).
"""

from __future__ import annotations

from dataclasses import dataclass

from async_orch._errors import ConfigurationError
from async_orch.simulator.validation import Table

__all__ = [
    "NO_RUNTIME_CODE",
    "NO_RUNTIME_MESSAGE",
    "REASON_TEXTS",
    "MachineSpec",
    "RuntimeModel",
    "RuntimePool",
    "parse_runtime_model",
]

NO_RUNTIME_CODE = 2818
NO_RUNTIME_MESSAGE = "Could not find a machine with Unattended or NonProduction runtimes"

# The Errors texts next to ErrorCodes. UNCONFIRMED: the real texts; ours say the fix.
REASON_TEXTS = {
    "TemplateNoRuntime": "No machine with unattended runtimes is assigned to the folder: "
    "assign a machine template with runtimes to it.",
    "TemplateNoHostsAvailable": "No machine serving the folder is connected: start the robot "
    "service on one of its machines.",
    "TemplateNoLicense": "Every unattended licence of the tenant is in use: free or buy "
    "licences, or wait for running jobs to end.",
    "TemplateFullCapacity": "Every runtime of the folder's machines is busy: the job would "
    "wait in Pending until one frees.",
    "RobotNotAssignedToFolder": "A robot given in RobotIds is not assigned to the folder.",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class MachineSpec:
    """A machine (template) with unattended runtimes, serving some folders."""

    name: str
    runtimes: int
    folders: tuple[str, ...]  # folder paths
    online: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeModel:
    """A tenant's machines and licences (scenario keys ``machines``, ``unattended_licenses``)."""

    machines: tuple[MachineSpec, ...]
    licenses: int | None = None  # None: no cap beyond the runtimes


def parse_runtime_model(t: Table, folder_paths: list[str]) -> RuntimeModel | None:
    """Read ``unattended_licenses`` and ``[[tenants.machines]]`` of a tenant table."""
    tables = t.tables("machines")
    if not tables and not t.has("unattended_licenses"):
        return None
    known = {p.casefold(): p for p in folder_paths}
    machines = []
    for m in tables:
        m.reject_unknown(("name", "runtimes", "folders", "online"))
        folders = m.strings("folders")
        for path in folders:
            if path.casefold() not in known:
                raise m.fail("folders", f"paths of declared folders (unknown: {path!r})")
        machines.append(
            MachineSpec(
                name=m.string("name", max_length=100),
                runtimes=m.integer("runtimes", 1, minimum=0),
                folders=tuple(known[p.casefold()] for p in folders),
                online=m.boolean("online", True),
            )
        )
    names = [m.name.casefold() for m in machines]
    if len(set(names)) != len(names):
        raise ConfigurationError(f"{t.path('machines')}: duplicate machine name")
    licenses = (
        t.integer("unattended_licenses", 0, minimum=0) if t.has("unattended_licenses") else None
    )
    return RuntimeModel(machines=tuple(machines), licenses=licenses)


@dataclass(slots=True)
class _Machine:
    id: int
    name: str
    runtimes: int
    folder_ids: frozenset[int]
    online: bool
    busy: int = 0


class RuntimePool:
    """Live runtimes of one tenant: which job holds which machine's runtime."""

    def __init__(self, model: RuntimeModel, folder_ids: dict[str, int], first_machine_id: int):
        ids = {path.casefold(): fid for path, fid in folder_ids.items()}
        self.machines = [
            _Machine(
                id=first_machine_id + i,
                name=spec.name,
                runtimes=spec.runtimes,
                folder_ids=frozenset(ids[p.casefold()] for p in spec.folders),
                online=spec.online,
            )
            for i, spec in enumerate(model.machines)
        ]
        self.licenses = model.licenses
        self._held: dict[int, _Machine] = {}  # job id -> machine

    def _serving(self, folder_id: int) -> list[_Machine]:
        return [m for m in self.machines if folder_id in m.folder_ids and m.runtimes > 0]

    def folder_has_runtimes(self, folder_id: int) -> bool:
        """False: StartJobs in this folder is refused (409, errorCode 2818)."""
        return bool(self._serving(folder_id))

    def pending_reason(self, folder_id: int) -> str | None:
        """Why a new job of the folder would not get a runtime now (None: it would)."""
        serving = self._serving(folder_id)
        if not serving:
            return "TemplateNoRuntime"
        online = [m for m in serving if m.online]
        if not online:
            return "TemplateNoHostsAvailable"
        if self.licenses is not None and len(self._held) >= self.licenses:
            return "TemplateNoLicense"
        if all(m.busy >= m.runtimes for m in online):
            return "TemplateFullCapacity"
        return None

    def acquire(self, job_id: int, folder_id: int) -> tuple[int, str] | None:
        """Give the job a runtime (machine id, name), or None if none is free."""
        if self.pending_reason(folder_id) is not None:
            return None
        # The least busy online machine first: spreads jobs like a real tenant.
        machine = min(
            (m for m in self._serving(folder_id) if m.online and m.busy < m.runtimes),
            key=lambda m: (m.busy, m.id),
        )
        machine.busy += 1
        self._held[job_id] = machine
        return machine.id, machine.name

    def release(self, job_id: int) -> None:
        machine = self._held.pop(job_id, None)
        if machine is not None:
            machine.busy -= 1

    def change(self, *, machine: str | None, online: bool | None, licenses: int | None) -> None:
        """The admin's fix: a machine connects or disconnects, or the licence count changes.

        Raises:
            KeyError: no machine of that name.
        """
        if machine is not None:
            found = next(
                (m for m in self.machines if m.name.casefold() == machine.casefold()), None
            )
            if found is None:
                raise KeyError(f"machine {machine!r}")
            if online is not None:
                found.online = online
        if licenses is not None:
            self.licenses = licenses

    def describe(self) -> dict[str, object]:
        return {
            "unattended_licenses": self.licenses,
            "licenses_in_use": len(self._held),
            "machines": [
                {
                    "id": m.id,
                    "name": m.name,
                    "runtimes": m.runtimes,
                    "busy": m.busy,
                    "online": m.online,
                    "folder_ids": sorted(m.folder_ids),
                }
                for m in self.machines
            ],
        }
