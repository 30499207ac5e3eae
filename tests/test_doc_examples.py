"""Every example in README.md and docs/*.md runs as written, and CI proves it (issue 15).

The fenced blocks of each page are read in order. What a fence's language means:

* ```python: run as a script in a fresh interpreter (a block with a top-level ``await``
  or ``async with`` runs as ``python -m asyncio`` would run it).
* ```sh / ```bash: run as one ``bash -e -o pipefail`` script; exit code 0 expected.
* ```console: a session. A line starting ``$ `` is a command (a trailing ``\\``
  continues it); the lines up to the next ``$ `` are its output. Each command runs in
  bash with ``pipefail``; it must exit 0, or with the code a following ``$ echo $?``
  shows. ``$ cat FILE`` of a file that is not there yet writes the lines shown to FILE
  first (that is how a reader would make it). The output is not compared line by line
  (ports, ids and timings differ), but the lines that say something stable must appear
  in what the command printed: ``error: ...``, ``check``'s ``ok``/``FAIL``/``fix:``
  lines and ``N jobs: ...`` summaries, where ``...`` (or ``word...``) stands for
  anything and any ``127.0.0.1`` port for any port.
* ``` (bare) or ```text: output, diagrams, usage: never run, so they must not hold a
  command (``$ ...``, ``async-orch ...``, ``.venv/bin/...``). ```toml: data; it must
  parse.

All blocks of a page run in one scratch directory (the page's files, say
``results.jsonl``, carry from one block to the next), with ``$HOME`` inside it, the
``async-orch`` and ``.venv/bin`` of this test's environment, and a simulator started
beforehand with ``async-orch simulator``: its ``export UIPATH_URL=... UIPATH_CLIENT_ID=...
UIPATH_CLIENT_SECRET=...`` line is in the environment (but for a command with
``--simulator``, which refuses UIPATH_URL), ``$URL`` is ``$UIPATH_URL``, and a page's
``127.0.0.1:8765`` (the port the docs start ``async-orch simulator`` on) is that
simulator's address.

An HTML comment just above a fence changes how it runs, one directive each:

* ``<!-- example: no-run (why) -->``: not run; the reason is required (a real tenant,
  a Ctrl-C at a human moment, minutes of benchmark...).
* ``<!-- example: replace "OLD" "NEW" (why) -->``: run with OLD replaced by NEW, e.g. a
  load profile shortened for CI.
* ``<!-- example: exit N -->``: each command of the console block exits with N.
* ``<!-- example: given NAME, ... -->``: a Python fragment using names the text around it
  defines (``settings``, ``requests``...); the test defines them (``GIVEN`` below).
* ``<!-- example: continues -->``: a sh block that goes on in the shell of the sh
  block before it (its variables): that one runs first, in the same script.
* ``<!-- example: server -->``: a console command that serves until stopped (the
  simulator): it is started, its banner is compared with the one shown, then stopped.

A block in a language not listed, or a ``$ `` line in an output block, fails the test:
no example can silently stop running.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN_LANGUAGES = {"python", "sh", "bash", "console"}
DATA_LANGUAGES = {"", "text", "toml"}
DOC_PORT = "127.0.0.1:8765"
COMMAND_TIMEOUT = 120.0

FENCE = re.compile(r"^(?P<indent>\s*)```(?P<language>[\w-]*)\s*$")
MARKER = re.compile(r"^\s*<!--\s*example:\s*(?P<directive>.*?)\s*-->\s*$")
DIRECTIVE = re.compile(
    r"^(?:no-run \((?P<why>.+)\)"
    r'|replace "(?P<old>[^"]+)" "(?P<new>[^"]*)" \((?P<because>.+)\)'
    r"|exit (?P<exit>\d+)"
    r"|given (?P<given>\w+(?:, \w+)*)"
    r"|(?P<continues>continues)"
    r"|(?P<server>server))$"
)
# A line of an output block that is a command a reader would run.
COMMAND_LINE = re.compile(r"^(\$ |\.venv/bin/|async-orch |python3? |curl )")
# Output lines that say something stable, so must appear in what the command printed.
CHECKED_OUTPUT = re.compile(r"^(error: |\s+(ok|FAIL)\s|\s+fix: |all checks passed|\d+ jobs?: )")

# What a ``given`` fragment may lean on: names the page's text defines around it.
GIVEN = {
    "settings": "settings = Settings.from_env()",
    "requests": (
        "requests = [JobRequest(process='Echo', folder=f, inputs={'n': i})"
        " for i, f in enumerate(['Shared', 'HR', 'Finance/Comptabilité'])]"
    ),
    "more_requests": "more_requests = [JobRequest(process='Echo', folder='Shared')]",
    "store": (
        "class _Store:\n"
        "    async def save(self, record: dict) -> None:\n"
        "        assert record['job_id']\n"
        "store = _Store()"
    ),
    "orch": "orch = await OrchestratorClient(settings).__aenter__()",
}
GIVEN_AFTER = {"orch": "await orch.aclose()"}

# Runs a block as a script; a top-level await makes the module code a coroutine.
RUNNER = """\
import ast, asyncio, sys
path = sys.argv[1]
source = open(path, encoding="utf-8").read()
code = compile(source, path, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
result = eval(code, {"__name__": "__main__", "__file__": path})
if asyncio.iscoroutine(result):
    asyncio.run(result)
"""


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    directives: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    def directive(self, name: str) -> list[re.Match[str]]:
        found = [DIRECTIVE.match(d) for d in self.directives]
        return [m for m in found if m is not None and m[name] is not None]

    @property
    def runs(self) -> bool:
        return self.language in RUN_LANGUAGES and not self.directive("why")

    def source(self) -> str:
        text = self.text
        for m in self.directive("old"):
            assert m["old"] in text, f"{self.id}: replace {m['old']!r}: not in the block"
            text = text.replace(m["old"], m["new"])
        return text


def read_blocks(path: Path) -> tuple[list[Block], list[int]]:
    """The fenced blocks of a page, and the lines of markers attached to no fence."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    attached: set[int] = set()
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        start, indent = i, len(fence["indent"])
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][indent:] if lines[i][:indent].isspace() else lines[i])
            i += 1
        i += 1
        directives: list[str] = []
        j = start - 1
        while j >= 0 and (marker := MARKER.match(lines[j])) is not None:
            directives.insert(0, marker["directive"])
            attached.add(j)
            j -= 1
        name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
        text = "\n".join(body) + "\n"
        blocks.append(Block(name, start + 1, fence["language"], text, tuple(directives)))
    orphans = [n + 1 for n, line in enumerate(lines) if MARKER.match(line) and n not in attached]
    return blocks, orphans


def all_blocks() -> list[Block]:
    return [block for page in PAGES for block in read_blocks(page)[0]]


BLOCKS = all_blocks()


# --- the rules (in-process) -------------------------------------------------------


def test_every_block_runs_or_says_why_not() -> None:
    problems: list[str] = []
    for page in PAGES:
        blocks, orphans = read_blocks(page)
        problems += [f"{page.name}:{n}: example marker with no fence below it" for n in orphans]
        for block in blocks:
            problems += _problems(block)
    assert not problems, "\n".join(problems)


def _problems(block: Block) -> list[str]:
    where = block.id
    if block.language not in RUN_LANGUAGES | DATA_LANGUAGES:
        return [f"{where}: ```{block.language}: use python, sh, console, toml or text"]
    problems = [
        f"{where}: unknown example directive {d!r} (see tests/test_doc_examples.py)"
        for d in block.directives
        if DIRECTIVE.match(d) is None
    ]
    if block.language in DATA_LANGUAGES:
        if block.directives:
            problems.append(f"{where}: example directives on a block that never runs")
        commands = [ln for ln in block.text.splitlines() if COMMAND_LINE.match(ln)]
        if commands:
            problems.append(f"{where}: {commands[0]!r} in an output block: fence it as console")
        if block.language == "toml":
            try:
                tomllib.loads(block.text)
            except tomllib.TOMLDecodeError as error:
                problems.append(f"{where}: the TOML does not parse: {error}")
    has_command = any(ln.startswith("$ ") for ln in block.text.splitlines())
    if block.language == "console" and block.runs and not has_command:
        problems.append(f"{where}: a console block with no '$ ' command")
    for m in block.directive("old"):
        if m["old"] not in block.text:
            problems.append(f"{where}: replace {m['old']!r}: not in the block")
    for name in (n for m in block.directive("given") for n in m["given"].split(", ")):
        if name not in GIVEN:
            problems.append(f"{where}: given {name}: the test does not define it (GIVEN)")
    return problems


def test_the_marker_rules_catch_an_unmarked_block(tmp_path: Path) -> None:
    page = tmp_path / "probe.md"
    text = (
        "```yaml\na: 1\n```\n\n```\n$ async-orch jobs\n```\n\n"
        "<!-- example: no-run -->\n```sh\nfalse\n```\n\n<!-- example: skip -->\n\n"
        '<!-- example: replace "30" "3" (shorter) -->\n```sh\nsleep 1\n```\n'
    )
    page.write_text(text, encoding="utf-8")
    blocks, orphans = read_blocks(page)
    problems = [p.split(": ", 1)[1] for b in blocks for p in _problems(b)]
    assert orphans == [14]
    assert len(problems) == 4, problems
    assert problems[0].startswith("```yaml: use python, sh, console")
    assert problems[1].startswith("'$ async-orch jobs' in an output block")
    assert problems[2].startswith("unknown example directive 'no-run'")
    assert problems[3] == "replace '30': not in the block"


# --- running them (slow: they start processes) ------------------------------------


@dataclass
class Sandbox:
    """One page's scratch directory and environment."""

    cwd: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def simulator_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """``async-orch simulator`` on a free port, as a reader starts it; its export line."""
    bin_dir = Path(sys.executable).parent
    process = subprocess.Popen(
        [bin_dir / "async-orch", "simulator", "--port", "0", "--time-scale", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=_clean_env(tmp_path_factory.mktemp("simhome")),
    )  # fmt: skip
    assert process.stdout is not None
    exports: dict[str, str] = {}
    for line in process.stdout:  # the banner ends with the Try: section
        if line.strip().startswith("export UIPATH_URL="):
            exports = dict(item.split("=", 1) for item in shlex.split(line.strip())[1:])
            break
    assert exports, "async-orch simulator printed no export line"
    # Keep reading what it prints, so a full pipe never blocks it.
    threading.Thread(target=process.stdout.read, daemon=True).start()
    try:
        yield exports
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)


def _clean_env(home: Path) -> dict[str, str]:
    """This environment without the user's settings: no UIPATH_*, ASYNC_ORCH_*, XDG_*."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("UIPATH_", "ASYNC_ORCH_", "XDG_")) and "PROXY" not in k.upper()
    }
    env["HOME"] = str(home)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


class Sandboxes:
    """One scratch directory and environment per page, made when first asked for."""

    def __init__(self, root: Path, simulator_env: dict[str, str]) -> None:
        self.root = root
        self.simulator_env = simulator_env
        self.made: dict[str, Sandbox] = {}

    def __getitem__(self, page: str) -> Sandbox:
        if page not in self.made:
            cwd = self.root / page.replace("/", "_")
            (cwd / "home").mkdir(parents=True)
            (cwd / ".venv").mkdir()
            (cwd / ".venv" / "bin").symlink_to(Path(sys.executable).parent)
            env = _clean_env(cwd / "home") | self.simulator_env
            env["URL"] = self.simulator_env["UIPATH_URL"]
            env["ASYNC_ORCH_WEBHOOK_SECRET"] = "example-webhook-secret"
            self.made[page] = Sandbox(cwd, env)
        return self.made[page]


@pytest.fixture(scope="module")
def sandboxes(tmp_path_factory: pytest.TempPathFactory, simulator_env: dict[str, str]) -> Sandboxes:
    return Sandboxes(tmp_path_factory.mktemp("pages"), simulator_env)


def _address(env: dict[str, str]) -> str:
    return env["UIPATH_URL"].split("/")[2]


def _run(command: list[str], sandbox: Sandbox) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=sandbox.cwd, env=sandbox.env, capture_output=True, text=True,
        timeout=COMMAND_TIMEOUT, check=False,
    )  # fmt: skip


def _for(command: str, sandbox: Sandbox) -> Sandbox:
    """``--simulator`` refuses UIPATH_URL: a reader who uses it has none set."""
    if "--simulator" not in command:
        return sandbox
    env = {k: v for k, v in sandbox.env.items() if not k.startswith("UIPATH_")}
    return Sandbox(sandbox.cwd, env)


def _python_source(block: Block) -> str:
    names = [n for m in block.directive("given") for n in m["given"].split(", ")]
    if not names:
        return block.source()
    before = ["import asyncio", "from async_orch import *"] + [GIVEN[n] for n in names]
    after = [GIVEN_AFTER[n] for n in names if n in GIVEN_AFTER]
    return "\n".join([*before, block.source(), *after]) + "\n"


@pytest.mark.slow
@pytest.mark.parametrize(
    "block", [b for b in BLOCKS if b.runs and b.language == "python"], ids=lambda b: b.id
)
def test_python_example(block: Block, sandboxes: Sandboxes) -> None:
    sandbox = sandboxes[block.page]
    script = sandbox.cwd / f"example_{block.line}.py"
    script.write_text(_python_source(block).replace(DOC_PORT, _address(sandbox.env)))
    done = _run([sys.executable, "-c", RUNNER, str(script)], sandbox)
    assert done.returncode == 0, f"{block.id} failed:\n{done.stdout[-3000:]}{done.stderr[-5000:]}"


@pytest.mark.slow
def test_the_first_readme_example_raises_on_a_wrong_secret(sandboxes: Sandboxes) -> None:
    """Issue 15: the README's first example, against a simulator with a wrong secret,
    raises AuthenticationError rather than printing not_started 300 times."""
    block = next(b for b in BLOCKS if b.page == "README.md" and b.language == "python")
    sandbox = sandboxes["README.md"]
    script = sandbox.cwd / "first_example_wrong_secret.py"
    script.write_text(block.source())
    env = sandbox.env | {"UIPATH_CLIENT_SECRET": "wrong-secret"}
    done = _run([sys.executable, str(script)], Sandbox(sandbox.cwd, env))
    assert done.returncode == 1
    assert done.stdout == ""
    assert "AuthenticationError: " in done.stderr.splitlines()[-1], done.stderr


@dataclass(frozen=True)
class Command:
    text: str
    output: list[str]
    exit_code: int


def console_commands(block: Block) -> list[Command]:
    """The commands of a console block, with their output and expected exit code."""
    default = int(block.directive("exit")[0]["exit"]) if block.directive("exit") else 0
    commands: list[Command] = []
    lines = block.source().splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            i += 1
            continue
        text = lines[i][2:]
        while text.endswith("\\") and i + 1 < len(lines):
            i += 1
            text += "\n" + lines[i]
        i += 1
        output: list[str] = []
        while i < len(lines) and not lines[i].startswith("$ "):
            output.append(lines[i])
            i += 1
        if text.strip() == "echo $?":
            assert commands, f"{block.id}: echo $? with no command before it"
            last = commands.pop()
            commands.append(Command(last.text, last.output, int(output[0])))
        else:
            commands.append(Command(text, output, default))
    return commands


def _pattern(shown: str) -> re.Pattern[str]:
    """A shown output line as a regex: ``...`` is anything, a 127.0.0.1 port any port."""
    parts = re.split(r"(\S*(?:\.\.\.|…)|127\.0\.0\.1:\d+)", shown.strip())
    regex = "".join(
        ".*?" if k % 2 and not part.startswith("127.") else
        r"127\.0\.0\.1:\d+" if k % 2 else re.escape(part)
        for k, part in enumerate(parts)
    )  # fmt: skip
    return re.compile(regex)


def _check_output(where: str, command: Command, printed: str) -> None:
    lines = [ln.strip() for ln in printed.splitlines()]
    for shown in command.output:
        if CHECKED_OUTPUT.match(shown):
            pattern = _pattern(shown)
            assert any(pattern.fullmatch(ln) for ln in lines), (
                f"{where}: `{command.text}` did not print\n  {shown.strip()}\n"
                f"it printed:\n{printed}"
            )


def _write_shown_file(command: Command, sandbox: Sandbox) -> None:
    """``$ cat FILE`` of a file not there yet: write the shown lines (how a reader makes it)."""
    words = shlex.split(command.text, comments=True)
    if len(words) == 2 and words[0] == "cat":
        name = words[1]
        home = name.startswith("~/")
        target = Path(sandbox.env["HOME"], name[2:]) if home else sandbox.cwd / name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            text = "\n".join(command.output) + "\n"
            target.write_text(text.replace(DOC_PORT, _address(sandbox.env)), encoding="utf-8")


@pytest.mark.slow
@pytest.mark.parametrize(
    "block",
    [b for b in BLOCKS if b.runs and b.language != "python" and not b.directive("server")],
    ids=lambda b: b.id,
)
def test_shell_example(block: Block, sandboxes: Sandboxes) -> None:
    sandbox = sandboxes[block.page]
    address = _address(sandbox.env)
    if block.language in {"sh", "bash"}:
        script = block.source()
        if block.directive("continues"):
            page = [b for b in BLOCKS if b.page == block.page and b.language == block.language]
            script = page[page.index(block) - 1].source() + script
        script = script.replace(DOC_PORT, address)
        done = _run(["bash", "-e", "-o", "pipefail", "-c", script], _for(script, sandbox))
        assert done.returncode == 0, (
            f"{block.id} failed:\n{done.stdout[-3000:]}{done.stderr[-5000:]}"
        )
        return
    for command in console_commands(block):
        if command.text.startswith("cat "):
            _write_shown_file(command, sandbox)
        text = command.text.replace(DOC_PORT, address)
        done = _run(["bash", "-o", "pipefail", "-c", text], _for(text, sandbox))
        printed = done.stdout + done.stderr
        assert done.returncode == command.exit_code, (
            f"{block.id}: `{command.text}` exited {done.returncode}, "
            f"not {command.exit_code}:\n{printed[-5000:]}"
        )
        _check_output(block.id, command, printed)


@pytest.mark.slow
@pytest.mark.parametrize("block", [b for b in BLOCKS if b.directive("server")], ids=lambda b: b.id)
def test_server_example(block: Block, sandboxes: Sandboxes) -> None:
    """The simulator's command as shown, on a free port: its banner is the one shown."""
    sandbox = sandboxes[block.page]
    (command,) = console_commands(block)
    process = subprocess.Popen(
        ["bash", "-c", "exec " + command.text], cwd=sandbox.cwd, env=sandbox.env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    printed: list[str] = []
    try:
        for line in process.stdout:
            printed.append(line.rstrip("\n"))
            if line.startswith("  Stats "):
                break
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
    lines = [ln.strip() for ln in printed]
    missing = [s for s in command.output if not any(_pattern(s).fullmatch(ln) for ln in lines)]
    assert not missing, f"{block.id}: not in the banner:\n" + "\n".join(missing) + "\n" + rest
