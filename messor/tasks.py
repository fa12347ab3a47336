"""What a task is: any object with ``get_id() -> str`` and ``__call__()``.

Plain functions need no class: :class:`FunctionTask` pairs a callable and its
arguments with an id, and an executor wraps a bare function (no arguments) in
one, with its qualified name as id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from messor.errors import InvalidTaskError

__all__ = ["FunctionTask", "Task", "as_task", "task_id_of"]


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

    def __call__(self) -> Any:
        return self.function(*self.args, **self.kwargs)

    def __repr__(self) -> str:
        name = getattr(self.function, "__qualname__", repr(self.function))
        return f"FunctionTask({self.task_id!r}, {name})"


def as_task(obj: object) -> Task:
    """Return ``obj`` itself if it has ``get_id``; wrap a named function in a FunctionTask."""
    if callable(getattr(obj, "get_id", None)) and callable(obj):
        return obj  # type: ignore[return-value]
    qualname = getattr(obj, "__qualname__", None)
    if callable(obj) and isinstance(qualname, str) and "<lambda>" not in qualname:
        module = getattr(obj, "__module__", None)
        return FunctionTask(f"{module}.{qualname}" if module else qualname, obj)
    raise InvalidTaskError(
        f"{obj!r} is not a task: give it get_id() -> str and __call__(), "
        'or wrap it as messor.FunctionTask("some-id", function, *args)'
    )


def task_id_of(task: Task) -> str:
    """Call ``task.get_id()`` and check that it gave a ``str``, naming the task if not."""
    try:
        task_id = task.get_id()
    except Exception as exc:
        raise InvalidTaskError(f"{task!r}.get_id() raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(task_id, str):
        raise InvalidTaskError(
            f"{task!r}.get_id() returned {type(task_id).__name__} {task_id!r}; task ids must be str"
        )
    return task_id
