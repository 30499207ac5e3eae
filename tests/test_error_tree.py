"""The error tree: two branches under one base, every class public, no bare base raised."""

from __future__ import annotations

import ast
from pathlib import Path

import async_orch
from async_orch import _errors as errors

PACKAGE = Path(async_orch.__file__).parent
ERROR_CLASSES = [
    value
    for value in vars(errors).values()
    if isinstance(value, type) and issubclass(value, errors.OrchestratorError)
]
BRANCHES = (errors.UsageError, errors.RequestError)


def test_every_error_is_in_one_branch() -> None:
    for cls in ERROR_CLASSES:
        if cls in (errors.OrchestratorError, *BRANCHES):
            continue
        assert sum(issubclass(cls, branch) for branch in BRANCHES) == 1, cls.__name__


def test_every_error_class_is_exported_and_listed() -> None:
    for cls in ERROR_CLASSES:
        assert getattr(async_orch, cls.__name__) is cls
        assert cls.__name__ in async_orch.__all__
        assert cls.__name__ in errors.__all__
        assert cls.__name__ in (errors.__doc__ or ""), cls.__name__  # drawn in the tree


def test_uncertain_starts_and_lost_jobs_are_per_request_failures() -> None:
    assert issubclass(errors.UncertainStartError, errors.RequestError)
    assert issubclass(errors.JobLostError, errors.RequestError)
    assert issubclass(errors.NotStartedError, errors.RequestError)
    assert issubclass(errors.ClientClosedError, errors.UsageError)
    assert issubclass(errors.InvalidRequestError, errors.UsageError)


def _bare_base_calls(tree: ast.AST) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", getattr(node.func, "attr", None)) == "OrchestratorError"
    ]


def test_no_module_makes_the_bare_base_class() -> None:
    found = {
        str(path.relative_to(PACKAGE)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if (lines := _bare_base_calls(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert found == {}


def test_the_bare_base_check_can_fail() -> None:
    assert _bare_base_calls(ast.parse("raise OrchestratorError('x')")) == [1]
    assert _bare_base_calls(ast.parse("raise errors.OrchestratorError('x')")) == [1]


def test_no_carve_out_for_a_closed_client() -> None:
    # Per-request handlers catch RequestError; a ClientClosedError passes them by itself.
    for path in sorted(PACKAGE.rglob("*.py")):
        assert "except ClientClosedError:" not in path.read_text(encoding="utf-8"), path
