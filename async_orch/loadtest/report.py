"""The load-test report: one self-contained HTML page, and its JSON twin (pure).

The page needs nothing but itself: styles inline, charts as inline SVG
(:mod:`async_orch.loadtest.svg`), no fonts, images or scripts from elsewhere. A few
lines of inline script only check, once the page is drawn, that every chart has
a visible size, and write the count into ``#render-check`` (a test reads it
through a headless browser); the page reads the same without them.

:func:`build_report` puts together the run's settings, the numbers of
:func:`~async_orch.loadtest.measure.summarize`, and, against the simulator, the
simulator's own counters with a side-by-side check (:func:`agreement`), and
:func:`shortfalls`: why the run is not complete (the command line's exit code 1).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from async_orch.loadtest.measure import NO_ANSWER, START_JOBS, route_label
from async_orch.loadtest.svg import Series, bar_chart, line_chart, stacked_area_chart

__all__ = ["agreement", "build_report", "render_html", "server_counters", "shortfalls"]

_STATE_COLORS = {
    "queued": "#c7c7c7",
    "Pending": "#ffbb78",
    "Running": "#1f77b4",
    "Suspended": "#9467bd",
    "Stopping": "#e377c2",
    "Terminating": "#e377c2",
    "successful": "#2ca02c",
    "faulted": "#d62728",
    "stopped": "#8c564b",
    "timed_out": "#bcbd22",
    "not_started": "#7f7f7f",
    "uncertain": "#ff7f0e",
    "unknown": "#17becf",
}


def server_counters(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> dict[str, Any]:
    """The simulator's counters for the run: ``after`` minus ``before`` (its stats).

    Requests are grouped by the report's route labels; the simulator's
    ``"dropped"`` (closed unanswered) is the report's ``"error"`` (no answer).
    """

    def routes(stats: Mapping[str, Any] | None) -> dict[str, dict[str, int]]:
        grouped: dict[str, dict[str, int]] = {}
        for template, statuses in (stats or {}).get("requests", {}).items():
            method, _, path = template.partition(" ")
            label = route_label(method, path)
            bucket = grouped.setdefault(label, {})
            for status, n in statuses.items():
                key = NO_ANSWER if status == "dropped" else str(status)
                bucket[key] = bucket.get(key, 0) + int(n)
        return grouped

    old, new = routes(before), routes(after)
    by_route: dict[str, dict[str, int]] = {}
    for label, statuses in new.items():
        diff = {s: n - old.get(label, {}).get(s, 0) for s, n in statuses.items()}
        if kept := {s: n for s, n in sorted(diff.items()) if n}:
            by_route[label] = kept

    def jobs_created(stats: Mapping[str, Any] | None) -> int:
        return int((stats or {}).get("jobs", {}).get("created", 0))

    def faults(stats: Mapping[str, Any] | None) -> dict[str, int]:
        return {k: int(v) for k, v in (stats or {}).get("faults", {}).items()}

    fault_diff = {k: v - faults(before).get(k, 0) for k, v in faults(after).items()}
    limited = int(after.get("rejections", {}).get("429", 0)) - int(
        (before or {}).get("rejections", {}).get("429", 0)
    )
    return {
        "by_route": dict(sorted(by_route.items())),
        "requests": sum(sum(s.values()) for s in by_route.values()),
        "http_429": sum(s.get("429", 0) for s in by_route.values()),
        "rate_limited_429": limited,
        "faults": fault_diff,
        "jobs_created": jobs_created(after) - jobs_created(before),
        "jobs_by_state": dict(after.get("jobs", {}).get("by_state", {})),
    }


def agreement(summary: Mapping[str, Any], server: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Side by side: what the report counted and what the simulator counted.

    A try cancelled on the wire (an interrupted run) may or may not have reached
    the server, and may have been answered with any status: a count agrees when
    the server's lies between the report's and the report's plus those tries.
    """
    ours = summary["http"]["by_route"]
    theirs = server["by_route"]
    cancelled: Mapping[str, int] = summary["http"].get("cancelled", {})

    def count(
        by_route: Mapping[str, Mapping[str, int]], route: str | None, status: str | None
    ) -> int:
        routes = [by_route.get(route, {})] if route else list(by_route.values())
        return sum(
            n for statuses in routes for s, n in statuses.items() if status is None or s == status
        )

    rows = [
        ("HTTP requests", None, None),
        ("StartJobs requests", START_JOBS, None),
        ("StartJobs 201", START_JOBS, "201"),
        ("StartJobs 429", START_JOBS, "429"),
        ("Jobs list requests", "Jobs list", None),
        ("429 answers", None, "429"),
        ("no answer / dropped", None, NO_ANSWER),
    ]
    every_route = sum(cancelled.values())

    def check(name: str, report: int, server: int, slack: int) -> dict[str, Any]:
        return {"name": name, "report": report, "server": server,
                "equal": report <= server <= report + slack}  # fmt: skip

    checks = [
        check(
            name,
            count(ours, route, status),
            count(theirs, route, status),
            cancelled.get(route, 0) if route else every_route,
        )
        for name, route, status in rows
    ]
    for status in sorted({s for r in theirs.values() for s in r if s.startswith("5")}):
        checks.append(
            check(f"{status} answers", count(ours, None, status), count(theirs, None, status),
                  every_route)
        )  # fmt: skip
    checks.append(
        check("jobs started / created", summary["jobs"]["started"], server["jobs_created"], 0)
    )
    return checks


def shortfalls(report: Mapping[str, Any]) -> list[str]:
    """Why the run is not complete, one phrase each; empty when it is.

    A run is complete when every planned job was started and ended (Successful,
    Faulted or Stopped by someone else: a load test measures, a faulted job is a
    result) before the deadline, the profile's end plus the drain timeout. Not
    complete: jobs not started (StartJobs refused or failed, or not asked for in
    time), jobs that had not ended by the deadline (left running, or stopped by
    ``stop_jobs``), jobs in a state this version does not know, jobs without a
    result when the run stopped. HTTP errors (429s, 5xx, dropped connections) that
    retries got past are measurements, not shortfalls.
    """
    jobs = report["jobs"]
    by_outcome = jobs.get("by_outcome", {})
    planned, started = int(jobs["planned"]), int(jobs["started"])
    what = "stopped" if report.get("meta", {}).get("stop_jobs") else "left running"
    found = []
    if planned == 0:
        found.append("no job was planned")
    if started < planned:
        found.append(f"{planned - started} of {planned} jobs were not started")
    timed_out = int(jobs.get("timed_out", by_outcome.get("timed_out", 0)))
    if timed_out:
        found.append(f"{timed_out} jobs had not ended by the drain timeout ({what})")
    if unknown := int(by_outcome.get("unknown", 0)):
        found.append(f"{unknown} jobs ended in a state async-orch does not know")
    if unfinished := int(jobs.get("unfinished", 0)):
        found.append(f"{unfinished} started jobs had not ended when the run stopped ({what})")
    return found


def build_report(
    summary: Mapping[str, Any],
    *,
    meta: Mapping[str, Any],
    server: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole report as one JSON-ready dict (the HTML page renders it)."""
    report: dict[str, Any] = {"meta": dict(meta), **summary}
    report["shortfalls"] = shortfalls(report)
    if server is not None:
        report["server"] = dict(server)
        report["agreement"] = agreement(summary, server)
    return report


# -- HTML ---------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222;
 max-width:1100px}
h1{font-size:1.5em;margin-bottom:4px} h2{font-size:1.15em;margin-top:28px}
.sub{color:#666;margin-top:0} table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #ddd;padding:4px 10px;text-align:right} th{background:#f5f5f5}
td:first-child,th:first-child{text-align:left}
.ok{color:#2ca02c} .bad{color:#d62728;font-weight:bold}
.warn{background:#fff3cd;border:1px solid #ffe08a;padding:8px 12px}
.grid{display:flex;flex-wrap:wrap;gap:12px}
.kpi{border:1px solid #ddd;padding:8px 14px;min-width:150px} .kpi b{display:block;font-size:1.4em}
svg.chart{display:block;margin:8px 0;max-width:100%;height:auto}
svg .title{font-weight:bold;font-size:13px} svg .tick,svg .legend{font-size:11px;fill:#444}
svg .label{font-size:11px;fill:#666} svg .empty{fill:#999}
#render-check{display:none}
"""

# Counts the charts the browser drew with a non-empty size (see the module docstring).
_CHECK_SCRIPT = """
window.addEventListener("load", function () {
  var charts = document.querySelectorAll("svg.chart"), drawn = 0;
  charts.forEach(function (svg) {
    var marks = svg.querySelectorAll("polyline,polygon,rect[data-series],circle,text.empty");
    var ok = marks.length > 0;
    marks.forEach(function (m) {
      var box = m.getBBox();
      if (!(box.width > 0 || box.height > 0)) ok = false;
    });
    svg.setAttribute("data-rendered", ok ? "yes" : "no");
    if (ok) drawn += 1;
  });
  var check = document.getElementById("render-check");
  check.setAttribute("data-charts", String(charts.length));
  check.setAttribute("data-drawn", String(drawn));
  check.textContent = drawn + "/" + charts.length + " charts drawn";
});
"""


def _num(value: Any, digits: int = 2, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f} ms"


def _pct(value: float) -> str:
    return f"{value * 100:.2f} %"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    h = "".join(f"<th>{escape(c)}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>'


def _kpis(report: Mapping[str, Any]) -> str:
    jobs, sj = report["jobs"], report["start_jobs"]
    latency = sj["latency_seconds"] or {}
    items = [
        ("jobs started", f"{jobs['started']} / {jobs['planned']}"),
        ("jobs finished", str(jobs["finished"])),
        ("StartJobs p50 / p95", f"{_ms(latency.get('p50'))} / {_ms(latency.get('p95'))}"),
        ("started per second", _num(report["throughput"]["started_per_second"])),
        ("HTTP error rate", _pct(report["http"]["error_rate"])),
        ("429 rate", _pct(report["http"]["rate_429"])),
    ]
    return (
        '<div class="grid">'
        + "".join(f'<div class="kpi">{escape(k)}<b>{escape(v)}</b></div>' for k, v in items)
        + "</div>"
    )


def _times_table(report: Mapping[str, Any]) -> str:
    rows = []
    sj = report["start_jobs"]["latency_seconds"]
    entries = [("StartJobs latency (client s)", sj)] + [
        (label, report["times"][key])
        for label, key in (
            ("queue time, Pending to Running (tenant s)", "queue_seconds"),
            ("run time, Running to end (tenant s)", "run_seconds"),
            ("end to end, asked to result in hand (client s)", "end_to_end_seconds"),
        )
    ]
    for label, stats in entries:
        if stats is None:
            rows.append([escape(label), "0"] + ["-"] * 6)
            continue
        rows.append(
            [escape(label), str(stats["count"])]
            + [_num(stats[k], 3) for k in ("mean", "p50", "p90", "p95", "p99", "max")]
        )
    return _table(["measure", "count", "mean", "p50", "p90", "p95", "p99", "max"], rows)


def _routes_table(by_route: Mapping[str, Mapping[str, int]]) -> str:
    statuses = sorted({s for r in by_route.values() for s in r})
    rows = [
        [escape(route)] + [str(counts.get(s, 0)) for s in statuses] + [str(sum(counts.values()))]
        for route, counts in by_route.items()
    ]
    return _table(["route", *statuses, "total"], rows)


def _agreement_table(checks: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        [
            escape(c["name"]),
            str(c["report"]),
            str(c["server"]),
            '<span class="ok">equal</span>' if c["equal"] else '<span class="bad">differs</span>',
        ]
        for c in checks
    ]
    return _table(["counter", "this report", "simulator", ""], rows, "agreement")


def _charts(report: Mapping[str, Any]) -> list[str]:
    series = report["series"]
    t = series["t"]
    charts = [
        line_chart(
            "start-rate",
            title="Jobs started and completed per second",
            x=t,
            series=[
                Series("target", series["target_rate"], "#7f7f7f"),
                Series("started", series["start_rate"], "#1f77b4"),
                Series("completed", series["completion_rate"], "#2ca02c"),
            ],
            y_label="jobs / s",
        ),
        line_chart(
            "latency-over-time",
            title="StartJobs latency over time",
            x=t,
            series=[
                Series("p50", _scaled(series["latency_p50"], 1000), "#1f77b4"),
                Series("p95", _scaled(series["latency_p95"], 1000), "#ff7f0e"),
                Series("max", _scaled(series["latency_max"], 1000), "#d62728"),
            ],
            y_label="ms",
        ),
        line_chart(
            "errors-over-time",
            title="429 answers and failed requests per interval",
            x=t,
            series=[
                Series("429", series["http_429"], "#ff7f0e"),
                Series("failed (any)", series["failed_requests"], "#d62728"),
            ],
            y_label="requests",
        ),
    ]
    states = report["states"]
    charts.append(
        stacked_area_chart(
            "states",
            title="Jobs by state over time",
            x=states["t"],
            layers=states["series"],
            colors=_STATE_COLORS,
        )
    )
    latency = report["start_jobs"]["latency_seconds"] or {}
    charts.append(
        bar_chart(
            "latency-percentiles",
            title="StartJobs latency percentiles",
            groups={q: {"StartJobs": _opt_scaled(latency.get(q), 1000)} for q in _QS},
            y_label="ms",
        )
    )
    times = report["times"]
    charts.append(
        bar_chart(
            "time-percentiles",
            title="Queue, run and end-to-end time percentiles",
            groups={
                q: {
                    "queue": (times["queue_seconds"] or {}).get(q),
                    "run": (times["run_seconds"] or {}).get(q),
                    "end to end": (times["end_to_end_seconds"] or {}).get(q),
                }
                for q in _QS
            },
            y_label="seconds",
        )
    )
    return charts


_QS = ("p50", "p90", "p95", "p99", "max")


def _scaled(values: Sequence[float | None], factor: float) -> list[float | None]:
    return [None if v is None else v * factor for v in values]


def _opt_scaled(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor


def render_html(report: Mapping[str, Any]) -> str:
    """The report as one self-contained HTML page."""
    meta = report["meta"]
    charts = _charts(report)
    title = f"async-orch load test: {meta.get('profile', {}).get('description', '')}"
    notes = []
    if meta.get("interrupted"):
        notes.append(
            "The run was interrupted (Ctrl-C): the numbers cover what happened until then."
        )
    notes += [f"Incomplete run: {text}." for text in shortfalls(report)]
    if meta.get("time_scale") and meta["time_scale"] != 1:
        notes.append(
            f"Tenant times (queue, run) are simulated seconds: the simulator ran "
            f"{meta['time_scale']:g}x faster than real time."
        )
    settings_rows = [
        [escape(k), escape(str(v))]
        for k, v in (
            ("target", meta.get("target", "")),
            ("profile", meta.get("profile", {}).get("description", "")),
            ("process", meta.get("template", {}).get("process", "")),
            ("folders", ", ".join(meta.get("template", {}).get("folders", []))),
            ("inputs template", json.dumps(meta.get("template", {}).get("inputs"))),
            ("faults", json.dumps(meta.get("faults") or {})),
            ("started", meta.get("started_at", "")),
            ("duration", f"{report['duration_seconds']:.1f} s"),
            ("max jobs", meta.get("max_jobs")),
        )
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="sub">{escape(str(meta.get("target", "")))} &middot; '
        f"{escape(str(meta.get('started_at', '')))}</p>",
        *(f'<p class="warn">{escape(n)}</p>' for n in notes),
        _kpis(report),
        "<h2>Over time</h2>",
        *charts[:4],
        "<h2>Percentiles</h2>",
        *charts[4:],
        _times_table(report),
        "<h2>Jobs</h2>",
        _table(
            ["outcome", "jobs"],
            [[escape(k), str(v)] for k, v in report["jobs"]["by_outcome"].items()],
        ),
        "<h2>Requests by route and status (as the client saw them)</h2>",
        _routes_table(report["http"]["by_route"]),
    ]
    if "agreement" in report:
        ok = all(c["equal"] for c in report["agreement"])
        parts += [
            "<h2>Against the simulator's counters</h2>",
            f'<p class="{"ok" if ok else "bad"}">'
            + ("Every counter agrees." if ok else "Some counters differ.")
            + "</p>",
            _agreement_table(report["agreement"]),
            "<p>Simulator faults injected: "
            + escape(
                ", ".join(f"{k} {v}" for k, v in report["server"]["faults"].items() if v) or "none"
            )
            + f"; rate-limit refusals (429): {report['server']['rate_limited_429']}.</p>",
        ]
    parts += [
        "<h2>Settings</h2>",
        _table(["setting", "value"], settings_rows),
        '<div id="render-check" data-charts="0" data-drawn="0"></div>',
        f"<script>{_CHECK_SCRIPT}</script>",
        "</body></html>",
    ]
    return "\n".join(parts)
