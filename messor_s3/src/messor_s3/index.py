"""The S3 memory's picture of its tasks: an index folded from log events.

Every change is an event in a log segment (see :mod:`messor_s3.memory`):

* ``["s", id, data]``: store a task (the first store of a task wins);
* ``["u", id, status, result, blob, error, keep, attempts]``: set a task's
  state; the result is inline JSON text, or ``blob`` says where it lies;
  ``keep`` marks an executor's outcome, whose failure never replaces a
  completed result; ``attempts`` were made by the run that recorded it;
* ``["r", id, statuses]``: set a task back to pending, only if its status just
  before (in stamp order) is one of ``statuses`` (``messor retry``): a
  completion that the writer of the reset had not seen yet keeps its result;
* ``["d", id]``: forget a task.

Each event has a stamp, ``(segment name, position)``; segment names start with
a hybrid logical clock, so a writer's stamps follow everything it has seen.
The fold is commutative: each task keeps a few registers, each the newest (or,
for stores and resets, every) event of its kind, and its visible state is
derived from them. Whatever order segments become visible in (another writer's
may arrive late), every reader ends with the same index. A clear sets a
*floor*: events stamped below it are gone, from every task at once.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from messor.plugin import COMPLETED, PENDING

__all__ = ["Blob", "Entry", "Index", "Stamp", "State", "clock_of", "stamp_time"]

#: ``(segment name, position in it)``: orders events across writers.
Stamp = tuple[str, int]
#: ``(blob name, offset, length)``: where a large result lies.
Blob = tuple[str, int, int]
#: A conditional reset: its stamp, and the statuses it resets.
Retry = tuple[Stamp, frozenset[str]]


@dataclass(slots=True)
class State:
    """What one update event set."""

    stamp: Stamp
    status: str
    result: str | None
    blob: Blob | None
    error: str | None
    attempts: int = 0


@dataclass(slots=True)
class Entry:
    """One task's registers, and what they add up to (``view``, ``data``)."""

    stores: list[tuple[Stamp, str]]  # every store since the last delete: (stamp, data)
    completed: State | None = None  # the newest completed update
    reset: State | None = None  # the newest other update not flagged keep
    failed: State | None = None  # the newest other update flagged keep
    deleted: Stamp | None = None  # the newest delete
    retries: list[Retry] | None = None  # every conditional reset since the last delete
    view: State | None = None  # the state a reader sees; None: the task does not exist

    @property
    def data(self) -> str:
        return min(self.stores)[1] if self.stores else "{}"

    def settle(self) -> None:
        """Derive ``view`` from the registers (on every event: kept cheap)."""
        if self.retries:
            self.view = self._replayed()
            return
        completed, reset, failed = self.completed, self.reset, self.failed
        if completed is None or (reset is not None and reset.stamp > completed.stamp):
            latest = reset
        else:
            latest = completed
        if failed is not None and (
            latest is None or (failed.stamp > latest.stamp and latest.status != COMPLETED)
        ):
            latest = failed
        if latest is None and self.stores:
            latest = _STORED
        self.view = latest

    def _replayed(self) -> State | None:
        """The view, by replaying the registers in stamp order (when there are resets).

        Whether a reset applies depends on the status just before it, so every
        reset is kept. The newest completion, update and failure are enough:
        a completion or an update replaces whatever came before it, and an
        older failure only ever leaves a task "not completed", which is what a
        newer failure or a reset after it finds either way.
        """
        events: list[tuple[Stamp, State | frozenset[str]]] = [
            (state.stamp, state)
            for state in (self.completed, self.reset, self.failed)
            if state is not None
        ]
        events.extend(self.retries or ())
        view = _STORED if self.stores else None
        for stamp, event in sorted(events, key=lambda pair: pair[0]):
            if isinstance(event, frozenset):
                if view is not None and view.status in event:
                    view = State(stamp, PENDING, None, None, None)
            elif event is not self.failed or view is None or view.status != COMPLETED:
                view = event
        return view


#: The view of a task stored and never updated (readers use no stamp of a view).
_STORED = State(("", 0), PENDING, None, None, None)


def _newer(current: State | None, candidate: State) -> State:
    return candidate if current is None or candidate.stamp > current.stamp else current


class Index:
    """Task id -> :class:`Entry`, kept by applying events."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        #: Events stamped below this are gone (a clear): ``log/<clock>``, a prefix of no name.
        self.floor = _floor(0)
        #: The greatest segment name of any stamp here: a writer's clock must pass it.
        self.newest = self.floor

    def apply(self, events: Iterable[list[Any]], segment: str) -> None:
        """Apply the events of ``segment`` (in any order relative to other segments)."""
        self.newest = max(self.newest, segment)
        for position, event in enumerate(events):
            self._event((segment, position), event)

    def _event(self, stamp: Stamp, event: list[Any]) -> None:
        kind, task_id = event[0], event[1]
        if stamp[0] < self.floor:
            return  # older than a clear
        entry = self.entries.get(task_id)
        if entry is None:
            entry = self.entries[task_id] = Entry([])
        if entry.deleted is not None and stamp < entry.deleted:
            return  # older than the task's deletion
        if kind == "s":
            entry.stores.append((stamp, _shared(event[2])))
        elif kind == "u":
            status, result, blob, error, keep = event[2:7]
            attempts = int(event[7]) if len(event) > 7 else 0
            state = State(stamp, sys.intern(status), _small(result), _blob(blob), error, attempts)
            if status == COMPLETED:
                entry.completed = _newer(entry.completed, state)
            elif keep:
                entry.failed = _newer(entry.failed, state)
            else:
                entry.reset = _newer(entry.reset, state)
        elif kind == "r":
            retry = (stamp, frozenset(sys.intern(status) for status in event[2]))
            entry.retries = [*(entry.retries or ()), retry]
        elif kind == "d":
            entry.deleted = stamp
            _forget_before(entry, stamp)
        else:
            raise ValueError(f"unknown event {kind!r} at {stamp}")
        entry.settle()

    def wipe(self, clock: int) -> None:
        """Forget every event stamped before ``clock`` (ns): what a clear at that time covers."""
        floor = _floor(clock)
        if floor <= self.floor:
            return
        self.floor, self.newest = floor, max(self.newest, floor)
        stamp = (floor, 0)
        for task_id, entry in list(self.entries.items()):
            _forget_before(entry, stamp)
            if entry.deleted is not None and entry.deleted < stamp:
                entry.deleted = None
            entry.settle()
            if entry.view is None and entry.deleted is None and not entry.retries:
                del self.entries[task_id]

    def visible(self) -> Iterator[tuple[str, State]]:
        """``(task_id, state)`` of every task that exists."""
        for task_id, entry in self.entries.items():
            if entry.view is not None:
                yield task_id, entry.view

    def rows(self, *, forget_before: int) -> Iterator[list[Any]]:
        """The index as rows, for a snapshot; tombstones older than ``forget_before`` ns go."""
        for task_id, e in self.entries.items():
            # A task with no view but resets stays: a reset may yet apply to a late store.
            gone = e.deleted is None or stamp_time(e.deleted) < forget_before
            if e.view is None and not e.retries and gone:
                continue
            states = [_state_row(s) for s in (e.completed, e.reset, e.failed)]
            row = [task_id, [[*stamp, data] for stamp, data in e.stores], *states, e.deleted]
            if e.retries:  # only then: a snapshot without resets stays readable by older versions
                row.append([[*stamp, sorted(statuses)] for stamp, statuses in e.retries])
            yield row

    @classmethod
    def from_rows(cls, rows: Iterable[list[Any]]) -> Index:
        """The index a snapshot's rows describe (see :meth:`absorb` to add more to one)."""
        index = cls()
        segments: dict[str, str] = {}  # one string object per segment name

        def stamp(row: list[Any]) -> Stamp:
            return (segments.setdefault(row[0], row[0]), row[1])

        def state(row: list[Any] | None) -> State | None:
            if row is None:
                return None
            attempts = int(row[6]) if len(row) > 6 else 0
            return State(
                stamp(row), sys.intern(row[2]), _small(row[3]), _blob(row[4]), row[5], attempts
            )

        for row in rows:
            task_id, stores, completed, reset, failed, deleted = row[:6]
            entry = Entry(
                [(stamp(s), _shared(s[2])) for s in stores],
                state(completed),
                state(reset),
                state(failed),
                None if deleted is None else stamp(deleted),
            )
            if len(row) > 6:
                entry.retries = [(stamp(r), frozenset(r[2])) for r in row[6]]
            entry.settle()
            index.entries[task_id] = entry
        if segments:
            index.newest = max(index.newest, max(segments))
        return index

    def absorb(self, rows: Iterable[list[Any]]) -> None:
        """Fold another snapshot's rows in: the index then holds what both held."""
        for row in rows:
            task_id, stores, completed, reset, failed, deleted = row[:6]
            events: list[tuple[list[Any], list[Any]]] = [(s, ["s", task_id, s[2]]) for s in stores]
            for state, keep in ((completed, 0), (reset, 0), (failed, 1)):
                if state is not None:
                    events.append((state, ["u", task_id, *state[2:6], keep, *state[6:7]]))
            if deleted is not None:
                events.append((deleted, ["d", task_id]))
            events.extend((r, ["r", task_id, r[2]]) for r in (row[6] if len(row) > 6 else ()))
            for where, event in events:
                self.newest = max(self.newest, where[0])
                self._event((where[0], where[1]), event)


def stamp_time(stamp: Stamp) -> int:
    """The clock reading (ns) a stamp starts with: segment names are ``log/<20 digits>-...``."""
    return clock_of(stamp[0])


def clock_of(name: str) -> int:
    """The clock reading (ns) in a segment name or a floor: ``log/<20 digits>...``."""
    return int(name[4:24])


def _floor(clock: int) -> str:
    return f"log/{clock:020d}"


def _forget_before(entry: Entry, stamp: Stamp) -> None:
    entry.stores = [s for s in entry.stores if s[0] > stamp]
    entry.completed = _after(entry.completed, stamp)
    entry.reset = _after(entry.reset, stamp)
    entry.failed = _after(entry.failed, stamp)
    if entry.retries:
        entry.retries = [r for r in entry.retries if r[0] > stamp] or None


def _after(state: State | None, stamp: Stamp) -> State | None:
    return state if state is not None and state.stamp > stamp else None


def _state_row(state: State | None) -> list[Any] | None:
    if state is None:
        return None
    return [*state.stamp, state.status, state.result, state.blob, state.error, state.attempts]


def _shared(text: str) -> str:
    """One shared object for the short texts most tasks repeat ({}, null, true, ...)."""
    return sys.intern(text) if len(text) <= 8 else text


def _small(text: str | None) -> str | None:
    return None if text is None else _shared(text)


def _blob(value: Any) -> Blob | None:
    return None if value is None else (str(value[0]), int(value[1]), int(value[2]))
