"""Read job requests from flags, a CSV file or a JSON Lines file."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from async_orch.batch import JobRequest
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


def requests_from_file(path: Path, *, timeout: float | None = None) -> list[JobRequest]:
    """Jobs from CSV (header: folder,process,inputs[,reference]) or JSON Lines."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigurationError(f"cannot read job file {path}: {exc.strerror}") from exc
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        rows = _jsonl_rows(text, path)
    elif path.suffix.lower() == ".csv":
        rows = _csv_rows(text, path)
    else:
        raise ConfigurationError(f"job file {path} must end in .csv or .jsonl")
    requests = []
    for line_no, row in rows:
        where = f"{path}:{line_no}"
        folder = row.get("folder")
        process = row.get("process")
        if not folder or not process:
            raise ConfigurationError(f"{where}: each job needs a 'folder' and a 'process'")
        inputs = row.get("inputs")
        if isinstance(inputs, str):
            inputs = parse_input_arguments(inputs) if inputs.strip() else None
        elif inputs is not None and not isinstance(inputs, dict):
            raise InvalidRequestError(f"{where}: 'inputs' must be a JSON object")
        reference = row.get("reference") or None
        requests.append(
            JobRequest(
                process=str(process),
                folder=str(folder),
                inputs=inputs,
                reference=str(reference) if reference else None,
                timeout=timeout,
            )
        )
    if not requests:
        raise ConfigurationError(f"job file {path} holds no jobs")
    return requests


def _jsonl_rows(text: str, path: Path) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for line_no, line in enumerate(text.splitlines(), start=1):
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
    reader = csv.DictReader(text.splitlines())
    missing = {"folder", "process"} - set(reader.fieldnames or [])
    if missing:
        raise ConfigurationError(
            f"{path}: the CSV header must name folder,process[,inputs,reference]; "
            f"missing {', '.join(sorted(missing))}"
        )
    return [(i + 2, dict(row)) for i, row in enumerate(reader)]
