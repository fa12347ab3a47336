"""Results too large for the index: packed into blob objects, read back by range.

A blob is named ``blobs/<clock>-<uuid>``: the clock reading says when it was
written, which is all that collecting it needs (see :func:`collect`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterator

from messor.plugin import MemoryUnavailableError
from messor_s3.bucket import Bucket
from messor_s3.index import Blob

__all__ = ["BLOB", "collect", "missing", "read", "write"]

BLOB = re.compile(r"blobs/(\d{20})-[0-9a-f]{32}")


def write(
    store: Bucket, texts: dict[int, str], new_name: Callable[[], str], size: int
) -> dict[int, Blob]:
    """Pack ``texts`` into blob objects of about ``size`` bytes; return where each lies."""
    placed: dict[int, Blob] = {}
    pending: list[tuple[int, bytes]] = []
    gathered = 0

    def put() -> None:
        name = new_name()
        offset = 0
        for position, body in pending:
            placed[position] = (name, offset, len(body))
            offset += len(body)
        store.put(name, b"".join(body for _, body in pending))
        pending.clear()

    for position, text in texts.items():
        body = text.encode()  # encode_json's output is ASCII
        if pending and gathered + len(body) > size:
            put()
            gathered = 0
        pending.append((position, body))
        gathered += len(body)
    if pending:
        put()
    return placed


def collect(store: Bucket, used: set[str], before: int) -> None:
    """Delete the blobs not in ``used`` written before ``before`` (ns).

    The one rule for every deletion of blobs, a clear's too: a writer puts its
    blobs before the segment that refers to them, so a blob younger than the
    grace period may be referred to by a segment not written (or listed) yet.
    """
    stale = [
        name
        for name in store.names("blobs")
        if (match := BLOB.fullmatch(name)) and int(match[1]) < before and name not in used
    ]
    store.delete(stale)


def read(store: Bucket, placed: list[tuple[str, Blob]]) -> Iterator[tuple[str, str]]:
    """``(task_id, result JSON)`` for each ``(task_id, blob)``, in the order they lie in blobs.

    One ranged GET per blob, from the first of these results in it to the last.
    """
    by_blob: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for task_id, (name, offset, length) in placed:
        by_blob[name].append((offset, length, task_id))
    for name in sorted(by_blob):
        results = sorted(by_blob[name])
        start = results[0][0]
        end = max(offset + length for offset, length, _ in results)
        found = store.get(name, (start, end - 1))
        if found is None:
            raise missing(store, name)
        for offset, length, task_id in results:
            yield task_id, found[0][offset - start : offset - start + length].decode()


def missing(store: Bucket, name: str) -> MemoryUnavailableError:
    return MemoryUnavailableError(
        f"{store.location}/{name}, which holds results, is missing; "
        "was it deleted by hand or by a lifecycle rule?"
    )
