"""The S3 memory under adversarial timing: writers whose clocks disagree.

Each writer here is a memory of its own on one prefix of moto's HTTP server; a
writer's clock is given to it (``clock=``), never patched for the process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from messor_s3.bucket import Bucket

from messor.memory import COMPLETED, PENDING, EncodedUpdate
from messor_s3 import S3Memory
from tests.s3_server import REGION

HOUR = 3600 * 10**9
PREFIX = "harvest"


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


# -- item 4: every load path moves the clock past what it read ---------------------------------


def open_after_compaction(client: Any, bucket: str, skew: int) -> Callable[[], S3Memory]:
    """Open the writer after the compaction: it reads HEAD's snapshot."""
    return lambda: writer(client, bucket, skew=skew)


def open_before_compaction(client: Any, bucket: str, skew: int) -> Callable[[], S3Memory]:
    """Open the writer first: it reads the new snapshot afresh when it notices it."""
    early = writer(client, bucket, skew=skew)
    return lambda: early


@pytest.mark.parametrize("load", [open_after_compaction, open_before_compaction])
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
