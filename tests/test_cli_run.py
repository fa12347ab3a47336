"""``messor run`` from a terminal: what it prints of stored text, and modules it cannot run."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from messor import SQLiteMemory
from tests.console import assert_one_line_error, messor

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


# -- code that exits or raises instead of giving tasks ----------------------------------------


@pytest.mark.parametrize(
    ("source", "target", "code", "words"),
    [
        ("import sys\nsys.exit()\n", "script:pages", 1, ["importing script called sys.exit()"]),
        ("import sys\nsys.exit(0)\n", "script:pages", 1, ["called sys.exit(0)", "__main__"]),
        ("raise SystemExit('no API key')\n", "script:pages", 1, ["sys.exit('no API key')"]),
        ("raise KeyboardInterrupt\n", "script:pages", 130, ["importing script was interrupted"]),
        (
            "import sys\ndef pages():\n    sys.exit(0)\n",
            "script:pages",
            1,
            ["script:pages() called sys.exit(0) (", "script.py, line 3)"],
        ),
        (
            "class Stop(BaseException):\n    pass\ndef pages():\n    raise Stop('halt')\n",
            "script:pages",
            1,
            ["script:pages() raised script.Stop: halt"],
        ),
    ],
    ids=[
        "sys.exit() at import",
        "sys.exit(0) at import",
        "SystemExit(message) at import",
        "KeyboardInterrupt at import",
        "sys.exit(0) in the target function",
        "a BaseException in the target function",
    ],
)
def test_a_module_or_function_that_exits_instead_of_giving_tasks_is_an_error_naming_it(
    tmp_path: Path, source: str, target: str, code: int, words: list[str]
) -> None:
    write_module(tmp_path, "script", source)
    done = messor("run", target, cwd=tmp_path)
    assert_one_line_error(done, code, "script.py, line", "nothing ran", *words)
    assert done.stdout == ""
    assert not (tmp_path / "messor.db").exists()


GENERATOR = """
import sys
import messor

def double(n):
    return 2 * n

def pages():
    for n in range(3):
        yield messor.task(double, n)
    {ending}
"""


@pytest.mark.parametrize(
    ("ending", "words"),
    [
        ("sys.exit(3)", ["called sys.exit(3)"]),
        ("raise RuntimeError('\\x1b[2Jgone')", ["raised RuntimeError: \\x1b[2Jgone"]),
    ],
    ids=["sys.exit", "an exception holding an ANSI escape"],
)
def test_a_task_generator_that_exits_or_raises_stops_the_run_with_an_error_naming_it(
    tmp_path: Path, ending: str, words: list[str]
) -> None:
    write_module(tmp_path, "gen", GENERATOR.format(ending=ending))
    done = messor("run", "gen:pages", "-c", "1", cwd=tmp_path)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert_nothing_a_terminal_obeys(done.stderr)  # the run's log line quotes the error too
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("messor: error: gen:pages ")
    for word in [*words, "gen.py, line 11", "every task finished before is recorded"]:
        assert word in last
    assert sum(SQLiteMemory(tmp_path / "messor.db").count_by_status().values()) == 3


# -- the memory it runs into ------------------------------------------------------------------

DOUBLE = "import messor\ndef double(n):\n    return 2 * n\npages = [messor.task(double, 1)]\n"


def test_run_into_a_mistyped_url_is_an_error_naming_the_url_meant(tmp_path: Path) -> None:
    write_module(tmp_path, "double", DOUBLE)
    done = messor("run", "double:pages", "--memory", "redis//127.0.0.1:6379/0", cwd=tmp_path)
    assert_one_line_error(done, 2, "did you mean 'redis://127.0.0.1:6379/0'?")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["double.py"]


def test_run_says_which_directories_it_created_for_a_sqlite_file(tmp_path: Path) -> None:
    write_module(tmp_path, "double", DOUBLE)
    done = messor("run", "double:pages", "--memory", "runs/2024/harvest.db", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    warning = "messor: warning: Created the directories runs, runs/2024 for the SQLite file"
    assert warning in done.stderr
    again = messor("run", "double:pages", "--memory", "runs/2024/harvest.db", cwd=tmp_path)
    assert "Created" not in again.stderr
