"""``S3Memory``: a Messor memory under one S3 prefix, cheap in requests.

Layout under ``s3://bucket/prefix/`` (nothing else there is read or deleted):

* ``log/<clock>-<writer>-<seq>.json.gz``: one immutable segment of events per
  call that changes anything (a batch of outcomes is one PUT). Writers never
  overwrite each other's objects, and a PUT is atomic: a crash leaves no
  half-written state.
* ``blobs/<clock>-<uuid>``: results larger than ``INLINE_BYTES``, packed per
  batch, read back with one ranged GET per blob (from the first result wanted
  to the last: one result, or a whole blob when exporting).
* ``beats/<run id>.json``: each run's latest heartbeat (``messor.run.heartbeat``),
  rewritten every ``beat_interval`` seconds (15: S3 bills per request).
* ``log/~snapshot-<clock>-<writer>.json.gz`` and ``HEAD``: compaction folds
  the log into a snapshot of the whole index, points ``HEAD`` at it with a
  conditional write (If-Match), then deletes the segments it covers and stray
  snapshots. A resume reads one listing, HEAD, the snapshot and the few
  segments since. Snapshots sort after segments in the same listing, so the
  one LIST a refresh makes also shows when another writer compacted (maybe
  deleting segments never read here) or cleared: then the index is read afresh.
  A clear is a snapshot too, empty, that names the segments it covers and
  sets the index's floor: moved to by the same conditional write, it applies
  whole, however far its deletions got.

Nothing is deleted that no HEAD covers: a snapshot becomes HEAD before the
segments it covers go, blobs go only an hour after they were written. With
HEAD missing (deleted by hand, a lifecycle rule, or a crash before the first
one was written) the index is the fold of every snapshot listed and every
segment: each holds only events that happened, and the fold keeps them all.

The index lives in RAM once read (see :mod:`messor_s3.index` for why the order
of segments does not matter): answers come from it, refreshed by one listing
at most every ``refresh_interval`` seconds; this memory's own writes show at
once, another writer's within that interval. The memory implements the five
primitives of :class:`~messor.plugin.Memory`, which derives every other method
from them, and counts by status from the index.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from messor.plugin import (
    PENDING,
    STATUSES,
    EncodedUpdate,
    Memory,
    MemoryUnavailableError,
    Row,
    TaskNotFoundError,
    UpdateRule,
    changes_to_apply,
)
from messor_s3 import blobs
from messor_s3.bucket import Bucket
from messor_s3.index import Blob, Index, State, clock_of
from messor_s3.log import SEGMENT, SNAPSHOT, Log

__all__ = ["S3Memory"]

logger = logging.getLogger("messor")

#: Results up to this size live in the index itself; larger ones in blobs.
INLINE_BYTES = 256
#: A blob object gathers large results up to about this size.
BLOB_BYTES = 64 * 1024 * 1024
#: Segments since the last snapshot before compacting mid-run; more for big
#: indexes (see ``_compact_after``), so that compaction stays linear in cost.
COMPACT_AFTER = 64
#: Tombstones and unreferenced blobs older than this are collected (ns): a
#: segment or blob that late belongs to a writer long dead.
GRACE = 3600 * 10**9


class S3Memory(Memory):
    """A memory under ``s3://bucket/prefix``; see the module docstring for its layout.

    ``clock`` reads the time in ns since the epoch (``time.time_ns``): what
    the hybrid logical clock starts from, given to simulate a skewed host.
    """

    multi_writer = True
    #: S3's limit for one PUT (a blob); the base class refuses a larger result.
    max_result_bytes = 5 * 1024**3

    def __init__(
        self,
        bucket: Bucket,
        *,
        refresh_interval: float = 1.0,
        batch_delay: float = 0.5,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.store = bucket
        self.refresh_interval = refresh_interval
        self.batch_delay = batch_delay
        self._log = Log(bucket, clock)
        self._lock = threading.RLock()
        self._index = Index()
        self._applied: set[str] = set()  # segments folded into the index
        self._head: str | None = None  # ETag of HEAD when the index was loaded
        self._snapshot: str | None = None
        self._known_snapshots: set[str] = set()  # listed ones that need no reload
        self._loaded = False
        self._last_refresh = 0.0
        self._uncovered = 0  # segments written or read since the snapshot

    def __repr__(self) -> str:
        return f"S3Memory({self.store.location!r})"

    # -- reading the log ------------------------------------------------------

    def load(self) -> None:
        """Read the index afresh: the listing, HEAD, its snapshot, then the segments since."""
        with self._lock:
            stuck: str | None = None
            while (outcome := self._load_once()) is not True:
                if isinstance(outcome, str):  # HEAD names a snapshot that is not there
                    if outcome == stuck:
                        raise MemoryUnavailableError(
                            f"{self.store.location}/HEAD names a snapshot that does not exist "
                            "(deleted by hand, or by a lifecycle rule?): the records it held "
                            "cannot be read. Restore that object (from a backup, or an earlier "
                            "version if the bucket keeps versions); nothing was changed"
                        )
                    stuck = outcome

    def _load_once(self) -> bool | str:
        """True when loaded; False to try again; HEAD's ETag if its snapshot is missing."""
        # List first, then read HEAD: a snapshot in the listing that HEAD does
        # not name yet cannot have had its segments deleted before the listing.
        listed = self._list()
        found = self._log.head()
        if found is not None:
            head: str | None = found[1]
            snapshots = [found[0]]
        else:
            head, snapshots = None, [n for n in listed if SNAPSHOT.fullmatch(n)]
            if snapshots:
                logger.warning(
                    "%r has no HEAD: reading all %d snapshots listed; the next compaction "
                    "writes a HEAD again",
                    self,
                    len(snapshots),
                )
        index, applied = Index(), set[str]()
        for number, snapshot in enumerate(snapshots):
            document = self._log.read(snapshot)
            if document is None:  # HEAD's is damage; another's was deleted by its writer
                return False if head is None else head
            if number == 0:
                index = Index.from_rows(document["tasks"])
            else:
                index.absorb(document["tasks"])
            index.wipe(document.get("cleared", 0))
            applied.update(document["segments"])
        self._log.see(clock_of(index.newest))
        read = self._fold(index, applied, listed)
        if read is None:
            return False
        self._index, self._applied, self._head = index, applied, head
        self._snapshot = snapshots[0] if head is not None else None
        self._known_snapshots = {n for n in listed if SNAPSHOT.fullmatch(n)} | set(snapshots)
        self._loaded, self._uncovered = True, read
        return True

    def refresh(self, *, force: bool = False) -> None:
        """Fold in other writers' segments (at most every ``refresh_interval`` unless forced)."""
        with self._lock:
            stale = force or time.monotonic() - self._last_refresh >= self.refresh_interval
            if self._loaded and stale:
                self._catch_up()
            if not self._loaded:
                self.load()

    def _catch_up(self) -> list[str] | None:
        """Fold in the segments listed now; the listing, or None if the index must be reread."""
        listed = self._list()
        read = None
        if not self._compacted_elsewhere(listed):
            read = self._fold(self._index, self._applied, listed)
        if read is None:
            self._loaded = False
            return None
        self._uncovered += read
        return listed

    def _list(self) -> list[str]:
        names = self._log.names()
        self._last_refresh = time.monotonic()
        return names

    def _compacted_elsewhere(self, listed: list[str]) -> bool:
        """Did another writer compact or clear since this index was read?"""
        if self._snapshot is not None and self._snapshot not in listed:
            return True
        return any(SNAPSHOT.fullmatch(n) and n not in self._known_snapshots for n in listed)

    def _fold(self, index: Index, applied: set[str], listed: list[str]) -> int | None:
        """Fold the listed segments not read yet into ``index``; how many (None: one vanished)."""
        read = 0
        for name in listed:
            if name in applied or not SEGMENT.fullmatch(name):
                continue
            document = self._log.read(name)
            if document is None:  # deleted by a compaction, which covers it
                return None
            index.apply(document["events"], name)
            applied.add(name)
            read += 1
        applied.intersection_update(listed)  # deleted ones cannot come back
        return read

    # -- writing the log ------------------------------------------------------

    def _write(self, events: list[list[Any]]) -> None:
        """Append one segment of ``events`` and fold it in; compact now and then."""
        name = self._log.new_segment()
        self._log.write(name, {"events": events})
        self._index.apply(events, name)
        self._applied.add(name)
        self._uncovered += 1
        if self._uncovered >= max(COMPACT_AFTER, len(self._index.entries) // 2000):
            self._compact_quietly()

    def _compact_quietly(self) -> None:
        # The segment is safe; a compaction that fails only costs later reads.
        try:
            self._compact()
        except Exception as exc:
            logger.warning("%r could not compact its log: %s", self, exc)

    def _update_events(self, changes: Sequence[EncodedUpdate], rule: UpdateRule) -> list[list[Any]]:
        """Events for ``changes``; large results go to blobs first, so no event points nowhere.

        A change back to pending ``only_from`` some statuses is a conditional reset
        (see :mod:`messor_s3.index`): its condition holds in the log, where a
        completion by another writer not read here yet keeps its result.
        """
        large = {
            position: change.result_json
            for position, change in enumerate(changes)
            if change.result_json is not None and len(change.result_json) > INLINE_BYTES
        }
        placed = blobs.write(self.store, large, self._log.new_blob, BLOB_BYTES)
        condition = None if rule.only_from is None else sorted(rule.only_from)
        keep = 1 if rule.keep_completed else 0
        events: list[list[Any]] = []
        for position, (task_id, status, result, error, attempts) in enumerate(changes):
            if condition is not None and (status, result, error, attempts) == _RESET:
                events.append(["r", task_id, condition])
                continue
            blob = placed.get(position)
            inline = None if blob is not None else result
            events.append(["u", task_id, status, inline, blob, error, keep, attempts])
        return events

    def _compact(self) -> None:
        """Fold everything into a new snapshot, point HEAD at it, delete what it covers.

        HEAD only moves by a conditional write from the ETag this memory read:
        if another writer compacted meanwhile, this snapshot is dropped (the
        other one is as good) and the index is read afresh next time.
        """
        listed = self._catch_up()
        if listed is None:
            return
        covered = sorted(n for n in self._applied if SEGMENT.fullmatch(n))
        rows = list(self._index.rows(forget_before=self._log.clock() - GRACE))
        name = self._put_snapshot(covered, rows, clock_of(self._index.floor))
        etag = self._log.move_head(name, self._head)
        if etag is None:
            self.store.delete([name])
            self._loaded = False
            return
        self._head, self._snapshot, self._uncovered = etag, name, 0
        strays = [n for n in listed if SNAPSHOT.fullmatch(n) and n != name]
        self.store.delete(strays + covered)
        self._applied.difference_update(covered)
        used = {
            state.blob[0]
            for entry in self._index.entries.values()
            for state in (entry.completed, entry.reset, entry.failed)
            if state is not None and state.blob is not None
        }
        blobs.collect(self.store, used, before=self._log.clock() - GRACE)

    def _put_snapshot(self, covered: list[str], rows: list[list[Any]], cleared: int) -> str:
        """Write a snapshot of ``rows`` covering ``covered``, below a floor at ``cleared``."""
        name = self._log.new_snapshot()
        document: dict[str, Any] = {"segments": covered, "tasks": rows}
        if cleared:  # absent from older versions' snapshots: nothing cleared
            document["cleared"] = cleared
        self._log.write(name, document)
        self._known_snapshots.add(name)
        return name

    # -- the primitives -----------------------------------------------------------

    def insert(self, tasks: Sequence[tuple[str, str]]) -> None:
        with self._lock:
            self.refresh()
            new: dict[str, str] = {}
            for task_id, data in tasks:
                if self._view(task_id) is None:
                    new.setdefault(task_id, data)
            if new:
                self._write([["s", task_id, data] for task_id, data in new.items()])

    def update(
        self, changes: Sequence[EncodedUpdate], rule: UpdateRule = UpdateRule.OVERWRITE
    ) -> list[str]:
        """Apply ``changes`` as one segment; the rules are judged on the index (see below).

        Conditions that must hold against writers not read yet are part of
        the events themselves: ``rule.keep_completed`` (a failure never replaces a
        completion, wherever it lands in the log) and a reset to pending
        ``only_from`` some statuses (``messor retry``). Before a conditional
        change the index is brought up to date.
        """
        with self._lock:
            conditional = rule.only_from is not None
            self.refresh(force=conditional)
            if not conditional and any(self._view(change.task_id) is None for change in changes):
                self.refresh(force=True)  # stored by another writer a moment ago?
            chosen = changes_to_apply(
                changes,
                lambda ids: {i: state.status for i in ids if (state := self._view(i)) is not None},
                rule,
            )
            for change in chosen:
                if self._view(change.task_id) is None:
                    raise TaskNotFoundError(change.task_id)
            if chosen:
                self._write(self._update_events(chosen, rule))
        return [change.task_id for change in chosen]

    def lookup(self, task_ids: Sequence[str], *, results: bool = True) -> dict[str, Row]:
        if not results:
            return {i: Row(i, status) for i, status in self.get_statuses(task_ids).items()}
        with self._lock:
            self.refresh()
            found = {i: state for i in task_ids if (state := self._view(i)) is not None}
        large = [(i, state.blob) for i, state in found.items() if state.blob is not None]
        texts = dict(blobs.read(self.store, large))
        return {i: _row(i, state, texts.get(i, state.result)) for i, state in found.items()}

    def scan(self, status: str | None = None, *, data: bool = False) -> Iterator[Row]:
        """Every task (or those with ``status``) as the index holds it when the scan starts.

        Tasks in index order, those whose result lies in a blob last, in the
        order of their blobs: each blob is read once, with one request.
        """
        with self._lock:
            self.refresh()
            found = [
                (task_id, entry.view, entry.data if data else None)
                for task_id, entry in self._index.entries.items()
                if entry.view is not None and (status is None or entry.view.status == status)
            ]
        large: dict[str, tuple[State, str | None]] = {}
        placed: list[tuple[str, Blob]] = []
        for task_id, state, text in found:
            if state.blob is None:
                yield _row(task_id, state, state.result, text)
            else:
                large[task_id] = (state, text)
                placed.append((task_id, state.blob))
        for task_id, result in blobs.read(self.store, placed):
            state, text = large[task_id]
            yield _row(task_id, state, result, text)

    def delete(self, task_ids: Iterable[str] | None) -> None:
        """Forget the given tasks, or everything (see :meth:`_delete_all`)."""
        if task_ids is None:
            self._delete_all()
            return
        with self._lock:
            self.refresh()
            known = [i for i in dict.fromkeys(task_ids) if self._view(i) is not None]
            if known:
                self._write([["d", task_id] for task_id in known])

    def _delete_all(self) -> None:
        """Forget everything, whole or not at all, whatever other writers do meanwhile.

        An empty snapshot that covers every segment listed and sets the floor
        past them becomes HEAD by the same conditional write as a compaction's
        (so a compaction that moved HEAD meanwhile makes the clear start over,
        and one that did not cannot move it after). Once HEAD names it the
        clear is whole: the deletions that follow only tidy up, and blobs
        follow the grace rule of :func:`messor_s3.blobs.collect`.
        """
        with self._lock:
            while True:
                # HEAD before the listing: a HEAD moved after this read fails the write below.
                found = self._log.head()
                listed = self._list()  # the clock passes every name listed: the floor too
                covered = [n for n in listed if SEGMENT.fullmatch(n)]
                floor = self._log.tick()
                name = self._put_snapshot(covered, [], floor)
                etag = self._log.move_head(name, None if found is None else found[1])
                if etag is not None:
                    break
                self.store.delete([name])
            self._index = Index()
            self._index.wipe(floor)
            self._applied, self._head, self._snapshot = set(covered), etag, name
            self._known_snapshots, self._loaded, self._uncovered = {name}, True, 0
            self.store.delete([n for n in listed if n != name])
            self.store.delete(list(self.store.names("beats")))  # runs of tasks forgotten
            self._applied.clear()
            blobs.collect(self.store, set(), before=self._log.clock() - GRACE)

    # -- from the index, faster than the base class's defaults ----------------------

    def count_by_status(self) -> dict[str, int]:
        # The base class would scan every task, large results fetched and all.
        counts = dict.fromkeys(STATUSES, 0)
        with self._lock:
            self.refresh()
            counts.update(Counter(state.status for _, state in self._index.visible()))
        return counts

    def get_statuses(self, task_ids: Iterable[str]) -> dict[str, str]:
        # What a run calls for every task it is given: without a Row per task
        # (the base class's, on lookup) it looks 100,000 tasks up three times as fast.
        with self._lock:
            self.refresh()
            found = ((i, self._view(i)) for i in task_ids)
            return {i: state.status for i, state in found if state is not None}

    def flush(self) -> None:
        """Compact after a run, so that the next one resumes from a handful of requests."""
        with self._lock:
            if self._loaded and self._uncovered:
                self._compact()

    # -- run heartbeats --------------------------------------------------------

    keeps_beats = True
    beat_interval = 15.0

    def write_beat(self, run_id: str, beat_json: str) -> None:
        self.store.put(f"beats/{run_id}.json", beat_json.encode())

    def read_beats(self) -> dict[str, str]:
        beats = {}
        for name in self.store.names("beats"):
            found = self.store.get(name) if name.endswith(".json") else None
            if found is not None:  # deleted between the listing and the GET: a pruned run
                beats[name.removeprefix("beats/").removesuffix(".json")] = found[0].decode()
        return beats

    def delete_beats(self, run_ids: Iterable[str]) -> None:
        self.store.delete([f"beats/{run_id}.json" for run_id in run_ids])

    # -- helpers --------------------------------------------------------------

    def _view(self, task_id: str) -> State | None:
        entry = self._index.entries.get(task_id)
        return None if entry is None else entry.view


#: What a reset to pending changes: the status, result, error and attempts it leaves.
_RESET = (PENDING, None, None, 0)


def _row(task_id: str, state: State, result: str | None, data: str | None = None) -> Row:
    return Row(task_id, state.status, result, state.error, state.attempts, None, data)
