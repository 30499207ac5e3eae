"""docs/architecture.md names every module of the package, and no module that is gone."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "async_orch"


def _modules() -> set[str]:
    return {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")}


def _documented() -> set[str]:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    # Table cells name modules in backticks: `poller.py`, `cli/jobfile.py`.
    return set(re.findall(r"\| `([\w/]+\.py)`", text)) | set(re.findall(r", `([\w/]+\.py)`", text))


def test_every_module_is_in_the_architecture_doc() -> None:
    missing = sorted(_modules() - _documented())
    assert missing == [], f"add these modules to docs/architecture.md: {missing}"


def test_the_architecture_doc_names_no_module_that_is_gone() -> None:
    gone = sorted(_documented() - _modules())
    assert gone == [], f"docs/architecture.md names modules that no longer exist: {gone}"
