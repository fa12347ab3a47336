"""The objects of an S3 memory's log: their names, the clock in the names, HEAD.

Every name this memory writes starts with a reading of a hybrid logical
clock (ns): the later of the host's clock and just past every reading seen
in a name or a stamp. A writer whose host clock is behind still stamps after
everything it has read, so its changes are not taken for older ones.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any

from messor.plugin import MemoryUnavailableError
from messor_s3.bucket import Bucket, ConditionFailed, decode, encode

__all__ = ["SEGMENT", "SNAPSHOT", "Log"]

SEGMENT = re.compile(r"log/(\d{20})-[0-9a-f]{12}-\d{8}\.json\.gz")
SNAPSHOT = re.compile(r"log/~snapshot-(\d{20})-[0-9a-f]{12}\.json\.gz")


class Log:
    """Names, reads and writes under one prefix for one writer (not thread-safe: callers lock)."""

    def __init__(self, store: Bucket, clock: Callable[[], int]) -> None:
        self.store = store
        #: The host's time (ns since the epoch) the hybrid clock starts from.
        self.clock = clock
        self.writer = uuid.uuid4().hex[:12]
        self._sequence = 0
        self._reading = 0  # past every reading seen

    def see(self, reading: int) -> None:
        """Keep the clock past ``reading``: what this writer stamps next sorts after it."""
        self._reading = max(self._reading, reading)

    def tick(self) -> int:
        """The next clock reading: now, or just past everything seen, whichever is later."""
        self._reading = max(self.clock(), self._reading + 1)
        return self._reading

    def new_segment(self) -> str:
        self._sequence += 1
        return f"log/{self.tick():020d}-{self.writer}-{self._sequence:08d}.json.gz"

    def new_snapshot(self) -> str:
        return f"log/~snapshot-{self.tick():020d}-{self.writer}.json.gz"

    def new_blob(self) -> str:
        return f"blobs/{self.tick():020d}-{uuid.uuid4().hex}"

    def names(self) -> list[str]:
        """Segment and snapshot names, in key order (the clock passes all of them).

        Anything else under log/ is not ours.
        """
        names = []
        for name in self.store.names("log"):
            if match := SEGMENT.fullmatch(name) or SNAPSHOT.fullmatch(name):
                self.see(int(match[1]))
                names.append(name)
        return names

    def read(self, name: str) -> Any | None:
        """The document ``name`` holds; None if it is not there."""
        found = self.store.get(name)
        if found is None:
            return None
        try:
            return decode(found[0])
        except (OSError, ValueError) as exc:
            raise MemoryUnavailableError(
                f"{self.store.location}/{name} is not a Messor object ({exc}); "
                "keep other files out of the memory's prefix"
            ) from None

    def write(self, name: str, document: Any) -> None:
        self.store.put(name, encode(document))

    def head(self) -> tuple[str, str] | None:
        """``(snapshot HEAD names, HEAD's ETag)``, or None if there is no HEAD."""
        found = self.store.get("HEAD")
        if found is None:
            return None
        snapshot: str = json.loads(found[0])["snapshot"]
        return snapshot, found[1]

    def move_head(self, snapshot: str, expected: str | None) -> str | None:
        """Point HEAD at ``snapshot`` if its ETag is still ``expected`` (None: if there is no
        HEAD); the new ETag, or None if HEAD changed meanwhile."""
        body = json.dumps({"snapshot": snapshot}).encode()
        try:
            if expected is None:
                return self.store.put("HEAD", body, if_absent=True)
            return self.store.put("HEAD", body, if_match=expected)
        except ConditionFailed:
            # Lost the race, or won it and botocore retried a write whose
            # answer was lost: HEAD tells which.
            found = self.head()
            return found[1] if found is not None and found[0] == snapshot else None
