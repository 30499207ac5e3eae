"""JSON values Orchestrator can carry: strict parsing of user text, and checks of
values before they are sent.

Python's ``json`` accepts and produces more than a JSON consumer on the other side
takes, and fails with a traceback on some hostile inputs. Both are refused here
with a message saying what to change:

- ``NaN``, ``Infinity``, ``-Infinity`` and numbers beyond a double (``1e400``):
  not JSON (RFC 8259), and .NET's readers refuse them;
- integers over Python's conversion limit (4,300 digits by default), which
  ``int()`` and ``str()`` refuse with a ValueError;
- lone UTF-16 surrogates (``"\\ud800"``, or undecodable bytes read with
  ``surrogateescape``): not text, so they cannot be encoded to UTF-8 for the wire;
- nesting deeper than :data:`MAX_DEPTH` levels: Python's parser and encoder
  recurse and fail near 1,000 levels with a RecursionError.

The checks walk values with an explicit stack, never by recursion.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from typing import Any

from async_orch._errors import InvalidRequestError

__all__ = [
    "MAX_DEPTH",
    "JSONSyntaxError",
    "json_problem",
    "loads_strict",
    "shown",
    "text_problem",
    "utf16_length",
]

MAX_DEPTH = 64
"""Deepest nesting of objects and arrays accepted. ASSUMPTION (not confirmed for
Orchestrator): .NET's JSON readers (System.Text.Json, Newtonsoft.Json 13) stop at
64 levels by default, so a deeper value would likely fail in the robot; it also
keeps Python's recursive encoder far from its recursion limit."""

_DEEP = f"is nested more than {MAX_DEPTH} levels deep; flatten it (or send it as a JSON string)"
_NOT_FINITE = (
    "holds NaN, Infinity or a number beyond ±1.8e308, which JSON cannot carry; "
    "send it as a string (or null)"
)


class JSONSyntaxError(InvalidRequestError):
    """Text that is not JSON at all (as opposed to JSON holding a value refused here)."""


def utf16_length(text: str) -> int:
    """Length as Orchestrator counts it: a .NET string's length, in UTF-16 code
    units (orchestrator-api.md §8), so a character outside the BMP (an emoji)
    counts twice. The one place the client and the simulator count lengths."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


#: Characters of a value a message quotes; the rest is summed up by its length.
SHOWN_CHARACTERS = 80


def shown(text: str, *, quote: bool = True) -> str:
    """``text`` for an error message: quoted (repr) and cut after
    :data:`SHOWN_CHARACTERS`, so a 100,000-character value stays one readable line."""
    if len(text) <= SHOWN_CHARACTERS:
        return repr(text) if quote else text
    cut = text[:SHOWN_CHARACTERS]
    return f"{repr(cut) if quote else cut}... ({len(text):,} chars)"


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be sent as UTF-8 (a lone surrogate), or None."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        if 0xDC80 <= code <= 0xDCFF:
            # How Python represents an undecodable byte of argv or a file name.
            return f"holds the byte 0x{code - 0xDC00:02x}, which is not UTF-8; write it as UTF-8"
        return (
            f"holds a lone UTF-16 surrogate (\\u{code:04x}), which is not valid Unicode "
            "text; fix the text (a surrogate must be paired)"
        )
    return None


def json_problem(value: object, *, max_depth: int = MAX_DEPTH) -> str | None:
    """Why ``value`` (parsed JSON, or a dict about to be sent) cannot travel as
    JSON to Orchestrator, or None. Types JSON has no form for (a set, a datetime)
    are left to the encoder, whose message names them."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            problem = _int_problem(item)
        elif isinstance(item, float):
            problem = None if math.isfinite(item) else _NOT_FINITE
        elif isinstance(item, Mapping | list | tuple):
            if depth >= max_depth:
                return _DEEP
            children = item.values() if isinstance(item, Mapping) else item
            if isinstance(item, Mapping):
                keys = [key for key in item if isinstance(key, str)]
                stack.extend((key, depth) for key in keys)
            stack.extend((child, depth + 1) for child in children)
            continue
        else:
            continue
        if problem is not None:
            return problem
    return None


def _int_problem(value: int) -> str | None:
    # 3.33 bits a digit: below this many bits, any int converts (no str() needed).
    if value.bit_length() < 14_000:
        return None
    try:
        str(value)
    except ValueError:
        return (
            f"holds an integer of more than {sys.get_int_max_str_digits():,} digits, "
            "more than JSON readers take; send it as a string"
        )
    return None


def loads_strict(text: str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON text, refusing what :func:`json_problem` refuses.

    Raises:
        InvalidRequestError: the text is not JSON (with where it went wrong), or
            holds a value Orchestrator cannot carry (saying which and what to do).
    """
    try:
        value = json.loads(
            text,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            object_pairs_hook=_object_without_repeats,
        )
    except json.JSONDecodeError as exc:
        raise JSONSyntaxError(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno} (char {exc.pos})"
        ) from None
    except RecursionError:
        raise InvalidRequestError(f"the JSON {_DEEP}") from None
    except ValueError:  # an integer over the conversion limit (json raises it bare)
        raise InvalidRequestError(
            f"the JSON holds an integer of more than {sys.get_int_max_str_digits():,} digits, "
            "more than JSON readers take; write it as a string"
        ) from None
    problem = json_problem(value, max_depth=max_depth)
    if problem is not None:
        raise InvalidRequestError(f"the JSON {problem}")
    return value


def _object_without_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # JSON leaves a repeated key undefined; Python keeps the last, other readers the
    # first: say so rather than send one of them.
    value: dict[str, Any] = {}
    for key, item in pairs:
        if key in value:
            raise InvalidRequestError(
                f"the JSON gives the key {shown(key)} twice in one object; keep one"
            )
        value[key] = item
    return value


def _refuse_constant(name: str) -> float:
    raise InvalidRequestError(
        f"the JSON holds {name}, which is not JSON and Orchestrator cannot carry; "
        "write it as a string (or null)"
    )


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidRequestError(
            f"the JSON holds the number {text[:20]}, beyond what a double holds (±1.8e308); "
            "write it as a string"
        )
    return value
