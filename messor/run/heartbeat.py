"""Run heartbeats: a running harvest's live state, written to its memory every few seconds.

One small JSON record per run (see :func:`beat_record`), rewritten in place by
a thread of its own, never on the run's hot path: ``messor status`` and
``messor dashboard`` read them from any machine that can open the memory, so
a Dask or remote run can be watched. A beat that could not be written only
warns. A run that ends writes a last beat with ``finished`` true and why it
stopped; a beat that stopped coming without that is *stale* (the run crashed,
was killed or lost its machine) and is never shown as live.

The record (all times in seconds since the epoch)::

    run_id host pid started updated interval
    known_total            tasks given to this run (None: a generator, not known)
    completed failed gave_up retried skipped   this run's, as the memory confirmed them
    rate                   outcomes per second over the last minute (or the run's
                           whole life when it is younger), None before any time passed
    concurrency in_flight  the executor's limit; attempts handed out and not ended
    paused_until pause_reason throttled   pacing (None/None/0 until a run paces itself)
    usage                  named totals tasks reported (tokens, cost), {} when none
    finished stopped_because
    learned                in the last beat: what the run learned of the servers' pace
                           (``PacingState.learned``), where the next run on this memory
                           starts from (see :func:`last_learned`); {} before
    history                [[time, completed + failed + gave_up], ...] for a chart, at most
                           HISTORY_POINTS, thinned evenly as the run grows
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from messor.memories.base import Memory
from messor.run.pacing import Learned

__all__ = [
    "HISTORY_POINTS",
    "RATE_WINDOW",
    "STALE_BEATS",
    "Heartbeat",
    "RunState",
    "beat_state",
    "beats_from",
    "last_learned",
    "read_beats",
]

logger = logging.getLogger("messor")

#: Points the chart history keeps at most: an hour at 10 s, a day at 4 min.
HISTORY_POINTS = 360
#: The window of a beat's rate, in seconds.
RATE_WINDOW = 60.0
#: A beat not renewed for this many of its intervals is stale.
STALE_BEATS = 3
#: Seconds the end of a run waits for a beat being written, beyond one interval.
FINISH_WAIT = 5.0
#: Finished runs whose beats a memory keeps (the rest are pruned).
KEEP_FINISHED = 5


@dataclass
class RunState:
    """What a run knows of itself at one instant: what :class:`Heartbeat` asks for each beat."""

    completed: int = 0
    failed: int = 0
    gave_up: int = 0
    retried: int = 0
    skipped: int = 0
    concurrency: int | None = None
    in_flight: int = 0
    paused_until: float | None = None
    pause_reason: str | None = None
    throttled: int = 0
    usage: Mapping[str, float] = field(default_factory=dict)
    learned: Learned = field(default_factory=dict)


class Heartbeat:
    """Writes one run's beat to ``memory`` every ``memory.beat_interval`` seconds, on its thread.

    ``state`` is called from that thread: it must only read (counters a
    CPython thread can read while others change them).
    """

    def __init__(
        self,
        memory: Memory,
        state: Callable[[], RunState],
        *,
        known_total: int | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._memory = memory
        self._state = state
        self._clock = clock
        self._interval = float(memory.beat_interval)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="messor-heartbeat", daemon=True)
        self._warned = False
        now = clock()
        self.record: dict[str, Any] = {
            "run_id": uuid.uuid4().hex[:16],
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": now,
            "updated": now,
            "interval": self._interval,
            "known_total": known_total,
            "finished": False,
            "stopped_because": None,
        }
        self._history: list[list[float]] = [[round(now, 1), 0]]

    @property
    def run_id(self) -> str:
        return str(self.record["run_id"])

    def start(self) -> None:
        """Write the first beat now, then one every interval, until :meth:`finish`."""
        if self._memory.keeps_beats:
            self._beat()
            self._thread.start()

    def finish(self, stopped_because: str | None, *, store_failed: bool = False) -> None:
        """Stop beating and write the last beat: the run ended (``stopped_because``: why early).

        With ``store_failed`` (the run's records could not be written) no last
        beat is tried: the run should not wait for a store that fails, and a
        beat left live turns stale, which says the truth (the run died).
        """
        self._stop.set()
        if self._thread.is_alive():
            # A beat being written to a store that hangs is not waited for long.
            self._thread.join(self._interval + FINISH_WAIT)
        if self._memory.keeps_beats and not store_failed and not self._thread.is_alive():
            self._beat(finished=True, stopped_because=stopped_because)
            self._prune()

    def _prune(self) -> None:
        """Forget the beats of runs older than the last few finished ones."""
        try:
            old = finished_to_prune(self._memory.read_beats())
            if old:
                self._memory.delete_beats(old)
        except Exception as exc:
            logger.debug("Could not prune old heartbeats in %r: %s", self._memory, exc)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._beat()

    def _beat(self, *, finished: bool = False, stopped_because: str | None = None) -> None:
        try:
            text = json.dumps(self._next(finished, stopped_because), separators=(",", ":"))
            self._memory.write_beat(self.run_id, text)
        except Exception as exc:
            # The run's records matter, its beats only to whoever watches.
            level = logging.DEBUG if self._warned else logging.WARNING
            logger.log(level, "Could not write this run's heartbeat to %r: %s", self._memory, exc)
            self._warned = True

    def _next(self, finished: bool, stopped_because: str | None) -> dict[str, Any]:
        state = self._state()
        now = self._clock()
        done = state.completed + state.failed + state.gave_up
        self._add_sample(now, done)
        self.record.update(
            updated=now,
            completed=state.completed,
            failed=state.failed,
            gave_up=state.gave_up,
            retried=state.retried,
            skipped=state.skipped,
            rate=self._rate(now, done),
            concurrency=state.concurrency,
            in_flight=0 if finished else state.in_flight,
            paused_until=None if finished else state.paused_until,
            pause_reason=None if finished else state.pause_reason,
            throttled=state.throttled,
            usage=dict(state.usage),
            learned=state.learned if finished else {},
            finished=finished,
            stopped_because=stopped_because,
            history=self._history,
        )
        return self.record

    def _add_sample(self, now: float, done: int) -> None:
        self._history.append([round(now, 1), done])
        if len(self._history) > HISTORY_POINTS:
            # Every other point goes (the first and the newest stay): the
            # chart keeps its whole span at half the resolution.
            self._history = [*self._history[:-1:2], self._history[-1]]

    def _rate(self, now: float, done: int) -> float | None:
        """Outcomes per second since the newest sample at least RATE_WINDOW old (else since
        the start: a run 5 s old is measured over 5 s, not a minute)."""
        # From the exact start (history times are rounded), unless a sample is old enough.
        since, then = float(self.record["started"]), 0.0
        for moment, count in reversed(self._history[:-1]):
            if now - moment >= RATE_WINDOW:
                since, then = moment, count
                break
        seconds = now - since
        return round((done - then) / seconds, 3) if seconds > 0 else None


def beat_state(beat: Mapping[str, Any], now: float | None = None) -> str:
    """``"live"``, ``"finished"`` or ``"stale"`` (stopped beating without saying it ended)."""
    if beat.get("finished"):
        return "finished"
    now = time.time() if now is None else now
    interval = float(beat.get("interval") or 5.0)
    return "live" if now - float(beat.get("updated") or 0) <= STALE_BEATS * interval else "stale"


def read_beats(memory: Memory, now: float | None = None) -> list[dict[str, Any]]:
    """The memory's beats, newest first, each with its ``state`` (see :func:`beat_state`).

    A beat that is not a JSON object (written by hand, or by something
    else) is skipped: watching a harvest never fails on one.
    """
    return beats_from(memory.read_beats(), now)


def beats_from(texts: Mapping[str, str], now: float | None = None) -> list[dict[str, Any]]:
    """What :func:`read_beats` makes of the texts a memory's ``read_beats`` returned."""
    beats = []
    for text in texts.values():
        try:
            beat = json.loads(text)
        except ValueError:
            continue
        if isinstance(beat, dict):
            beat["state"] = beat_state(beat, now)
            beats.append(beat)
    beats.sort(key=lambda b: float(b.get("updated") or 0), reverse=True)
    return beats


def finished_to_prune(beats: Mapping[str, str], keep: int = KEEP_FINISHED) -> list[str]:
    """The run ids of finished beats beyond the ``keep`` newest: what a memory deletes.

    Live and stale beats are never pruned here (a stale one tells of a crash);
    they go with the finished ones only once ``keep`` newer runs finished.
    """
    dated = []
    for run_id, text in beats.items():
        try:
            beat = json.loads(text)
            dated.append((float(beat.get("updated") or 0), bool(beat.get("finished")), run_id))
        except (ValueError, AttributeError, TypeError):
            dated.append((0.0, True, run_id))  # unreadable: nothing to show, nothing to keep
    dated.sort(reverse=True)
    finished = [run_id for _, done, run_id in dated if done]
    if len(finished) <= keep:
        return []
    cutoff = next(updated for updated, done, run_id in dated if run_id == finished[keep - 1])
    # Everything older than the keep-th newest finished run, stale beats included.
    return [run_id for updated, _, run_id in dated if updated < cutoff]


def last_learned(memory: Memory) -> Learned | None:
    """What the newest finished run of ``memory`` learned of the servers' pace (None: nothing).

    A new run starts from it rather than from scratch (issue 15). A memory
    that keeps no beats has nothing; a beat that cannot be read, or whose
    ``learned`` is not what a run writes, is passed over (a debug log says so):
    a run never fails for what a watcher's memory holds.
    """
    if not memory.keeps_beats:
        return None
    try:
        texts = memory.read_beats()
    except Exception as exc:  # the run finds out soon enough, when it claims the memory
        logger.debug("Could not read the heartbeats of %r: %s", memory, exc)
        return None
    found: list[tuple[float, Learned]] = []
    for run_id, text in texts.items():
        try:
            beat = json.loads(text)
            if isinstance(beat, dict) and beat.get("finished") and beat.get("learned"):
                found.append((float(beat.get("updated") or 0), _learned(beat["learned"])))
        except (ValueError, TypeError) as exc:
            logger.debug("The heartbeat of run %r in %r is passed over: %s", run_id, memory, exc)
    return max(found, key=lambda pair: pair[0])[1] if found else None


def _learned(value: object) -> Learned:
    """``value`` as a run's ``learned``: {key: {knob: a positive number}}; else ValueError."""
    if not isinstance(value, dict):
        raise ValueError(f"learned is not a JSON object: {value!r:.80}")
    learned: Learned = {}
    for key, knobs in value.items():
        if not isinstance(knobs, dict):
            raise ValueError(f"learned[{key!r}] is not a JSON object: {knobs!r:.80}")
        for knob, number in knobs.items():
            ok = isinstance(number, int | float) and not isinstance(number, bool)
            if not ok or not 0 < number < math.inf:
                raise ValueError(f"learned[{key!r}][{knob!r}] is not a positive number")
        learned[key] = {knob: float(number) for knob, number in knobs.items()}
    return learned
