"""What the dashboard shows, read from a memory in a few cheap calls and kept a moment.

Nothing here ever reads all records: counts come from ``count_by_status``
(one indexed query on SQLite, a few SCARDs on Redis), runs from their
heartbeats, and failure groups from at most :data:`FAILURE_SAMPLE` failures.
Answers are cached briefly, so several open pages (or a Prometheus scraping
every few seconds) cost the memory no more than one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from messor.cli.runs import progress
from messor.failures import group_failures
from messor.memories.base import FAILED, Memory
from messor.memories.records import TaskStatus
from messor.run.heartbeat import beats_from

__all__ = ["FAILURE_SAMPLE", "Watcher", "prometheus_text"]

T = TypeVar("T")

#: Failures read to find the groups: the groups of a million failures cost no more.
FAILURE_SAMPLE = 10_000
#: Failure groups sent to the page.
GROUPS_SHOWN = 50
#: Seconds an answer is reused: counts and runs; failure groups.
FRESH_FOR = 1.0
GROUPS_FRESH_FOR = 10.0


class Watcher:
    """Reads one memory for the dashboard; safe to call from many threads."""

    def __init__(self, memory: Memory, label: str) -> None:
        self.memory = memory
        #: The memory as it may be shown: secrets hidden.
        self.label = label
        self._lock = threading.RLock()  # an answer may be made of cached parts
        self._cache: dict[str, tuple[float, Any]] = {}

    def _cached(self, name: str, seconds: float, read: Callable[[], T]) -> T:
        with self._lock:
            found = self._cache.get(name)
            if found is not None and time.monotonic() - found[0] < seconds:
                answer: T = found[1]
                return answer
            value = read()
            self._cache[name] = (time.monotonic(), value)
            return value

    def forget(self) -> None:
        """Drop cached answers (after a retry changed the memory)."""
        with self._lock:
            self._cache.clear()

    def overview(self) -> dict[str, Any]:
        """Counts, progress and ETA, and every run kept with its chart history."""
        return self._cached("overview", FRESH_FOR, self._read_overview)

    def _read_overview(self) -> dict[str, Any]:
        now = time.time()
        counts = self.memory.count_by_status()
        beats = None
        if self.memory.keeps_beats:
            # Beats change once an interval at most; on S3 each read is a LIST and a GET
            # per run, billed: read them a few times an interval, not on every poll.
            texts = self._cached("beats", self.memory.beat_interval / 3, self.memory.read_beats)
            beats = beats_from(texts, now)
        return {
            "memory": self.label,
            "time": now,
            "counts": counts,
            "progress": progress(counts, beats),
            "keeps_beats": self.memory.keeps_beats,
            "runs": beats or [],
        }

    def failure_groups(self) -> dict[str, Any]:
        """The biggest groups among the first :data:`FAILURE_SAMPLE` failures."""
        return self._cached("failures", GROUPS_FRESH_FOR, self._read_failure_groups)

    def _read_failure_groups(self) -> dict[str, Any]:
        found = group_failures(self.memory.iter_records(FAILED), sample=FAILURE_SAMPLE)
        return {
            "groups": [vars(group) for group in found.groups[:GROUPS_SHOWN]],
            "group_count": len(found.groups),
            "examined": found.examined,
            "complete": found.complete,
            "sample": FAILURE_SAMPLE,
        }


def prometheus_text(overview: dict[str, Any]) -> str:
    """The overview in Prometheus's text format (version 0.0.4)."""
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: Iterator[tuple[str, Any]]) -> None:
        lines.extend((f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"))
        lines.extend(f"{name}{labels} {_number(value)}" for labels, value in samples)

    # Every status a memory knows, at 0 when no task has it: a series that comes
    # and goes breaks rate() and alerts; a backend's own statuses when present.
    counts = {**dict.fromkeys((s.value for s in TaskStatus), 0), **overview["counts"]}
    family(
        "messor_tasks",
        "gauge",
        "Tasks in the memory, by status.",
        ((_labels(status=s), n) for s, n in sorted(counts.items())),
    )
    runs = overview["runs"]
    live = [run for run in runs if run["state"] == "live"]
    family(
        "messor_rate_per_second",
        "gauge",
        "Outcomes recorded per second over the last minute, all live runs together.",
        iter([("", sum(run.get("rate") or 0.0 for run in live))]),
    )
    family(
        "messor_runs",
        "gauge",
        "Runs whose heartbeat the memory keeps, by state (live, stale, finished).",
        (
            (_labels(state=state), sum(run["state"] == state for run in runs))
            for state in ("live", "stale", "finished")
        ),
    )
    per_run: list[tuple[str, str, str, str]] = [
        ("completed", "counter", "messor_run_completed_total", "Tasks a run recorded completed."),
        ("failed", "counter", "messor_run_failed_total", "Tasks a run recorded failed."),
        ("gave_up", "counter", "messor_run_gave_up_total", "Tasks a run failed for good."),
        ("retried", "counter", "messor_run_retries_total", "Attempts a run retried."),
        ("throttled", "counter", "messor_run_throttled_total", "Times a server throttled a run."),
        ("concurrency", "gauge", "messor_run_concurrency", "A run's limit of tasks at once."),
        ("in_flight", "gauge", "messor_run_in_flight", "Tasks a run is running now."),
    ]
    for field, kind, name, help_text in per_run:
        family(
            name,
            kind,
            help_text,
            ((_run_labels(run), run.get(field) or 0) for run in runs),
        )
    family(
        "messor_run_usage_total",
        "counter",
        "Totals a run's tasks reported (tokens, cost, ...), by name.",
        (
            (_run_labels(run, name=str(key)), value)
            for run in runs
            for key, value in sorted((run.get("usage") or {}).items())
        ),
    )
    return "\n".join(lines) + "\n"


def _run_labels(run: dict[str, Any], **extra: str) -> str:
    # Not the state: a series must keep its labels when its run ends.
    return _labels(run_id=str(run.get("run_id")), host=str(run.get("host")), **extra)


def _labels(**labels: str) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items()) + "}"


def _escape(value: str) -> str:
    """A label value as the text format wants it: backslash, quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "0"
    return repr(float(value)) if isinstance(value, float) else str(value)
