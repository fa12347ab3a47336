"""The S3 memory under adversarial timing: skewed clocks, clears racing writers, a clear
killed half-way, a HEAD deleted by hand, a reset racing a completion.

Each writer here is a memory of its own on one prefix of moto's HTTP server; a
writer's clock is given to it (``clock=``), never patched for the process.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from messor_s3.bucket import Bucket

from messor.memories.base import COMPLETED, FAILED, PENDING, EncodedUpdate
from messor_s3 import S3Memory
from tests.crash_campaign import RUN_TIMEOUT
from tests.crash_child import LAST_FAILING_RUN, expected_result
from tests.s3_server import REGION, new_bucket
from tests.test_s3_memory import object_keys

HOUR = 3600 * 10**9
PREFIX = "harvest"


class Killed(Exception):
    """Stands for the process dying at that instant: nothing after it runs."""


def s3_client(endpoint: str) -> Any:
    return boto3.client("s3", region_name=REGION, endpoint_url=endpoint)


def writer(client: Any, bucket: str, *, skew: int = 0, refresh_interval: float = 0) -> S3Memory:
    """A memory on the shared prefix whose host clock is ``skew`` ns off."""
    memory = S3Memory(
        Bucket(client, bucket, PREFIX),
        refresh_interval=refresh_interval,
        batch_delay=0,
        clock=lambda: time.time_ns() + skew,
    )
    memory.load()
    return memory


def completed(task_id: str, result: str) -> EncodedUpdate:
    return EncodedUpdate(task_id, COMPLETED, f'"{result}"', None)


def delete_head(client: Any, bucket: str) -> None:
    client.delete_object(Bucket=bucket, Key=f"{PREFIX}/HEAD")


# -- item 4: every load path moves the clock past what it read ---------------------------------


def open_after_compaction(client: Any, bucket: str, skew: int) -> Callable[[], S3Memory]:
    """Open the writer after the compaction: it reads HEAD's snapshot."""
    return lambda: writer(client, bucket, skew=skew)


def open_before_compaction(client: Any, bucket: str, skew: int) -> Callable[[], S3Memory]:
    """Open the writer first: it reads the new snapshot afresh when it notices it."""
    early = writer(client, bucket, skew=skew)
    return lambda: early


def open_without_head(client: Any, bucket: str, skew: int) -> Callable[[], S3Memory]:
    """Open the writer once HEAD is gone: it reads every snapshot listed."""

    def opened() -> S3Memory:
        delete_head(client, bucket)
        return writer(client, bucket, skew=skew)

    return opened


@pytest.mark.parametrize("load", [open_after_compaction, open_before_compaction, open_without_head])
def test_a_writer_whose_clock_is_behind_is_not_outranked_by_a_snapshot_it_read(
    endpoint: str, bucket: str, load: Callable[[Any, str, int], Callable[[], S3Memory]]
) -> None:
    client = s3_client(endpoint)
    ahead = writer(client, bucket)
    behind = load(client, bucket, -HOUR)
    ahead.store_tasks([("t", {})])
    ahead.record_outcomes([completed("t", "first")])
    ahead.update_task_statuses([("t", PENDING, None, None)])  # messor retry --force
    ahead.flush()  # the log is one snapshot now: no segment names to learn the clock from
    late = behind()
    late.record_outcomes([completed("t", "second")])  # the retry runs, an hour "earlier"
    reader = writer(client, bucket)
    assert reader.get_task_status("t") == COMPLETED
    assert reader.get_task_result("t") == "second"


# -- item 5: a clear deletes no blob that a segment written meanwhile refers to -----------------


@pytest.mark.parametrize(
    ("skew", "kept"),
    [(0, {}), (HOUR, {"big": "x" * 5000})],
    ids=["segment-stamped-before-the-clear", "segment-stamped-after-it"],
)
def test_a_clear_racing_a_writer_leaves_the_blobs_its_segment_refers_to(
    endpoint: str, bucket: str, skew: int, kept: dict[str, str]
) -> None:
    client = s3_client(endpoint)
    harvest = writer(client, bucket, skew=skew)
    harvest.store_tasks([("big", {})])
    clearing = writer(client, bucket)
    put = harvest.store.put

    def clear_between_blob_and_segment(name: str, body: bytes, **options: Any) -> str:
        if name.startswith("log/"):  # the blob is written; the segment naming it is next
            harvest.store.put = put  # type: ignore[method-assign]
            clearing.clear()
        return put(name, body, **options)

    harvest.store.put = clear_between_blob_and_segment  # type: ignore[method-assign]
    harvest.record_outcomes([completed("big", "x" * 5000)])
    # Stamped before the clear, the write is cleared with the rest; after it, it stays.
    assert writer(client, bucket).dump_all()["task_results"] == kept


# -- item 6: a clear applies whole, wherever it is killed after HEAD moved ----------------------


def killed_after_head_moves(memory: S3Memory) -> None:
    put = memory.store.put

    def put_then_die(name: str, body: bytes, **options: Any) -> str:
        etag = put(name, body, **options)
        if name == "HEAD":
            raise Killed
        return etag

    memory.store.put = put_then_die  # type: ignore[method-assign]


def killed_half_way_through_deleting(memory: S3Memory) -> None:
    delete = memory.store.delete

    def delete_half_then_die(names: list[str]) -> None:
        delete(names[: len(names) // 2])
        raise Killed

    memory.store.delete = delete_half_then_die  # type: ignore[method-assign]


@pytest.mark.parametrize("kill", [killed_after_head_moves, killed_half_way_through_deleting])
def test_a_clear_killed_once_head_moved_forgets_everything_for_good(
    endpoint: str, bucket: str, kill: Callable[[S3Memory], None]
) -> None:
    client = s3_client(endpoint)
    old = writer(client, bucket)
    old.store_tasks([(f"old-{n}", {}) for n in range(3)])
    old.record_outcomes([completed("old-0", "x" * 1000)])
    old.flush()  # a snapshot...
    for n in range(3, 9):
        old.store_tasks([(f"old-{n}", {})])  # ...and segments since
    clearing = writer(client, bucket)
    kill(clearing)
    with pytest.raises(Killed):
        clearing.clear()
    assert writer(client, bucket).dump_all()["task_statuses"] == {}
    survivor = writer(client, bucket)  # the next writer tidies up what the clear left
    survivor.store_tasks([("new", {})])
    survivor.flush()
    assert writer(client, bucket).dump_all()["task_statuses"] == {"new": PENDING}
    logs = [k for k in object_keys(endpoint, bucket) if "/log/" in k]
    assert len(logs) == 1  # the survivor's snapshot; nothing old is left to come back


# -- item 7: a missing HEAD never loses or deletes data ---------------------------------------


def test_a_deleted_head_is_recovered_from_the_snapshots_and_nothing_is_deleted(
    endpoint: str, bucket: str
) -> None:
    client = s3_client(endpoint)
    memory = writer(client, bucket)
    memory.store_tasks([("small", {"n": 1}), ("large", {"n": 2})])
    memory.record_outcomes([completed("small", "s"), completed("large", "L" * 5000)])
    memory.flush()
    delete_head(client, bucket)  # by hand, or by a lifecycle rule
    recovered = writer(client, bucket)
    assert recovered.get_task_result("small") == "s"
    recovered.store_tasks([("new", {})])
    recovered.flush()  # writes HEAD again; must not take the old snapshot for a stray
    dump = writer(client, bucket).dump_all()
    assert dump["task_results"] == {"small": "s", "large": "L" * 5000}
    assert dump["task_definitions"] == {"small": {"n": 1}, "large": {"n": 2}, "new": {}}


def test_a_deleted_head_is_recovered_from_every_snapshot_not_only_the_newest(
    endpoint: str, bucket: str
) -> None:
    client = s3_client(endpoint)
    slow = writer(client, bucket, skew=HOUR)  # its snapshot will be the newest by name
    quick = writer(client, bucket)
    slow.store_tasks([("slow's", {})])
    put, delete = slow.store.put, slow.store.delete

    def let_quick_compact_first(name: str, body: bytes, **options: Any) -> str:
        if "~snapshot" in name:  # slow has listed and built its snapshot; HEAD is next
            quick.store_tasks([("quick's", {})])
            quick.flush()  # HEAD names quick's snapshot; its segments are deleted
        return put(name, body, **options)

    def die_before_deleting_own_snapshot(names: list[str]) -> None:
        raise Killed  # slow lost the race; its snapshot (without quick's task) stays

    slow.store.put = let_quick_compact_first  # type: ignore[method-assign]
    slow.store.delete = die_before_deleting_own_snapshot  # type: ignore[method-assign]
    with pytest.raises(Killed):
        slow.flush()
    slow.store.put, slow.store.delete = put, delete  # type: ignore[method-assign]
    delete_head(client, bucket)
    assert set(writer(client, bucket).get_pending_tasks()) == {"slow's", "quick's"}


# -- reset_tasks: conditional in the fold, whatever order the segments land in ------------------


def test_reset_tasks_resets_only_tasks_in_the_given_statuses_and_says_which(
    endpoint: str, bucket: str
) -> None:
    memory = writer(s3_client(endpoint), bucket)
    memory.store_tasks([("done", {}), ("broken", {}), ("waiting", {})])
    memory.record_outcomes(
        [completed("done", "kept"), EncodedUpdate("broken", FAILED, None, "boom", 3)]
    )
    reset = memory.reset_tasks(["waiting", "unknown", "broken", "done"], only_from={FAILED})
    assert reset == ["broken"]
    assert memory.reset_tasks(["done"], only_from={FAILED, COMPLETED}) == ["done"]
    records = {r.task_id: r for r in writer(s3_client(endpoint), bucket).iter_records()}
    assert {i: (r.status, r.result, r.error, r.attempts) for i, r in records.items()} == {
        "done": (PENDING, None, None, 0),
        "broken": (PENDING, None, None, 0),
        "waiting": (PENDING, None, None, 0),
    }


@pytest.mark.parametrize("resetter_skew", [-HOUR, HOUR], ids=["resetter-behind", "ahead"])
@pytest.mark.parametrize("lands", ["completion-first", "reset-first"])
def test_a_reset_racing_a_completion_it_has_not_seen_keeps_the_result(
    endpoint: str, bucket: str, resetter_skew: int, lands: str
) -> None:
    client = s3_client(endpoint)
    harvest = writer(client, bucket, skew=-resetter_skew)
    harvest.store_tasks([("t", {})])
    harvest.record_outcomes([EncodedUpdate("t", FAILED, None, "first attempt")])
    retry = writer(client, bucket, skew=resetter_skew)
    put = retry.store.put

    def complete_meanwhile(name: str, body: bytes, **options: Any) -> str:
        # retry has looked and seen "failed"; its reset is written now.
        retry.store.put = put  # type: ignore[method-assign]
        if lands == "completion-first":
            harvest.record_outcomes([completed("t", "done")])
            return put(name, body, **options)
        etag = put(name, body, **options)
        harvest.refresh_interval = 3600  # has not read the reset when it completes
        harvest.record_outcomes([completed("t", "done")])
        return etag

    retry.store.put = complete_meanwhile  # type: ignore[method-assign]
    retry.reset_tasks(["t"], only_from={FAILED})
    for reader in (writer(client, bucket), retry):
        reader.refresh(force=True)
        assert reader.get_task_status("t") == COMPLETED
        assert reader.get_task_result("t") == "done"


def test_resetting_failed_tasks_over_and_over_during_a_harvest_loses_no_result(
    endpoint: str, bucket: str
) -> None:
    client = s3_client(endpoint)
    ids = [f"t{n}" for n in range(200)]
    harvest = writer(client, bucket)
    harvest.store_tasks([(i, {}) for i in ids])
    harvest.record_outcomes([EncodedUpdate(i, FAILED, None, "first run") for i in ids])
    retry = writer(client, bucket, refresh_interval=3600)
    done = threading.Event()

    def complete_in_batches() -> None:
        try:
            for start in range(0, len(ids), 10):
                harvest.record_outcomes([completed(i, i) for i in ids[start : start + 10]])
        finally:
            done.set()

    thread = threading.Thread(target=complete_in_batches)
    thread.start()
    resets = 0
    while not done.is_set():  # messor retry --failed, again and again
        resets += len(retry.reset_tasks(ids, only_from={FAILED}))
    thread.join()
    records = {r.task_id: (r.status, r.result) for r in writer(client, bucket).iter_records()}
    assert records == {i: (COMPLETED, i) for i in ids}
    assert resets > 0


# -- the campaign: a clock-skewed second writer across compactions ------------------------------

ROOT = Path(__file__).resolve().parents[1]
CAMPAIGN_ROUNDS = 3
CAMPAIGN_TASKS = 200


class SkewedHarvests:
    """Harvests of tests/crash_child.py's task set on one prefix, by writers with given clocks."""

    def __init__(self, endpoint: str, directory: Path, where: str) -> None:
        self.endpoint = endpoint
        self.bucket = new_bucket(endpoint)
        self.log = directory / f"{self.bucket}.log"
        self.where = where
        self.expected = {f"t{n}": expected_result(n) for n in range(CAMPAIGN_TASKS)}
        self.violations: list[str] = []

    def launch(self, run: int, skew: float) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "tests.s3_skewed_child", self.endpoint, self.bucket]
        command += [str(self.log), str(CAMPAIGN_TASKS), "--run", str(run), "--skew", str(skew)]
        return subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE)

    def run(self, *runs: tuple[int, float]) -> None:
        """Harvest once per ``(run number, clock skew in seconds)``, all at the same time."""
        children = [self.launch(run, skew) for run, skew in runs]
        for child, (run, skew) in zip(children, runs, strict=True):
            _, errors = child.communicate(timeout=RUN_TIMEOUT)
            if child.returncode:
                self.violation(f"run {run} (skew {skew:+.0f} s) failed: {errors.decode()[-2000:]}")

    def memory(self, skew: float = 0.0) -> S3Memory:
        return writer(s3_client(self.endpoint), self.bucket, skew=int(skew * 10**9))

    def completed(self) -> dict[str, Any]:
        return {r.task_id: r.result for r in self.memory().iter_records(COMPLETED)}

    def started(self, run: int) -> list[str]:
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [
            task
            for number, task, event in map(str.split, lines)
            if number == str(run) and event == "start"
        ]

    def violation(self, text: str) -> None:
        self.violations.append(f"{self.where}: {text}")

    def check_results(self, completed: dict[str, Any], before: dict[str, Any], when: str) -> None:
        wrong = sorted(i for i, result in completed.items() if result != self.expected.get(i))
        lost = sorted(set(before) - set(completed))
        if wrong:
            self.violation(f"{when}: {len(wrong)} wrong results, such as {wrong[:3]}")
        if lost:
            self.violation(f"{when}: {len(lost)} completed results lost, such as {lost[:3]}")


@pytest.mark.slow
def test_a_clock_skewed_second_writer_across_compactions_loses_nothing_and_reruns_nothing(
    endpoint: str, tmp_path: Path
) -> None:
    """Rounds on fresh prefixes: two writers, one off by up to three hours either way.

    Both harvest at once (compacting every few segments, each other's
    compactions landing mid-run), one resets failed tasks and forces a few
    completed ones (what ``messor retry`` does) and compacts, the other
    harvests again: it must run exactly the tasks left to do, record every
    one, and a last run must find nothing to do. The seed is random unless
    ``MESSOR_CRASH_SEED`` is set; every violation names it.
    """
    seed = int(os.environ.get("MESSOR_CRASH_SEED") or random.randrange(2**32))
    chance = random.Random(seed)
    violations = []
    for number in range(CAMPAIGN_ROUNDS):
        skew = chance.choice([-1, 1]) * chance.uniform(60, 3 * 3600)
        resetter, harvester = chance.sample([0.0, skew], 2)
        where = (
            f"seed {seed}, round {number + 1}, resetter {resetter:+.0f} s, other {harvester:+.0f} s"
        )
        harvests = SkewedHarvests(endpoint, tmp_path, where)
        harvests.run((1, resetter), (1, harvester))
        first = harvests.completed()
        harvests.check_results(first, {}, "after the first runs")
        retry = harvests.memory(resetter)
        failed = [task_id for task_id, _ in retry.get_failed_tasks()]
        forced = chance.sample(sorted(first), 10)
        retry.reset_tasks(failed, only_from={FAILED})
        retry.reset_tasks(forced, only_from={COMPLETED})
        retry.flush()
        kept = {i: r for i, r in first.items() if i not in forced}
        to_do = set(harvests.expected) - set(kept)
        harvests.run((LAST_FAILING_RUN + 1, harvester))
        second = harvests.completed()
        harvests.check_results(second, kept, "after the retry's run")
        ran = harvests.started(LAST_FAILING_RUN + 1)
        if set(ran) != to_do:
            harvests.violation(
                f"the retry's run ran {len(ran)} tasks, not the {len(to_do)} left to do: "
                f"missing {sorted(to_do - set(ran))[:3]}, extra {sorted(set(ran) - to_do)[:3]}"
            )
        if len(second) != CAMPAIGN_TASKS:
            harvests.violation(f"only {len(second)} of {CAMPAIGN_TASKS} completed")
        harvests.run((LAST_FAILING_RUN + 2, resetter))
        again = harvests.started(LAST_FAILING_RUN + 2)
        if again:
            harvests.violation(f"a last run ran {len(again)} tasks again, such as {again[:3]}")
        harvests.check_results(harvests.completed(), second, "after the last run")
        violations += harvests.violations
    assert not violations, "\n".join(violations)
