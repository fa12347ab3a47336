"""``messor run`` from a terminal: what it prints of stored text, and modules it cannot run."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from messor import SQLiteMemory
from tests.console import messor

pytestmark = pytest.mark.slow

#: Tasks whose ids and errors hold what a terminal obeys: clear screen, colour, title, bell.
HOSTILE = """
import messor

class Page:
    def __init__(self, n):
        self.n = n

    def get_id(self):
        return f"page\\x1b[2J{self.n}"

    def __call__(self):
        raise ValueError(f"bad\\x1b]0;pwned\\x07 page\\r\\x1b[31m{self.n}\\nsecond line")

pages = [Page(n) for n in range(3)]
"""
CONTROL = ("\x1b", "\x07", "\r")


def write_module(directory: Path, name: str, source: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")


def assert_nothing_a_terminal_obeys(text: str) -> None:
    for character in CONTROL:
        assert character not in text, repr(text)


def test_run_escapes_ids_and_errors_in_its_summary_and_stop_reason(tmp_path: Path) -> None:
    write_module(tmp_path, "hostile", HOSTILE)
    done = messor(
        "run", "hostile:pages", "-c", "1", "--retry", "0", "--stop-after-failures", "2",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert_nothing_a_terminal_obeys(done.stdout + done.stderr)
    # Escaped, not dropped: the summary lists each failure, the stop says why.
    assert "page\\x1b[2J0 after 1 attempt: ValueError: bad\\x1b]0;pwned\\x07" in done.stdout
    assert "Stopped early: stop_all_when: 2 attempts failed in a row" in done.stdout
    assert "\\r\\x1b[31m1\\nsecond line" in done.stdout
    stored = dict(SQLiteMemory(tmp_path / "messor.db").get_failed_tasks())
    assert stored["page\x1b[2J0"] == "ValueError: bad\x1b]0;pwned\x07 page\r\x1b[31m0\nsecond line"
