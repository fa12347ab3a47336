"""A real harvest with nothing to install and no network: 400 pages behind a flaky fake API.

Each task "fetches" one page: it waits 50-250 ms like a network call, fails
now and then with a timeout (the retries absorb most of those), and a few pages
are broken for good. Every outcome is recorded in the memory, by default the
SQLite file ./messor.db.

    python3 dev.py example      # first run: progress bar, retries, a few failures
    python3 dev.py example      # again: completed pages are skipped, failed ones retried

Press Ctrl-C half-way through and run it again: it resumes where it stopped.
Delete messor.db to start from scratch. Any memory works:

    python3 dev.py example memory://
"""

from __future__ import annotations

import random
import sys
import time
import zlib

from messor.local_threaded_executor import LocalThreadedExecutor


class FetchPage:
    """One page of the fake site; its URL is its id, stable across runs."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.url = f"https://example.org/catalogue/page/{number}"

    def get_id(self) -> str:
        return self.url

    def __call__(self) -> dict[str, object]:
        time.sleep(random.uniform(0.05, 0.25))  # the round trip to the server
        if zlib.crc32(self.url.encode()) % 40 == 0:
            raise LookupError(f"404 Not Found: {self.url}")  # broken for good
        if random.random() < 0.15:
            raise TimeoutError("the server did not answer within 30 s")  # try again
        return {
            "url": self.url,
            "title": f"Catalogue page {self.number}",
            "items": self.number % 17,
        }


def catalogue() -> list[FetchPage]:
    """The 400 pages; also what ``messor run examples/harvest.py:catalogue`` runs."""
    return [FetchPage(n) for n in range(1, 401)]


def main(memory: str | None) -> None:
    pages = catalogue()
    executor = LocalThreadedExecutor(
        tasks=pages,
        memory=memory,
        max_concurrency=16,
        retry=2,
        backoff=0.05,  # wait a little before each retry: a struggling server gets air
        retry_on=TimeoutError,  # a 404 will not go away by asking again
    )
    print(f"Harvesting {len(pages)} pages into {executor.memory!r}")
    try:
        report = executor.run()
    except KeyboardInterrupt:  # the run has printed its summary
        print("Interrupted: every page finished so far is recorded. Run again to resume.")
        sys.exit(130)
    print(
        f"This run: {report.completed} completed, {report.failed} failed, "
        f"{report.retried} retries, {report.skipped} already done in an earlier run "
        f"({report.elapsed:.1f} s)"
    )
    executor.status_summary(failures=3)
    print("Run it again: completed pages are skipped, failed ones are retried.")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
