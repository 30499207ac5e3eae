"""Read job requests from flags, a CSV file or a JSON Lines file."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from async_orch.batch import JobRequest
from async_orch.cli.textfile import read_utf8
from async_orch.errors import ConfigurationError, InvalidRequestError
from async_orch.models import parse_input_arguments

__all__ = ["requests_from_file", "requests_from_flags"]


def requests_from_flags(
    *,
    process: str,
    folders: Sequence[str],
    count: int,
    inputs: str | None,
    reference_prefix: str | None = None,
    timeout: float | None = None,
) -> list[JobRequest]:
    """``count`` jobs of ``process`` in each folder, spread round-robin."""
    if count < 1:
        raise ConfigurationError("--count must be at least 1")
    if not folders:
        raise ConfigurationError("give at least one --folder (a folder path like 'Shared')")
    parsed = parse_input_arguments(inputs) if inputs is not None else None
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
    otherwise look as if it applied.
    """
    hint = _EXCEL_HINT if path.suffix.lower() == ".csv" else ""
    text = read_utf8(path, "job file", hint=hint)
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        rows = _jsonl_rows(text, path)
    elif path.suffix.lower() == ".csv":
        rows = _csv_rows(text, path)
    else:
        raise ConfigurationError(f"job file {path} must end in .csv or .jsonl")
    requests = [_request(row, f"{path}:{line_no}", timeout) for line_no, row in rows]
    if not requests:
        raise ConfigurationError(f"job file {path} holds no jobs")
    return requests


_EXCEL_HINT = " (in Excel: Save As, file type 'CSV UTF-8')"


def _request(row: dict[str, Any], where: str, timeout: float | None) -> JobRequest:
    _refuse_unknown(list(row), where, "key")
    folder, process = row.get("folder"), row.get("process")
    if folder is None or folder == "" or process is None or process == "":
        raise ConfigurationError(f"{where}: each job needs a 'folder' and a 'process'")
    if not isinstance(process, str):
        raise ConfigurationError(
            f"{where}: 'process' must be a string (the process name), not {_shown(process)}"
        )
    if isinstance(folder, bool) or not isinstance(folder, str | int):
        raise ConfigurationError(
            f"{where}: 'folder' must be a string (its path or Key) or an integer (its Id), "
            f"not {_shown(folder)}"
        )
    reference = row.get("reference")
    if reference is not None and not isinstance(reference, str):
        raise ConfigurationError(f"{where}: 'reference' must be a string, not {_shown(reference)}")
    inputs = row.get("inputs")
    if isinstance(inputs, str):
        try:
            inputs = parse_input_arguments(inputs) if inputs.strip() else None
        except InvalidRequestError as exc:
            raise InvalidRequestError(f"{where}: {exc}") from None
    elif inputs is not None and not isinstance(inputs, dict):
        raise InvalidRequestError(f"{where}: 'inputs' must be a JSON object, not {_shown(inputs)}")
    return JobRequest(
        process=process,
        folder=folder,
        inputs=inputs,
        reference=reference or None,
        timeout=timeout,
    )


def _refuse_unknown(names: Sequence[str], where: str, noun: str) -> None:
    unknown = [name for name in names if name not in FILE_FIELDS]
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown {noun}{'' if len(unknown) == 1 else 's'} "
            f"{', '.join(repr(n) for n in unknown)}; a job has only {', '.join(FILE_FIELDS)} "
            "(--job-timeout sets a timeout for every job)"
        )


def _shown(value: Any) -> str:
    """A value as the file has it (JSON), cut short."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:39] + "…"


def _jsonl_rows(text: str, path: Path) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    # Split on newlines only: str.splitlines() would also split inside a JSON
    # string holding U+2028 (valid JSON); a "\r" left over is JSON whitespace.
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{path}:{line_no}: not valid JSON: {exc.msg}") from exc
        if not isinstance(row, dict):
            raise ConfigurationError(f"{path}:{line_no}: each line must be a JSON object")
        rows.append((line_no, row))
    return rows


def _csv_rows(text: str, path: Path) -> list[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    missing = {"folder", "process"} - set(header)
    if missing:
        raise ConfigurationError(
            f"{path}: the CSV header must name folder,process[,inputs,reference]; "
            f"missing {', '.join(sorted(missing))}"
        )
    _refuse_unknown(header, str(path), "CSV column")
    rows = []
    for row in reader:
        # line_num: the line the row ends on, counting blank lines and the header.
        where = f"{path}:{reader.line_num}"
        extra = row.pop(None, None)
        if extra is not None:
            raise ConfigurationError(
                f"{where}: {len(header) + len(extra)} values but the header names "
                f"{len(header)} columns; quote a value holding commas, doubling its quotes: "
                '"{""n"": 1, ""m"": 2}"'
            )
        rows.append((reader.line_num, dict(row)))
    return rows
