"""Typed reading of TOML/JSON tables with error messages that point at the bad key.

Used by the scenario loader, the fault settings and the admin API: every value a
user writes goes through :class:`Table`, so a typo or a wrong type is reported as
``demo.toml: tenants[0].folders[2].capacity must be an integer >= 1, got 'ten'``
instead of a traceback.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from async_orch._errors import ConfigurationError
from async_orch._jsonvalues import utf16_length

__all__ = ["Table"]


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Table:
    """A mapping read key by key; remembers where it sits for error messages."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"{where} must be a table, got {_show(data)}")
        self.data: Mapping[str, Any] = data
        self.where = where

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, expected: str) -> ConfigurationError:
        return ConfigurationError(
            f"{self.path(key)} must be {expected}, got {_show(self.data.get(key))}"
        )

    def reject_unknown(self, allowed: Iterable[str]) -> None:
        """Raise on keys outside *allowed*: a misspelt option must not be ignored."""
        allowed = sorted(allowed)
        unknown = sorted(set(self.data) - set(allowed))
        if unknown:
            raise ConfigurationError(
                f"{self.where or 'top level'}: unknown key(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(allowed)}"
            )

    def has(self, key: str) -> bool:
        return key in self.data

    def string(self, key: str, default: str | None = None, *, max_length: int = 10_000) -> str:
        value = self.data.get(key, default)
        # Lengths as the service counts them: UTF-16 units (orchestrator-api.md §8).
        if not isinstance(value, str) or not value.strip() or utf16_length(value) > max_length:
            raise self.fail(key, f"a non-empty string of at most {max_length} characters")
        return value

    def optional_string(self, key: str) -> str | None:
        if self.data.get(key) is None:
            return None
        return self.string(key)

    def integer(self, key: str, default: int | None = None, *, minimum: int | None = None) -> int:
        value = self.data.get(key, default)
        bad = isinstance(value, bool) or not isinstance(value, int)
        if bad or (minimum is not None and value < minimum):
            bound = f" >= {minimum}" if minimum is not None else ""
            raise self.fail(key, f"an integer{bound}")
        assert isinstance(value, int)
        return value

    def number(
        self,
        key: str,
        default: float | None = None,
        *,
        minimum: float = 0.0,
        maximum: float | None = None,
        strictly_positive: bool = False,
    ) -> float:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, "a number")
        number = float(value)
        too_low = number <= minimum if strictly_positive else number < minimum
        too_high = maximum is not None and number > maximum
        if math.isnan(number) or math.isinf(number) or too_low or too_high:
            low = f"> {minimum:g}" if strictly_positive else f">= {minimum:g}"
            high = f" and <= {maximum:g}" if maximum is not None else ""
            raise self.fail(key, f"a number {low}{high}")
        return number

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, "true or false")
        return value

    def choice(self, key: str, default: str, choices: Sequence[str]) -> str:
        value = self.data.get(key, default)
        if value not in choices:
            raise self.fail(key, "one of " + ", ".join(repr(c) for c in choices))
        assert isinstance(value, str)
        return value

    def tables(self, key: str) -> list[Table]:
        """An array of tables (``[[key]]`` in TOML); missing means empty."""
        value = self.data.get(key, [])
        if not isinstance(value, list):
            raise self.fail(key, "an array of tables")
        return [Table(item, f"{self.path(key)}[{i}]") for i, item in enumerate(value)]

    def table(self, key: str) -> Table:
        """A sub-table; missing means empty."""
        return Table(self.data.get(key, {}), self.path(key))

    def strings(self, key: str, default: Sequence[str] = ()) -> tuple[str, ...]:
        value = self.data.get(key, list(default))
        if not isinstance(value, list) or not all(
            isinstance(item, str) and item.strip() for item in value
        ):
            raise self.fail(key, "an array of non-empty strings")
        return tuple(value)
