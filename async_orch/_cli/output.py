"""Result writers for the command line: JSON Lines, CSV and a plain table.

Result files and reports hold the jobs' inputs and outputs, so a file created
here is created 0600 (owner only), whatever the umask; a file that exists
already keeps the mode its owner gave it.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from async_orch._errors import ConfigurationError
from async_orch._jobs import JobResult
from async_orch._journal import make_private_dirs

__all__ = [
    "COLUMNS",
    "FORMATS",
    "check_writable",
    "emit_rows",
    "open_private",
    "output_path",
    "result_row",
    "write_private_text",
    "write_rows",
]

FORMATS = ("jsonl", "csv", "table")

COLUMNS = (
    "index",
    "reference",
    "folder",
    "process",
    "job_id",
    "job_key",
    "outcome",
    "state",
    "info",
    "outputs",
    "created",
    "started",
    "ended",
    "detected",
    "attempts",
    "stop_sent",
)


def result_row(result: JobResult) -> dict[str, Any]:
    """One result as a flat, JSON-ready dict (the columns of every format)."""
    return result.to_dict()


def write_rows(rows: Sequence[Mapping[str, Any]], fmt: str, out: TextIO) -> None:
    """Write result rows (see :func:`result_row`) to ``out`` in ``fmt``."""
    if fmt == "jsonl":
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            flat = dict(row)
            flat["outputs"] = json.dumps(flat.get("outputs"), ensure_ascii=False)
            writer.writerow(flat)
    elif fmt == "table":
        _write_table(rows, out)
    else:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def _write_table(rows: Sequence[Mapping[str, Any]], out: TextIO) -> None:
    columns = ("index", "folder", "process", "job_id", "outcome", "outputs")
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    out.write("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    out.write("\n")
    for row_cells in cells:
        line = "  ".join(v.ljust(w) for v, w in zip(row_cells, widths, strict=True))
        out.write(line.rstrip() + "\n")
    # Why jobs did not succeed (a refused start's cause and fix, a stuck job's folder)
    # is in info, too long for a column: one line each under the table.
    why = [r for r in rows if r.get("outcome") != "successful" and r.get("info")]
    for row in why[:_WHY_LINES]:
        out.write(f"{row.get('index')}  {row.get('outcome')}: {row.get('info')}\n")
    if len(why) > _WHY_LINES:
        out.write(f"... and {len(why) - _WHY_LINES} more (all of them: --format jsonl or csv)\n")


#: Rows whose info is shown under a table.
_WHY_LINES = 10


def _cell(value: Any, limit: int = 60) -> str:
    if value is None:
        return "-"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def emit_rows(
    rows: Sequence[Mapping[str, Any]],
    *,
    fmt: str | None,
    output: Path | None,
    stream: TextIO,
    journal: Path | None = None,
) -> None:
    """Write rows to ``output`` (or ``stream``). Without ``fmt``: a table on a terminal,
    else JSON Lines; for a file, CSV if it ends in .csv, else JSON Lines.

    Raises:
        ConfigurationError: the rows could not be written (a full disk, /dev/full),
            saying how to get them again (from ``journal``, when they are in one).
    """
    try:
        _emit(rows, fmt=fmt, output=output, stream=stream)
    except OSError as exc:
        if output is None:
            silence_closed_pipe(stream)  # or the final flush at exit fails again
        again = (
            f"the journal holds them: async-orch jobs --journal {journal} -o FILE"
            if journal is not None
            else "run it again with another -o FILE"
        )
        raise ConfigurationError(
            f"results could not be written to {output or 'stdout'} ({exc.strerror or exc}); {again}"
        ) from None


def _emit(
    rows: Sequence[Mapping[str, Any]], *, fmt: str | None, output: Path | None, stream: TextIO
) -> None:
    if fmt is None:
        if output is not None:
            fmt = "csv" if output.suffix.lower() == ".csv" else "jsonl"
        else:
            fmt = "table" if stream.isatty() else "jsonl"
    if output is None:
        try:
            write_rows(rows, fmt, stream)
            stream.flush()
        except BrokenPipeError:
            # The reader went away (`| head`): it has what it wanted, and the
            # command's exit code stays that of the rows, not an error's.
            silence_closed_pipe(stream)
        return
    with open_private(output) as handle:
        write_rows(rows, fmt, handle)


def silence_closed_pipe(stream: TextIO) -> None:
    """Point ``stream``'s file at devnull, so that no later write or the
    interpreter's final flush fails again on the closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, stream.fileno())
    os.close(devnull)


def open_private(path: Path, *, append: bool = False) -> TextIO:
    """Open ``path`` to write text (truncated, or ``append``), creating it 0600."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    existed = path.exists()
    fd = os.open(path, flags, 0o600)
    if not existed and hasattr(os, "fchmod"):
        os.fchmod(fd, 0o600)  # still empty: a umask taking the owner's bits away, undone
    return os.fdopen(fd, "w" if not append else "a", encoding="utf-8", newline="")


def write_private_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` as :func:`open_private` opens it (a report, say)."""
    with open_private(path) as handle:
        handle.write(text)


def output_path(text: str) -> Path | None:
    """The argparse type of ``-o``: a file path, or ``-`` for stdout (None, as if
    the flag were not given), as most command-line tools read it."""
    return None if text == "-" else Path(text)


def check_writable(path: Path | None, *, flag: str) -> None:
    """Fail now, before any job runs, if ``path`` cannot be written at the end
    (None, the flag not given: nothing to check).

    The file is opened to append (an existing one is left as it is); one this
    check created is removed again, so a run that fails later leaves nothing.
    """
    if path is None:
        return
    if path.is_dir():
        raise ConfigurationError(f"{flag} {path} is a folder; give a file path in it")
    if path.parent.exists() and not path.parent.is_dir():
        raise ConfigurationError(f"{flag} {path}: {path.parent} is not a folder")
    try:
        # As for a journal: missing folders are made, private to the user (0700).
        make_private_dirs(path.parent)
    except OSError as exc:
        raise ConfigurationError(
            f"{flag} {path}: folder {path.parent} cannot be made ({exc.strerror}); "
            "choose another path"
        ) from None
    existed = path.exists()
    try:
        with open_private(path, append=True):
            pass
    except OSError as exc:
        raise ConfigurationError(
            f"{flag} {path} cannot be written ({exc.strerror}); choose another path"
        ) from None
    if not existed:
        path.unlink(missing_ok=True)
