"""The codec: task data and results to JSON text and back, task ids checked.

What the ``Memory`` base class applies, once, to everything a caller hands a
memory: a backend stores and returns the text, never encodes or checks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

from messor.errors import TaskDataError
from messor.memories.records import COMPLETED, EncodedUpdate, StatusUpdate

__all__ = [
    "check_task_id",
    "decode_json",
    "decode_result",
    "encode_json",
    "encode_tasks",
    "encode_update",
]


def encode_json(value: Any, *, task_id: str, what: str = "result") -> str:
    """Return ``value`` as JSON text, or raise ``TaskDataError`` naming the task.

    NaN and infinities are refused (they are not JSON and would not compare
    equal after a round trip), and so are dict keys that are not str (JSON
    would turn them into strings); non-ASCII text is escaped so that any
    Python string, lone surrogates included, comes back exactly (and the
    text's length is its size in bytes).
    """
    # The most common values by far (a task's data, a no-op's result), spared
    # a trip through the encoder on every task.
    if value is None:
        return "null"
    if type(value) is dict and not value:
        return "{}"
    try:
        text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise _not_json(what, task_id, str(exc)) from exc
    # json.dumps writes a key 1, 1.5, True or None as "1", "1.5", "true", "null":
    # it would read back as another key, or collide with a str key and be lost.
    # Such keys leave a trace in the text (a quick search), a str key "1" too:
    # only then is the value walked to tell them apart.
    if _KEY_LIKE_A_SCALAR.search(text):
        for key in _keys_not_str(value):
            [as_text] = json.loads(json.dumps({key: 0}))
            raise _not_json(
                what,
                task_id,
                f"the dict key {key!r} is not a str: it would read back as {as_text!r}",
            )
    return text


#: A dict key in encoded JSON whose text an int, float, bool or None key also gives.
_KEY_LIKE_A_SCALAR = re.compile(r'"(?:-?[0-9][0-9.eE+-]*|true|false|null)":')


def _keys_not_str(value: Any) -> Iterator[object]:
    """The dict keys anywhere in ``value`` that are not str (without recursion: any depth)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield from (key for key in item if not isinstance(key, str))
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)


def _not_json(what: str, task_id: str, reason: str) -> TaskDataError:
    return TaskDataError(
        f"The {what} of task {task_id!r} cannot be stored as JSON ({reason}); "
        "use JSON types (dict with str keys, list, str, int, float, bool, None) "
        "or convert the value before returning it"
    )


def decode_json(text: str) -> Any:
    """Return the value that :func:`encode_json` stored as ``text``."""
    return json.loads(text)


def check_task_id(task_id: object) -> str:
    """Return ``task_id`` if it is a ``str`` that every store can hold; else raise ``TypeError``."""
    if not isinstance(task_id, str):
        raise TaskDataError(
            f"Task ids must be str, got {type(task_id).__name__} {task_id!r}; "
            "return a string from get_id()"
        )
    try:
        task_id.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise TaskDataError(
            f"Task id {task_id!r} is not valid Unicode text ({exc.reason}: a lone surrogate, "
            "often from decoding bytes with errors='surrogateescape'); decode it properly first"
        ) from None
    return task_id


def encode_tasks(tasks: Sequence[tuple[str, dict[str, Any]]]) -> list[tuple[str, str]]:
    """Check ``store_tasks`` pairs; return them with the data as JSON text."""
    return [
        (check_task_id(task_id), encode_json(data, task_id=task_id, what="data"))
        for task_id, data in tasks
    ]


def encode_update(update: StatusUpdate) -> EncodedUpdate:
    """Check one ``update_task_statuses`` row; return it with the result as JSON text.

    A completed task's result is stored even when it is ``None`` (so that
    ``dump_all`` lists it); other statuses store one only if given.
    """
    task_id, status, result, error = update
    check_task_id(task_id)
    if not isinstance(status, str):
        raise TaskDataError(f"The status of task {task_id!r} must be a str, got {status!r}")
    status = str(status)  # TaskStatus.FAILED is stored as the plain "failed"
    if error is not None and not isinstance(error, str):
        raise TaskDataError(f"The error of task {task_id!r} must be a str or None, got {error!r}")
    text = None if result is None and status != COMPLETED else encode_json(result, task_id=task_id)
    return EncodedUpdate(task_id, status, text, error)


def decode_result(text: str | None) -> Any:
    """The result stored as ``text``; None for a task without one."""
    return None if text is None else decode_json(text)
