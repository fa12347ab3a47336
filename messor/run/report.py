"""What a run did (:class:`RunReport`), and the counts a summary prints (:func:`summary_text`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from messor.memories.base import COMPLETED, FAILED, GAVE_UP, PENDING

__all__ = ["RunReport", "summary_text"]


@dataclass
class RunReport:
    """What one ``run()`` did (the memory holds the full state; see ``status_summary``)."""

    #: Tasks recorded completed (or failed, or given up for good) by this run, as the
    #: memory confirmed.
    completed: int = 0
    failed: int = 0
    gave_up: int = 0
    #: Attempts that failed and were tried again; attempts that ran out of time.
    retried: int = 0
    timed_out: int = 0
    #: Tasks completed (or given up) in an earlier run, not run again.
    skipped: int = 0
    #: Attempts a server throttled (429...; not failures: they went again), and the
    #: seconds during which the run, or one of its keys, was paused by a server.
    throttled: int = 0
    paused_seconds: float = 0.0
    #: What the tasks reported spending, summed: {"tokens_in": 81200, "cost": 0.31}.
    usage: dict[str, float] = field(default_factory=dict)
    #: Why the run ended before every task was done (None: it did them all).
    stopped_because: str | None = None
    stopped: bool = False  # by a stop condition
    interrupted: bool = False  # by Ctrl-C or SIGTERM
    elapsed: float = 0.0
    refused_results: list[tuple[str, str]] = field(default_factory=list)


def summary_text(counts: dict[str, int]) -> str:
    """``Pending tasks: N`` and so on, one line per status, as ``status_summary`` prints them.

    The seed's three lines always; then ``Given up tasks: N`` and any other
    status, when a task has it.
    """
    order = [PENDING, COMPLETED, FAILED]
    order += [GAVE_UP] if counts.get(GAVE_UP) else []
    order += sorted(s for s, n in counts.items() if s not in order and n)
    return "\n".join(f"{_LABELS.get(s, s.capitalize())} tasks: {counts.get(s, 0)}" for s in order)


_LABELS = {GAVE_UP: "Given up"}
