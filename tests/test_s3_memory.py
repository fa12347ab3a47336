"""What is specific to the S3 memory: request budgets, several writers, large results, faults."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from messor_s3.bucket import Bucket, ConditionFailed, encode

import messor
from messor import (
    ConfigurationError,
    FunctionTask,
    LocalThreadedExecutor,
    MemoryUnavailableError,
)
from messor.memories.base import COMPLETED, FAILED, PENDING, EncodedUpdate
from messor_s3 import S3Memory
from messor_s3 import memory as s3_module
from tests.crash_child import expected_result
from tests.s3_server import REGION, mock_endpoint, new_bucket

CHILD = Path(__file__).with_name("crash_child.py")


class Requests:
    """Counts the HTTP requests a boto3 client sends (retries included), by operation."""

    def __init__(self, client: Any) -> None:
        self.sent: list[str] = []
        client.meta.events.register("before-send.s3.*", self._count)

    def _count(self, event_name: str, **_: Any) -> None:
        self.sent.append(event_name.rsplit(".", 1)[-1])

    def __len__(self) -> int:
        return len(self.sent)


def counted_client(endpoint: str | None) -> tuple[Any, Requests]:
    client = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
    return client, Requests(client)


def open_s3(bucket: str, client: Any, **options: Any) -> S3Memory:
    memory = messor.open_memory(f"s3://{bucket}/harvest", client=client, **options)
    assert isinstance(memory, S3Memory)
    return memory


def object_keys(endpoint: str, bucket: str) -> list[str]:
    client = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
    listing = client.list_objects_v2(Bucket=bucket)
    return [item["Key"] for item in listing.get("Contents", [])]


def noop() -> None:
    return None


# -- request budgets ---------------------------------------------------------------------


def test_a_harvest_of_10000_no_op_tasks_costs_at_most_30_requests_per_1000(
    endpoint: str, bucket: str
) -> None:
    client, requests = counted_client(endpoint)
    memory = open_s3(bucket, client)  # batch_delay as users get it
    tasks = [FunctionTask(f"t{n}", noop) for n in range(10_000)]
    LocalThreadedExecutor(tasks, memory=memory, max_concurrency=8).run()
    assert memory.count_by_status()[COMPLETED] == 10_000
    assert len(requests) <= 300, requests.sent


@pytest.fixture(scope="module")
def hundred_thousand_recorded() -> tuple[str, list[str]]:
    """A bucket (in moto's mock) whose harvest recorded 100,000 completed tasks."""
    mock_endpoint()
    bucket = new_bucket()
    memory = open_s3(bucket, boto3.client("s3", region_name=REGION))
    ids = [f"page-{n}" for n in range(100_000)]
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        memory.store_tasks([(task_id, {}) for task_id in chunk])
        memory.record_outcomes([EncodedUpdate(i, COMPLETED, '"ok"', None) for i in chunk])
    memory.flush()
    return bucket, ids


def test_deciding_what_to_resume_of_100000_recorded_tasks_takes_a_few_requests(
    hundred_thousand_recorded: tuple[str, list[str]],
) -> None:
    bucket, ids = hundred_thousand_recorded
    client, requests = counted_client(None)
    memory = open_s3(bucket, client)
    report = LocalThreadedExecutor([FunctionTask(i, noop) for i in ids], memory=memory).run()
    assert report.skipped == 100_000
    assert report.completed == 0
    assert len(requests) <= 100, requests.sent


def test_a_result_is_one_request_once_the_index_is_read(endpoint: str, bucket: str) -> None:
    memory = open_s3(bucket, boto3.client("s3", region_name=REGION, endpoint_url=endpoint))
    memory.store_tasks([("small", {}), ("large", {})])
    memory.record_outcomes(
        [
            EncodedUpdate("small", COMPLETED, '"tiny"', None),
            EncodedUpdate("large", COMPLETED, '"' + "x" * 5000 + '"', None),
        ]
    )
    fresh_client, fresh_requests = counted_client(endpoint)
    fresh = open_s3(bucket, fresh_client, refresh_interval=60)
    loaded = len(fresh_requests)
    assert fresh.get_task_result("small") == "tiny"
    assert len(fresh_requests) == loaded  # served from what loading read
    assert fresh.get_task_result("large") == "x" * 5000
    assert len(fresh_requests) == loaded + 1
    assert fresh_requests.sent[-1] == "GetObject"


def test_after_a_run_the_log_is_compacted_into_one_snapshot(endpoint: str, bucket: str) -> None:
    memory = open_s3(bucket, boto3.client("s3", region_name=REGION, endpoint_url=endpoint))
    tasks = [FunctionTask(f"t{n}", lambda n=n: "r" * (n % 3) * 200) for n in range(500)]
    LocalThreadedExecutor(tasks, memory=memory).run()
    keys = object_keys(endpoint, bucket)
    assert "harvest/HEAD" in keys
    assert [k for k in keys if "/log/" in k and "~snapshot" not in k] == []
    assert len([k for k in keys if "~snapshot" in k]) == 1
    assert all(
        k.startswith(("harvest/HEAD", "harvest/log/", "harvest/blobs/", "harvest/beats/"))
        for k in keys
    )


# -- several writers ---------------------------------------------------------------------


def test_two_writers_compacting_as_they_go_lose_none_of_each_others_records(
    endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_module, "COMPACT_AFTER", 3)
    errors: list[BaseException] = []

    def write(name: str) -> None:
        client = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
        memory = open_s3(bucket, client, refresh_interval=0)
        try:
            for batch in range(15):
                ids = [f"{name}-{batch}-{i}" for i in range(20)]
                memory.store_tasks([(i, {}) for i in ids])
                memory.record_outcomes([EncodedUpdate(i, COMPLETED, f'"{i}"', None) for i in ids])
            memory.flush()
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(name,)) for name in ("a", "b")]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    assert errors == []
    reader = open_s3(bucket, boto3.client("s3", region_name=REGION, endpoint_url=endpoint))
    completed = {r.task_id: r.result for r in reader.iter_records(COMPLETED)}
    assert len(completed) == 2 * 15 * 20
    assert all(result == task_id for task_id, result in completed.items())


def test_a_compaction_that_lost_the_race_drops_its_snapshot_and_loses_nothing(
    endpoint: str, bucket: str
) -> None:
    client = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
    first = open_s3(bucket, client, refresh_interval=0)
    second = open_s3(bucket, client, refresh_interval=0)
    first.store_tasks([("a", {})])
    second.store_tasks([("b", {})])
    first.flush()  # HEAD now names first's snapshot
    second.update_task_statuses([("b", COMPLETED, "from second", None)])
    second.flush()  # its HEAD is stale: first it learns of the new snapshot, then compacts
    reader = open_s3(bucket, client)
    assert reader.get_task_status("a") == "pending"
    assert reader.get_task_result("b") == "from second"
    assert len([k for k in object_keys(endpoint, bucket) if "~snapshot" in k]) == 1


def test_head_only_moves_if_nobody_compacted_in_between(endpoint: str, bucket: str) -> None:
    client = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
    slow = open_s3(bucket, client, refresh_interval=0)
    quick = open_s3(bucket, client, refresh_interval=0)
    slow.store_tasks([("slow's task", {})])
    quick.store_tasks([("quick's task", {})])
    put = slow.store.put

    def let_quick_compact_first(name: str, body: bytes, **options: Any) -> str:
        if "~snapshot" in name:  # slow has listed and built its snapshot; HEAD is next
            quick.store_tasks([("written meanwhile", {})])
            quick.flush()  # moves HEAD, deletes the segments it covers
        return put(name, body, **options)

    slow.store.put = let_quick_compact_first  # type: ignore[method-assign]
    slow.flush()  # its snapshot lacks "written meanwhile": HEAD must not move to it
    reader = open_s3(bucket, client)
    assert set(reader.get_pending_tasks()) == {"slow's task", "quick's task", "written meanwhile"}


def test_a_reader_notices_a_write_that_was_compacted_away_before_it_looked(
    endpoint: str, bucket: str
) -> None:
    client = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
    writer = open_s3(bucket, client, refresh_interval=0)
    writer.store_tasks([("seen", {})])
    writer.flush()
    reader = open_s3(bucket, client, refresh_interval=0)  # knows only the snapshot
    writer.store_tasks([("unseen", {})])
    writer.flush()  # the segment holding "unseen" is deleted again
    assert reader.get_statuses(["seen", "unseen"]) == {"seen": "pending", "unseen": "pending"}


def test_two_processes_harvesting_one_prefix_at_once_both_get_everything_recorded(
    endpoint: str, bucket: str, tmp_path: Path
) -> None:
    spec = f"s3://{bucket}/shared?endpoint_url={endpoint}"
    children = [
        subprocess.Popen([sys.executable, str(CHILD), spec, str(tmp_path / f"{p}.log"), "400", p])
        for p in ("a-", "b-")
    ]
    for child in children:
        assert child.wait(timeout=120) == 0
    memory = messor.open_memory(spec)
    recorded = {r.task_id: r.result for r in memory.iter_records(COMPLETED)}
    expected = {f"{p}t{n}": expected_result(n) for p in ("a-", "b-") for n in range(400)}
    assert recorded == expected


# -- data --------------------------------------------------------------------------------


def test_results_of_a_few_megabytes_come_back_intact(
    endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_module, "BLOB_BYTES", 4 * 1024 * 1024)  # several blobs per batch
    memory = open_s3(bucket, boto3.client("s3", region_name=REGION, endpoint_url=endpoint))
    payloads = {
        f"big-{n}": {"page": n, "html": chr(0x4E00 + n) * (3 * 1024 * 1024)} for n in range(4)
    }
    tasks = [FunctionTask(task_id, lambda p=p: p) for task_id, p in payloads.items()]
    LocalThreadedExecutor(tasks, memory=memory, max_concurrency=4).run()
    fresh = open_s3(bucket, boto3.client("s3", region_name=REGION, endpoint_url=endpoint))
    for task_id, payload in payloads.items():
        assert fresh.get_task_result(task_id) == payload


# -- faults ------------------------------------------------------------------------------


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body

    def read(self, *_: Any) -> bytes:
        return self._body


def inject(client: Any, operation: str, status: int, code: str, times: int) -> list[int]:
    """Answer the next ``times`` calls of ``operation`` with an error; return a call counter."""
    calls = [0]

    def answer(request: Any, **_: Any) -> AWSResponse | None:
        calls[0] += 1
        if calls[0] > times:
            return None
        body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
        return AWSResponse(request.url, status, HTTPHeaders(), _Raw(body))

    client.meta.events.register_first(f"before-send.s3.{operation}", answer)
    return calls


@pytest.mark.parametrize(("status", "code"), [(503, "SlowDown"), (500, "InternalError")])
def test_throttling_and_server_errors_are_retried(
    endpoint: str, bucket: str, status: int, code: str
) -> None:
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 10})
    client = boto3.client("s3", region_name=REGION, endpoint_url=endpoint, config=config)
    memory = open_s3(bucket, client)
    memory.store_tasks([("t", {})])
    calls = inject(client, "PutObject", status, code, times=3)
    memory.update_task_statuses([("t", COMPLETED, "made it", None)])
    assert calls[0] == 4
    assert open_s3(bucket, client).get_task_result("t") == "made it"


def test_the_plugins_own_client_retries_throttling(endpoint: str, bucket: str) -> None:
    memory = messor.open_memory(f"s3://{bucket}/p?endpoint_url={endpoint}")
    assert isinstance(memory, S3Memory)
    retries = memory.store.client.meta.config.retries  # type: ignore[attr-defined]
    assert retries["mode"] == "standard"
    assert retries["total_max_attempts"] >= 5


def test_a_missing_bucket_is_a_clear_error_naming_bucket_and_prefix(endpoint: str) -> None:
    with pytest.raises(MemoryUnavailableError, match="'no-such-bucket'") as raised:
        messor.open_memory(f"s3://no-such-bucket/some/prefix?endpoint_url={endpoint}")
    assert "s3://no-such-bucket/some/prefix" in str(raised.value)


def test_denied_access_is_a_clear_error_naming_bucket_and_prefix(
    endpoint: str, bucket: str
) -> None:
    client = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
    inject(client, "ListObjectsV2", 403, "AccessDenied", times=1)
    with pytest.raises(MemoryUnavailableError, match="denied") as raised:
        open_s3(bucket, client)
    assert f"s3://{bucket}/harvest" in str(raised.value)


# -- configuration ---------------------------------------------------------------------------


def test_credentials_in_the_url_are_refused_without_showing_them(bucket: str) -> None:
    with pytest.raises(ConfigurationError, match="credentials") as raised:
        messor.open_memory(f"s3://AKIAEXAMPLE:SECRET-KEY@{bucket}/p")
    assert "SECRET-KEY" not in str(raised.value)


def test_region_and_endpoint_come_from_the_url(endpoint: str, bucket: str) -> None:
    memory = messor.open_memory(f"s3://{bucket}/p?region=eu-west-3&endpoint_url={endpoint}")
    client = memory.store.client  # type: ignore[attr-defined]
    assert client.meta.region_name == "eu-west-3"
    assert client.meta.endpoint_url == endpoint


def test_the_endpoint_comes_from_the_environment_as_boto3_reads_it(
    endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)  # MinIO and friends
    memory = messor.open_memory(f"s3://{bucket}/from-env")
    memory.store_tasks([("t", {})])
    assert "from-env/log/" in " ".join(object_keys(endpoint, bucket))


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("colour=red", "colour"),
        ("batch_delay=-1", "batch_delay"),
        ("refresh_interval=x", "refresh"),
    ],
)
def test_bad_options_are_refused(bucket: str, query: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        messor.open_memory(f"s3://{bucket}/p?{query}")


def test_task_ids_never_become_keys(endpoint: str, bucket: str) -> None:
    memory = open_s3(bucket, boto3.client("s3", region_name=REGION, endpoint_url=endpoint))
    odd = ["../../etc/passwd", "a/b/c", "x" * 400, "ünï 🎉", ""]
    memory.store_tasks([(task_id, {}) for task_id in odd])
    assert not any(
        task_id and task_id in key for key in object_keys(endpoint, bucket) for task_id in odd
    )
    assert sorted(memory.get_pending_tasks()) == sorted(odd)


# -- found in review ---------------------------------------------------------------------


def test_a_head_write_whose_answer_was_lost_still_counts_as_won(endpoint: str, bucket: str) -> None:
    client = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
    memory = open_s3(bucket, client)
    memory.store_tasks([("t", {})])
    put = memory.store.put

    def applied_then_412(name: str, body: bytes, **options: Any) -> str:
        etag = put(name, body, **options)
        if name == "HEAD":  # botocore retried after a lost answer: the retry gets 412
            raise ConditionFailed("HEAD: PreconditionFailed")
        return etag

    memory.store.put = applied_then_412  # type: ignore[method-assign]
    memory.flush()
    reader = open_s3(bucket, client)
    assert reader.get_pending_tasks() == ["t"]
    assert len([k for k in object_keys(endpoint, bucket) if "~snapshot" in k]) == 1


def test_a_head_naming_a_missing_snapshot_is_a_clear_error_not_a_hang(
    endpoint: str, bucket: str
) -> None:
    client = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
    memory = open_s3(bucket, client)
    memory.store_tasks([("t", {})])
    memory.flush()
    [snapshot] = [k for k in object_keys(endpoint, bucket) if "~snapshot" in k]
    client.delete_object(Bucket=bucket, Key=snapshot)
    with pytest.raises(MemoryUnavailableError, match="HEAD names a snapshot that does not exist"):
        open_s3(bucket, client)
    with pytest.raises(MemoryUnavailableError, match="Restore that object") as raised:
        open_s3(bucket, client)
    assert "delete HEAD" not in str(raised.value)  # that was advice to lose the rest
    assert "harvest/HEAD" in object_keys(endpoint, bucket)


def test_a_clear_is_noticed_by_every_other_open_memory(endpoint: str, bucket: str) -> None:
    client = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
    other = open_s3(bucket, client, refresh_interval=0)
    other.store_tasks([("old", {})])
    other.flush()
    clearing = open_s3(bucket, client, refresh_interval=0)
    clearing.clear()
    assert other.get_pending_tasks() == []
    other.store_tasks([("new", {})])
    other.flush()
    assert open_s3(bucket, client).get_pending_tasks() == ["new"]


def test_a_compaction_that_fails_does_not_fail_the_write(
    endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(s3_module, "COMPACT_AFTER", 1)
    client = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
    memory = open_s3(bucket, client)
    inject(client, "DeleteObjects", 403, "AccessDenied", times=100)  # an append-only policy
    memory.store_tasks([("t", {})])
    memory.record_outcomes([EncodedUpdate("t", COMPLETED, '"kept"', None)])
    assert "could not compact its log" in caplog.text
    assert open_s3(bucket, client).get_task_result("t") == "kept"


def test_stray_snapshots_and_unreferenced_old_blobs_are_collected(
    endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_module, "GRACE", 0)
    client = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
    stray = f"harvest/log/~snapshot-{1:020d}-{'0' * 12}.json.gz"  # from a crashed compaction
    client.put_object(Bucket=bucket, Key=stray, Body=encode({"segments": [], "tasks": []}))
    memory = open_s3(bucket, client)
    memory.store_tasks([("t", {})])
    memory.record_outcomes([EncodedUpdate("t", FAILED, None, "first try")])
    memory.update_task_statuses([("t", COMPLETED, "y" * 1000, None)])
    memory.update_task_statuses([("t", COMPLETED, "z" * 1000, None)])  # the y blob is garbage now
    memory.flush()
    keys = object_keys(endpoint, bucket)
    assert stray not in keys
    assert len([k for k in keys if "/blobs/" in k]) == 1
    assert open_s3(bucket, client).get_task_result("t") == "z" * 1000


def test_exporting_many_large_results_fetches_each_blob_once(endpoint: str, bucket: str) -> None:
    client, requests = counted_client(endpoint)
    memory = open_s3(bucket, client, refresh_interval=60)
    ids = [f"t{n}" for n in range(300)]
    memory.store_tasks([(i, {}) for i in ids])
    memory.record_outcomes([EncodedUpdate(i, COMPLETED, '"' + i * 100 + '"', None) for i in ids])
    before = len(requests)
    records = {r.task_id: r.result for r in memory.iter_records(COMPLETED)}
    assert records == {i: i * 100 for i in ids}
    assert requests.sent[before:] == ["GetObject"]


def test_objects_that_are_not_the_memorys_are_left_alone(endpoint: str, bucket: str) -> None:
    client = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
    for key in ("harvest/log/", "harvest/log/README.txt", "harvest/notes.txt"):
        client.put_object(Bucket=bucket, Key=key, Body=b"not Messor's")
    nested = messor.open_memory(f"s3://{bucket}/harvest/log", client=client)
    nested.store_tasks([("nested", {})])
    memory = open_s3(bucket, client)
    memory.store_tasks([("outer", {})])
    assert memory.get_pending_tasks() == ["outer"]
    memory.clear()
    keys = object_keys(endpoint, bucket)
    assert {"harvest/log/", "harvest/log/README.txt", "harvest/notes.txt"} <= set(keys)
    assert nested.get_pending_tasks() == ["nested"]


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("s3://{bucket}/p?endpoint_url=http://KEY:SECRET@127.0.0.1:1", {}, "credentials"),
        ("s3://{bucket}/p?bucket=other", {}, "bucket"),
        ("s3://{bucket}/p?region=eu-west-1", {"client": "a client"}, "not both"),
    ],
)
def test_options_that_would_mislead_are_refused(
    bucket: str, url: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as raised:
        messor.open_memory(url.format(bucket=bucket), **options)
    assert "SECRET" not in str(raised.value)


def test_a_clock_stepped_back_keeps_a_writers_own_changes_in_order(
    endpoint: str, bucket: str
) -> None:
    client = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
    step = [0]
    memory = S3Memory(Bucket(client, bucket, "harvest"), clock=lambda: time.time_ns() - step[0])
    memory.store_tasks([("t", {"url": "u"})])
    memory.update_task_statuses([("t", FAILED, None, "boom")])
    step[0] = 5 * 10**9  # NTP stepped the clock back
    memory.update_task_statuses([("t", PENDING, None, None)])  # retry it, says the user
    assert memory.get_task_status("t") == PENDING
    step[0] = 0
    memory.flush()
    fresh = open_s3(bucket, client)
    assert fresh.get_task_status("t") == PENDING
    assert fresh.dump_all()["task_definitions"]["t"] == {"url": "u"}
