"""Load profiles: how many jobs to start per second, over time (pure).

A profile is a list of stages; each stage runs for ``duration`` seconds with a
start rate going linearly from ``rate_from`` to ``rate_to`` jobs per second (equal
for a flat stage). Three shapes are spelt on the command line:

* ``constant:RATE:SECONDS``, e.g. ``constant:5:60`` (5 jobs/s for a minute);
* ``ramp:FROM:TO:SECONDS``, e.g. ``ramp:1:20:120``;
* ``steps:RATExSECONDS,...``, e.g. ``steps:2x30,5x30,10x30``.

The planned start times place the k-th job (k = 0, 1, ...) where the integral of
the rate reaches k, so the first job starts at 0 and a ``constant:5:60`` profile
plans exactly 300 jobs.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

from async_orch._errors import ConfigurationError

__all__ = ["MAX_PLANNED_JOBS", "LoadProfile", "Stage", "parse_profile"]

#: Most jobs one load test may plan (as many as ``dispatch --count`` allows): the plan
#: is a list of start times, so ``constant:1:1e308`` would fill the memory, silently.
MAX_PLANNED_JOBS = 1_000_000

_SHAPES = "constant:RATE:SECONDS, ramp:FROM:TO:SECONDS or steps:RATExSECONDS,..."


@dataclass(frozen=True, slots=True)
class Stage:
    """``duration`` seconds with a rate going linearly from ``rate_from`` to ``rate_to``."""

    rate_from: float
    rate_to: float
    duration: float

    @property
    def jobs(self) -> float:
        """The integral of the rate over the stage."""
        return (self.rate_from + self.rate_to) / 2 * self.duration

    def rate_at(self, t: float) -> float:
        return self.rate_from + (self.rate_to - self.rate_from) * t / self.duration

    def time_of(self, jobs: float) -> float:
        """Seconds into the stage at which the integral of the rate reaches ``jobs``."""
        slope = (self.rate_to - self.rate_from) / self.duration
        if abs(slope) < 1e-12:
            return jobs / self.rate_from
        # rate_from * t + slope * t^2 / 2 = jobs, the root in [0, duration].
        disc = self.rate_from**2 + 2 * slope * jobs
        return (-self.rate_from + math.sqrt(max(disc, 0.0))) / slope


@dataclass(frozen=True, slots=True)
class LoadProfile:
    """A sequence of stages; see the module docstring."""

    kind: str
    stages: tuple[Stage, ...]

    @classmethod
    def constant(cls, rate: float, duration: float) -> LoadProfile:
        return cls._checked("constant", (Stage(rate, rate, duration),))

    @classmethod
    def ramp(cls, rate_from: float, rate_to: float, duration: float) -> LoadProfile:
        return cls._checked("ramp", (Stage(rate_from, rate_to, duration),))

    @classmethod
    def steps(cls, steps: list[tuple[float, float]]) -> LoadProfile:
        return cls._checked("steps", tuple(Stage(r, r, d) for r, d in steps))

    @classmethod
    def _checked(cls, kind: str, stages: tuple[Stage, ...]) -> LoadProfile:
        if not stages:
            raise ConfigurationError(f"a {kind} profile needs at least one stage")
        for stage in stages:
            rates_ok = all(math.isfinite(r) and r >= 0 for r in (stage.rate_from, stage.rate_to))
            if not rates_ok or not (math.isfinite(stage.duration) and stage.duration > 0):
                raise ConfigurationError(
                    f"{kind} profile: rates must be >= 0 jobs/s and durations > 0 s, got "
                    f"{stage.rate_from:g}->{stage.rate_to:g}/s for {stage.duration:g} s"
                )
        profile = cls(kind, stages)
        if not profile.start_times(limit=1):
            raise ConfigurationError(f"the {kind} profile starts no job (every rate is 0)")
        return profile

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.stages)

    @property
    def jobs(self) -> float:
        """The jobs the profile plans, the area under it (inf when it overflows a float);
        computed, not counted, so a huge profile is known before a plan is made."""
        return math.fsum(s.jobs for s in self.stages)

    def too_many_jobs(self, max_jobs: int | None, *, bound_with: str) -> str | None:
        """Why a plan of this profile, capped at ``max_jobs``, is too big to make
        (more than :data:`MAX_PLANNED_JOBS`), or None. ``bound_with`` names the cap
        in the message (a flag, or an attribute)."""
        planned = min(self.jobs, math.inf if max_jobs is None else max_jobs)
        if planned <= MAX_PLANNED_JOBS:
            return None
        if self.jobs < 1e15:
            jobs = f"{self.jobs:,.0f}"
        elif math.isfinite(self.jobs):
            jobs = f"{self.jobs:.3g}"  # 1e+308
        else:  # its sum overflowed a float
            jobs = f"over {sys.float_info.max:.3g}"
        return (
            f"the load profile {self.describe()} plans {jobs} jobs, more than the "
            f"{MAX_PLANNED_JOBS:,} a load test may plan; make it shorter or slower, or bound "
            f"it with {bound_with}"
        )

    def rate_at(self, t: float) -> float:
        """The planned start rate (jobs/s) ``t`` seconds into the run (0 after the end)."""
        for stage in self.stages:
            if t < stage.duration:
                return stage.rate_at(max(t, 0.0))
            t -= stage.duration
        return 0.0

    def start_times(self, *, limit: int | None = None) -> list[float]:
        """Planned start offsets in seconds, at most ``limit`` of them."""
        times: list[float] = []
        offset = 0.0  # when the current stage begins
        done = 0.0  # jobs planned before the current stage (the integral so far)
        k = 0
        for stage in self.stages:
            total = stage.jobs
            # Small tolerance: a job due exactly at a stage's end belongs to the next one.
            while k - done < total - 1e-9:
                if limit is not None and len(times) >= limit:
                    return times
                times.append(offset + stage.time_of(k - done))
                k += 1
            offset += stage.duration
            done += total
        return times

    def describe(self) -> str:
        """A one-line description, e.g. ``ramp 1 -> 20 jobs/s over 120 s``."""
        if self.kind == "constant":
            s = self.stages[0]
            return f"constant {s.rate_from:g} jobs/s for {s.duration:g} s"
        if self.kind == "ramp":
            s = self.stages[0]
            return f"ramp {s.rate_from:g} -> {s.rate_to:g} jobs/s over {s.duration:g} s"
        parts = ", ".join(f"{s.rate_from:g}/s x {s.duration:g} s" for s in self.stages)
        return f"steps {parts}"

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "description": self.describe(),
            "duration": self.duration,
            "stages": [
                {"rate_from": s.rate_from, "rate_to": s.rate_to, "duration": s.duration}
                for s in self.stages
            ],
        }


def _number(text: str, what: str, spec: str) -> float:
    try:
        value = float(text.strip().removesuffix("s").removesuffix("/"))
    except ValueError:
        raise ConfigurationError(
            f"profile {spec!r}: {what} must be a number, got {text!r} (shapes: {_SHAPES})"
        ) from None
    return value


def parse_profile(spec: str) -> LoadProfile:
    """Parse ``constant:5:60``, ``ramp:1:20:120`` or ``steps:2x30,5x30``."""
    kind, _, rest = spec.strip().partition(":")
    kind = kind.lower()
    parts = rest.split(":") if rest else []
    if kind == "constant" and len(parts) == 2:
        return LoadProfile.constant(
            _number(parts[0], "RATE", spec), _number(parts[1], "SECONDS", spec)
        )
    if kind == "ramp" and len(parts) == 3:
        return LoadProfile.ramp(
            _number(parts[0], "FROM", spec),
            _number(parts[1], "TO", spec),
            _number(parts[2], "SECONDS", spec),
        )
    if kind == "steps" and len(parts) == 1 and parts[0]:
        steps = []
        for item in parts[0].split(","):
            rate, sep, seconds = item.lower().partition("x")
            if not sep:
                raise ConfigurationError(
                    f"profile {spec!r}: each step is RATExSECONDS, e.g. 5x30; got {item!r}"
                )
            steps.append((_number(rate, "RATE", spec), _number(seconds, "SECONDS", spec)))
        return LoadProfile.steps(steps)
    raise ConfigurationError(f"unknown load profile {spec!r}; use {_SHAPES}")
