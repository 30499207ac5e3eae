"""Building the frozen records a batch makes for every job, at a quarter of the cost.

A frozen dataclass's ``__init__`` sets each field with ``object.__setattr__`` (its
own ``__setattr__`` refuses): about 1,700 CPU instructions a field, measured. A
batch builds several such records a job (its StartJobs body, its handle, what the
watcher hands over, its result), which came to about 4 % of the client's work.
:func:`record_builder` gives a class a second constructor: a plain class with the
same slots takes the values as ordinary attribute stores, then becomes the frozen
class. Python allows that ``__class__`` change because the layouts are the same
(the same slots in the same order, no ``__dict__``); the result is an ordinary
instance of the frozen class, equal to one its ``__init__`` builds.

Only for values that need no checking: no ``__post_init__`` runs, and every field
must be given (there are no defaults). tests/test_records.py holds each builder to
its class's own constructor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["record_builder"]

T = TypeVar("T")


def record_builder(cls: type[T]) -> Callable[..., T]:
    """A keyword-only constructor for the frozen, slotted dataclass ``cls`` (module
    docstring): every field by name, nothing checked.

    Raises:
        TypeError: ``cls`` is not a slotted dataclass (a class change would fail).
    """
    names = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    slots = cls.__dict__.get("__slots__")
    if slots is None or tuple(slots) != names or len(cls.__mro__) != 2:
        raise TypeError(f"{cls.__name__} is not a slotted dataclass built on object alone")
    # The generated function's own names, which no field may shadow (a field named
    # "record" would otherwise be stored as the record itself).
    twin_name, cls_name, record_name = "__builder_twin__", "__builder_cls__", "__builder_record__"
    if clash := {twin_name, cls_name, record_name} & set(names):
        raise TypeError(f"{cls.__name__} has a field named {sorted(clash)[0]!r}")
    twin = type(f"_{cls.__name__}Fields", (), {"__slots__": names})
    lines = [f"def build(*, {', '.join(names)}):", f"    {record_name} = {twin_name}()"]
    lines += [f"    {record_name}.{name} = {name}" for name in names]
    lines += [f"    {record_name}.__class__ = {cls_name}", f"    return {record_name}"]
    namespace: dict[str, Any] = {twin_name: twin, cls_name: cls}
    exec("\n".join(lines), namespace)  # as dataclasses writes __init__
    build: Callable[..., T] = namespace["build"]
    build.__qualname__ = build.__name__ = f"build_{cls.__name__}"
    return build
