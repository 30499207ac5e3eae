""".ci/run runs exactly the README's test command (the brief's second command)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command() -> None:
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    command = [line for line in ci_lines if line.startswith("python3 -m venv .venv")]
    assert len(command) == 1, "the last step of .ci/run is the README's test command"
    readme_lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert command[0] in readme_lines, f"README.md does not give this command: {command[0]}"
    assert "pytest" in command[0]
