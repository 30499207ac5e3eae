"""`async-orch check` against the simulator, with each mistake of the forum thread in
user-reports (JSON body to the identity endpoint, wrong host, folder in the path,
missing folder header, wrong secret): the first failing step names it and the fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_harness import cli_env, closed_port, run_cli, simulator_jobs

from async_orch.simulator import SimulatorHandle

pytestmark = pytest.mark.slow  # every test here starts a process


@pytest.fixture
async def sim(start_simulator: Callable[..., Any]) -> SimulatorHandle:
    handle: SimulatorHandle = await start_simulator(time_scale=20.0)
    return handle


def _steps(stdout: str) -> list[tuple[str, str]]:
    """(status, step) of each reported step."""
    rows = []
    for line in stdout.splitlines():
        parts = line.split()
        if parts and parts[0] in ("ok", "FAIL"):
            rows.append((parts[0], line[8:22].strip()))
    return rows


async def test_a_good_configuration_passes_every_step_and_starts_nothing(
    sim: SimulatorHandle, tmp_path: Path
) -> None:
    run = await run_cli(
        "check", "--url", sim.url, "--folder", "Shared", "--process", "Echo",
        "--inputs", '{"n": 1}', env=cli_env(tmp_path),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert _steps(run.stdout) == [
        ("ok", s)
        for s in ("URL", "credentials", "token", "folders", "folder", "process", "jobs access",
                  "start request", "dry run")
    ]  # fmt: skip
    assert run.stdout.rstrip().endswith("all checks passed")
    assert simulator_jobs(sim)["created"] == 0


async def _failing_step(run: Any) -> tuple[str, str, str]:
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    steps = _steps(run.stdout)
    assert steps[-1][0] == "FAIL" and all(s == "ok" for s, _ in steps[:-1])
    lines = run.stdout.splitlines()
    fail_line = next(i for i, line in enumerate(lines) if line.strip().startswith("FAIL"))
    fix = lines[fail_line + 1].strip()
    assert fix.startswith("fix: ")
    return steps[-1][1], lines[fail_line], fix


async def test_json_body_sent_to_the_identity_endpoint(
    sim: SimulatorHandle, tmp_path: Path
) -> None:
    # The refresh-token flow posts JSON; pointed at Identity Server, it is the
    # forum's "JSON body to the token endpoint" 400.
    env = cli_env(
        tmp_path,
        UIPATH_CLIENT_ID="8DEv1AMNXczW3y4U15LL3jYf62jK93n5",
        ASYNC_ORCH_REFRESH_TOKEN="demo-refresh-token",
        ASYNC_ORCH_IDENTITY_URL=sim.token_url,
    )
    del env["UIPATH_CLIENT_SECRET"]
    run = await run_cli("check", "--url", sim.url, "--folder", "Shared", env=env)
    step, what, fix = await _failing_step(run)
    assert step == "token"
    assert "not JSON" in what and "got a JSON body" in what
    assert "account.uipath.com/oauth/token" in fix


async def test_wrong_host(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/demo/DefaultTenant/orchestrator_"
    run = await run_cli("check", "--url", url, "--folder", "Shared", env=cli_env(tmp_path))
    step, what, fix = await _failing_step(run)
    assert step == "token"
    assert "cannot reach the token endpoint" in what
    assert "check the host in the URL" in fix


async def test_a_pasted_api_or_web_page_url_is_accepted_and_said_so(
    sim: SimulatorHandle, tmp_path: Path
) -> None:
    # What dispatch accepts, check accepts: the path after the base is only noted.
    for pasted in ("/odata/Jobs?$top=1", "/jobs"):
        run = await run_cli(
            "check", "--url", sim.url + pasted, "--folder", "Shared", env=cli_env(tmp_path)
        )
        assert run.returncode == 0, run.stdout + run.stderr
        (url_line,) = [line for line in run.stdout.splitlines() if " URL " in line]
        assert url_line.split()[0] == "ok"
        assert f"after the base is ignored; {sim.url} is enough" in url_line


async def test_folder_in_the_path(sim: SimulatorHandle, tmp_path: Path) -> None:
    run = await run_cli("check", "--url", sim.url + "/Shared", env=cli_env(tmp_path))
    step, what, fix = await _failing_step(run)
    assert step == "URL"
    assert "'Shared' looks like a folder, and folders are not part of the URL" in what
    assert f"Use {sim.url} and choose the folder" in what
    assert "give the folder with --folder PATH" in fix


async def test_an_organization_without_its_tenant_fails_the_folders_step(
    sim: SimulatorHandle, tmp_path: Path
) -> None:
    # http://HOST/demo reads as an on-premises virtual directory: every call is a 404.
    url = f"{sim.root_url}/{sim.organization}"
    run = await run_cli("check", "--url", url, "--folder", "Shared", env=cli_env(tmp_path))
    step, what, fix = await _failing_step(run)
    assert step == "folders"
    assert f"no Orchestrator API at {url} (GET odata/Folders answered 404)" in what
    assert "cloud URLs are https://cloud.uipath.com/{org}/{tenant}/orchestrator_" in fix
    assert "on-premises https://host/" in fix


async def test_missing_folder_header(sim: SimulatorHandle, tmp_path: Path) -> None:
    run = await run_cli("check", "--url", sim.url, env=cli_env(tmp_path))
    step, what, fix = await _failing_step(run)
    assert step == "folder"
    assert "X-UIPATH-OrganizationUnitId" in what
    assert "--folder" in fix and "Finance/Comptabilité" in fix


async def test_wrong_secret(sim: SimulatorHandle, tmp_path: Path) -> None:
    env = cli_env(tmp_path, UIPATH_CLIENT_SECRET="not-the-secret")
    run = await run_cli("check", "--url", sim.url, "--folder", "Shared", env=env)
    step, what, fix = await _failing_step(run)
    assert step == "token"
    assert "invalid_client" in what
    assert "UIPATH_CLIENT_SECRET" in fix


async def test_unknown_process_in_folder(sim: SimulatorHandle, tmp_path: Path) -> None:
    run = await run_cli(
        "check", "--url", sim.url, "--folder", "HR", "--process", "Echoo", env=cli_env(tmp_path)
    )
    step, what, _ = await _failing_step(run)
    assert step == "process"
    assert "'Echoo' not found in folder 'HR'" in what and "Echo" in what


async def test_missing_credentials(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    del env["UIPATH_CLIENT_ID"], env["UIPATH_CLIENT_SECRET"]
    run = await run_cli(
        "check", "--url", "https://cloud.uipath.com/acme/DefaultTenant/orchestrator_", env=env
    )
    step, what, fix = await _failing_step(run)
    assert step == "credentials"
    assert "no credentials" in what and "UIPATH_CLIENT_ID" in fix


@pytest.mark.parametrize(
    ("url", "env_extra", "words", "fix_words"),
    [
        ("http://[::1/x", {},
         "Orchestrator URL 'http://[::1/x': not a valid URL (Invalid IPv6 URL)", "set --url"),
        ("http://127.0.0.1:8/a/b/orchestrator_", {"ASYNC_ORCH_IDENTITY_URL": "http://[::1"},
         "identity_url (ASYNC_ORCH_IDENTITY_URL) 'http://[::1': not a valid URL",
         "ASYNC_ORCH_IDENTITY_URL"),
    ],
    ids=["orchestrator-url", "identity-url"],
)  # fmt: skip
async def test_a_malformed_url_fails_the_url_step(
    tmp_path: Path, url: str, env_extra: dict[str, str], words: str, fix_words: str
) -> None:
    run = await run_cli("check", "--url", url, env=cli_env(tmp_path, **env_extra))
    step, what, fix = await _failing_step(run)
    assert step == "URL"
    assert words in what
    assert fix_words in fix


async def test_a_missing_ca_bundle_fails_its_own_step_not_the_credentials(tmp_path: Path) -> None:
    env = cli_env(tmp_path, SSL_CERT_FILE=str(tmp_path / "missing.pem"))
    run = await run_cli(
        "check", "--url", "https://cloud.uipath.com/acme/DefaultTenant/orchestrator_", env=env
    )
    step, what, fix = await _failing_step(run)
    assert step == "CA bundle"
    assert "missing.pem" in what and "SSL_CERT_FILE" in fix and "UIPATH_CLIENT_ID" not in fix


def _doc_pages() -> list[tuple[str, str]]:
    root = Path(__file__).resolve().parent.parent
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    return [(page.name, page.read_text(encoding="utf-8")) for page in pages]


async def test_every_documented_passing_check_shows_every_step_check_prints(
    tmp_path: Path,
) -> None:
    run = await run_cli(
        "check", "--simulator", "--folder", "Finance", "--process", "InvoiceProcessing",
        env=cli_env(tmp_path, UIPATH_URL=""),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    printed = [line.split()[1] for line in run.stdout.splitlines() if line.startswith("  ok ")]
    shown = 0
    for page, text in _doc_pages():
        blocks = text.split("```console")[1:]
        for block in (b.split("```", 1)[0] for b in blocks):
            lines = block.splitlines()
            if "all checks passed" not in lines or "  ..." in lines:
                continue  # not a passing check, or one shown in part on purpose
            steps = [line.split()[1] for line in lines if line.startswith("  ok ")]
            assert steps == printed, f"{page}: a passing check shows {steps}"
            shown += 1
    assert shown >= 2
