"""Request counters of a simulator run (the job counts are read from the engines)."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

__all__ = ["RequestStats"]


class RequestStats:
    """Requests by endpoint template and status, and rejections by status."""

    def __init__(self) -> None:
        self.requests: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.rejections: Counter[str] = Counter()

    def record(self, template: str, status: int | str) -> None:
        """Count one answered (or dropped, status "dropped") request."""
        self.requests[template][str(status)] += 1

    def reject(self, status: int) -> None:
        """Count a 401/403/429 refusal by authentication, scope or rate limit."""
        self.rejections[str(status)] += 1

    def reset(self) -> None:
        self.requests.clear()
        self.rejections.clear()

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": {t: dict(sorted(c.items())) for t, c in sorted(self.requests.items())},
            "rejections": {s: self.rejections.get(s, 0) for s in ("401", "403", "429")},
        }
