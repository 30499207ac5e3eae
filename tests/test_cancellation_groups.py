"""reraise: what a task group wrapped comes out as the caller's typed error."""

from __future__ import annotations

import pytest

from async_orch._cancellation import reason_of, reraise
from async_orch._errors import AuthenticationError, ClientClosedError, InvalidRequestError


def _auth() -> AuthenticationError:
    return AuthenticationError("token refused")


def test_a_group_of_one_fatal_error_type_comes_out_as_its_first() -> None:
    # A token refused while several tasks call at once: each task fails alike.
    first = _auth()
    group = ExceptionGroup("tg", [first, ExceptionGroup("inner", [_auth(), _auth()])])
    with pytest.raises(AuthenticationError) as caught:
        reraise(group)
    assert caught.value is first
    assert reason_of(group) == "AuthenticationError"


def test_closed_client_errors_beside_one_fatal_type_still_collapse() -> None:
    group = ExceptionGroup("tg", [ClientClosedError(), _auth(), _auth()])
    with pytest.raises(AuthenticationError):
        reraise(group)


def test_a_group_of_different_errors_stays_a_group() -> None:
    group = ExceptionGroup("tg", [_auth(), InvalidRequestError("bad")])
    with pytest.raises(ExceptionGroup):
        reraise(group)
    other = ExceptionGroup("tg", [ValueError("a"), ValueError("b")])  # not ours: kept
    with pytest.raises(ExceptionGroup):
        reraise(other)
