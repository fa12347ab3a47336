"""What ``messor status`` (and the dashboard) say of the runs: progress, ETA, live and stale runs.

Built on the heartbeats runs keep in the memory (:mod:`messor.run.heartbeat`):
a run that stopped beating without a last beat is *stale* and said to be so,
never counted as going on.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from messor.cli.export import iso_time
from messor.memories.base import COMPLETED, FAILED, GAVE_UP, PENDING, Memory
from messor.run.heartbeat import read_beats
from messor.terminal import printable

__all__ = ["progress", "progress_lines", "runs", "runs_lines"]

#: Finished runs ``messor status`` lists besides the live and stale ones.
FINISHED_SHOWN = 1


def runs(memory: Memory, now: float | None = None) -> list[dict[str, Any]] | None:
    """The runs' beats, newest first, without their chart history; None: the memory keeps none."""
    if not memory.keeps_beats:
        return None
    return [{k: v for k, v in beat.items() if k != "history"} for beat in read_beats(memory, now)]


def progress(counts: dict[str, int], beats: list[dict[str, Any]] | None) -> dict[str, Any]:
    """Done of total (the memory's), percent, and an ETA from the live runs' recent rate.

    The total is every task the memory holds; while a live run reads a
    generator (no known total) more may come, so neither percent nor ETA is
    given as final: ``total_known`` is false.
    """
    total = sum(counts.values())
    done = counts.get(COMPLETED, 0) + counts.get(FAILED, 0) + counts.get(GAVE_UP, 0)
    live = [b for b in beats or [] if b["state"] == "live"]
    rate = sum(b.get("rate") or 0.0 for b in live) if live else None
    total_known = all(b.get("known_total") is not None for b in live)
    left = counts.get(PENDING, 0)
    eta = left / rate if rate and total_known else None
    return {
        "done": done,
        "total": total,
        "total_known": total_known,
        "percent": round(100 * done / total, 1) if total else None,
        "rate_per_second": None if rate is None else round(rate, 2),
        "eta_seconds": None if eta is None else round(eta, 1),
    }


def progress_lines(info: dict[str, Any]) -> list[str]:
    if not info["total"]:
        return []
    line = f"Progress: {info['done']} of {info['total']} tasks done ({info['percent']}%)"
    if not info["total_known"]:
        line += "; a run reads a generator, its total is not known yet"
    if info["rate_per_second"] is not None:
        line += f"; {info['rate_per_second']:.1f}/s"
        if info["eta_seconds"] is not None:
            line += f", about {duration(info['eta_seconds'])} left"
    return [line]


def runs_lines(beats: list[dict[str, Any]] | None, now: float | None = None) -> list[str]:
    """One line per live or stale run and the latest finished one; or that none is going on."""
    if beats is None:
        return []
    now = time.time() if now is None else now
    lines = []
    live = [b for b in beats if b["state"] == "live"]
    if not live:
        lines.append("No run is going on.")
    finished = 0
    for beat in beats:
        if beat["state"] == "finished":
            finished += 1
            if finished > FINISHED_SHOWN:
                continue
        lines.append(_run_line(beat, now))
    return lines


def _run_line(beat: dict[str, Any], now: float) -> str:
    who = f"{printable(str(beat.get('host')))} pid {beat.get('pid')}"
    since = f"started {iso_time(beat.get('started'))}"
    counts = f"{beat.get('completed', 0)} completed, {beat.get('failed', 0)} failed"
    if beat.get("gave_up"):
        counts += f", {beat['gave_up']} failed for good"
    state = beat["state"]
    if state == "stale":
        ago = duration(now - float(beat.get("updated") or 0))
        return (
            f"  STALE  {who}, {since}: no heartbeat for {ago} and no last one: it stopped "
            f"without saying (crashed or killed?); {counts}"
        )
    if state == "finished":
        why = beat.get("stopped_because") or "every task done"
        return f"  ended  {who}, {since}, ended {iso_time(beat.get('updated'))} ({why}): {counts}"
    rate = beat.get("rate")
    parts = [counts, f"{rate:.1f}/s" if rate is not None else "no rate yet"]
    if beat.get("concurrency"):
        parts.append(f"{beat.get('in_flight', 0)} running of {beat['concurrency']} at most")
    if beat.get("paused_until") and float(beat["paused_until"]) > now:
        until = float(beat["paused_until"])
        reason = printable(str(beat.get("pause_reason") or "no reason given"))
        parts.append(
            f"paused by the server until {clock_time(until)} ({reason}), "
            f"{duration(until - now)} left"
        )
    if beat.get("throttled"):
        times = "once" if beat["throttled"] == 1 else f"{beat['throttled']} times"
        parts.append(f"throttled {times}")
    if beat.get("usage"):
        parts.append(f"spent {usage_text(beat['usage'])}")
    return f"  live   {who}, {since}: " + ", ".join(parts)


def clock_time(seconds: float) -> str:
    """The time of day of an epoch time, in UTC as ``messor status`` gives every time:
    ``12:03:07 UTC``."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%H:%M:%S UTC")


def usage_text(usage: Mapping[str, Any]) -> str:
    """``tokens_in=81200 cost=0.3125``: what a run's tasks reported, summed."""
    shown = []
    for name, amount in usage.items():
        if isinstance(amount, int | float) and not isinstance(amount, bool):
            whole = abs(amount) < 1e15 and amount == round(amount)
            label = printable(str(name))
            shown.append(f"{label}={amount:.0f}" if whole else f"{label}={amount:.4g}")
    return " ".join(shown)


def duration(seconds: float) -> str:
    """``42 s``, ``7 min``, ``3 h 05 min``."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min"
