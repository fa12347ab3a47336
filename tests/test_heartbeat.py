"""Run heartbeats: every memory keeps each run's live state, a crashed run shows as stale."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import messor
from messor import (
    Adaptive,
    FunctionTask,
    InProcessMemory,
    LocalThreadedExecutor,
    Memory,
    SQLiteMemory,
    Throttled,
)
from messor.errors import ClaimLostError
from messor.memories.claims import RunOwner
from messor.memories.sqlite import SCHEMA_VERSION
from messor.plugin import Harvest
from messor.run.heartbeat import (
    HISTORY_POINTS,
    KEEP_FINISHED,
    Heartbeat,
    RunState,
    beat_state,
    last_learned,
    read_beats,
)
from tests.seed_memory import SeedOnlyMemory

WAIT = 30.0  # seconds any event may take: generous, never a measurement


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def task(n: int, fail: bool = False) -> Any:
    def call() -> int:
        if fail:
            raise LookupError(f"404 Not Found: /page/{n}")
        return n

    call.get_id = lambda: f"page-{n}"  # type: ignore[attr-defined]
    return call


# -- what every memory keeps --------------------------------------------------------


def test_every_memory_keeps_the_latest_beat_of_each_run_or_says_it_keeps_none(
    any_memory: Memory,
) -> None:
    any_memory.write_beat("run-a", '{"n":1}')
    any_memory.write_beat("run-b", '{"n":2}')
    any_memory.write_beat("run-a", '{"n":3}')
    if not any_memory.keeps_beats:
        assert any_memory.read_beats() == {}
        return
    assert any_memory.read_beats() == {"run-a": '{"n":3}', "run-b": '{"n":2}'}
    any_memory.delete_beats(["run-a", "unknown"])
    assert any_memory.read_beats() == {"run-b": '{"n":2}'}


def test_clearing_a_memory_forgets_its_runs_beats_too(any_memory: Memory) -> None:
    any_memory.store_tasks([("a", {})])
    any_memory.write_beat("run-a", "{}")
    any_memory.clear()
    assert any_memory.read_beats() == {}
    assert any_memory.count_by_status()["pending"] == 0


def test_a_finished_run_leaves_a_final_beat_with_what_it_did(any_memory: Memory) -> None:
    tasks = [task(n) for n in range(20)] + [task(n, fail=True) for n in range(20, 25)]
    LocalThreadedExecutor(tasks, any_memory, max_concurrency=3, retry=1).run()
    beats = read_beats(any_memory)
    if not any_memory.keeps_beats:
        assert beats == []
        return
    [beat] = beats
    assert beat["state"] == "finished"
    assert beat["finished"] is True
    assert beat["stopped_because"] is None
    assert (beat["known_total"], beat["completed"], beat["failed"]) == (25, 20, 5)
    assert (beat["retried"], beat["skipped"], beat["in_flight"]) == (5, 0, 0)
    assert beat["concurrency"] == 3
    assert beat["host"]
    assert beat["pid"]
    assert beat["started"] <= beat["updated"]
    assert beat["history"][-1][1] == 25
    assert (beat["paused_until"], beat["pause_reason"], beat["throttled"]) == (None, None, 0)
    assert beat["usage"] == {}


def test_a_generator_run_has_no_known_total_and_counts_what_it_skipped() -> None:
    memory = InProcessMemory()
    LocalThreadedExecutor([task(n) for n in range(10)], memory).run()
    LocalThreadedExecutor((task(n) for n in range(15)), memory).run()
    newest = read_beats(memory)[0]
    assert newest["known_total"] is None
    assert (newest["completed"], newest["skipped"]) == (5, 10)


def test_a_stopped_run_says_why_in_its_last_beat() -> None:
    memory = InProcessMemory()
    LocalThreadedExecutor(
        [task(n) for n in range(50)], memory, max_concurrency=1, stop_all_when=lambda: True
    ).run()
    [beat] = read_beats(memory)
    assert beat["finished"] is True
    assert beat["stopped_because"].startswith("stop_all_when")


def test_a_running_harvest_shows_a_live_beat_with_its_progress(tmp_path: Path) -> None:
    memory = SQLiteMemory(tmp_path / "h.db")
    memory.beat_interval = 0.02
    release = threading.Event()

    def slow(n: int) -> Any:
        def call() -> int:
            if n >= 10:
                assert release.wait(WAIT)
            return n

        call.get_id = lambda: f"t{n}"  # type: ignore[attr-defined]
        return call

    executor = LocalThreadedExecutor([slow(n) for n in range(14)], memory, max_concurrency=2)
    runner = threading.Thread(target=executor.run)
    runner.start()
    try:
        # Another connection, as `messor status` in another terminal would open it.
        with SQLiteMemory(tmp_path / "h.db") as watcher:
            beat = _wait_for(watcher, lambda b: b["completed"] == 10 and b["in_flight"] == 2)
        assert beat["state"] == "live"
        assert beat["finished"] is False
        assert beat["known_total"] == 14
        assert beat["rate"] is not None
        assert beat["rate"] > 0
    finally:
        release.set()
        runner.join(WAIT)
    [beat] = read_beats(memory)
    assert (beat["state"], beat["completed"]) == ("finished", 14)


def _wait_for(memory: Memory, wanted: Any) -> dict[str, Any]:
    event = threading.Event()
    seen: list[dict[str, Any]] = []
    for _ in range(int(WAIT / 0.01)):
        seen = read_beats(memory)
        if seen and wanted(seen[0]):
            return seen[0]
        event.wait(0.01)
    raise AssertionError(f"no such beat; the last was {seen}")


# -- the run's pacing in its beats -----------------------------------------------------------


class Watched(LocalThreadedExecutor):
    """Keeps the harvest of its run, to stop it from the test."""

    harvest: Harvest | None = None

    def new_harvest(self) -> Harvest:
        self.harvest = super().new_harvest()
        return self.harvest


def test_a_run_paused_by_a_server_shows_until_when_why_and_its_usage_in_its_beat(
    tmp_path: Path,
) -> None:
    memory = SQLiteMemory(tmp_path / "h.db")
    memory.beat_interval = 0.02

    def throttled() -> None:
        messor.report_usage(tokens_in=10, cost=0.5)
        raise Throttled(600.0, reason="quota")

    executor = Watched([FunctionTask("t", throttled)], memory, max_concurrency=1)
    before = time.time()
    runner = threading.Thread(target=executor.run)
    runner.start()
    try:
        with SQLiteMemory(tmp_path / "h.db") as watcher:
            beat = _wait_for(watcher, lambda b: b["throttled"] == 1)
        assert beat["state"] == "live"
        assert beat["pause_reason"] == "quota"
        assert before + 600 <= beat["paused_until"] <= time.time() + 600
        assert beat["usage"] == {"tokens_in": 10, "cost": 0.5}
    finally:
        assert executor.harvest is not None
        executor.harvest.stop()  # not waiting ten minutes for the server
        executor.harvest.wake()
        runner.join(WAIT)
    [beat] = read_beats(memory)
    assert (beat["finished"], beat["paused_until"], beat["throttled"]) == (True, None, 1)


def test_the_beat_of_an_adaptive_run_shows_the_limit_in_force_not_the_ceiling(
    tmp_path: Path,
) -> None:
    memory = SQLiteMemory(tmp_path / "h.db")
    memory.beat_interval = 0.02
    release = threading.Event()

    def blocked() -> None:
        assert release.wait(WAIT)  # no success yet: the limit stays where it starts

    tasks = [FunctionTask(f"t{n}", blocked) for n in range(10)]
    executor = LocalThreadedExecutor(tasks, memory, Adaptive(start=3, ceiling=8))
    runner = threading.Thread(target=executor.run)
    runner.start()
    try:
        with SQLiteMemory(tmp_path / "h.db") as watcher:
            beat = _wait_for(watcher, lambda b: b["in_flight"] == 3)
        assert beat["concurrency"] == 3
    finally:
        release.set()
        runner.join(WAIT)


def test_a_run_that_does_not_pace_still_sums_the_usage_its_tasks_report() -> None:
    def spends(n: int) -> int:
        messor.report_usage(tokens_in=n, cost=0.25)
        return n

    memory = InProcessMemory()
    tasks = [FunctionTask(f"t{n}", spends, n) for n in range(4)]
    LocalThreadedExecutor(tasks, memory, max_concurrency=2).run()
    [beat] = read_beats(memory)
    assert beat["usage"] == {"tokens_in": 6, "cost": 1.0}
    assert beat["throttled"] == 0


def finished_beat(updated: float, learned: Any) -> str:
    return json.dumps({"updated": updated, "finished": True, "learned": learned})


def test_a_run_starts_from_the_newest_finished_beat_that_learned_something() -> None:
    memory = InProcessMemory()
    memory.write_beat("old", finished_beat(1.0, {"": {"rate": 10.0}}))
    memory.write_beat("learned", finished_beat(2.0, {"api.example.org": {"rate": 20.0}}))
    memory.write_beat("nothing", finished_beat(3.0, {}))
    memory.write_beat("live", json.dumps({"updated": 4.0, "learned": {"": {"rate": 40.0}}}))
    assert last_learned(memory) == {"api.example.org": {"rate": 20.0}}


@pytest.mark.parametrize(
    "foreign",
    [
        "not json",
        "[1, 2]",
        finished_beat(9.0, "fast"),
        finished_beat(9.0, {"": "fast"}),
        finished_beat(9.0, {"": {"rate": "fast"}}),
        finished_beat(9.0, {"": {"rate": -1}}),
        finished_beat(9.0, {"": {"rate": True}}),
        json.dumps({"updated": "yesterday", "finished": True, "learned": {"": {"rate": 5}}}),
    ],
)
def test_a_corrupt_or_foreign_beat_is_passed_over_with_a_debug_log_never_an_error(
    foreign: str, caplog: pytest.LogCaptureFixture
) -> None:
    memory = InProcessMemory()
    memory.write_beat("good", finished_beat(1.0, {"": {"rate": 10.0, "concurrency": 6}}))
    memory.write_beat("foreign", foreign)
    with caplog.at_level(logging.DEBUG, logger="messor"):
        assert last_learned(memory) == {"": {"rate": 10.0, "concurrency": 6.0}}
    if foreign.startswith("{"):
        assert "'foreign'" in caplog.text


def test_a_memory_that_keeps_no_beats_has_learned_nothing() -> None:
    memory = SeedOnlyMemory()
    memory.write_beat("r", finished_beat(1.0, {"": {"rate": 10.0}}))
    assert last_learned(memory) is None


# -- the record itself ------------------------------------------------------------------


def test_the_rate_of_a_young_run_is_measured_over_its_life_not_a_minute() -> None:
    clock, state = Clock(), RunState()
    heartbeat = Heartbeat(InProcessMemory(), lambda: state, known_total=100, clock=clock)
    heartbeat.start()
    clock.now += 5
    state.completed = 40
    state.failed = 10
    heartbeat.finish(None)
    assert heartbeat.record["rate"] == pytest.approx(10.0)  # 50 in 5 s, not 50 in 60 s


def test_the_rate_of_an_older_run_covers_the_last_minute() -> None:
    clock, state = Clock(), RunState()
    memory = InProcessMemory()
    heartbeat = Heartbeat(memory, lambda: state, known_total=None, clock=clock)
    heartbeat.start()
    for second in range(5, 305, 5):  # 100/s for 4 minutes, then 10/s for the last
        clock.now += 5
        state.completed += 500 if second <= 240 else 50
        heartbeat._beat()
    assert heartbeat.record["rate"] == pytest.approx(10.0)


def test_the_chart_history_stays_bounded_and_spans_the_whole_run() -> None:
    clock, state = Clock(), RunState()
    heartbeat = Heartbeat(InProcessMemory(), lambda: state, known_total=None, clock=clock)
    started = clock.now
    heartbeat.start()
    for _ in range(5000):
        clock.now += 5
        state.completed += 1
        heartbeat._beat()
    history = heartbeat.record["history"]
    assert HISTORY_POINTS // 2 <= len(history) <= HISTORY_POINTS
    assert history[0] == [started, 0]
    assert history[-1] == [clock.now, 5000]
    times = [t for t, _ in history]
    assert times == sorted(times)
    assert len(json.dumps(heartbeat.record)) < 20_000


def test_a_beat_not_renewed_for_three_intervals_is_stale_not_live() -> None:
    beat = {"updated": 1000.0, "interval": 5.0, "finished": False}
    assert beat_state(beat, now=1014.0) == "live"
    assert beat_state(beat, now=1016.0) == "stale"
    assert beat_state({**beat, "finished": True}, now=5000.0) == "finished"


def test_a_run_killed_mid_way_leaves_a_stale_beat(tmp_path: Path) -> None:
    memory = SQLiteMemory(tmp_path / "h.db")
    clock, state = Clock(), RunState(completed=3)
    heartbeat = Heartbeat(memory, lambda: state, known_total=10, clock=clock)
    heartbeat.start()
    heartbeat._stop.set()  # the process dies: no final beat is ever written
    [beat] = read_beats(memory, now=clock.now + 3 * memory.beat_interval + 1)
    assert beat["state"] == "stale"
    assert beat["completed"] == 3


def test_unreadable_beats_are_skipped_when_reading() -> None:
    memory = InProcessMemory()
    memory.write_beat("junk", "not json")
    memory.write_beat("list", "[1, 2]")
    memory.write_beat("ok", json.dumps({"updated": 1.0, "finished": True}))
    assert [b["state"] for b in read_beats(memory)] == ["finished"]


def test_only_the_last_few_finished_runs_keep_their_beats() -> None:
    memory = InProcessMemory()
    memory.write_beat("crashed-long-ago", json.dumps({"updated": 1.0, "finished": False}))
    for n in range(KEEP_FINISHED + 3):
        LocalThreadedExecutor([task(n)], memory).run()
    beats = read_beats(memory)
    assert len(beats) == KEEP_FINISHED
    assert all(b["finished"] for b in beats)


def test_a_memory_that_cannot_keep_a_beat_only_warns_and_the_run_completes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(InProcessMemory):
        def write_beat(self, run_id: str, beat_json: str) -> None:
            raise OSError("disk full")

    memory = Broken()
    with caplog.at_level(logging.WARNING, logger="messor"):
        report = LocalThreadedExecutor([task(n) for n in range(5)], memory).run()
    assert report.completed == 5
    warnings = [r for r in caplog.records if "heartbeat" in r.getMessage()]
    assert len(warnings) == 1  # once, not on every beat
    assert "disk full" in warnings[0].getMessage()


def test_a_memory_written_against_the_seed_runs_without_beats() -> None:
    memory = SeedOnlyMemory()
    assert LocalThreadedExecutor([task(n) for n in range(5)], memory).run().completed == 5
    assert memory.keeps_beats is False
    assert memory.read_beats() == {}


# -- per memory ----------------------------------------------------------------------------


def test_a_sqlite_file_of_schema_3_gets_the_beats_table(tmp_path: Path) -> None:
    path = tmp_path / "v3.db"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "CREATE TABLE messor_tasks (id TEXT PRIMARY KEY NOT NULL, data TEXT NOT NULL, "
            "status TEXT NOT NULL, result TEXT, error TEXT, "
            "attempts INTEGER NOT NULL DEFAULT 0, updated REAL)"
        )
        conn.execute("INSERT INTO messor_tasks (id, data, status) VALUES ('a', '{}', 'pending')")
        conn.execute("PRAGMA user_version = 3")
    with SQLiteMemory(path) as memory:
        memory.write_beat("r", "{}")
        assert memory.read_beats() == {"r": "{}"}
        assert memory.get_task_status("a") == "pending"
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4


def test_a_redis_run_that_lost_its_claim_cannot_write_its_beat() -> None:
    import fakeredis

    from messor_redis import RedisMemory

    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    memory = RedisMemory(client, namespace="ns")
    memory.claim_run(RunOwner())
    client.set("messor:{ns}:run", RunOwner().to_json())  # another run took the namespace over
    with pytest.raises(ClaimLostError):
        memory.write_beat("mine", "{}")
    assert memory.read_beats() == {}


def test_an_s3_beat_is_read_from_another_machine_and_put_at_most_every_15_s(
    endpoint: str, bucket: str
) -> None:
    from messor import open_memory

    writer = open_memory(f"s3://{bucket}/harvest?endpoint_url={endpoint}")
    assert writer.beat_interval >= 15  # S3 bills per request: four PUTs a minute at most
    state = RunState(completed=7)
    heartbeat = Heartbeat(writer, lambda: state, known_total=9)
    assert heartbeat._interval == writer.beat_interval
    heartbeat.start()
    with open_memory(f"s3://{bucket}/harvest?endpoint_url={endpoint}") as watcher:
        [beat] = read_beats(watcher)
        assert (beat["state"], beat["completed"], beat["known_total"]) == ("live", 7, 9)
        heartbeat.finish(None)
        [beat] = read_beats(watcher)
        assert beat["state"] == "finished"


def test_a_run_whose_store_fails_does_not_wait_to_write_a_last_beat() -> None:
    from messor.errors import RecordingError

    class Failing(InProcessMemory):
        def record_outcomes(self, outcomes: Any) -> None:
            raise OSError("the store went away")

    memory = Failing()
    with pytest.raises(RecordingError):
        LocalThreadedExecutor([task(n) for n in range(3)], memory).run()
    [beat] = read_beats(memory)
    assert beat["finished"] is False  # stale once its interval passes: the run died
    assert beat_state(beat, now=beat["updated"] + 4 * beat["interval"]) == "stale"
