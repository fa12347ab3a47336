"""What a task is: any object with ``get_id() -> str`` and ``__call__()``.

Plain functions need no class: :class:`FunctionTask` pairs a callable and its
arguments with an id, :func:`task` derives the id from the call itself
(``fetch("https://example.org/1")``), and an executor wraps a bare function
(no arguments) in one, with its qualified name as id. A task may also have
``get_data() -> dict``: what is stored as its definition (a FunctionTask
stores its function and, when they are JSON, its arguments).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from messor.errors import InvalidTaskError

__all__ = ["FunctionTask", "Task", "as_task", "task", "task_data", "task_id_of"]


@runtime_checkable
class Task(Protocol):
    """The shape of a task: an id that is stable across runs, and a call that does the work."""

    def get_id(self) -> str:
        """A string that names this task in every run (a URL, a row key, a file name)."""
        ...

    def __call__(self) -> Any:
        """Do the work; the return value (JSON) is recorded as the task's result."""
        ...


class FunctionTask:
    """A callable, its arguments and an id: ``FunctionTask("page-1", fetch, url)``."""

    __slots__ = ("args", "function", "kwargs", "task_id")

    def __init__(self, task_id: str, function: Callable[..., Any], /, *args: Any, **kwargs: Any):
        if not callable(function):
            raise InvalidTaskError(
                f"FunctionTask {task_id!r}: {function!r} is not callable; "
                "the order is FunctionTask(task_id, function, *args, **kwargs)"
            )
        self.task_id = task_id
        self.function = function
        self.args = args
        self.kwargs = kwargs

    def get_id(self) -> str:
        return self.task_id

    def get_data(self) -> dict[str, Any]:
        """The function's name and its arguments, when they are plain JSON; ``{}`` without any."""
        if not self.args and not self.kwargs:
            return {}  # stored as "{}" without encoding: most tasks of big runs look so
        data: dict[str, Any] = {"function": _name(self.function)}
        if self.args and _plain(self.args):
            data["args"] = list(self.args)
        if self.kwargs and _plain(self.kwargs):
            data["kwargs"] = self.kwargs
        return data

    def __call__(self) -> Any:
        return self.function(*self.args, **self.kwargs)

    def __repr__(self) -> str:
        name = getattr(self.function, "__qualname__", repr(self.function))
        return f"FunctionTask({self.task_id!r}, {name})"


def task(function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> FunctionTask:
    """A task calling ``function(*args, **kwargs)``, its id derived from that call.

    ``task(fetch, "https://example.org/1")`` has the id
    ``fetch("https://example.org/1")``: the same call gets the same id in every
    run. Arguments must be JSON (they are the id); for others, or for an id of
    your choosing, write ``FunctionTask("my-id", fetch, session, url)``. Ids
    longer than 200 characters end in a hash of the arguments instead.
    """
    if not callable(function):
        raise InvalidTaskError(f"task(): {function!r} is not callable")
    name = getattr(function, "__qualname__", None) or getattr(function, "__name__", None)
    if not isinstance(name, str) or "<lambda>" in name:
        raise InvalidTaskError(
            f"task() derives ids from the function's name, and {function!r} has none; "
            'write FunctionTask("some-id", function, *args) instead'
        )
    try:
        parts = [json.dumps(a, allow_nan=False, sort_keys=True, ensure_ascii=False) for a in args]
        parts += [
            f"{key}={json.dumps(value, allow_nan=False, sort_keys=True, ensure_ascii=False)}"
            for key, value in sorted(kwargs.items())
        ]
    except (TypeError, ValueError) as exc:
        raise InvalidTaskError(
            f"task({name}, ...) derives the id from the arguments, which must be JSON ({exc}); "
            f'give it an id instead: FunctionTask("some-id", {name}, ...)'
        ) from None
    task_id = f"{name}({', '.join(parts)})"
    if len(task_id) > 200:
        digest = hashlib.sha256(task_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        task_id = f"{name}#{digest}"
    return FunctionTask(task_id, function, *args, **kwargs)


def _plain(value: Any, depth: int = 0) -> bool:
    """Is ``value`` made of JSON types only? (Cheaper than encoding it to find out.)"""
    if isinstance(value, str | bool | int | None):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if depth > 16:
        return False
    if isinstance(value, list | tuple):
        return all(_plain(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v, depth + 1) for k, v in value.items())
    return False


def _name(function: Callable[..., Any]) -> str:
    module = getattr(function, "__module__", None)
    name = getattr(function, "__qualname__", None) or repr(function)
    return f"{module}.{name}" if module else name


def as_task(obj: object) -> Task:
    """Return ``obj`` itself if it has ``get_id``; wrap a named function in a FunctionTask."""
    if callable(getattr(obj, "get_id", None)) and callable(obj):
        return obj  # type: ignore[return-value]
    qualname = getattr(obj, "__qualname__", None)
    if callable(obj) and isinstance(qualname, str) and "<lambda>" not in qualname:
        module = getattr(obj, "__module__", None)
        return FunctionTask(f"{module}.{qualname}" if module else qualname, obj)
    raise InvalidTaskError(
        f"{_shown(obj)} is not a task: give it get_id() -> str and __call__(), "
        'or wrap it as messor.FunctionTask("some-id", function, *args)'
    )


def task_data(task: Task) -> dict[str, Any]:
    """What to store as the task's definition: its ``get_data()`` if it has one, else ``{}``."""
    get_data = getattr(task, "get_data", None)
    if not callable(get_data):
        return {}
    try:
        data: dict[str, Any] = get_data()
    except Exception as exc:
        raise InvalidTaskError(
            f"{_shown(task)}.get_data() raised {type(exc).__name__}: {exc}"
        ) from exc
    return data


def task_id_of(task: Task) -> str:
    """Call ``task.get_id()`` and check that it gave an id every memory stores, naming the task.

    Any ``str`` is one, as long as it is valid Unicode: no lone surrogate.
    """
    try:
        task_id = task.get_id()
    except Exception as exc:
        raise InvalidTaskError(
            f"{_shown(task)}.get_id() raised {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(task_id, str):
        raise InvalidTaskError(
            f"{_shown(task)}.get_id() returned {type(task_id).__name__} {_shown(task_id)}; "
            "task ids must be str"
        )
    if not task_id.isascii():  # isascii() costs nothing; most ids are ASCII
        try:
            task_id.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidTaskError(
                f"{_shown(task)}.get_id() returned {_shown(task_id)}, which is not valid Unicode "
                f"({exc.reason}: a lone surrogate, often from bytes decoded with "
                "errors='surrogateescape'); no memory can store it: decode the bytes properly"
            ) from None
    return task_id


def _shown(value: object) -> str:
    """``repr(value)`` for a message, short, even if ``__repr__`` raises."""
    try:
        text = repr(value)
    except Exception:
        return f"<{type(value).__qualname__} object>"
    return text if len(text) <= 200 else f"{text[:200]}...>"
