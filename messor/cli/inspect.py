"""``messor backends``, ``status``, ``failed`` and ``retry``: what a harvest's memory holds."""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import sys
import time
from collections.abc import Iterable
from typing import Any

from messor.cli.common import (
    CommandError,
    Formatter,
    add_memory_argument,
    open_chosen_memory,
    utf8_stdout,
)
from messor.cli.export import add_command as add_results_command
from messor.cli.export import iso_time
from messor.cli.runs import progress, progress_lines, runs, runs_lines
from messor.failures import group_failures, tasks_in_group
from messor.memories.base import COMPLETED, FAILED, GAVE_UP, PENDING, Memory, TaskRecord
from messor.plugins import Backend, get_catalog
from messor.run.harvest import summary_text
from messor.terminal import printable

__all__ = ["add_commands"]

#: Failures ``messor status`` shows; the windows of its recent rate (seconds).
STATUS_FAILURES = 5
WINDOWS = {"last_minute": 60, "last_5_minutes": 300}
#: Rows per call when ``messor retry`` resets many tasks.
RETRY_BATCH = 1000


def add_commands(commands: Any) -> None:
    """Add this module's commands to the ``messor`` parser's subcommands."""
    parser = commands.add_parser(
        "backends",
        help="list the installed memories and executors, and plugins that failed to load",
        description="List every installed memory and executor with its distribution, "
        "version and URL schemes, and every plugin that failed to load, with the reason.",
        epilog="examples:\n  messor backends\n  messor backends --json",
        formatter_class=Formatter,
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=backends)

    parser = commands.add_parser(
        "status",
        help="counts per status, progress and ETA, the runs going on, the latest failures",
        description="Show how many tasks are pending, completed and failed, the progress "
        "and the time left at the recent rate, the runs going on (from their heartbeats: a "
        "run that stopped beating is reported stale, not live), how many outcomes were "
        "recorded in the last minutes and the latest failures.",
        epilog="examples:\n  messor status\n  messor status --memory sqlite:///crawl.db --json\n"
        "  messor status --watch 5          refresh every 5 s, with the rate; Ctrl-C ends",
        formatter_class=Formatter,
    )
    add_memory_argument(parser)
    parser.add_argument("--json", action="store_true", help="print JSON (one line per refresh)")
    parser.add_argument(
        "--watch", type=_positive_float, metavar="SECONDS", help="refresh every SECONDS"
    )
    parser.set_defaults(handler=status)

    parser = commands.add_parser(
        "failed",
        help="list failed tasks with their errors",
        description="List failed tasks with their last error and the attempts the run made, "
        "then those that failed for good (gave_up: no run retries them).",
        epilog="examples:\n  messor failed\n  messor failed --limit 0 --json > failures.json\n"
        "  messor failed --group-by error     failures by cause, with a KEY for "
        "messor retry --group KEY",
        formatter_class=Formatter,
    )
    add_memory_argument(parser)
    parser.add_argument(
        "--limit", type=_count, default=100, metavar="N", help="list at most N (0: all; 100)"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON array")
    parser.add_argument(
        "--group-by",
        choices=["error"],
        help="error: one line per cause (error class and message with numbers, ids, URLs and "
        "quoted strings folded), with its count, its KEY and an example",
    )
    parser.set_defaults(handler=failed)

    add_results_command(commands)

    parser = commands.add_parser(
        "retry",
        help="make tasks pending again, so that the next run runs them",
        description="Mark failed tasks (or those that failed for good, or the tasks named) "
        "pending again, with no error; the next run of the harvest runs them. A completed "
        "task keeps its result unless --force is given, also one that a run going on "
        "completes meanwhile.",
        epilog="examples:\n  messor retry --failed\n  messor retry --gave-up\n"
        "  messor retry --group 3f2a9c01d4     the failures of one cause (messor failed "
        "--group-by error)\n"
        "  messor retry https://example.org/page/7 https://example.org/page/9",
        formatter_class=Formatter,
    )
    add_memory_argument(parser)
    parser.add_argument("ids", nargs="*", metavar="ID", help="ids of the tasks to retry")
    parser.add_argument("--failed", action="store_true", help="every failed task")
    parser.add_argument(
        "--gave-up", action="store_true", help="every task that failed for good (gave_up)"
    )
    parser.add_argument(
        "--group", metavar="KEY", help="the failed tasks of one group of messor failed --group-by"
    )
    parser.add_argument(
        "--force", action="store_true", help="also reset completed tasks, discarding their result"
    )
    parser.set_defaults(handler=retry)


# -- backends ---------------------------------------------------------------------------


def backends(arguments: argparse.Namespace) -> int:
    catalog = get_catalog()
    memories = [_backend_row(b) for b in catalog.memories.backends.values()]
    executors = [_backend_row(b) for b in catalog.executors.backends.values()]
    failures = [
        {
            "plugin": f.plugin,
            "target": f.target,
            "distribution": f.distribution,
            "version": f.version,
            "error": f.error,
        }
        for f in catalog.failures
    ]
    if arguments.json:
        listing = {"backends": memories, "executors": executors, "failed_plugins": failures}
        print(json.dumps(listing, indent=2))
        return 0
    _print_table("NAME", memories)
    print()
    _print_table("EXECUTOR", executors)
    for failure in catalog.failures:
        print(f"\ncould not load {failure}")
    return 0


def _backend_row(backend: Backend[Any]) -> dict[str, Any]:
    return {
        "name": backend.name,
        "schemes": [f"{s}://" for s in backend.schemes],
        "distribution": backend.distribution,
        "version": backend.version,
        "plugin": backend.plugin,
        "description": backend.description,
    }


def _print_table(first: str, rows: list[dict[str, Any]]) -> None:
    """Name, schemes, distribution and description of each, in aligned columns."""
    lines = [(first, "SCHEMES", "DISTRIBUTION", "DESCRIPTION")] + [
        (
            row["name"],
            " ".join(row["schemes"]),
            f"{row['distribution'] or '(source tree)'} {row['version'] or ''}".strip(),
            row["description"],
        )
        for row in rows
    ]
    widths = [max(len(line[column]) for line in lines) for column in range(3)]
    for line in lines:
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)]
        print("  ".join([*cells, line[3]]).rstrip())


# -- status -----------------------------------------------------------------------------


def status(arguments: argparse.Namespace) -> int:
    memory, choice = open_chosen_memory(arguments.memory)
    where = choice.shown + ("" if choice.source == "argument" else f" (from {choice.source})")
    with memory:
        if arguments.watch is None:
            _print_status(_snapshot(memory), where, arguments.json)
            return 0
        previous: tuple[float, int] | None = None
        try:
            while True:
                now = time.monotonic()
                snapshot = _snapshot(memory)
                done = snapshot["counts"].get(COMPLETED, 0) + snapshot["counts"].get(FAILED, 0)
                if previous is not None:
                    seconds = now - previous[0]
                    snapshot["rate_per_second"] = round((done - previous[1]) / seconds, 2)
                previous = (now, done)
                if not arguments.json and sys.stdout.isatty():
                    print("\x1b[H\x1b[2J", end="")  # a fresh screen, as `watch` does
                _print_status(snapshot, where, arguments.json)
                if not arguments.json:
                    print(f"(every {arguments.watch:g} s; Ctrl-C ends)\n", flush=True)
                time.sleep(arguments.watch)
        except KeyboardInterrupt:
            return 0


def _snapshot(memory: Memory) -> dict[str, Any]:
    """What ``messor status`` shows, as data (its ``--json``)."""
    now = time.time()
    counts = memory.count_by_status()
    recent = {name: memory.count_since(now - seconds) for name, seconds in WINDOWS.items()}
    latest = heapq.nlargest(
        STATUS_FAILURES, memory.iter_records(FAILED), key=lambda r: r.updated_at or 0.0
    )
    keeps_times = None not in recent.values()
    beats = runs(memory, now)
    return {
        "time": iso_time(now),
        "counts": counts,
        "total": sum(counts.values()),
        "recent": recent if keeps_times else None,
        "recent_seconds": _covered(memory, now) if keeps_times else None,
        "rate_per_second": None,
        "progress": progress(counts, beats),
        "runs": beats,
        "latest_failures": [_failure_row(record) for record in latest],
    }


def _covered(memory: Memory, now: float) -> dict[str, float]:
    """The seconds each window of recent outcomes spans: the window, or less when its first
    outcome came later (a run 2 s old has done its work in 2 s, not in a minute)."""
    earliest = memory.earliest_since(now - max(WINDOWS.values())) or {}
    first = min((earliest[s] for s in (COMPLETED, FAILED) if s in earliest), default=None)
    since_first = now - first if first is not None else float("inf")
    # At least a second: one outcome a moment ago is not a rate of thousands per second.
    return {
        name: round(max(1.0, min(seconds, since_first)), 1) for name, seconds in WINDOWS.items()
    }


def _print_status(snapshot: dict[str, Any], where: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"memory": where, **snapshot}), flush=True)
        return
    counts = snapshot["counts"]
    print(f"Memory: {where}")
    print(summary_text(counts))
    for line in [*progress_lines(snapshot["progress"]), *runs_lines(snapshot["runs"])]:
        print(line)
    recent = snapshot["recent"]
    if recent is not None:
        done = {name: c.get(COMPLETED, 0) + c.get(FAILED, 0) for name, c in recent.items()}
        if any(done.values()):
            seconds = snapshot["recent_seconds"]
            print(
                "Recorded in the "
                + "; ".join(
                    f"{name.replace('_', ' ')}: {n} ({_rate(n, seconds[name], WINDOWS[name])})"
                    for name, n in done.items()
                )
            )
        elif snapshot["runs"] is None:  # no heartbeats to tell: the times must do
            print("Nothing recorded in the last 5 minutes: no run is going on.")
    elif snapshot["rate_per_second"] is None:
        print("This memory keeps no times: --watch SECONDS shows the rate.")
    if snapshot["rate_per_second"] is not None:
        print(f"Rate since the last refresh: {snapshot['rate_per_second']:.1f} tasks/s")
    failures = snapshot["latest_failures"]
    if failures:
        shown = len(failures)
        total = counts.get(FAILED, 0)
        print(f"Latest failures ({shown} of {total}; `messor failed` lists them):")
        for row in failures:
            print(f"  {_failure_line(row)}")


def _rate(done: int, seconds: float, window: int) -> str:
    """``3.3/s on average``, saying over how long when less than the whole ``window``."""
    over = f" over {seconds:.0f} s" if seconds < window else ""
    return f"{done / seconds:.1f}/s on average{over}"


# -- failed -----------------------------------------------------------------------------


def failed(arguments: argparse.Namespace) -> int:
    memory, _ = open_chosen_memory(arguments.memory)
    if arguments.group_by:
        with memory:
            return _failure_groups(memory, arguments.limit, arguments.json)
    with memory:
        records = itertools.chain(memory.iter_records(FAILED), memory.iter_records(GAVE_UP))
        rows = _first(records, arguments.limit)
        if arguments.json:
            with utf8_stdout() as out:
                json.dump([_failure_row(record) for record in rows], out, ensure_ascii=False)
                out.write("\n")
            return 0
        shown = 0
        for record in rows:
            print(_failure_line(_failure_row(record)))
            shown += 1
        counts = memory.count_by_status()
        total = counts.get(FAILED, 0) + counts.get(GAVE_UP, 0)
    if total > shown:
        print(f"... and {total - shown} more (--limit 0 lists all)")
    elif total == 0:
        print("No failed tasks.")
    return 0


def _failure_groups(memory: Memory, limit: int, as_json: bool) -> int:
    """``messor failed --group-by error``: every failure read, its groups listed biggest first."""
    found = group_failures(memory.iter_records(FAILED))
    groups = found.groups[:limit] if limit else found.groups
    if as_json:
        with utf8_stdout() as out:
            json.dump([vars(group) for group in groups], out, ensure_ascii=False)
            out.write("\n")
        return 0
    if not found.groups:
        print("No failed tasks.")
        return 0
    groups_found = f"{len(found.groups)} group{'s' if len(found.groups) > 1 else ''}"
    print(f"{found.examined} failed tasks in {groups_found}:")
    for group in groups:
        cause = printable(f"{group.error_class}: {group.pattern}".strip(": "))
        print(f"{group.key}  {group.count:>7}  {cause or '(no error recorded)'}")
        example = printable(group.example_error.splitlines()[0] if group.example_error else "")
        print(f"{'':>19}e.g. {printable(group.example_id)}: {example}")
    if len(groups) < len(found.groups):
        print(f"... and {len(found.groups) - len(groups)} more groups (--limit 0 lists all)")
    print("messor retry --group KEY makes the tasks of one group pending again.")
    return 0


def _first(records: Iterable[TaskRecord], limit: int) -> Iterable[TaskRecord]:
    for index, record in enumerate(records):
        if limit and index >= limit:
            return
        yield record


def _failure_row(record: TaskRecord) -> dict[str, Any]:
    return {
        "id": record.task_id,
        "error": record.error,
        "attempts": record.attempts,
        "updated_at": iso_time(record.updated_at),
        "for_good": record.status == GAVE_UP,
    }


def _failure_line(row: dict[str, Any]) -> str:
    error = str(row["error"] or "(no error recorded)")
    first, *rest = error.splitlines() or [""]
    attempts = row["attempts"]
    tries = f" ({attempts} attempt{'' if attempts == 1 else 's'})" if attempts else ""
    good = " [for good]" if row.get("for_good") else ""
    return f"{printable(row['id'])}{good}: {printable(first)}{' ...' if rest else ''}{tries}"


# -- retry ------------------------------------------------------------------------------


def retry(arguments: argparse.Namespace) -> int:
    chosen = arguments.failed or arguments.gave_up or arguments.group is not None
    if chosen == bool(arguments.ids):
        raise CommandError(
            "give --failed, --gave-up, --group KEY (any of them) or the ids of the tasks "
            "to retry (see --help)"
        )
    memory, _ = open_chosen_memory(arguments.memory)
    with memory:
        if not arguments.ids:
            ids, only_from = [], set()
            if arguments.failed:
                ids += [task_id for task_id, _ in memory.get_failed_tasks()]
                only_from.add(FAILED)
            if arguments.gave_up:
                ids += [record.task_id for record in memory.iter_records(GAVE_UP)]
                only_from.add(GAVE_UP)
            if arguments.group is not None:
                in_group = list(tasks_in_group(memory, arguments.group))
                if not in_group:
                    raise CommandError(
                        f"no failed task is in the group {arguments.group!r} (messor failed "
                        "--group-by error lists the groups and their keys); nothing was changed"
                    )
                ids += in_group
                only_from.add(FAILED)
            ids = list(dict.fromkeys(ids))
        else:
            ids = list(dict.fromkeys(arguments.ids))
            statuses = memory.get_statuses(ids)
            unknown = [i for i in ids if i not in statuses]
            if unknown:
                raise CommandError(f"{_some(unknown)} not in the memory; nothing was changed")
            completed = [i for i in ids if statuses[i] == COMPLETED]
            if completed and not arguments.force:
                raise CommandError(
                    f"{_some(completed)} completed: retrying discards the result. "
                    "Add --force to do that; nothing was changed"
                )
            only_from = {PENDING, FAILED, COMPLETED, *statuses.values()}
            if not arguments.force:
                only_from.discard(COMPLETED)
        # A run may be recording outcomes meanwhile: the memory resets each
        # task only if its status is still one of only_from when it does.
        reset: set[str] = set()
        for start in range(0, len(ids), RETRY_BATCH):
            batch = ids[start : start + RETRY_BATCH]
            reset.update(memory.reset_tasks(batch, only_from=only_from))
        kept = [i for i in ids if i not in reset]
        now = memory.get_statuses(kept)
    noun = "task is" if len(reset) == 1 else "tasks are"
    them = "it" if len(reset) == 1 else "them"
    print(f"{len(reset)} {noun} pending again: the next run of the harvest runs {them}.")
    completed_meanwhile = [i for i in kept if now.get(i) == COMPLETED]
    if completed_meanwhile:
        print(
            f"{_listed(completed_meanwhile)} completed meanwhile by a run: kept, with the result."
        )
    changed = [i for i in kept if now.get(i) != COMPLETED]
    if changed:
        print(f"{_listed(changed)} changed meanwhile (another command or run): left as is.")
    return 0


def _some(ids: list[str]) -> str:
    """``'a' is`` or ``3 tasks, such as 'a', are``."""
    if len(ids) == 1:
        return f"{ids[0]!r} is"
    return f"{len(ids)} tasks, such as {ids[0]!r}, are"


def _listed(ids: list[str], shown: int = 5) -> str:
    """``1 task ('a') was`` or ``7 tasks ('a', 'b', 'c', 'd', 'e' and 2 more) were``."""
    names = ", ".join(repr(i) for i in ids[:shown])
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return f"1 task ({names}) was" if len(ids) == 1 else f"{len(ids)} tasks ({names}{more}) were"


# -- argument types ---------------------------------------------------------------------


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return int(text)
