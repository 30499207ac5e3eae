"""The installed package's version, read once from its metadata (pyproject.toml
is the one place it is written)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("async-orch")
    """The installed package's version (``"0+unknown"`` in a source tree never installed)."""
except PackageNotFoundError:  # a source tree used without being installed
    __version__ = "0+unknown"
