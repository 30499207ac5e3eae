"""Reading the user's text files (job files, the config file) with errors that say
which file is wrong and how to fix it."""

from __future__ import annotations

from pathlib import Path

from async_orch._errors import ConfigurationError

__all__ = ["read_utf8"]


def read_utf8(path: Path, what: str, *, hint: str = "") -> str:
    """The text of ``path``, UTF-8 with or without a BOM (Excel and Notepad write one).

    Raises:
        ConfigurationError: the file cannot be read, or is not UTF-8 (naming the
            first bad byte and its line, then ``hint``).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {what} {path}: {exc.strerror}") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigurationError(
            f"{what} {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); "
            f"save it as UTF-8{hint}"
        ) from None
