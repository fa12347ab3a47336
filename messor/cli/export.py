"""``messor results``: every task's outcome, streamed as JSON lines, CSV or JSON.

Records are read from the memory a page at a time and written as they come,
so an export of millions of tasks runs in constant memory. A file given with
``-o`` is written beside itself and renamed when complete: an export cut
short never passes for a whole one.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from messor.cli.common import Formatter, add_memory_argument, open_chosen_memory, utf8_stdout
from messor.memories.base import COMPLETED, TaskRecord

__all__ = ["FORMATS", "add_command", "iso_time", "lines"]

FORMATS = ("jsonl", "csv", "json")
COLUMNS = ("id", "status", "result", "error", "attempts", "updated_at")


def add_command(commands: Any) -> None:
    parser = commands.add_parser(
        "results",
        help="export every task's outcome (JSON lines, CSV or JSON)",
        description="Export one record per task: id, status, result, error, attempts and "
        "when its state was recorded (updated_at, UTC; null if the memory keeps no times). "
        "Streams in constant memory however many tasks there are. In CSV the result is "
        "JSON text (empty for a task with no result).",
        epilog="examples:\n  messor results > everything.jsonl\n"
        "  messor results --status completed -o results.csv      (the format from the name)\n"
        "  messor results --status failed --format json | jq '.[].error'",
        formatter_class=Formatter,
    )
    add_memory_argument(parser)
    parser.add_argument(
        "--status",
        default="all",
        help="only tasks with this status: completed, failed, pending (default: all)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="jsonl (default), csv or json; with -o, the file's extension when it is one of these",
    )
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE instead of standard output"
    )
    parser.set_defaults(handler=results)


def results(arguments: argparse.Namespace) -> int:
    output: str | None = arguments.output
    suffix = Path(output).suffix.lstrip(".").lower() if output else ""
    form = arguments.format or (suffix if suffix in FORMATS else "jsonl")
    status = None if arguments.status == "all" else arguments.status
    memory, _ = open_chosen_memory(arguments.memory)
    with memory, _destination(output) as out:
        written = _write(form, memory.iter_records(status), out)
    if output:
        print(f"Wrote {written} tasks to {output} ({form})")
    return 0


@contextmanager
def _destination(output: str | None) -> Iterator[TextIO]:
    """Standard output, or a file that appears under its name only once complete."""
    if output is None:
        with utf8_stdout() as out:
            yield out
        return
    target = Path(output)
    partial = target.with_name(f".{target.name}.partial")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with partial.open("w", encoding="utf-8", newline="", errors="backslashreplace") as out:
            yield out
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _row(record: TaskRecord) -> dict[str, Any]:
    return {
        "id": record.task_id,
        "status": record.status,
        "result": record.result,
        "error": record.error,
        "attempts": record.attempts,
        "updated_at": iso_time(record.updated_at),
    }


def _json(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: escaped, it still round-trips
            text = json.dumps(value)
    return text


def lines(form: str, records: Iterator[TaskRecord]) -> Iterator[str]:
    """The export of ``records`` in ``form`` (one of :data:`FORMATS`), a row at a time:
    what ``messor results`` writes and the dashboard streams."""
    return _LINES[form](records)


def _jsonl_lines(records: Iterator[TaskRecord]) -> Iterator[str]:
    for record in records:
        yield _json(_row(record)) + "\n"


def _json_lines(records: Iterator[TaskRecord]) -> Iterator[str]:
    yield "["
    count = 0
    for count, record in enumerate(records, 1):
        yield ("\n" if count == 1 else ",\n") + _json(_row(record))
    yield "\n]\n" if count else "]\n"


def _csv_lines(records: Iterator[TaskRecord]) -> Iterator[str]:
    row = io.StringIO()
    writer = csv.writer(row)

    def text(cells: Iterable[object]) -> str:
        row.seek(0)
        row.truncate()
        writer.writerow(cells)
        return row.getvalue()

    yield text(COLUMNS)
    for record in records:
        has_result = record.status == COMPLETED or record.result is not None
        yield text(
            (
                record.task_id,
                record.status,
                _json(record.result) if has_result else "",
                record.error or "",
                record.attempts,
                iso_time(record.updated_at) or "",
            )
        )


_LINES = {"jsonl": _jsonl_lines, "csv": _csv_lines, "json": _json_lines}


def _write(form: str, records: Iterator[TaskRecord], out: TextIO) -> int:
    """Write the export to ``out``; return how many records it held."""
    count = 0

    def counted() -> Iterator[TaskRecord]:
        nonlocal count
        for count, record in enumerate(records, 1):  # noqa: B007 (the count is the result)
            yield record

    for line in lines(form, counted()):
        out.write(line)
    return count


def iso_time(seconds: float | None) -> str | None:
    """An epoch time as ISO 8601 in UTC (``2026-11-28T20:41:02.123Z``); None stays None."""
    if seconds is None:
        return None
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
