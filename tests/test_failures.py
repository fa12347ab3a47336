"""Failures grouped by cause; `messor failed --group-by error` and `messor retry --group`;
`messor status` with progress, ETA and the runs from their heartbeats."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from messor import InProcessMemory, SQLiteMemory
from messor.cli.runs import progress
from messor.failures import group_failures, group_key, normalise
from messor.memories.base import COMPLETED, FAILED, TaskRecord
from tests.console import assert_one_line_error, messor


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            "LookupError: 404 Not Found: https://example.org/page/36?x=1",
            ("LookupError", "<n> Not Found: <url>"),
        ),
        (
            "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='api.x.io', port=443)",
            ("requests.exceptions.ConnectionError", "HTTPSConnectionPool(host=<str>, port=<n>)"),
        ),
        (
            "KeyError: 'user 8c7d4a1e-12ab-4cde-9f00-0123456789ab missing'",
            ("KeyError", "<str>"),
        ),
        (
            "ValueError: object at 0x7f3a2c1b9e80 has id 5f2b9a0c1d3e and took 1.25 s",
            ("ValueError", "object at <hex> has id <hex> and took <n> s"),
        ),
        (
            "ValueError: session 8c7d4a1e-12ab-4cde-9f00-0123456789ab",
            ("ValueError", "session <uuid>"),
        ),
        ("TimeoutError", ("TimeoutError", "")),
        ("something odd happened 3 times", ("", "something odd happened <n> times")),
        ("RuntimeError: first line 1\nTraceback line 2", ("RuntimeError", "first line <n>")),
        (None, ("", "")),
        ("ValueError: accepted deadbeef", ("ValueError", "accepted deadbeef")),
    ],
)
def test_an_error_is_folded_into_its_class_and_message_pattern(
    error: str | None, expected: tuple[str, str]
) -> None:
    assert normalise(error) == expected


def failed(task_id: str, error: str) -> TaskRecord:
    return TaskRecord(task_id, FAILED, None, error)


def test_failures_group_by_cause_biggest_first_with_a_count_and_an_example_each() -> None:
    records = [failed(f"p{n}", f"LookupError: 404 Not Found: https://x.org/{n}") for n in range(7)]
    records += [failed(f"t{n}", f"TimeoutError: no result after {n} s") for n in range(3)]
    records.append(failed("odd", "ValueError: bad"))
    records.append(TaskRecord("ok", COMPLETED, 1, None))
    found = group_failures(records)
    assert found.complete
    assert found.examined == 11
    assert [(g.error_class, g.count) for g in found.groups] == [
        ("LookupError", 7),
        ("TimeoutError", 3),
        ("ValueError", 1),
    ]
    top = found.groups[0]
    assert (top.example_id, top.example_error) == (
        "p0",
        "LookupError: 404 Not Found: https://x.org/0",
    )
    assert top.key == group_key("LookupError", "<n> Not Found: <url>")
    assert len(top.key) == 10


def test_grouping_a_sample_says_it_saw_only_part() -> None:
    records = (failed(f"p{n}", f"E: {n}") for n in range(1000))
    found = group_failures(records, sample=100)
    assert not found.complete
    assert found.examined == 100
    assert found.groups[0].count == 100


def harvest_file(path: Path) -> SQLiteMemory:
    memory = SQLiteMemory(path)
    memory.store_tasks([(f"p{n}", {}) for n in range(10)] + [("t1", {}), ("t2", {}), ("ok", {})])
    memory.update_task_statuses(
        [(f"p{n}", FAILED, None, f"LookupError: 404 Not Found: /page/{n}") for n in range(10)]
        + [(f"t{n}", FAILED, None, f"TimeoutError: no result after {n}0 s") for n in (1, 2)]
        + [("ok", COMPLETED, 1, None)]
    )
    return memory


def test_messor_failed_group_by_error_lists_each_cause_with_its_key(tmp_path: Path) -> None:
    harvest_file(tmp_path / "h.db").close()
    done = messor("failed", "--group-by", "error", "-m", "h.db", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "12 failed tasks in 2 groups:"
    key = group_key("LookupError", "<n> Not Found: /page/<n>")
    assert lines[1] == f"{key}       10  LookupError: <n> Not Found: /page/<n>"
    assert "e.g. p0: LookupError: 404 Not Found: /page/0" in lines[2]
    data = json.loads(
        messor("failed", "--group-by", "error", "--json", "-m", "h.db", cwd=tmp_path).stdout
    )
    assert [(g["key"], g["count"]) for g in data] == [
        (key, 10),
        (group_key("TimeoutError", "no result after <n> s"), 2),
    ]


def test_messor_retry_group_resets_exactly_the_failures_of_that_cause(tmp_path: Path) -> None:
    harvest_file(tmp_path / "h.db").close()
    key = group_key("TimeoutError", "no result after <n> s")
    done = messor("retry", "--group", key, "-m", "h.db", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "2 tasks are pending again" in done.stdout
    with SQLiteMemory(tmp_path / "h.db") as memory:
        assert memory.count_by_status() == {"pending": 2, "completed": 1, "failed": 10}
        assert sorted(memory.get_pending_tasks()) == ["t1", "t2"]


def test_messor_retry_with_an_unknown_group_changes_nothing_and_says_where_keys_are(
    tmp_path: Path,
) -> None:
    harvest_file(tmp_path / "h.db").close()
    done = messor("retry", "--group", "0000000000", "-m", "h.db", cwd=tmp_path)
    assert_one_line_error(done, 2, "0000000000", "--group-by error", "nothing was changed")


# -- messor status ----------------------------------------------------------------------


def beat(**fields: object) -> str:
    now = time.time()
    record = {"host": "h1", "pid": 7, "started": now - 100, "updated": now, "interval": 5.0,
              "known_total": 100, "completed": 30, "failed": 0, "rate": 2.0, "concurrency": 8,
              "in_flight": 8, "finished": False, "stopped_because": None}  # fmt: skip
    record.update(fields)
    return json.dumps(record)


def test_messor_status_shows_progress_eta_and_the_live_run(tmp_path: Path) -> None:
    memory = SQLiteMemory(tmp_path / "h.db")
    memory.store_tasks([(f"t{n}", {}) for n in range(100)])
    memory.update_task_statuses([(f"t{n}", COMPLETED, n, None) for n in range(40)])
    memory.write_beat("run1", beat())
    memory.close()
    done = messor("status", "-m", "h.db", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Progress: 40 of 100 tasks done (40.0%); 2.0/s, about 30 s left" in done.stdout
    assert "  live   h1 pid 7, started " in done.stdout
    assert "30 completed, 0 failed, 2.0/s, 8 running of 8 at most" in done.stdout
    assert "No run is going on." not in done.stdout
    data = json.loads(messor("status", "-m", "h.db", "--json", cwd=tmp_path).stdout)
    assert data["progress"]["eta_seconds"] == 30.0
    assert [r["state"] for r in data["runs"]] == ["live"]


def test_messor_status_reports_a_crashed_run_as_stale_and_no_run_going_on(tmp_path: Path) -> None:
    memory = SQLiteMemory(tmp_path / "h.db")
    memory.store_tasks([("t", {})])
    memory.write_beat("run1", beat(updated=time.time() - 600))
    memory.close()
    done = messor("status", "-m", "h.db", cwd=tmp_path)
    assert "No run is going on." in done.stdout
    assert "STALE  h1 pid 7" in done.stdout
    assert "no heartbeat for 10 min" in done.stdout
    assert "crashed or killed?" in done.stdout
    assert "about" not in done.stdout  # no ETA from a dead run


def test_progress_of_a_generator_run_gives_no_eta() -> None:
    beats = [{"state": "live", "rate": 5.0, "known_total": None}]
    info = progress({"pending": 10, "completed": 10, "failed": 0}, beats)
    assert info["total_known"] is False
    assert info["eta_seconds"] is None
    assert info["percent"] == 50.0


def test_status_of_a_memory_without_beats_still_shows_the_counts() -> None:
    from messor.cli.inspect import _snapshot
    from tests.seed_memory import SeedOnlyMemory

    memory = SeedOnlyMemory()
    memory.store_tasks([("a", {})])
    snapshot = _snapshot(memory)
    assert snapshot["runs"] is None
    assert snapshot["progress"]["total"] == 1
    assert InProcessMemory().keeps_beats
