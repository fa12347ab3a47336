"""Failures grouped by cause: error class and message with the varying parts folded.

A harvest that fails 40,000 times usually fails for three reasons. Two
errors belong to one group when their class is the same and their messages
are the same once numbers, hex ids, UUIDs, URLs and quoted strings are folded
into placeholders::

    LookupError: 404 Not Found: https://example.org/page/36
    LookupError: 404 Not Found: https://example.org/page/99
        -> LookupError: <n> Not Found: <url>

Each group has a short key (stable across calls and machines) that
``messor retry --group KEY`` and the dashboard's retry buttons use.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from messor.memories.base import FAILED, Memory, TaskRecord

__all__ = ["FailureGroup", "group_failures", "group_key", "normalise", "tasks_in_group"]

#: Characters of a message's first line that decide its group.
PATTERN_CHARS = 300

# Order matters: a URL holds numbers and hex, a UUID holds hex and numbers.
_FOLDS = [
    (re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+"), "<url>"),
    (re.compile(r"'[^'\n]*'|\"[^\"\n]*\""), "<str>"),
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"),
     "<uuid>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    # A run of hex digits long enough to be an id, with at least one digit in it
    # (so that a word like "deadbeef" or "accepted" is left alone).
    (re.compile(r"\b(?=[0-9a-fA-F]*[0-9])[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"[-+]?\d+(?:[.,]\d+)*"), "<n>"),
    (re.compile(r"\s+"), " "),
]  # fmt: skip
_CLASS = re.compile(r"[A-Za-z_][\w.]*")


@dataclass
class FailureGroup:
    """Failed tasks whose errors share a class and a folded message."""

    key: str
    error_class: str
    pattern: str
    count: int
    example_id: str
    example_error: str


def normalise(error: str | None) -> tuple[str, str]:
    """``(error class, folded message)`` of a recorded error (``module.Type: message``)."""
    text = (error or "").strip()
    first = text.splitlines()[0] if text else ""
    name, colon, message = first.partition(": ")
    if not (colon and _CLASS.fullmatch(name)):
        # No "Type: " in front: a bare exception name, or text recorded by hand.
        name, message = (first, "") if _CLASS.fullmatch(first) else ("", first)
    message = message[:PATTERN_CHARS]
    for pattern, placeholder in _FOLDS:
        message = pattern.sub(placeholder, message)
    return name, message.strip()


def group_key(error_class: str, pattern: str) -> str:
    """A short id of a group: the same on every machine and in every call."""
    return hashlib.sha256(f"{error_class}\0{pattern}".encode()).hexdigest()[:10]


def group_failures(records: Iterable[TaskRecord], *, sample: int | None = None) -> GroupedFailures:
    """Group the failed records (at most ``sample`` of them, None: all), biggest group first."""
    groups: dict[str, FailureGroup] = {}
    seen = 0
    for record in records:
        if record.status != FAILED:
            continue
        if sample is not None and seen >= sample:
            return GroupedFailures(_ordered(groups), seen, complete=False)
        seen += 1
        error_class, pattern = normalise(record.error)
        key = group_key(error_class, pattern)
        group = groups.get(key)
        if group is None:
            groups[key] = FailureGroup(
                key, error_class, pattern, 1, record.task_id, record.error or ""
            )
        else:
            group.count += 1
    return GroupedFailures(_ordered(groups), seen, complete=True)


@dataclass
class GroupedFailures:
    """The groups found, and how many failures they were found among."""

    groups: list[FailureGroup]
    #: Failures looked at; all of them when ``complete``, else the sample's size.
    examined: int
    complete: bool


def _ordered(groups: dict[str, FailureGroup]) -> list[FailureGroup]:
    return sorted(groups.values(), key=lambda g: (-g.count, g.error_class, g.pattern))


def tasks_in_group(memory: Memory, key: str) -> Iterator[str]:
    """The ids of every failed task whose error belongs to the group ``key`` (a full scan)."""
    for record in memory.iter_records(FAILED):
        if group_key(*normalise(record.error)) == key:
            yield record.task_id
