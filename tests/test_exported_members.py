"""The package's public surface: sorted, complete, importable."""

import async_orch


def test_all_is_sorted_and_unique() -> None:
    assert async_orch.__all__ == sorted(set(async_orch.__all__), key=async_orch.__all__.index)
    names = [n for n in async_orch.__all__ if n != "__version__"]
    upper = [n for n in names if n.isupper()]
    assert names == upper + sorted(n for n in names if not n.isupper())


def test_every_exported_name_exists() -> None:
    for name in async_orch.__all__:
        assert hasattr(async_orch, name), name


def test_public_classes_are_exported() -> None:
    public = {
        name
        for name, value in vars(async_orch).items()
        if not name.startswith("_") and isinstance(value, type)
    }
    assert public <= set(async_orch.__all__)


def test_public_errors_are_named_where_users_import_them() -> None:
    """A traceback says async_orch.AuthenticationError, not async_orch._errors....;
    classes and errors still pickle (by that name) and come back the same."""
    import pickle

    errors = [
        value
        for name in async_orch.__all__
        if isinstance(value := getattr(async_orch, name), type) and issubclass(value, BaseException)
    ]
    assert async_orch.AuthenticationError in errors and async_orch.JournalError in errors
    for error in errors:
        assert error.__module__ == "async_orch", error
        assert pickle.loads(pickle.dumps(error)) is error
    refused = async_orch.AuthenticationError("refused", status=400, hint="check the secret")
    again = pickle.loads(pickle.dumps(refused))
    assert type(again) is async_orch.AuthenticationError
    assert (str(again), again.status, again.hint) == (str(refused), 400, "check the secret")
