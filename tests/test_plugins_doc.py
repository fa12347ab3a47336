"""docs/plugins.md's promises: its walk-through is the real examples/messor-folder, and works.

The contract itself runs on the walk-through memory from its own test file
(examples/messor-folder/tests/test_folder.py, in the suite's testpaths),
against the distribution installed as a user installs it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import messor
from messor.plugin import COMPLETED, FAILED, PENDING, EncodedUpdate
from tests.console import messor as run_messor

ROOT = Path(__file__).resolve().parents[1]
DOCS = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")
EXAMPLE = ROOT / "examples" / "messor-folder"


def titled_blocks(text: str) -> dict[str, str]:
    """The fenced code blocks of ``text`` that name their file: ```python title="path"."""
    return dict(re.findall(r'^```\w+ title="([^"]+)"\n(.*?)^```$', text, re.S | re.M))


def test_the_walk_through_shows_every_file_of_examples_messor_folder_as_it_is() -> None:
    blocks = titled_blocks(DOCS)
    assert set(blocks) == {
        "pyproject.toml",
        "src/messor_folder/plugin.py",
        "src/messor_folder/memory.py",
        "tests/test_folder.py",
    }
    for path, shown in blocks.items():
        assert shown == (EXAMPLE / path).read_text(encoding="utf-8"), path
    # The rest of the layout the page draws: the license and two empty files.
    found = (p.relative_to(EXAMPLE) for p in EXAMPLE.rglob("*") if p.is_file())
    # Caches that tools leave (.ruff_cache, __pycache__) are no part of it.
    files = {str(p) for p in found if not any(n.startswith((".", "__")) for n in p.parts[:-1])}
    assert files == {
        *blocks,
        "LICENSE",
        "src/messor_folder/__init__.py",
        "src/messor_folder/py.typed",
    }
    assert (EXAMPLE / "src/messor_folder/__init__.py").read_text() == ""


def test_the_walk_through_memory_has_the_lines_the_page_says_under_150() -> None:
    lines = len((EXAMPLE / "src/messor_folder/memory.py").read_text().splitlines())
    said = re.search(r"one small file per task, in (\d+) lines", DOCS)
    assert said, "docs/plugins.md no longer says how long the walk-through memory is"
    assert int(said.group(1)) == lines < 150


def test_the_readme_points_to_the_page_and_quotes_the_walk_through() -> None:
    section = README.split("## Writing a memory plugin", 1)[1].split("\n## ", 1)[0]
    assert "docs/plugins.md" in section
    pyproject = (EXAMPLE / "pyproject.toml").read_text(encoding="utf-8")
    for block in re.findall(r"```toml\n(.*?)```", section, re.S):
        assert block in pyproject


# -- installed as a user installs it ---------------------------------------------------


def test_the_installed_walk_through_is_listed_and_opened_by_url_or_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listing = json.loads(run_messor("backends", "--json", cwd=tmp_path).stdout)
    [folder] = [row for row in listing["backends"] if row["name"] == "folder"]
    assert (folder["distribution"], folder["schemes"]) == ("messor-folder", ["folder://"])
    monkeypatch.chdir(tmp_path)
    with messor.open_memory("folder:///harvest") as by_url:
        by_url.store_tasks([("a", {"url": "https://example.org"})])
    with messor.open_memory("folder", path="harvest") as by_name:
        assert type(by_name).__name__ == "FolderMemory"
        assert by_name.dump_all()["task_definitions"] == {"a": {"url": "https://example.org"}}
    with messor.open_memory(f"folder:///{tmp_path}/harvest") as absolute:
        assert absolute.get_pending_tasks() == ["a"]


def test_inspecting_a_directory_where_no_harvest_ran_is_refused_not_shown_empty(
    tmp_path: Path,
) -> None:
    done = run_messor("status", "--memory", "folder:///harvset", cwd=tmp_path)
    assert done.returncode == 2
    assert "There is no folder memory at harvset" in done.stderr
    assert not (tmp_path / "harvset").exists()


#: Resets every task not completed, as `messor retry` in another terminal would, until told to stop.
RESETTER = """
import sys
from pathlib import Path

from messor_folder.memory import FolderMemory

memory = FolderMemory(sys.argv[1])
ids = [f"race-{i}" for i in range(int(sys.argv[3]))]
while not Path(sys.argv[2]).exists():
    print("resetting", flush=True)
    memory.reset_tasks(ids, only_from={"pending", "failed"})
"""


@pytest.mark.slow
def test_resets_in_another_process_never_undo_a_completion_recorded_meanwhile(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # The page says the lock of each write keeps processes apart, from its
    # look-up to its last rename: a reset that read a task as failed must not
    # write it back to pending over the completion a harvest just recorded.
    from messor_folder.memory import FolderMemory

    memory = FolderMemory(tmp_path / "harvest")
    request.addfinalizer(memory.close)
    ids = [f"race-{i}" for i in range(60)]
    memory.store_tasks([(i, {}) for i in ids])
    memory.update_task_statuses([(i, FAILED, None, "E") for i in ids])
    stop = tmp_path / "stop"
    command = [sys.executable, "-c", RESETTER, str(memory.path), str(stop), str(len(ids))]
    resetter = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert resetter.stdout is not None
    try:
        for i in ids:
            assert resetter.stdout.readline() == "resetting\n"  # a reset is under way
            memory.record_outcomes([EncodedUpdate(i, COMPLETED, f'"{i}"', None, 1)])
    finally:
        stop.touch()
        resetter.communicate(timeout=120)
    assert resetter.returncode == 0
    assert memory.count_by_status() == {PENDING: 0, COMPLETED: len(ids), FAILED: 0}
    assert all(memory.get_task_result(i) == i for i in ids)
