"""Both executors over the same tests: the threaded one, and the asyncio one.

The executor tests are written with plain (blocking) tasks. For
``AsyncExecutor`` each task is wrapped in a coroutine task with the same id
that runs it in a thread (``asyncio.to_thread``): the run loop, retries,
stops, timeouts and recording under test are the asyncio executor's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sized
from typing import Any

import pytest

from messor import AsyncExecutor, LocalThreadedExecutor
from messor.errors import MessorError
from messor.tasks import Task, as_task

__all__ = ["OnCoroutines", "executor_kinds", "run_with_each_executor"]


class CoroutineTask:
    """``task`` as a coroutine task: same id and data, its call run in a thread."""

    def __init__(self, task: Task) -> None:
        self.task = task
        get_data = getattr(task, "get_data", None)
        if callable(get_data):
            self.get_data = get_data

    def get_id(self) -> str:
        return self.task.get_id()

    async def __call__(self) -> Any:
        return await asyncio.to_thread(self.task)

    def __repr__(self) -> str:
        return repr(self.task)


def as_coroutine(item: object) -> object:
    try:
        return CoroutineTask(as_task(item))
    except (MessorError, TypeError):
        return item  # not a task: the executor must refuse it as it is


class OnCoroutines(AsyncExecutor):
    """``AsyncExecutor`` over coroutine versions of the given tasks (lists stay lists)."""

    def __init__(self, tasks: Iterable[object], *args: Any, **kwargs: Any) -> None:
        if isinstance(tasks, Iterable) and not isinstance(tasks, str | bytes):
            converted = (as_coroutine(item) for item in tasks)
            tasks = list(converted) if isinstance(tasks, Sized) else converted
        super().__init__(tasks, *args, **kwargs)


#: For ``@pytest.fixture(params=executor_kinds)``.
executor_kinds = [
    pytest.param(LocalThreadedExecutor, id="threads"),
    pytest.param(OnCoroutines, id="asyncio"),
]


def run_with_each_executor(namespace: dict[str, Any]) -> Any:
    """An autouse fixture that runs each test of a module once per executor.

    The module names its executor ``Executor``; the fixture binds that name
    in ``namespace`` (the module's ``globals()``) to each executor in turn.
    """

    @pytest.fixture(autouse=True, params=executor_kinds)
    def executor(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
        monkeypatch.setitem(namespace, "Executor", request.param)
        return request.param

    return executor
