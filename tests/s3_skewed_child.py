"""A harvest of tests/crash_child.py's task set by an S3 writer whose clock is off.

    python -m tests.s3_skewed_child ENDPOINT BUCKET EXECUTION_LOG COUNT --run N --skew SECONDS

The skewed-writer campaign of tests/test_s3_races.py runs it (from the
repository's root). The memory reads the host's clock plus SECONDS (negative:
behind) and compacts every few segments, so that its compactions and another
writer's land in the middle of runs.
"""

from __future__ import annotations

import argparse
import os
import time

import boto3
from messor_s3.bucket import Bucket

from messor import LocalThreadedExecutor
from messor_s3 import S3Memory
from messor_s3 import memory as s3_memory
from tests.crash_child import CrashTask
from tests.s3_server import REGION

PREFIX = "harvest"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("endpoint")
    parser.add_argument("bucket")
    parser.add_argument("execution_log")
    parser.add_argument("count", type=int)
    parser.add_argument("--run", type=int, required=True)
    parser.add_argument("--skew", type=float, required=True)
    options = parser.parse_args()
    s3_memory.COMPACT_AFTER = 4
    skew = int(options.skew * 10**9)
    client = boto3.client("s3", region_name=REGION, endpoint_url=options.endpoint)
    memory = S3Memory(
        Bucket(client, options.bucket, PREFIX),
        refresh_interval=0.2,
        batch_delay=0.05,
        clock=lambda: time.time_ns() + skew,
    )
    memory.load()
    log = os.open(options.execution_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    tasks = [CrashTask(log, options.run, "", n) for n in range(options.count)]
    LocalThreadedExecutor(tasks, memory=memory, max_concurrency=8, retry=2, progress=False).run()


if __name__ == "__main__":
    main()
