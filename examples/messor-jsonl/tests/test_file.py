"""What the contract cannot see: the file survives a reopen, a crash mid-write, a bad line."""

import json
import subprocess
import sys
from pathlib import Path

import messor
import pytest
from messor.plugin import COMPLETED, FAILED, PENDING, EncodedUpdate, TaskRecord

from messor_jsonl import JSONLMemory


def reopened(memory: JSONLMemory) -> JSONLMemory:
    memory.close()
    return JSONLMemory(memory.path)


def test_a_reopened_file_has_every_change(tmp_path: Path) -> None:
    memory = JSONLMemory(tmp_path / "tasks.jsonl")
    memory.store_tasks([("a", {"x": 1}), ("b", {}), ("c", {}), ("gone", {})])
    memory.update_task_statuses([("b", FAILED, None, "ValueError: boom")])
    memory.record_outcomes([EncodedUpdate("a", COMPLETED, '{"r":[1,null]}', None, attempts=2)])
    memory.clear_tasks(["gone"])
    before = memory.dump_all()
    memory = reopened(memory)
    assert memory.dump_all() == before
    assert TaskRecord("a", COMPLETED, {"r": [1, None]}, None, 2) in memory.iter_records()
    assert memory.count_by_status() == {PENDING: 1, COMPLETED: 1, FAILED: 1}
    memory.close()


def test_a_torn_last_line_is_dropped_and_the_file_stays_usable(tmp_path: Path) -> None:
    memory = JSONLMemory(tmp_path / "tasks.jsonl")
    memory.store_tasks([("a", {})])
    memory.close()
    with open(memory.path, "ab") as file:
        file.write(b'{"op":"set","id":"a","status":"comp')
    memory = JSONLMemory(memory.path)
    assert memory.get_task_status("a") == PENDING
    memory.update_task_statuses([("a", COMPLETED, "ok", None)])
    assert reopened(memory).get_task_result("a") == "ok"


def test_a_complete_last_line_without_its_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_bytes(b'{"op":"add","id":"a","data":{}}\n{"op":"add","id":"b","data":{}}')
    memory = JSONLMemory(path)
    memory.store_tasks([("c", {})])
    assert sorted(reopened(memory).get_pending_tasks()) == ["a", "b", "c"]


def test_a_broken_line_before_the_last_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_bytes(
        b'{"op":"add","id":"a","data":{}}\n{"op":"add","id":\n{"op":"forget","id":"a"}\n'
    )
    with pytest.raises(messor.ConfigurationError, match=r"tasks\.jsonl, line 2,"):
        JSONLMemory(path)


def test_a_call_that_fails_writes_nothing(tmp_path: Path) -> None:
    memory = JSONLMemory(tmp_path / "tasks.jsonl")
    memory.store_tasks([("a", {})])
    size = Path(memory.path).stat().st_size
    with pytest.raises(KeyError):
        memory.update_task_statuses([("a", COMPLETED, 1, None), ("ghost", COMPLETED, 2, None)])
    with pytest.raises(TypeError):
        memory.store_tasks([("b", {"when": object()})])
    assert Path(memory.path).stat().st_size == size
    memory.close()


def test_clear_empties_the_file(tmp_path: Path) -> None:
    memory = JSONLMemory(tmp_path / "tasks.jsonl")
    memory.store_tasks([("a", {})])
    memory.clear()
    assert Path(memory.path).stat().st_size == 0
    assert reopened(memory).count_by_status() == {PENDING: 0, COMPLETED: 0, FAILED: 0}


# -- choosing it by name or URL (needs the distribution installed) ----------------------


def test_the_installed_plugin_offers_jsonl() -> None:
    listing = subprocess.run(
        [sys.executable, "-m", "messor", "backends", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    offered = {b["name"]: b for b in json.loads(listing.stdout)["backends"]}
    assert (offered["jsonl"]["distribution"], offered["jsonl"]["schemes"]) == (
        "messor-jsonl",
        ["jsonl://"],
    )


@pytest.mark.parametrize(
    ("spec", "options", "file"),
    [
        ("jsonl:///data/run.jsonl", {}, "data/run.jsonl"),
        ("jsonl", {}, "messor.jsonl"),
        ("jsonl", {"path": "other.jsonl"}, "other.jsonl"),
    ],
)
def test_relative_files_are_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec: str, options: dict[str, str], file: str
) -> None:
    monkeypatch.chdir(tmp_path)
    memory = messor.open_memory(spec, **options)
    assert isinstance(memory, JSONLMemory)
    assert Path(memory.path) == Path(file)
    assert (tmp_path / file).is_file()
    memory.close()


def test_four_slashes_give_an_absolute_path(tmp_path: Path) -> None:
    memory = messor.open_memory(f"jsonl:///{tmp_path}/run.jsonl")
    assert isinstance(memory, JSONLMemory)
    assert memory.path == f"{tmp_path}/run.jsonl"
    memory.close()


@pytest.mark.parametrize(
    ("spec", "options", "message"),
    [
        ("jsonl://run.jsonl", {}, "names a host"),
        ("jsonl:///", {}, "names no file"),
        ("jsonl:///run.jsonl?fsync=1", {}, "take no URL options"),
        ("jsonl:///run.jsonl", {"path": "x.jsonl"}, "not both"),
    ],
)
def test_bad_urls_are_refused_with_what_to_write(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    spec: str,
    options: dict[str, str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(messor.ConfigurationError, match=message):
        messor.open_memory(spec, **options)
    assert list(tmp_path.iterdir()) == []
