"""Scenario files: the demo, the format's defaults, and every validation error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from async_orch._errors import ConfigurationError
from async_orch.simulator import load_scenario, parse_scenario
from async_orch.simulator.faults import FaultSettings
from async_orch.simulator.world import build_world

MINIMAL = """
[[tenants]]
organization = "acme"
name = "Prod"

[[tenants.credentials]]
client_id = "app"
client_secret = "secret"
scopes = ["OR.Jobs"]

[[tenants.folders]]
path = "Ops"
"""


def test_demo_scenario_has_what_the_docs_promise() -> None:
    scenario = load_scenario()
    assert load_scenario("demo") == scenario
    (tenant,) = scenario.tenants
    assert (tenant.organization, tenant.name, tenant.tenancy_name) == (
        "demo",
        "DefaultTenant",
        "Default",
    )
    demo = tenant.credentials[0]
    assert (demo.client_id, demo.client_secret) == ("demo-client", "demo-secret")
    for scope in ("OR.Folders", "OR.Execution", "OR.Jobs"):
        assert {scope, f"{scope}.Read", f"{scope}.Write"} <= set(demo.scopes)
    paths = [f.path for f in tenant.folders]
    assert paths == ["Shared", "Finance", "Finance/Comptabilité", "HR"]
    for folder in tenant.folders:
        names = [p.name for p in folder.processes]
        assert names[0] == "Echo"
        realistic = [p for p in folder.processes if p.name != "Echo"]
        assert realistic and all(p.duration.high > p.duration.low >= 20 for p in realistic)
        assert all(0 < p.fault_rate <= 0.05 for p in realistic)
        assert folder.capacity >= 25
    assert [u.username for u in tenant.users] == ["admin"]
    assert tenant.refresh_tokens and tenant.expires_in == 3600 and tenant.onprem_expires_in == 1800
    assert scenario.faults == FaultSettings() and not scenario.faults.active


def test_minimal_scenario_gets_the_documented_defaults() -> None:
    scenario = parse_scenario(MINIMAL, name="mini.toml")
    assert (scenario.seed, scenario.time_scale) == (0, 1.0)
    (tenant,) = scenario.tenants
    assert tenant.tenancy_name == "Prod"
    assert (tenant.rate_limit.jobs_list, tenant.rate_limit.window_seconds) == (100, 60.0)
    (folder,) = tenant.folders
    assert folder.capacity == 10 and folder.robots == ("OPS-01", "OPS-02")
    assert folder.processes == ()


def test_load_from_a_file_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text("seed = 3\ntime_scale = 2.5\n" + MINIMAL, encoding="utf-8")
    scenario = load_scenario(path)
    assert (scenario.name, scenario.seed, scenario.time_scale) == ("s.toml", 3, 2.5)
    changed = scenario.with_overrides(seed=9, time_scale=60)
    assert (changed.seed, changed.time_scale) == (9, 60.0)
    with pytest.raises(ConfigurationError, match="time_scale must be > 0"):
        scenario.with_overrides(time_scale=0)
    with pytest.raises(ConfigurationError, match="cannot read scenario file"):
        load_scenario(tmp_path / "missing.toml")


def test_world_ids_and_keys_are_stable_and_hierarchical() -> None:
    tenant = load_scenario().tenants[0]
    first, again = build_world(tenant), build_world(tenant)
    assert [(f.id, f.key) for f in first] == [(f.id, f.key) for f in again]
    child = first.folder_by_path("finance/COMPTABILITÉ")
    parent = first.folder_by_path("Finance")
    assert child is not None and parent is not None
    assert (child.parent_id, child.parent_key, child.display_name) == (
        parent.id,
        parent.key,
        "Comptabilité",
    )
    assert first.folder_by_key(child.key.upper()) is child
    assert first.folder_by_id(child.id) is child
    release = child.release_by_name("invoiceprocessing")
    assert release is not None and child.release_by_key(release.key) is release
    other = parent.release_by_name("InvoiceProcessing")
    assert other is not None and other.key != release.key  # one release per folder
    ids = [r.id for f in first for r in f.robots]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seed = 1", "at least one [[tenants]]"),
        ("tenant = 1\n" + MINIMAL, "unknown key(s) tenant"),
        ("time_scale = 0\n" + MINIMAL, "time_scale must be a number > 0"),
        ("seed = 'x'\n" + MINIMAL, "seed must be an integer"),
        ("[[tenants]]\norganization='a'\nname='b'\n", "at least one [[tenants.folders]]"),
        (
            MINIMAL.replace('path = "Ops"', 'path = "Ops"\ncapacity = 0'),
            "capacity must be an integer >= 1",
        ),
        (MINIMAL.replace('path = "Ops"', 'path = "Ops/Sub"'), "needs its parent folder 'Ops'"),
        (MINIMAL.replace('path = "Ops"', 'path = "Ops//x"'), "segments separated by '/'"),
        (MINIMAL + '[[tenants.folders]]\npath = "OPS"\n', "duplicate folder path"),
        (MINIMAL.replace('name = "Prod"', 'name = "a/b"'), "a name without '/'"),
        (MINIMAL.replace('scopes = ["OR.Jobs"]', "scopes = []"), "non-empty array of scope names"),
        (
            MINIMAL.replace('client_id = "app"', 'client_id = "app"\nsecret = "x"'),
            "unknown key(s) secret",
        ),
        (MINIMAL + '[[tenants.processes]]\nname = "P"\nduration = [5, 1]\n', "duration must be"),
        (
            MINIMAL + '[[tenants.processes]]\nname = "P"\noutputs = "csv"\n',
            "outputs must be one of",
        ),
        (
            MINIMAL + '[[tenants.processes]]\nname = "P"\nfault_rate = 1.5\n',
            "fault_rate must be a number",
        ),
        (
            MINIMAL + '[[tenants.processes]]\nname = "P"\ninput_arguments = "[1]"\n',
            "JSON text of an object",
        ),
        (
            MINIMAL + '[[tenants.processes]]\nname = "P"\n[[tenants.processes]]\nname = "p"\n',
            "duplicate process name",
        ),
        ("[faults]\ndrop_rat = 0.1\n" + MINIMAL, "unknown key(s) drop_rat"),
        ("[faults]\nambiguous_start_mode = 'x'\n" + MINIMAL, "ambiguous_start_mode must be one of"),
        ("[engine]\npickup_delay = -1\n" + MINIMAL, "pickup_delay must be a number >= 0"),
        (MINIMAL + MINIMAL.replace('"app"', '"app2"'), "duplicate organization/name"),
        (MINIMAL + MINIMAL.replace('"Prod"', '"Test"'), "duplicate client_id 'app'"),
        ("[[tenants]\n", "not valid TOML"),
    ],
)
def test_invalid_scenarios_are_reported_with_the_file_and_key(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_scenario(text, name="bad.toml")
    assert str(info.value).startswith("bad.toml: ")
    assert message in str(info.value)


def test_the_documented_scenario_example_loads() -> None:
    page = Path(__file__).resolve().parent.parent / "docs" / "simulator.md"
    text = page.read_text(encoding="utf-8")
    example, machines = re.findall(r"```toml\n(.*?)```", text, flags=re.DOTALL)
    scenario = parse_scenario(example, name="docs/simulator.md")
    paths = [f.path for t in scenario.tenants for f in t.folders]
    assert "Finance/Accounts Payable" in paths
    assert scenario.tenants[0].runtimes is None
    # The machines example is appended to the scenario example.
    runtimes = parse_scenario(example + machines, name="docs/simulator.md").tenants[0].runtimes
    assert runtimes is not None
    assert runtimes.machines[0].folders == ("Finance", "Finance/Accounts Payable")
