"""The long crash campaign: harvests SIGKILLed at random instants, many times per memory.

    .venv/bin/python benchmarks/crash_campaign.py                       # 200 kills per memory
    .venv/bin/python benchmarks/crash_campaign.py --kills 50 --memories sqlite,redis
    .venv/bin/python benchmarks/crash_campaign.py --seed 1234           # replay a reported seed

The same campaign as tests/test_crash_resume.py (see tests/crash_campaign.py
for what a round does and what is checked after every run), with more kills:
it runs for minutes. Redis runs on a throw-away redis-server on a free
loopback port, S3 on moto's server; either is left out, with a note, if not
installed. Prints a table per memory, then every violation; exits 1 if there
was any. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.*

import pytest

from tests.crash_campaign import Campaign, Tally, store_factory

MEMORIES = ("sqlite", "redis", "s3")


def memories(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(MEMORIES))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose among {', '.join(MEMORIES)}, comma-separated")
    return names


def table(tallies: list[Tally]) -> str:
    head = (
        "memory",
        "kills survived",
        "early/mid/late",
        "outlived",
        "rounds",
        "runs",
        "tasks",
        "executions",
        "violations",
        "seconds",
    )
    rows = [
        (t.memory, t.kills, "/".join(str(t.phases[p]) for p in ("early", "mid", "late")),
         t.outlived, t.rounds, t.runs, t.tasks, t.executions, len(t.violations),
         f"{t.seconds:.0f}")
        for t in tallies
    ]  # fmt: skip
    widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(len(head))]
    lines = [" | ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    rule = "-+-".join("-" * w for w in widths)
    return "\n".join(
        [" | ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)), rule, *lines]
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description="SIGKILL harvests at random instants; check that nothing recorded is "
        "lost or redone.",
    )
    parser.add_argument("--kills", type=int, default=200, help="kills per memory (default 200)")
    parser.add_argument(
        "--memories",
        type=memories,
        default=list(MEMORIES),
        help="comma-separated, among sqlite,redis,s3 (default: all three)",
    )
    parser.add_argument("--tasks", type=int, default=1000, help="tasks per round (default 1000)")
    parser.add_argument("--seed", type=int, help="the random seed (default: a random one)")
    options = parser.parse_args()
    seed = options.seed if options.seed is not None else random.randrange(2**32)
    # moto's server and the children use these; nothing reaches real AWS.
    for name, value in (("AWS_ACCESS_KEY_ID", "crash"), ("AWS_SECRET_ACCESS_KEY", "crash")):
        os.environ.setdefault(name, value)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    print(f"seed {seed}: {options.kills} kills per memory, {options.tasks} tasks per round")
    tallies: list[Tally] = []
    with tempfile.TemporaryDirectory(prefix="messor-crash-") as scratch:
        for memory in options.memories:
            directory = Path(scratch) / memory
            directory.mkdir()
            try:
                new_store = store_factory(memory, directory)
            except pytest.skip.Exception as missing:
                print(f"{memory}: left out: {missing}")
                continue
            campaign = Campaign(memory, new_store, directory, tasks=options.tasks, seed=seed)
            tally = campaign.run(options.kills)
            print(
                f"{memory}: {tally.kills} kills in {tally.seconds:.0f} s, "
                f"{len(tally.violations)} violations",
                flush=True,
            )
            tallies.append(tally)
    print()
    print(table(tallies))
    violations = [v for t in tallies for v in t.violations]
    for violation in violations:
        print(f"\n{violation}")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
