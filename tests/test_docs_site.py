"""The documentation site (mkdocs.yml, docs/) builds strictly, and every page is reachable.

``mkdocs build --strict`` fails on any warning: a broken link or anchor (the
``validation`` settings make them warnings), a page left out of the nav, a docstring
griffe cannot read (a parameter the signature lacks...). The API reference
(docs/reference.md) is generated from the docstrings, so every name of the public
modules' ``__all__`` must come out on it: a public name with no docstring does not.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PUBLIC_MODULES = ["async_orch", "async_orch.simulator", "async_orch.loadtest", "async_orch.tracing"]
# Material for MkDocs prints a banner about its successor on every build.
QUIET = {"NO_MKDOCS_2_WARNING": "1"}


def nav_pages() -> list[str]:
    """The pages of mkdocs.yml's nav, in order (a flat list of ``Title: page.md``)."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    pages: list[str] = []
    for entry in config["nav"]:
        ((_, page),) = entry.items()
        pages.append(page)
    return pages


def _mkdocs_build(config: Path, site_dir: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config)]
    return subprocess.run(
        [*command, "--site-dir", str(site_dir)], cwd=ROOT, capture_output=True, text=True,
        env=os.environ | QUIET, timeout=300, check=False,
    )  # fmt: skip


def _require_mkdocs() -> None:
    try:
        importlib.import_module("mkdocs")
    except ImportError:  # pragma: no cover - CI installs it through the test extra
        pytest.fail("mkdocs is not installed: pip install -e '.[test]' (it includes '.[docs]')")


# --- fast: the nav and the README ---------------------------------------------------


def test_every_docs_page_is_in_the_nav_and_every_nav_page_exists() -> None:
    pages = nav_pages()
    on_disk = sorted(p.name for p in DOCS.glob("*.md"))
    assert len(pages) == len(set(pages)), f"a page is twice in the nav: {pages}"
    assert sorted(pages) == on_disk, (
        f"not in mkdocs.yml's nav: {sorted(set(on_disk) - set(pages))}; "
        f"in the nav but not in docs/: {sorted(set(pages) - set(on_disk))}"
    )
    assert pages[0] == "index.md", "the site's home comes first"


def _link_targets(markdown: str) -> set[str]:
    """Where a page's links point: inline ``[text](target)`` and ``[label]: target``."""
    inline = re.findall(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", markdown)
    defined = re.findall(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", markdown, flags=re.M)
    return {target.split("#", 1)[0].removeprefix("./") for target in [*inline, *defined]}


def test_the_readme_links_to_every_page() -> None:
    targets = _link_targets((ROOT / "README.md").read_text(encoding="utf-8"))
    missing = [page for page in nav_pages()[1:] if f"docs/{page}" not in targets]
    assert not missing, f"README.md does not link to: {', '.join(missing)}"


def test_link_targets_reads_inline_and_reference_links() -> None:
    text = '[a](docs/cli.md#exit-codes) [b](./docs/errors.md "t")\n[c]: docs/library.md\n'
    assert _link_targets(text) == {"docs/cli.md", "docs/errors.md", "docs/library.md"}


# --- slow: building the site ------------------------------------------------------


@pytest.mark.slow
def test_the_site_builds_strictly_with_every_public_name(tmp_path: Path) -> None:
    _require_mkdocs()
    done = _mkdocs_build(ROOT / "mkdocs.yml", tmp_path / "site")
    printed = done.stdout + done.stderr
    warnings = [line for line in printed.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert done.returncode == 0 and not warnings, f"mkdocs build --strict failed:\n{printed}"

    reference = (tmp_path / "site" / "reference" / "index.html").read_text(encoding="utf-8")
    anchors = set(re.findall(r'id="(async_orch[\w.]*)"', reference))
    missing = [
        f"{module}.{name}"
        for module in PUBLIC_MODULES
        for name in importlib.import_module(module).__all__
        if f"{module}.{name}" not in anchors
    ]
    assert not missing, (
        "not in the API reference (give each a docstring; docs/reference.md): " + ", ".join(missing)
    )


@pytest.mark.slow
def test_the_strict_build_refuses_a_broken_link_or_anchor(tmp_path: Path) -> None:
    """The project's settings, on two pages with a broken link and a broken anchor."""
    _require_mkdocs()
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text(
        "# Home\n\n[gone](missing.md) and [no anchor](other.md#no-such-section)\n",
        encoding="utf-8",
    )
    (docs / "other.md").write_text("# Other\n\n## A section\n", encoding="utf-8")
    config = tmp_path / "mkdocs.yml"
    config.write_text(
        f"INHERIT: {ROOT / 'mkdocs.yml'}\ndocs_dir: {docs}\nnav:\n  - index.md\n  - other.md\n",
        encoding="utf-8",
    )
    done = _mkdocs_build(config, tmp_path / "site")
    printed = done.stdout + done.stderr
    assert done.returncode != 0, printed
    assert "'missing.md'" in printed, printed
    assert "#no-such-section" in printed, printed


_TABLE_HEADER = re.compile(r"^INDEX\s+FOLDER\s+PROCESS\s+JOB_ID\s+OUTCOME\s+OUTPUTS$")
_TABLE_ROW = re.compile(r"^(\d+)\s+[^\s:]+\s+[^\s:]+\s+\d+\s+(\w+)(?:\s|$)")
_WHY_LINE = re.compile(r"^(\d+)  (\w+): \S")


def test_documented_tables_show_the_lines_a_table_ends_with() -> None:
    """A --format table is followed by one `INDEX  OUTCOME: info` line per job that did
    not succeed (output.py): every documented table shows them as printed."""
    checked = 0
    for page in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        lines = page.read_text(encoding="utf-8").splitlines()
        for at, line in enumerate(lines):
            if not _TABLE_HEADER.match(line) or "| head" in lines[at - 1]:
                continue
            rows = []
            for later in lines[at + 1 :]:
                if (row := _TABLE_ROW.match(later)) is None:
                    break
                rows.append(row.groups()[:2])
            why = {m.groups() for later in lines[at + 1 :] if (m := _WHY_LINE.match(later))}
            failed = {(i, o) for i, o in rows if o not in ("successful", "unfinished")}
            assert failed <= why, f"{page.name}:{at + 1}: the table's why-lines are missing"
            checked += 1
    assert checked >= 3
