"""The HTML report in a real browser: headless Chromium draws every chart.

The report's own check script (see async_orch/loadtest/report.py) marks each
chart ``data-rendered="yes"`` when every mark in it has a size once laid out,
and writes the counts into ``#render-check``; Chromium's ``--dump-dom`` prints
the page as it stands after scripts ran. Skipped when Chromium is not installed
(``apt-get install chromium`` on Debian).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from async_orch.loadtest.measure import HttpSample, Recording, summarize
from async_orch.loadtest.profile import parse_profile
from async_orch.loadtest.report import build_report, render_html, server_counters

CHROMIUM = next(
    (
        p
        for p in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"))
        if p and Path(p).exists()
    ),
    None,
)

pytestmark = [
    pytest.mark.slow,  # every test here starts a browser
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="Chromium is not installed (/usr/bin/chromium); on Debian: apt-get install chromium",
    ),
]


def _dump_dom(page: Path, profile_dir: Path) -> str:
    assert CHROMIUM is not None
    done = subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", f"--user-data-dir={profile_dir}",
            "--virtual-time-budget=5000", "--dump-dom", page.as_uri(),
        ],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _report() -> dict[str, Any]:
    base = datetime(2024, 7, 1, tzinfo=UTC)
    rec = Recording()
    for n in range(40):
        at = n * 0.25
        rec.plan(n, f"lt-{n}", "Shared", at)
        rec.note_http(HttpSample(at, "StartJobs", "429" if n % 9 == 0 else "201", 0.02 + n / 1000))
        rec.note_sent(f"lt-{n}", at)
        rec.note_started(n, 1000 + n, at + 0.05)
        if n < 30:
            rec.note_finished(
                n, outcome="successful", state="Successful", at=at + 3,
                created=base, start=base + timedelta(seconds=2 + n % 5),
                end=base + timedelta(seconds=30 + n),
            )  # fmt: skip
    for t in range(14):
        rec.note_states(
            float(t), {"Pending": max(0, 4 - t // 4), "Running": t, "successful": 2 * t}
        )
    summary = summarize(rec, duration=14.0, target_rate=[4.0] * 10 + [0.0] * 4)
    stats = {
        "requests": {
            "POST /odata/Jobs/UiPath.Server.Configuration.OData.StartJobs": {"201": 35, "429": 5}
        },
        "jobs": {"created": 40},
    }
    meta = {
        "target": "embedded simulator",
        "profile": parse_profile("constant:4:10").to_dict(),
        "template": {"process": "Echo", "folders": ["Shared"], "inputs": None},
        "started_at": "2024-07-01T00:00:00+00:00",
        "time_scale": 30.0,
    }
    return build_report(summary, meta=meta, server=server_counters(None, stats))


def _charts(dom: str) -> dict[str, str]:
    """data-chart -> data-rendered, for every chart in the dumped DOM."""
    charts = {}
    for tag in re.findall(r"<svg\b[^>]*>", dom):
        name = re.search(r'data-chart="([^"]+)"', tag)
        rendered = re.search(r'data-rendered="([^"]+)"', tag)
        if name:
            charts[name.group(1)] = rendered.group(1) if rendered else "not checked"
    return charts


def test_chromium_draws_every_chart_of_the_report(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(_report()), encoding="utf-8")
    dom = _dump_dom(page, tmp_path / "chromium-profile")
    charts = _charts(dom)
    names = (
        "start-rate", "latency-over-time", "errors-over-time", "states",
        "latency-percentiles", "time-percentiles",
    )  # fmt: skip
    assert charts == dict.fromkeys(names, "yes")
    check = re.search(r'<div id="render-check"[^>]*>([^<]*)<', dom)
    assert check is not None
    assert 'data-drawn="6"' in check.group(0) and 'data-charts="6"' in check.group(0)
    assert check.group(1) == "6/6 charts drawn"


def test_the_check_notices_a_chart_that_draws_nothing(tmp_path: Path) -> None:
    # The same page with one line emptied: the browser must report it as not drawn.
    html = render_html(_report())
    html, replaced = re.subn(
        r'(<svg class="chart" data-chart="latency-over-time".*?<polyline [^>]*?) points="[^"]*"',
        r'\1 points=""',
        html,
        count=1,
        flags=re.DOTALL,
    )
    assert replaced == 1
    page = tmp_path / "broken.html"
    page.write_text(html, encoding="utf-8")
    charts = _charts(_dump_dom(page, tmp_path / "chromium-profile"))
    assert charts["latency-over-time"] == "no"
    assert sum(v == "yes" for v in charts.values()) == 5
