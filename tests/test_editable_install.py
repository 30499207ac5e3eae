"""The README's editable install is visible to type checkers (issue 15 point 5).

setuptools' default editable install for this flat layout is an import hook
(``__editable___*_finder.py``), which mypy and pyright cannot follow: a script
importing async_orch gets "Cannot find implementation or library stub". The
README's install command asks for ``editable_mode=compat``, a plain path entry
(a .pth naming the checkout). This test installs that way into a new venv and
runs mypy on a small script there.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # starts pip and mypy

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = """\
from async_orch import JobRequest, OrchestratorClient

request = JobRequest(process="Echo", folder="Shared")
count: str = request.jobs_count
print(OrchestratorClient)
"""


def test_mypy_sees_the_package_after_the_readme_install(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "pip install -q -e . --config-settings editable_mode=compat" in readme
    target = tmp_path / "venv"
    venv.create(target, with_pip=False)  # the test venv's pip installs into it
    python = target / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    )  # fmt: skip
    # The dependencies (aiohttp, anyio, structlog) from this venv, not installed again.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
         "-e", str(ROOT), "--config-settings", "editable_mode=compat"],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    entries = {line.strip() for p in site.glob("*.pth") for line in p.read_text().splitlines()}
    assert str(ROOT) in entries, entries  # a plain path entry, no import hook
    script = tmp_path / "script.py"
    script.write_text(SCRIPT, encoding="utf-8")
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--python-executable", str(python),
         "--cache-dir", str(tmp_path / "cache"), script.name],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    # The one error is the script's own: mypy read JobRequest's types.
    assert checked.stdout.splitlines()[:1] == [
        "script.py:4: error: Incompatible types in assignment (expression has type "
        '"int", variable has type "str")  [assignment]'
    ], checked.stdout + checked.stderr
    assert "Found 1 error in 1 file" in checked.stdout
