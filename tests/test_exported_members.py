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
