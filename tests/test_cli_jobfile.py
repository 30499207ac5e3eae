"""Job files (`dispatch --file`): what is read, and every mistake refused with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_harness import write_file

from async_orch._cli.jobfile import requests_from_file, requests_from_flags
from async_orch._errors import ConfigurationError, InvalidRequestError
from async_orch._jobs import JobRequest


def _file(tmp_path: Path, name: str, content: str | bytes) -> Path:
    return write_file(tmp_path, name, content)


def test_csv_and_jsonl_give_the_same_requests(tmp_path: Path) -> None:
    csv_file = _file(
        tmp_path,
        "jobs.csv",
        'folder,process,inputs,reference\nShared,Echo,"{""n"": 1}",r-1\nHR,Echo,,\n',
    )
    jsonl_file = _file(
        tmp_path,
        "jobs.jsonl",
        '{"folder": "Shared", "process": "Echo", "inputs": {"n": 1}, "reference": "r-1"}\n'
        '{"folder": "HR", "process": "Echo"}\n',
    )
    expected = [
        JobRequest(process="Echo", folder="Shared", inputs={"n": 1}, reference="r-1", timeout=5),
        JobRequest(process="Echo", folder="HR", timeout=5),
    ]
    assert requests_from_file(csv_file, timeout=5) == expected
    assert requests_from_file(jsonl_file, timeout=5) == expected


def test_a_folder_id_stays_an_integer(tmp_path: Path) -> None:
    path = _file(tmp_path, "jobs.jsonl", '{"folder": 3, "process": "Echo"}\n')
    assert requests_from_file(path) == [JobRequest(process="Echo", folder=3)]


def test_a_utf8_bom_as_excel_writes_it_is_accepted(tmp_path: Path) -> None:
    path = _file(tmp_path, "jobs.csv", "\ufefffolder,process\nComptabilité,Echo\n".encode())
    assert requests_from_file(path) == [JobRequest(process="Echo", folder="Comptabilité")]


def test_lines_after_a_csv_value_over_the_field_limit_are_still_checked(
    tmp_path: Path,
) -> None:
    big = "x" * 140_000
    content = f'folder,process,inputs\nShared,Echo,"{big}"\nHR,Echo,{{n: 1}}\nHR\n'
    path = _file(tmp_path, "jobs.csv", content)
    with pytest.raises(ConfigurationError) as caught:
        requests_from_file(path)
    lines = str(caught.value).splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [f"{path}:{n}" for n in (2, 3, 4)]
    assert "a value is longer than 131,072 characters" in lines[0]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("excel.csv", "folder,process,inputs\nShared,Echo,\"{\"\"c\"\": \"\"café\"\"}\"\n"
         .encode("cp1252"),
         "job file {path} is not UTF-8 text (byte 0xe9 on line 2); save it as UTF-8 "
         "(in Excel: Save As, file type 'CSV UTF-8')"),
        ("jobs.jsonl", '{"folder": "Shared", "process": "Caf\u00e9"}\n'.encode("latin-1"),
         "job file {path} is not UTF-8 text (byte 0xe9 on line 1); save it as UTF-8"),
        ("jobs.csv", "folder,process,timeout\nShared,Echo,30\n",
         "{path}: unknown CSV column 'timeout'; a job has only folder, process, inputs, "
         "reference (--job-timeout sets a timeout for every job)"),
        ("jobs.csv", "folder,process,Priority,robot\nShared,Echo,High,r\n",
         "{path}: unknown CSV columns 'Priority', 'robot'; a job has only folder, process"),
        ("jobs.csv", 'folder,process,inputs\nShared,Echo,{"n": 1, "m": 2}\n',
         "{path}:2: 4 values but the header names 3 columns; quote a value holding commas"),
        # Blank lines count: the error names the line the editor shows.
        ("jobs.csv", "folder,process,inputs\n\nShared,Echo,\n\n\nHR,Echo,{n: 1}\n",
         "{path}:6: InputArguments must be a JSON object"),
        ("jobs.csv", "folder,process\nShared,Echo\n\nHR\n", "{path}:4: each job needs a 'folder'"),
        ("jobs.jsonl", '\n{"folder": "Shared", "process": "Echo", "inputs": "[1]"}\n',
         "{path}:2: 'inputs' must be a JSON object, not text (\"[1]\")"),
        ("jobs.jsonl", '{"folder": "Shared", "process": "Echo", "inputs": "{\\"a\\": 1}"}\n',
         "{path}:1: 'inputs' must be a JSON object, not text"),
        ("jobs.jsonl", '{"folder": "Shared", "process": "Echo", "timeout": 30}\n',
         "{path}:1: unknown key 'timeout'; a job has only folder, process, inputs, reference"),
        ("jobs.jsonl", '{"folder": "Shared", "process": ["Echo"]}\n',
         "{path}:1: 'process' must be a string (the process name), not [\"Echo\"]"),
        ("jobs.jsonl", '{"folder": {"path": "Shared"}, "process": "Echo"}\n',
         "{path}:1: 'folder' must be a string (its path or Key) or an integer (its Id), "
         'not {"path": "Shared"}'),
        ("jobs.jsonl", '{"folder": true, "process": "Echo"}\n', "'folder' must be a string"),
        ("jobs.jsonl", '{"folder": "Shared", "process": "Echo", "reference": 7}\n',
         "{path}:1: 'reference' must be a string, not 7"),
        ("jobs.jsonl", '{"folder": "Shared", "process": "Echo", "inputs": [1]}\n',
         "{path}:1: 'inputs' must be a JSON object, not [1]"),
        ("jobs.csv", 'folder,process,inputs\nShared,Echo,"{""n"": 1}\nHR,Echo,\nHR,Echo,\n',
         "{path}:4: InputArguments must be a JSON object, e.g. '{\"name\": \"value\"}': not "
         "valid JSON: Extra data at line 2 column 1 (char 9) (this value runs over several "
         "lines: is a quote left open?)"),
        ("jobs.csv", 'folder,process\nShared,Echo,\n\n', "{path}:2: 3 values but the header"),
    ],
    ids=["cp1252-csv", "latin1-jsonl", "unknown-column", "unknown-columns", "extra-values",
         "blank-lines", "short-row", "inputs-line", "inputs-json-text", "unknown-key",
         "process-list", "folder-object", "folder-bool", "reference-number", "inputs-list",
         "open-quote", "trailing-comma"],
)  # fmt: skip
def test_a_bad_job_file_is_refused_naming_file_and_line(
    tmp_path: Path, name: str, content: str | bytes, message: str
) -> None:
    path = _file(tmp_path, name, content)
    with pytest.raises((ConfigurationError, InvalidRequestError)) as caught:
        requests_from_file(path)
    assert message.replace("{path}", str(path)) in str(caught.value)


def test_a_reference_prefix_is_measured_as_orchestrator_measures_it() -> None:
    """One count of a Reference's length (UTF-16 units, as .NET): 63 emoji are 126
    units, so ``-0`` fits in 128 and ``-10`` does not, although both are short in
    Python characters."""
    prefix = "\N{GRINNING FACE}" * 63

    def flags(count: int) -> list[JobRequest]:
        return requests_from_flags(
            process="Echo", folders=["Shared"], count=count, inputs=None, reference_prefix=prefix
        )

    assert len(flags(1)) == 1
    with pytest.raises(ConfigurationError, match=r"is 129 characters; .* at most 128"):
        flags(11)


def test_a_key_given_twice_in_one_json_object_is_a_mistake_not_last_wins(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        "jobs.jsonl",
        '{"folder": "Shared", "process": "Echo", "folder": "HR"}\n'
        '{"folder": "Shared", "process": "Echo", "inputs": {"a": 1, "a": 2}}\n',
    )
    with pytest.raises(ConfigurationError) as caught:
        requests_from_file(path)
    assert "jobs.jsonl:1: the JSON gives the key 'folder' twice" in str(caught.value)
    assert "jobs.jsonl:2: the JSON gives the key 'a' twice" in str(caught.value)


def test_a_csv_quote_left_open_is_named_with_the_line_it_opens_on(tmp_path: Path) -> None:
    path = _file(tmp_path, "jobs.csv", 'folder,process\n"Shared,Echo\nShared,Echo\nHR,Echo\n')
    with pytest.raises(ConfigurationError, match=r"jobs.csv:2: a quote opened on this line is "
                       r"never closed \(the value runs to line 4\)"):  # fmt: skip
        requests_from_file(path)
