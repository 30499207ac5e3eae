"""How many values one ``$filter=X in (...)`` list call may carry: sized by the
encoded length of its query string, not by a count.

An ``in`` list counts once toward OData's 100-node limit (orchestrator-api.md
§8: the stock ASP.NET OData validator), so the practical limit on a long list is
the URL's length. Orchestrator's is unconfirmed; :data:`MAX_QUERY_CHARS` keeps
every list call under the strictest common default. Lengths are measured as
aiohttp sends them (yarl's percent-encoding), so a Reference full of accented
letters or quotes costs what it really costs on the wire.

Everything here is pure: the planner, the Reference lookups and the resource
calls all size their lists with :class:`ListRoom` or :func:`split_to_fit`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from yarl import URL

__all__ = [
    "MAX_QUERY_CHARS",
    "PAGE_SIZE",
    "ListRoom",
    "encoded_length",
    "job_states_query",
    "query_length",
    "references_query",
    "split_ids_to_fit",
    "split_to_fit",
]

T = TypeVar("T")

#: Longest encoded query string (after ``?``) a list call sends. ASSUMPTION: 2,048
#: is IIS request filtering's default maxQueryString (on-premises Orchestrator runs
#: on IIS, which answers 404.15 past it); Kestrel's request line allows 8,192 bytes
#: in all (the simulator's limit, simulator/app.py). Staying under the smaller one
#: works on both.
MAX_QUERY_CHARS = 2048
#: Rows per list page: the documented maximum $top. List calls page with $top and
#: $skip, so a list call's room counts them too.
PAGE_SIZE = 1000
_PAGING = {"$top": str(PAGE_SIZE), "$skip": str(2**31 - 1)}  # $skip: its longest
_SEPARATOR = ","


def job_states_query(literals: Sequence[str]) -> dict[str, str]:
    """The query of the cheap state poll (``OrchestratorAPI.job_states``)."""
    return {"$filter": f"Id in ({','.join(literals)})", "$select": "Id,State"}


def references_query(literals: Sequence[str]) -> dict[str, str]:
    """The query of a Reference lookup (``OrchestratorAPI.jobs_by_reference``)."""
    return {"$filter": f"Reference in ({','.join(literals)})"}


def encoded_length(text: str) -> int:
    """The length of ``text`` once percent-encoded as a query value by aiohttp."""
    if text.isascii() and text.isalnum():
        return len(text)  # letters and digits are never encoded (job ids, on every list call)
    return len(URL.build(query={"": text}).raw_query_string) - 1  # less the "="


def query_length(params: Mapping[str, str]) -> int:
    """The length of the encoded query string aiohttp sends for ``params``."""
    return len(URL.build(query=dict(params)).raw_query_string)


@dataclass(slots=True)
class ListRoom:
    """What one list call still has room for: ``values`` more and ``chars`` more
    encoded characters of ``in (...)`` list (separators included)."""

    values: int
    chars: int

    @classmethod
    def of(
        cls, query: Callable[[Sequence[str]], Mapping[str, str]], *, max_values: int = PAGE_SIZE
    ) -> ListRoom:
        """The room of one list call whose query ``query`` builds from its list's
        literals; paging options included, and at most ``max_values`` values."""
        fixed = query_length({**query([]), **_PAGING})
        return cls(values=max_values, chars=MAX_QUERY_CHARS - fixed)

    def take_ids(self, ids: Iterable[int]) -> int:
        """Make room for the integers ``ids`` (written in decimal), in order, until
        one does not fit; return how many were taken. :meth:`take` for each, without
        its cost per id: digits are never encoded (list calls take every id
        listed)."""
        taken = 0
        values, chars = self.values, self.chars
        for job_id in ids:
            cost = len(str(job_id)) + len(_SEPARATOR)
            if values < 1 or cost > chars:
                break
            values -= 1
            chars -= cost
            taken += 1
        self.values, self.chars = values, chars
        return taken

    def take(self, literal: str) -> bool:
        """Make room for ``literal`` (as written in the list) and say True, or say
        False and change nothing when it does not fit."""
        cost = encoded_length(literal) + len(_SEPARATOR)  # the first one over-counts by 1
        if self.values < 1 or cost > self.chars:
            return False
        self.values -= 1
        self.chars -= cost
        return True


def split_ids_to_fit(ids: Sequence[int], room: Callable[[], ListRoom]) -> list[Sequence[int]]:
    """:func:`split_to_fit` of integers written in decimal (job ids), with
    :meth:`ListRoom.take_ids` instead of a :meth:`ListRoom.take` call per id (a
    state poll lists up to a page of ids, on every list call)."""
    runs: list[Sequence[int]] = []
    start, end = 0, len(ids)
    while start < end:
        space = room()
        # A call takes at most space.values ids: slicing no further keeps this linear.
        window = ids[start : start + space.values]
        # An id too long even for an empty call still gets a call of its own.
        taken = space.take_ids(window) or 1
        runs.append(ids[start : start + taken])
        start += taken
    return runs


def split_to_fit(
    items: Sequence[T], literal: Callable[[T], str], room: Callable[[], ListRoom]
) -> list[list[T]]:
    """``items`` in order, cut into the fewest runs that each fit a fresh ``room()``.

    An item too long for an empty call still gets a call of its own (the server
    then says what it thinks of it), so nothing is ever dropped.
    """
    runs: list[list[T]] = []
    current: list[T] = []
    space = room()
    for item in items:
        if not space.take(literal(item)):
            if current:
                runs.append(current)
            current, space = [], room()
            if not space.take(literal(item)):  # too long even alone: a call of its own
                runs.append([item])
                continue
        current.append(item)
    if current:
        runs.append(current)
    return runs
