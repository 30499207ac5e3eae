"""Load-test core: profiles, job templates, measurements, charts and the report (no I/O)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from xml.etree import ElementTree

import pytest

from async_orch._errors import ConfigurationError
from async_orch.loadtest.measure import (
    HttpSample,
    Recording,
    bucket_width,
    percentile,
    percentiles,
    route_label,
    summarize,
)
from async_orch.loadtest.profile import LoadProfile, parse_profile
from async_orch.loadtest.report import agreement, build_report, render_html, server_counters
from async_orch.loadtest.runner import LiveStatus, LoadPlan, live_line
from async_orch.loadtest.svg import Series, bar_chart, line_chart, nice_ticks, stacked_area_chart
from async_orch.loadtest.template import JobTemplate, render_inputs

SVG = "{http://www.w3.org/2000/svg}"

# -- profiles ---------------------------------------------------------------------------


def test_constant_profile_plans_rate_times_duration_jobs_evenly() -> None:
    profile = parse_profile("constant:5:60")
    times = profile.start_times()
    assert len(times) == 300
    assert times[:3] == pytest.approx([0.0, 0.2, 0.4])
    assert times[-1] == pytest.approx(59.8)
    assert profile.rate_at(10) == 5 and profile.rate_at(60) == 0


def test_ramp_profile_speeds_up_and_plans_its_integral() -> None:
    profile = parse_profile("ramp:0:10:20")  # integral: 10 * 20 / 2 = 100 jobs
    times = profile.start_times()
    assert len(times) == 100
    gaps = [b - a for a, b in pairwise(times)]
    assert gaps[0] > gaps[-1] * 5  # far apart at first, close together at the end
    assert all(b >= a for a, b in pairwise(times))
    # The k-th start is where the integral reaches k: t = sqrt(2k / slope), slope 0.5/s^2.
    assert times[50] == pytest.approx((2 * 50 / 0.5) ** 0.5)
    assert profile.rate_at(10) == pytest.approx(5)


def test_steps_profile_follows_each_step() -> None:
    profile = parse_profile("steps:1x10,4x5")
    times = profile.start_times()
    assert len(times) == 10 + 20
    assert times[9] == pytest.approx(9.0)
    assert times[10] == pytest.approx(10.0)
    assert times[11] == pytest.approx(10.25)
    assert profile.duration == 15
    assert profile.describe() == "steps 1/s x 10 s, 4/s x 5 s"


def test_a_zero_step_plans_nothing_during_it() -> None:
    times = parse_profile("steps:1x3,0x10,1x2").start_times()
    assert times == pytest.approx([0, 1, 2, 13, 14])


def test_start_times_respect_the_cap() -> None:
    assert len(parse_profile("constant:10:100").start_times(limit=7)) == 7


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("constant:5", "unknown load profile"),
        ("burst:1:2", "unknown load profile"),
        ("constant:x:60", "RATE must be a number"),
        ("constant:-1:60", "rates must be >= 0"),
        ("constant:1:0", "durations > 0"),
        ("steps:5-30", "RATExSECONDS"),
        ("constant:0:30", "starts no job"),
    ],
)
def test_bad_profiles_are_refused_with_the_reason(spec: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_profile(spec)


@pytest.mark.parametrize(
    "spec", ["constant:1:1e308", "constant:1e308:1", "constant:1e308:1e308", "constant:1:1000001"]
)
def test_a_plan_of_more_than_a_million_jobs_is_refused_before_it_is_made(spec: str) -> None:
    # Its start times are a list: constant:1:1e308 filled the memory, saying nothing.
    template = JobTemplate(process="Echo", folders=["Shared"], inputs=None, reference_prefix="lt")
    with pytest.raises(ConfigurationError) as caught:
        LoadPlan(profile=parse_profile(spec), template=template)
    assert "jobs, more than the 1,000,000 a load test may plan" in str(caught.value)
    assert "inf jobs" not in str(caught.value)  # an overflowed sum is not "inf jobs"
    assert str(caught.value).endswith("bound it with max_jobs")
    bounded = LoadPlan(profile=parse_profile(spec), template=template, max_jobs=5)
    assert len(bounded.start_times()) == 5


def test_profile_to_dict_describes_it() -> None:
    data = LoadProfile.ramp(1, 3, 10).to_dict()
    assert data["description"] == "ramp 1 -> 3 jobs/s over 10 s"
    assert data["stages"] == [{"rate_from": 1, "rate_to": 3, "duration": 10}]


# -- job template ------------------------------------------------------------------------


def test_inputs_template_replaces_n_and_folder_everywhere() -> None:
    template = {"id": "{n}", "name": "C{n} in {folder}", "tags": ["{n}", "x"], "k": 3}
    assert render_inputs(template, n=7, folder="HR") == {
        "id": 7,
        "name": "C7 in HR",
        "tags": [7, "x"],
        "k": 3,
    }


def test_job_template_spreads_folders_and_sets_references() -> None:
    template = JobTemplate(
        process="Echo", folders=["A", "B"], inputs={"n": "{n}"}, reference_prefix="lt"
    )
    first, second, third = (template.request(n) for n in range(3))
    assert [r.folder for r in (first, second, third)] == ["A", "B", "A"]
    assert third.reference == "lt-2" and third.inputs == {"n": 2} and third.process == "Echo"


def test_job_template_needs_a_process_and_a_folder() -> None:
    with pytest.raises(ConfigurationError, match="--folder"):
        JobTemplate(process="Echo", folders=[])
    with pytest.raises(ConfigurationError, match="--process"):
        JobTemplate(process="", folders=["A"])


# -- measurement ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "label"),
    [
        (
            "POST",
            "/o/t/orchestrator_/odata/Jobs/UiPath.Server.Configuration.OData.StartJobs",
            "StartJobs",
        ),
        ("GET", "/o/t/orchestrator_/odata/Jobs", "Jobs list"),
        ("GET", "/o/t/orchestrator_/odata/Jobs(458210117)", "Job by id"),
        ("GET", "/odata/Jobs({key})", "Job by id"),
        ("POST", "/odata/Jobs({key})/UiPath.Server.Configuration.OData.StopJob", "StopJob"),
        ("POST", "/odata/Jobs/UiPath.Server.Configuration.OData.StopJobs", "StopJobs"),
        (
            "GET",
            "/odata/Jobs/UiPath.Server.Configuration.OData.GetByKey(identifier={key})",
            "Job by key",
        ),
        ("POST", "/identity_/connect/token", "Token"),
        ("GET", "/o/t/orchestrator_/odata/Folders", "Folders"),
        ("GET", "/o/t/orchestrator_/odata/Releases", "Releases"),
        ("GET", "/o/t/orchestrator_/odata/Machines", "GET other"),
    ],
)
def test_route_labels_fit_request_paths_and_simulator_templates(
    method: str, path: str, label: str
) -> None:
    assert route_label(method, path) == label


def test_percentile_interpolates_between_ranks() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == 2.5
    assert percentile(values, 100) == 4.0
    stats = percentiles([3.0, 1.0, 2.0])
    assert stats is not None
    assert stats["count"] == 3 and stats["p50"] == 2.0 and stats["max"] == 3.0
    assert percentiles([]) is None


def test_bucket_width_keeps_series_short() -> None:
    assert bucket_width(30) == 1
    assert bucket_width(600) == 5


def _recording() -> Recording:
    base = datetime(2024, 7, 1, tzinfo=UTC)
    rec = Recording()
    for n in range(3):
        rec.plan(n, f"lt-{n}", "A", float(n))
    rec.note_http(HttpSample(0.0, "Token", "200", 0.01))
    rec.note_http(HttpSample(0.1, "StartJobs", "201", 0.05))
    rec.note_http(HttpSample(1.1, "StartJobs", "429", 0.01))
    rec.note_http(HttpSample(1.5, "StartJobs", "201", 0.15))
    rec.note_http(HttpSample(2.1, "StartJobs", "error", 5.0))
    rec.note_http(HttpSample(3.0, "Jobs list", "200", 0.02))
    rec.note_sent("lt-0", 0.1)
    rec.note_sent("lt-1", 1.1)
    rec.note_sent("lt-1", 1.5)  # a retry: the first send counts
    rec.note_sent("lt-2", 2.1)
    rec.note_sent("unknown", 9.0)  # not ours: ignored
    rec.note_started(0, 100, 0.15)
    rec.note_started(1, 101, 1.65)
    rec.note_finished(
        0, outcome="successful", state="Successful", at=4.15,
        created=base, start=base + timedelta(seconds=2), end=base + timedelta(seconds=32),
    )  # fmt: skip
    rec.note_finished(2, outcome="not_started", state=None, at=7.1)
    rec.note_states(1.0, {"queued": 2, "Pending": 1, "Running": 0})
    rec.note_states(2.0, {"Running": 1, "not_started": 1, "Successful": 1, "successful": 2})
    return rec


def test_summary_counts_jobs_requests_and_rates() -> None:
    summary = summarize(_recording(), duration=8.0, target_rate=[1.0] * 8)
    assert summary["jobs"] == {
        "planned": 3,
        "asked": 3,
        "started": 2,
        "finished": 1,
        "unfinished": 1,
        "timed_out": 0,
        "by_outcome": {"not_started": 1, "successful": 1},
    }
    assert summary["http"]["requests"] == 6
    assert summary["http"]["http_429"] == 1
    assert summary["http"]["failed"] == 2  # the 429 and the unanswered one
    assert summary["http"]["by_route"]["StartJobs"] == {"201": 2, "429": 1, "error": 1}
    assert summary["start_jobs"]["requests"] == 4
    assert summary["start_jobs"]["error_rate"] == 0.5
    assert summary["start_jobs"]["rate_429"] == 0.25
    latency = summary["start_jobs"]["latency_seconds"]
    assert latency["count"] == 3  # the unanswered request has no latency
    assert latency["max"] == 0.15
    assert summary["times"]["queue_seconds"]["p50"] == 2.0
    assert summary["times"]["run_seconds"]["p50"] == 30.0
    assert summary["times"]["end_to_end_seconds"]["max"] == pytest.approx(4.05)
    assert summary["throughput"]["started_per_second"] == 0.25
    assert summary["unfinished_jobs"] == [{"job_id": 101, "reference": "lt-1", "folder": "A"}]


def test_summary_series_bucket_by_second() -> None:
    series = summarize(_recording(), duration=8.0)["series"]
    assert series["t"] == [0, 1, 2, 3, 4, 5, 6, 7]
    assert series["start_jobs_requests"][:3] == [1, 2, 1]
    assert series["jobs_started"][:2] == [1, 1]
    assert series["jobs_completed"][4] == 1
    assert series["http_429"][1] == 1
    assert series["latency_max"][1] == 0.15
    assert series["latency_p50"][2] is None  # no answer in that second
    assert series["target_rate"] == [0.0] * 8


def test_state_series_keep_a_stable_order_and_fill_zeros() -> None:
    states = summarize(_recording(), duration=8.0)["states"]
    assert list(states["series"]) == ["queued", "Pending", "Running", "successful", "not_started"]
    assert states["series"]["successful"] == [0, 3]  # final, outputs being read: counted done
    assert states["series"]["Running"] == [0, 1]
    assert states["t"] == [1.0, 2.0]


def test_live_line_shows_progress_and_errors() -> None:
    line = live_line(
        LiveStatus(
            elapsed=12.0, target_rate=5.0, planned=300, asked=60,
            by_state={"queued": 240, "Running": 20, "Successful": 2, "successful": 38},
            requests=180, http_429=2, failed=3, start_jobs_p95=0.0123,
        )
    )  # fmt: skip
    assert "asked 60/300" in line and "running 20" in line and "successful 40" in line
    assert "p95 12 ms" in line and "429 2" in line and "queued" not in line


# -- charts --------------------------------------------------------------------------------


def _parse(svg: str) -> ElementTree.Element:
    return ElementTree.fromstring(svg)


def test_nice_ticks_cover_the_maximum_with_round_steps() -> None:
    assert nice_ticks(9.3) == [0, 2, 4, 6, 8, 10]
    assert nice_ticks(0) == [0.0, 1.0]


def test_line_chart_draws_one_point_per_value_and_breaks_at_gaps() -> None:
    svg = line_chart(
        "lat",
        title="Latency",
        x=[0, 1, 2, 3, 4, 5],
        series=[Series("p50", [1, 2, None, 4, 5, 6]), Series("p95", [2, 3, 4, 5, 6, 7])],
    )
    root = _parse(svg)
    assert root.get("data-chart") == "lat"
    lines = root.findall(f"{SVG}polyline")
    by_series = [(p.get("data-series"), int(p.get("data-points") or 0)) for p in lines]
    assert by_series == [("p50", 2), ("p50", 3), ("p95", 6)]
    for line in lines:
        assert len(line.get("points", "").split()) == int(line.get("data-points") or 0)
    # Higher values are drawn higher up (smaller y).
    ys = [float(p.split(",")[1]) for p in lines[2].get("points", "").split()]
    assert ys == sorted(ys, reverse=True)


def test_a_lone_value_is_a_dot() -> None:
    root = _parse(line_chart("x", title="t", x=[0, 1, 2], series=[Series("s", [None, 3, None])]))
    assert root.findall(f"{SVG}polyline") == []
    assert len(root.findall(f"{SVG}circle")) == 1


def test_charts_without_data_say_so() -> None:
    root = _parse(line_chart("x", title="Nothing", x=[0, 1], series=[Series("s", [None, None])]))
    assert root.get("data-kind") == "empty"
    assert "no data" in ElementTree.tostring(root, encoding="unicode")


def test_stacked_area_stacks_layers() -> None:
    root = _parse(
        stacked_area_chart(
            "st", title="States", x=[0, 1, 2], layers={"a": [1, 1, 1], "b": [0, 2, 1]}
        )
    )
    polygons = root.findall(f"{SVG}polygon")
    assert [p.get("data-series") for p in polygons] == ["a", "b"]
    # Each polygon has its top edge and its bottom edge: 2 points per x.
    assert all(len(p.get("points", "").split()) == 6 for p in polygons)


def test_bar_chart_has_a_bar_per_value() -> None:
    root = _parse(
        bar_chart(
            "b", title="P", groups={"p50": {"q": 1.0, "r": 2.0}, "p95": {"q": 3.0, "r": None}}
        )
    )
    bars = root.findall(f"{SVG}rect[@data-series]")
    assert [(b.get("data-group"), b.get("data-series")) for b in bars] == [
        ("p50", "q"), ("p50", "r"), ("p95", "q"),
    ]  # fmt: skip
    heights = [float(b.get("height") or 0) for b in bars]
    assert heights[2] > heights[1] > heights[0] > 0


def test_chart_text_is_escaped() -> None:
    svg = line_chart("x", title="<script>", x=[0, 1], series=[Series("a&b", [1, 2])])
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    _parse(svg)


# -- report --------------------------------------------------------------------------------

_SIM_BEFORE = {
    "requests": {"POST /identity_/connect/token": {"200": 1}},
    "rejections": {"429": 0},
    "faults": {"throttle": 0, "drop": 0},
    "jobs": {"created": 0},
}
_SIM_AFTER = {
    "requests": {
        "POST /identity_/connect/token": {"200": 2},
        "POST /odata/Jobs/UiPath.Server.Configuration.OData.StartJobs": {
            "201": 2, "429": 1, "dropped": 1,
        },
        "GET /odata/Jobs": {"200": 1},
    },
    "rejections": {"429": 0},
    "faults": {"throttle": 1, "drop": 1},
    "jobs": {"created": 2, "by_state": {"Successful": 1, "Running": 1}},
}  # fmt: skip


def test_server_counters_are_the_difference_in_report_labels() -> None:
    server = server_counters(_SIM_BEFORE, _SIM_AFTER)
    assert server["by_route"] == {
        "Jobs list": {"200": 1},
        "StartJobs": {"201": 2, "429": 1, "error": 1},
        "Token": {"200": 1},
    }
    assert server["requests"] == 6 and server["http_429"] == 1
    assert server["faults"] == {"throttle": 1, "drop": 1}
    assert server["jobs_created"] == 2


def test_agreement_compares_each_counter() -> None:
    summary = summarize(_recording(), duration=8.0)
    checks = {c["name"]: c for c in agreement(summary, server_counters(_SIM_BEFORE, _SIM_AFTER))}
    assert checks["StartJobs requests"] == {
        "name": "StartJobs requests",
        "report": 4,
        "server": 4,
        "equal": True,
    }
    assert checks["429 answers"]["equal"] and checks["no answer / dropped"]["equal"]
    assert checks["jobs started / created"]["equal"]
    # The recording has one Token request; the simulator counted one during the run too.
    assert checks["HTTP requests"]["report"] == 6 and checks["HTTP requests"]["equal"]


def _report(**meta_extra: Any) -> dict[str, Any]:
    summary = summarize(_recording(), duration=8.0, target_rate=[1.0] * 8)
    meta = {
        "target": "simulator at http://127.0.0.1:1/x",
        "profile": parse_profile("constant:1:8").to_dict(),
        "template": {"process": "Echo", "folders": ["A"], "inputs": {"n": "{n}"}},
        "started_at": "2024-07-01T00:00:00+00:00",
        "time_scale": 30.0,
        **meta_extra,
    }
    return build_report(summary, meta=meta, server=server_counters(_SIM_BEFORE, _SIM_AFTER))


def test_html_report_is_self_contained_and_holds_every_chart() -> None:
    html = render_html(_report())
    assert html.startswith("<!DOCTYPE html>")
    # Nothing fetched from elsewhere: no external scripts, styles, images or fonts.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "@import" not in html and "url(" not in html
    charts = re.findall(r'<svg class="chart" data-chart="([^"]+)"', html)
    assert charts == [
        "start-rate", "latency-over-time", "errors-over-time", "states",
        "latency-percentiles", "time-percentiles",
    ]  # fmt: skip
    assert "Every counter agrees." in html
    assert "simulated seconds" in html  # the time scale is explained
    assert 'id="render-check"' in html


def test_html_report_flags_disagreement_and_interruption() -> None:
    report = _report(interrupted=True, stop_jobs=False)
    report["agreement"][0]["equal"] = False
    html = render_html(report)
    assert "Some counters differ." in html and "differs" in html
    assert "interrupted" in html and "left running" in html


def test_html_report_escapes_user_text() -> None:
    report = _report()
    report["meta"]["template"]["process"] = "<img src=x onerror=alert(1)>"
    assert "<img src=x" not in render_html(report)


def test_agreement_allows_for_tries_cancelled_on_the_wire() -> None:
    # An interrupted run cancels tries in flight: the server may have counted
    # each of them (answered or dropped) or never seen it.
    recording = _recording()
    recording.cancelled["StartJobs"] += 1
    summary = summarize(recording, duration=8.0)
    server = server_counters(_SIM_BEFORE, _SIM_AFTER)
    checks = {c["name"]: c for c in agreement(summary, server)}
    assert checks["StartJobs requests"]["equal"]  # server 4, report 4 + up to 1
    server["by_route"]["StartJobs"]["201"] += 1  # the cancelled try was answered
    checks = {c["name"]: c for c in agreement(summary, server)}
    assert checks["StartJobs requests"] == {
        "name": "StartJobs requests",
        "report": 4,
        "server": 5,
        "equal": True,
    }
    assert checks["HTTP requests"]["equal"]
    assert checks["Jobs list requests"]["equal"]  # no slack given to other routes
    server["by_route"]["StartJobs"]["201"] += 1  # one more than could have been sent
    checks = {c["name"]: c for c in agreement(summary, server)}
    assert not checks["StartJobs requests"]["equal"]


@pytest.mark.parametrize("inputs", [{"a": "{nope}"}, {"a": ["x", {"b": "C{N}"}]}])
def test_an_unknown_placeholder_in_the_inputs_template_is_refused(inputs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match=r"holds \{(nope|N)\}, which is not a placeholder"):
        JobTemplate(process="Echo", folders=["Shared"], inputs=inputs)
    JobTemplate(process="Echo", folders=["Shared"], inputs={"a": "{n}-{folder}", "b": "{ 1 }"})
