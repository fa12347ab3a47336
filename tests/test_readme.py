"""The README's promises: its quickstart runs verbatim, and its example harvest resumes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from messor import SQLiteMemory

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
EXAMPLE = ROOT / "examples" / "harvest.py"


def code_block_after(marker: str, language: str = "") -> str:
    """The first fenced code block after ``marker`` in the README."""
    found = re.search(re.escape(marker) + rf".*?```{language}\n(.*?)```", README, re.S)
    assert found, f"no ```{language} block after {marker!r} in README.md"
    return found.group(1)


def test_the_quickstart_runs_verbatim_and_prints_what_the_readme_says(
    capsys: pytest.CaptureFixture[str],
) -> None:
    quickstart = code_block_after("## Quickstart", "python")
    exec(compile(quickstart, "README.md", "exec"), {"__name__": "readme"})
    assert capsys.readouterr().out == code_block_after("which prints")
    exec(compile(quickstart, "README.md", "exec"), {"__name__": "readme"})
    assert capsys.readouterr().out == code_block_after("which prints")
    assert len(SQLiteMemory("tasks.db").get_completed_tasks()) == 10


def test_the_readme_gives_the_two_commands_for_a_fresh_machine() -> None:
    commands = code_block_after("## Try it", "sh")
    assert "python3 dev.py example" in commands
    assert "python3 dev.py test" in commands
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "python3 dev.py test" in ci


def run_example(cwd: Path, *, interrupt_after: float | None = None) -> tuple[int, str]:
    child = subprocess.Popen(
        [sys.executable, str(EXAMPLE)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    if interrupt_after is not None:
        time.sleep(interrupt_after)
        child.send_signal(signal.SIGINT)
    out, _ = child.communicate(timeout=120)
    return child.returncode, out


def counts(output: str) -> dict[str, int]:
    return {k.lower(): int(v) for k, v in re.findall(r"^(\w+) tasks: (\d+)$", output, re.M)}


@pytest.mark.slow
def test_the_example_harvest_stops_on_ctrl_c_and_the_next_run_resumes(tmp_path: Path) -> None:
    code, out = run_example(tmp_path, interrupt_after=1.5)
    assert code == 130, out
    assert "Interrupted" in out
    interrupted = counts(out)
    assert 0 < interrupted["completed"] < 400
    assert sum(interrupted.values()) == 400

    code, out = run_example(tmp_path)
    assert code == 0, out
    done = re.search(r"(\d+) already done in an earlier run", out)
    assert done, out
    assert int(done.group(1)) == interrupted["completed"]
    final = counts(out)
    assert final["pending"] == 0
    assert final["completed"] + final["failed"] == 400
    assert final["completed"] > 350


@pytest.mark.slow
def test_the_terminal_session_of_the_readme_runs_and_prints_what_it_shows(tmp_path: Path) -> None:
    session = code_block_after("## From the terminal", "console")
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "harvest.py").write_bytes(EXAMPLE.read_bytes())
    env = {k: v for k, v in os.environ.items() if k != "MESSOR_MEMORY"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    commands = re.findall(r"^\$ (.*)\n((?:(?!\$ ).*\n)*)", session, re.M)
    assert len(commands) == 7
    for command, shown in commands:
        done = subprocess.run(
            command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == (1 if command.startswith("messor run") else 0), done.stderr
        assert re.fullmatch(shown_as_pattern(shown), done.stdout), (command, done.stdout)


def shown_as_pattern(shown: str) -> str:
    """A regular expression for output the README shows with its numbers and "..." elided.

    Numbers vary with the fake site's random timeouts; "..." stands for any
    text, and a line of "  ..." alone for any number of lines. Which pages
    failed, and how, varies too: a line naming a page stands for any page.
    """
    lines = []
    for line in shown.splitlines():
        if line.strip() == "...":
            lines.append(r"(?:.*\n)*?")
            continue
        if "/page/" in line:
            line = line[: line.index("/page/")] + "/page/..."
        pattern = re.escape(line).replace(re.escape("..."), ".*")
        lines.append(re.sub(r"\d+(?:\\\.\d+)?", r"\\d+(?:\\.\\d+)?", pattern) + r"\n")
    return "".join(lines)
