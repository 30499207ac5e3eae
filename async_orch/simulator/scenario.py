"""Scenario files: the tenants, credentials, folders and processes a simulator plays.

A scenario is a TOML file (read with the standard library's ``tomllib``). The
built-in ``demo`` scenario ships as ``async_orch/simulator/scenarios/demo.toml``;
``load_scenario(None)`` or ``load_scenario("demo")`` returns it. Unknown keys are
errors, so a misspelt option is reported rather than ignored.

Format::

    seed = 42            # RNG seed: job durations, outcomes, outputs, faults (default 0)
    time_scale = 1.0     # simulated seconds per real second (default 1.0); 60 makes a
                         # 60 s job take 1 real second. Rate limits and token lifetimes
                         # stay in real seconds.

    [engine]             # optional; simulated seconds
    pickup_delay = 2.0   # a job waits this long in Pending once a robot slot is free
    soft_stop_delay = 5.0  # Stopping -> Stopped after a SoftStop
    kill_delay = 1.0     # Terminating -> Stopped after a Kill

    [faults]             # optional; all off by default (keys: see faults.py)
    server_error_rate = 0.01

    [[tenants]]
    organization = "demo"        # cloud URL: /{organization}/{name}/orchestrator_/
    name = "DefaultTenant"
    tenancy_name = "Default"     # on-premises tenancy name for /api/Account/Authenticate
                                 # (default: the tenant name)
    expires_in = 3600            # client-credentials token lifetime, real seconds
    onprem_expires_in = 1800     # /api/Account/Authenticate token lifetime
    legacy_expires_in = 86400    # /oauth/token (refresh token) token lifetime

    [tenants.rate_limit]         # GET /odata/Jobs per tenant, rolling window
    jobs_list = 100              # requests ...
    window_seconds = 60          # ... per this many real seconds
    other_per_minute = 0         # other callers' GET /odata/Jobs calls a minute (the
                                 # web UI, integrations), charged to the same window

    [[tenants.credentials]]      # external applications (client credentials)
    client_id = "demo-client"
    client_secret = "demo-secret"
    scopes = ["OR.Jobs", "OR.Folders.Read", "OR.Execution.Read"]   # granted scopes
    folders = ["Shared"]         # optional: the folders the application is assigned to
                                 # (and their subfolders); any other answers 400/1100.
                                 # Default: every folder. A fine-grained application
                                 # asks for scopes = ["OR.Default"].

    [[tenants.refresh_tokens]]   # legacy account.uipath.com flow
    client_id = "8DEv1AMNXczW3y4U15LL3jYf62jK93n5"
    refresh_token = "demo-refresh-token"

    [[tenants.users]]            # on-premises users (ROPC)
    username = "admin"
    password = "demo-password"

    [[tenants.processes]]        # deployed in every folder of the tenant
    name = "Echo"
    version = "1.0.0"            # default "1.0.0"
    duration = [1, 2]            # simulated seconds: a number or [low, high] (uniform)
    fault_rate = 0.0             # chance a job ends Faulted (0..1)
    outputs = "echo"             # echo | invoice | summary | empty (see outputs.py)
    priority = "Normal"          # the release's JobPriority: Low | Normal | High
    description = ""
    input_arguments = '{"Greeting": "Hello"}'   # the release's default inputs (JSON text)

    [[tenants.folders]]
    path = "Finance/Accounts Payable"   # "/" separates levels; parents must be declared
    capacity = 25                # jobs running at once (default 10); the rest wait in
                                 # Pending, FIFO within a priority
    robots = 3                   # a count (default 2; names generated) or a list of
                                 # names (at most 19 characters each)
    description = ""

    [[tenants.folders.processes]]   # extra processes of this folder only
    name = "InvoiceProcessing"
    duration = [20, 90]
    fault_rate = 0.03
    outputs = "invoice"

    # Optional: robots are the tenant's (see robots.py). With [[tenants.machines]] or
    # unattended_licenses (a key of [[tenants]]: write it before the tenant's tables)
    # the folders' capacity is ignored: jobs run on machines' runtimes, within the
    # licences (default: no cap beyond the runtimes).
    [[tenants.machines]]
    name = "VM-FIN-01"
    runtimes = 2                 # unattended runtimes: jobs this machine runs at once
    folders = ["Finance/Accounts Payable"]   # one machine may serve several folders
    online = true                # false: its jobs wait in Pending (no host available)
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import re
import tomllib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from async_orch._errors import ConfigurationError
from async_orch._jsonvalues import utf16_length
from async_orch.simulator.faults import FaultSettings
from async_orch.simulator.lifecycle import LifecycleSpec, lifecycle_from_table
from async_orch.simulator.robots import RuntimeModel, parse_runtime_model
from async_orch.simulator.validation import Table

__all__ = [
    "BUILT_IN_SCENARIOS",
    "OUTPUT_KINDS",
    "ClientCredential",
    "Duration",
    "EngineTimings",
    "FolderSpec",
    "ProcessSpec",
    "RateLimitSpec",
    "RefreshTokenCredential",
    "Scenario",
    "TenantSpec",
    "UserCredential",
    "load_scenario",
    "parse_scenario",
    "scenario_from_dict",
]

OUTPUT_KINDS = ("echo", "invoice", "summary", "empty")
PRIORITIES = ("Low", "Normal", "High")
_MAX_DISPLAY_NAME = 115  # FolderDto.DisplayName maxLength in the spec
_MAX_ROBOT_NAME = 19  # SimpleRobotDto.Name maxLength in the spec
_RUNTIME_KEYS = ("machines", "unattended_licenses")  # see robots.py


@dataclass(frozen=True, slots=True, kw_only=True)
class Duration:
    """How long a job runs, in simulated seconds: uniform in [low, high]."""

    low: float
    high: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessSpec:
    """A process (a *release* in the API) deployed in a folder."""

    name: str
    version: str = "1.0.0"
    duration: Duration = Duration(low=1.0, high=2.0)
    fault_rate: float = 0.0
    outputs: str = "echo"
    priority: str = "Normal"
    description: str = ""
    input_arguments: str | None = None
    lifecycle: LifecycleSpec = field(default_factory=LifecycleSpec)  # stops, suspension, outputs


@dataclass(frozen=True, slots=True, kw_only=True)
class FolderSpec:
    """A folder: where processes live and robots run."""

    path: str
    capacity: int = 10
    robots: tuple[str, ...] = ()
    processes: tuple[ProcessSpec, ...] = ()
    description: str = ""

    @property
    def display_name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def parent_path(self) -> str | None:
        return self.path.rsplit("/", 1)[0] if "/" in self.path else None


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientCredential:
    """An external application: client credentials and the scopes granted to it."""

    client_id: str
    client_secret: str = field(repr=False)
    scopes: tuple[str, ...]
    folders: tuple[str, ...] | None = None  # assigned folder paths; None: every folder


@dataclass(frozen=True, slots=True, kw_only=True)
class RefreshTokenCredential:
    """A legacy "User Key" accepted by ``POST /oauth/token``."""

    client_id: str
    refresh_token: str = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class UserCredential:
    """An on-premises user accepted by ``POST /api/Account/Authenticate``."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimitSpec:
    """The ``GET /odata/Jobs`` limit: *jobs_list* requests per rolling window."""

    jobs_list: int = 100
    window_seconds: float = 60.0
    other_per_minute: float = 0.0  # other callers' list calls a minute (ratelimit.py)


@dataclass(frozen=True, slots=True, kw_only=True)
class TenantSpec:
    """One Orchestrator tenant of one organization."""

    organization: str
    name: str
    tenancy_name: str
    expires_in: int = 3600
    onprem_expires_in: int = 1800
    legacy_expires_in: int = 86400
    rate_limit: RateLimitSpec = RateLimitSpec()
    credentials: tuple[ClientCredential, ...] = ()
    refresh_tokens: tuple[RefreshTokenCredential, ...] = ()
    users: tuple[UserCredential, ...] = ()
    folders: tuple[FolderSpec, ...] = ()
    runtimes: RuntimeModel | None = None  # machines and licences; None: folder capacities

    @property
    def key(self) -> str:
        """``organization/name``: how stats and logs name the tenant."""
        return f"{self.organization}/{self.name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineTimings:
    """Fixed delays of the job life cycle, in simulated seconds."""

    # ASSUMPTION: how long the real service takes to give a free robot slot to a
    # Pending job is not documented; 2 s is a guess. 0 (immediate) is the neutral model.
    pickup_delay: float = 2.0
    soft_stop_delay: float = 5.0
    kill_delay: float = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """Everything a simulator run needs; immutable."""

    name: str
    seed: int = 0
    time_scale: float = 1.0
    timings: EngineTimings = EngineTimings()
    faults: FaultSettings = field(default_factory=FaultSettings)
    tenants: tuple[TenantSpec, ...] = ()

    def with_overrides(
        self,
        *,
        seed: int | None = None,
        time_scale: float | None = None,
        faults: FaultSettings | None = None,
    ) -> Scenario:
        """Return a copy with the given run-time overrides applied."""
        changes: dict[str, Any] = {}
        if seed is not None:
            changes["seed"] = seed
        if time_scale is not None:
            if not time_scale > 0:
                raise ConfigurationError(f"time_scale must be > 0, got {time_scale!r}")
            changes["time_scale"] = float(time_scale)
        if faults is not None:
            changes["faults"] = faults
        return dataclasses.replace(self, **changes)


#: Scenarios shipped in async_orch/simulator/scenarios/, loaded by name.
BUILT_IN_SCENARIOS = ("demo", "realistic")


def load_scenario(source: str | Path | None = None) -> Scenario:
    """Load a scenario: ``None`` or a built-in name ("demo", "realistic"), else a TOML path."""
    name = "demo" if source is None else str(source)
    if source is None or name in BUILT_IN_SCENARIOS:
        resource = importlib.resources.files("async_orch.simulator") / "scenarios" / f"{name}.toml"
        return parse_scenario(resource.read_text(encoding="utf-8"), name=name)
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read scenario file {path}: {exc.strerror}") from exc
    return parse_scenario(text, name=path.name)


def parse_scenario(text: str, *, name: str) -> Scenario:
    """Parse and validate scenario TOML text; *name* prefixes error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{name}: not valid TOML: {exc}") from exc
    return scenario_from_dict(data, name=name)


def scenario_from_dict(data: dict[str, Any], *, name: str) -> Scenario:
    """Validate an already-parsed scenario table."""
    try:
        top = Table(data, "")
        top.reject_unknown(("seed", "time_scale", "engine", "faults", "tenants"))
        engine = top.table("engine")
        engine.reject_unknown(f.name for f in dataclasses.fields(EngineTimings))
        defaults = EngineTimings()
        timings = EngineTimings(
            pickup_delay=engine.number("pickup_delay", defaults.pickup_delay),
            soft_stop_delay=engine.number("soft_stop_delay", defaults.soft_stop_delay),
            kill_delay=engine.number("kill_delay", defaults.kill_delay),
        )
        tenants = tuple(_tenant(t) for t in top.tables("tenants"))
        if not tenants:
            raise ConfigurationError("at least one [[tenants]] table is required")
        _check_unique([t.key.casefold() for t in tenants], "tenants", "organization/name pairs")
        _check_unique(
            [c.client_id for t in tenants for c in t.credentials], "credentials", "client_id"
        )
        # /api/Account/Authenticate names the tenant by tenancy name alone.
        _check_unique([t.tenancy_name.casefold() for t in tenants], "tenants", "tenancy_name")
        return Scenario(
            name=name,
            seed=top.integer("seed", 0),
            time_scale=top.number("time_scale", 1.0, strictly_positive=True),
            timings=timings,
            faults=FaultSettings.from_mapping(top.table("faults").data),
            tenants=tenants,
        )
    except ConfigurationError as exc:
        raise ConfigurationError(f"{name}: {exc}") from None


def _check_unique(values: list[str], where: str, what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ConfigurationError(f"{where}: duplicate {what} {value!r}")
        seen.add(value)


def _tenant(t: Table) -> TenantSpec:
    t.reject_unknown(
        (
            "organization",
            "name",
            "tenancy_name",
            "expires_in",
            "onprem_expires_in",
            "legacy_expires_in",
            "rate_limit",
            "credentials",
            "refresh_tokens",
            "users",
            "processes",
            "folders",
            *_RUNTIME_KEYS,
        )
    )
    name = _url_segment(t, "name")
    rl = t.table("rate_limit")
    rl.reject_unknown(("jobs_list", "window_seconds", "other_per_minute"))
    shared = tuple(_process(p) for p in t.tables("processes"))
    folders = tuple(_folder(f, shared) for f in t.tables("folders"))
    if not folders:
        raise ConfigurationError(f"{t.where}: at least one [[tenants.folders]] is required")
    _check_folder_tree(folders, t.where)
    folders = _name_robots(folders)
    return TenantSpec(
        organization=_url_segment(t, "organization"),
        name=name,
        tenancy_name=t.string("tenancy_name", name),
        expires_in=t.integer("expires_in", 3600, minimum=1),
        onprem_expires_in=t.integer("onprem_expires_in", 1800, minimum=1),
        legacy_expires_in=t.integer("legacy_expires_in", 86400, minimum=1),
        rate_limit=RateLimitSpec(
            jobs_list=rl.integer("jobs_list", 100, minimum=1),
            window_seconds=rl.number("window_seconds", 60.0, strictly_positive=True),
            other_per_minute=rl.number("other_per_minute", 0.0),
        ),
        credentials=tuple(_credential(c, folders) for c in t.tables("credentials")),
        refresh_tokens=tuple(
            RefreshTokenCredential(
                client_id=r.string("client_id"), refresh_token=r.string("refresh_token")
            )
            for r in _known(t.tables("refresh_tokens"), ("client_id", "refresh_token"))
        ),
        users=tuple(
            UserCredential(username=u.string("username"), password=u.string("password"))
            for u in _known(t.tables("users"), ("username", "password"))
        ),
        folders=folders,
        runtimes=parse_runtime_model(t, [f.path for f in folders]),
    )


def _known(tables: list[Table], allowed: tuple[str, ...]) -> list[Table]:
    for table in tables:
        table.reject_unknown(allowed)
    return tables


def _url_segment(t: Table, key: str) -> str:
    value = t.string(key, max_length=100)
    if "/" in value or value != value.strip():
        raise t.fail(key, "a name without '/' or surrounding spaces")
    return value


def _credential(c: Table, folders: tuple[FolderSpec, ...]) -> ClientCredential:
    c.reject_unknown(("client_id", "client_secret", "scopes", "folders"))
    scopes = c.strings("scopes")
    if not scopes or any(" " in s for s in scopes):
        raise c.fail("scopes", "a non-empty array of scope names without spaces")
    assigned = None
    if c.has("folders"):
        known = {f.path.casefold(): f.path for f in folders}
        assigned = c.strings("folders")
        for path in assigned:
            if path.casefold() not in known:
                raise c.fail("folders", f"paths of declared folders (unknown: {path!r})")
        assigned = tuple(known[p.casefold()] for p in assigned)
    return ClientCredential(
        client_id=c.string("client_id"),
        client_secret=c.string("client_secret"),
        scopes=scopes,
        folders=assigned,
    )


def _process(p: Table) -> ProcessSpec:
    p.reject_unknown(
        (
            "name",
            "version",
            "duration",
            "fault_rate",
            "outputs",
            "priority",
            "description",
            "input_arguments",
            "lifecycle",
        )
    )
    raw = p.data.get("duration", [1, 2])
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        low = high = p.number("duration")
    elif (
        isinstance(raw, list)
        and len(raw) == 2
        and all(isinstance(x, int | float) and not isinstance(x, bool) for x in raw)
        and 0 <= raw[0] <= raw[1]
    ):
        low, high = float(raw[0]), float(raw[1])
    else:
        raise p.fail("duration", "seconds >= 0, or [low, high] with 0 <= low <= high")
    inputs = p.optional_string("input_arguments")
    if inputs is not None:
        _check_json_object(p, "input_arguments", inputs)
    return ProcessSpec(
        name=p.string("name", max_length=128),
        version=p.string("version", "1.0.0", max_length=50),
        duration=Duration(low=low, high=high),
        fault_rate=p.number("fault_rate", 0.0, maximum=1.0),
        outputs=p.choice("outputs", "echo", OUTPUT_KINDS),
        priority=p.choice("priority", "Normal", PRIORITIES),
        description=str(p.data.get("description", "")),
        input_arguments=inputs,
        lifecycle=lifecycle_from_table(p.table("lifecycle")),
    )


def _check_json_object(t: Table, key: str, text: str) -> None:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise t.fail(key, 'JSON text of an object, e.g. \'{"Name": "value"}\'')


def _folder(f: Table, shared: tuple[ProcessSpec, ...]) -> FolderSpec:
    f.reject_unknown(("path", "capacity", "robots", "processes", "description"))
    path = f.string("path", max_length=1000)
    segments = path.split("/")
    if any(not s.strip() or s != s.strip() for s in segments):
        raise f.fail("path", "segments separated by '/', none empty, no surrounding spaces")
    if any(utf16_length(s) > _MAX_DISPLAY_NAME for s in segments):
        raise f.fail("path", f"segments of at most {_MAX_DISPLAY_NAME} characters")
    own = tuple(_process(p) for p in f.tables("processes"))
    processes = shared + own
    _check_unique([p.name.casefold() for p in processes], f.path("processes"), "process name")
    raw_robots = f.data.get("robots", 2)
    if isinstance(raw_robots, int) and not isinstance(raw_robots, bool):
        # Empty names are placeholders: _name_robots names them once all folders are known.
        robots: tuple[str, ...] = ("",) * f.integer("robots", 2, minimum=1)
    else:
        robots = f.strings("robots")
        if not robots or any(utf16_length(r) > _MAX_ROBOT_NAME for r in robots):
            raise f.fail("robots", f"a count >= 1 or names of <= {_MAX_ROBOT_NAME} characters")
    return FolderSpec(
        path=path,
        capacity=f.integer("capacity", 10, minimum=1),
        robots=robots,
        processes=processes,
        description=str(f.data.get("description", "")),
    )


def _check_folder_tree(folders: tuple[FolderSpec, ...], where: str) -> None:
    paths = [f.path.casefold() for f in folders]
    _check_unique(paths, f"{where}.folders", "folder path")
    for folder in folders:
        parent = folder.parent_path
        if parent is not None and parent.casefold() not in paths:
            raise ConfigurationError(
                f"{where}.folders: {folder.path!r} needs its parent folder {parent!r} declared too"
            )


def _robot_prefix(display_name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", display_name).encode("ascii", "ignore").decode()
    prefix = re.sub(r"[^A-Za-z0-9]", "", ascii_name).upper()[:12]
    return prefix or "ROBOT"


def _name_robots(folders: tuple[FolderSpec, ...]) -> tuple[FolderSpec, ...]:
    """Name the robots declared by count (empty names); names are unique per tenant."""
    taken = {r for f in folders for r in f.robots if r}
    named = []
    for i, folder in enumerate(folders):
        if all(folder.robots):
            named.append(folder)
            continue
        prefix = _robot_prefix(folder.display_name)
        names = []
        for n in range(1, len(folder.robots) + 1):
            candidate = f"{prefix}-{n:02d}"
            if candidate in taken:
                candidate = f"{prefix[:9]}{i:02d}-{n:02d}"
            taken.add(candidate)
            names.append(candidate)
        named.append(dataclasses.replace(folder, robots=tuple(names)))
    return tuple(named)
