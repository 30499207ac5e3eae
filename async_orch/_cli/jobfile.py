"""Read job requests from flags, a CSV file or a JSON Lines file."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from async_orch._cli.textfile import read_utf8
from async_orch._errors import ConfigurationError, InvalidRequestError
from async_orch._jobs import JobRequest, summarize_mistakes
from async_orch._jsonvalues import MAX_DEPTH, loads_strict, text_problem
from async_orch._models import (
    INPUT_ARGUMENTS_MAX_LENGTH,
    parse_input_arguments,
    reference_problem,
)

__all__ = ["requests_from_file", "requests_from_flags"]


#: Most jobs one dispatch takes from --count: each is a row of the journal and a
#: request held in memory until it starts (split a larger batch into several).
MAX_COUNT = 1_000_000


def requests_from_flags(
    *,
    process: str,
    folders: Sequence[str],
    count: int,
    inputs: str | None,
    reference_prefix: str | None = None,
    timeout: float | None = None,
) -> list[JobRequest]:
    """``count`` jobs of ``process`` in each folder, spread round-robin.

    Raises:
        ConfigurationError, InvalidRequestError: a flag is wrong (the message
            names it), before anything is built.
    """
    if count < 1:
        raise ConfigurationError("--count must be at least 1")
    if count > MAX_COUNT:
        raise ConfigurationError(
            f"--count is at most {MAX_COUNT:,} in one dispatch; split the batch into several"
        )
    if not folders:
        raise ConfigurationError(
            "give at least one --folder (a folder path like 'Shared'), "
            "or a default folder (UIPATH_FOLDER_PATH or the profile's folder)"
        )
    texts = [("--process", process), ("--reference-prefix", reference_prefix or "")]
    for flag, text in [*texts, *(("--folder", folder) for folder in folders)]:
        if (problem := text_problem(text)) is not None:
            raise ConfigurationError(f"{flag} {problem}")
    if "" in folders:
        raise ConfigurationError("--folder must not be empty: give a folder path like 'Shared'")
    try:
        parsed = parse_input_arguments(inputs) if inputs is not None else None
        # Every request carries the same inputs: checking one checks them all.
        JobRequest(process=process, folder=folders[0], inputs=parsed).check()
    except InvalidRequestError as exc:
        raise InvalidRequestError(f"--inputs: {exc}") from None
    # The longest Reference, counted as Orchestrator counts (UTF-16 units), checked once.
    if reference_prefix and (problem := reference_problem(f"{reference_prefix}-{count - 1}")):
        raise ConfigurationError(f"--reference-prefix is too long: the last Reference {problem}")
    requests = []
    for i in range(count):
        folder = folders[i % len(folders)]
        reference = f"{reference_prefix}-{i}" if reference_prefix else None
        requests.append(
            JobRequest(
                process=process, folder=folder, inputs=parsed, reference=reference, timeout=timeout
            )
        )
    return requests


#: Columns (CSV) or keys (JSON Lines) of a job file; folder and process are required.
FILE_FIELDS = ("folder", "process", "inputs", "reference")


def requests_from_file(path: Path, *, timeout: float | None = None) -> list[JobRequest]:
    """Jobs from CSV (header: folder,process[,inputs][,reference]) or JSON Lines.

    Anything else in a file (another column or key, a CSV row with more values
    than the header) is refused rather than ignored: a ``timeout`` column would
    otherwise look as if it applied. Every job is checked as the library checks
    a batch (:meth:`JobRequest.check`), so a file is taken whole or not at all.

    Raises:
        ConfigurationError: the file cannot be read or its header is wrong; or
            its jobs hold mistakes: one line each (``file:line: what to fix``),
            the first 20 and how many more.
    """
    hint = _EXCEL_HINT if path.suffix.lower() == ".csv" else ""
    text = read_utf8(path, "job file", hint=hint)
    mistakes: list[tuple[int, str]] = []  # (line, what is wrong there)
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        rows = _jsonl_rows(text, path, mistakes)
    elif path.suffix.lower() == ".csv":
        rows = _csv_rows(text, path, mistakes)
    else:
        raise ConfigurationError(f"job file {path} must end in .csv or .jsonl")
    requests = []
    line_of_reference: dict[str, int] = {}
    for line_no, row in rows:
        try:
            request = _request(row, timeout)
            request.check()
        except (ConfigurationError, InvalidRequestError) as exc:
            mistakes.append((line_no, str(exc)))
            continue
        if request.reference is not None:
            first = line_of_reference.setdefault(request.reference, line_no)
            if first != line_no:
                mistakes.append(
                    (
                        line_no,
                        f"reference {request.reference!r} is also on line {first}; "
                        "References must be unique, so a lost start can be found again",
                    )
                )
                continue
        requests.append(request)
    if mistakes:
        lines = [f"{path}:{line_no}: {what}" for line_no, what in sorted(mistakes)]
        raise ConfigurationError(summarize_mistakes(lines, str(path)))
    if not requests:
        raise ConfigurationError(f"job file {path} holds no jobs")
    return requests


_EXCEL_HINT = " (in Excel: Save As, file type 'CSV UTF-8')"


def _request(row: dict[str, Any], timeout: float | None) -> JobRequest:
    """The job of one row (whose JSON is checked already, see :func:`loads_strict`)."""
    _refuse_unknown(list(row), "key")
    folder, process = row.get("folder"), row.get("process")
    if folder is None or folder == "" or process is None or process == "":
        raise ConfigurationError("each job needs a 'folder' and a 'process'")
    if not isinstance(process, str):
        raise ConfigurationError(
            f"'process' must be a string (the process name), not {_shown(process)}"
        )
    if isinstance(folder, bool) or not isinstance(folder, str | int):
        raise ConfigurationError(
            "'folder' must be a string (its path or Key) or an integer (its Id), "
            f"not {_shown(folder)}"
        )
    reference = row.get("reference")
    if reference is not None and not isinstance(reference, str):
        raise ConfigurationError(f"'reference' must be a string, not {_shown(reference)}")
    inputs = row.get("inputs")
    if isinstance(inputs, str):
        text = inputs
        try:
            inputs = parse_input_arguments(text) if text.strip() else None
        except InvalidRequestError as exc:
            if "\n" not in text:
                raise
            # In a CSV file, most likely a quote left open: the rows after it were read
            # into this value, up to the next quote.
            raise InvalidRequestError(
                f"{exc} (this value runs over several lines: is a quote left open?)"
            ) from None
    elif inputs is not None and not isinstance(inputs, dict):
        raise InvalidRequestError(f"'inputs' must be a JSON object, not {_shown(inputs)}")
    return JobRequest(
        process=process,
        folder=folder,
        inputs=inputs,
        reference=reference or None,
        timeout=timeout,
    )


def _refuse_unknown(names: Sequence[str], noun: str) -> None:
    unknown = [name for name in names if name not in FILE_FIELDS]
    if unknown:
        raise ConfigurationError(
            f"unknown {noun}{'' if len(unknown) == 1 else 's'} "
            f"{', '.join(repr(n) for n in unknown)}; a job has only {', '.join(FILE_FIELDS)} "
            "(--job-timeout sets a timeout for every job)"
        )


def _shown(value: Any) -> str:
    """A value as the file has it (JSON), cut short."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:39] + "…"


def _jsonl_rows(
    text: str, path: Path, mistakes: list[tuple[int, str]]
) -> list[tuple[int, dict[str, Any]]]:
    """The rows of a JSON Lines file; a line that is not a JSON object goes to ``mistakes``."""
    rows = []
    # Split on newlines only: str.splitlines() would also split inside a JSON
    # string holding U+2028 (valid JSON); a "\r" left over is JSON whitespace.
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            # One level more than inputs may have: the row holds them.
            row = loads_strict(line, max_depth=MAX_DEPTH + 1)
        except InvalidRequestError as exc:
            mistakes.append((line_no, str(exc)))
            continue
        if not isinstance(row, dict):
            mistakes.append((line_no, "each line must be a JSON object"))
            continue
        if isinstance(row.get("inputs"), str):  # text holding JSON is CSV's way, not this
            mistakes.append(
                (
                    line_no,
                    f"'inputs' must be a JSON object, not text ({_shown(row['inputs'])}); "
                    'write "inputs": {"a": 1}, without quotes around the object',
                )
            )
            continue
        rows.append((line_no, row))
    return rows


def _csv_rows(
    text: str, path: Path, mistakes: list[tuple[int, str]]
) -> list[tuple[int, dict[str, Any]]]:
    """The rows of a CSV file; a malformed row goes to ``mistakes``, and so does a
    CSV error, which ends the reading (the parser cannot go on past it)."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = reader.fieldnames or []
    except csv.Error as exc:
        raise ConfigurationError(f"{path}:{reader.reader.line_num}: {_csv_problem(exc)}") from None
    missing = {"folder", "process"} - set(header)
    if missing:
        raise ConfigurationError(
            f"{path}: the CSV header must name folder,process[,inputs,reference]; "
            f"missing {', '.join(sorted(missing))}"
        )
    try:
        _refuse_unknown(header, "CSV column")
    except ConfigurationError as exc:
        raise ConfigurationError(f"{path}: {exc}") from None
    rows = []
    while True:
        line_before = reader.reader.line_num
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            # The inner reader's count: DictReader's own is set only once a row is read.
            mistakes.append((reader.reader.line_num, _csv_problem(exc)))
            if reader.reader.line_num == line_before:
                break  # read nothing more: going on would not get further
            continue  # the reader starts over at the next line: keep checking
        # line_num: the line the row ends on, counting blank lines and the header.
        extra = row.pop(None, None)
        if extra is not None:
            mistakes.append(
                (
                    reader.line_num,
                    f"{len(header) + len(extra)} values but the header names {len(header)} "
                    "columns; quote a value holding commas, doubling its quotes: "
                    '"{""n"": 1, ""m"": 2}"',
                )
            )
            continue
        if "\n" in (row.get("folder") or "") + (row.get("process") or ""):
            # No folder or process name holds a line break: a quote was left open.
            mistakes.append(
                (
                    line_before + 1,
                    f"a quote opened on this line is never closed (the value runs to line "
                    f"{reader.line_num}); close it, doubling any quote inside a value",
                )
            )
            continue
        rows.append((reader.line_num, dict(row)))
    return rows


def _csv_problem(exc: csv.Error) -> str:
    if "field larger than field limit" in str(exc):
        return (
            f"a value is longer than {csv.field_size_limit():,} characters, far more than a "
            f"job takes (inputs: at most {INPUT_ARGUMENTS_MAX_LENGTH:,}); look for a quote "
            "that is opened and never closed"
        )
    return f"not valid CSV ({exc}); quote values holding commas or quotes, doubling the quotes"
