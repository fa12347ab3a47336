"""Bad input, on every memory: what counts as a task id, a result and an error.

* Any str that is valid Unicode is a task id ("" and 10,000 control characters
  included): it round-trips exactly through a run, the memory and
  ``messor results``. An id no memory can store (not a str, a lone surrogate)
  is refused with ``InvalidTaskError`` naming the task, before anything of a
  list is written.
* Any JSON value is a result and round-trips exactly; anything else (a set,
  NaN, a dict key that is not a str, a generator...) fails its task, once,
  with the reason. A result too large for the memory fails its task; the run
  goes on.
* Whatever a task raises, BaseException included, fails that task only, with
  an error text that can always be read and is at most about 5,000 characters.
"""

from __future__ import annotations

import csv
import enum
import gc
import io
import json
import sqlite3
import tempfile
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messor import FunctionTask, LocalThreadedExecutor, Memory, RunReport
from messor.cli import build_parser, export
from messor.errors import InvalidTaskError, TaskDataError
from messor.memories.base import COMPLETED, FAILED, PENDING
from messor.run.attempt import MAX_ERROR_CHARS
from messor.testing import ODD_TASK_IDS
from tests import test_properties as properties
from tests.conftest import MEMORY_KINDS
from tests.test_properties import fresh_memory

#: Kinds whose every call crosses a process or a network: fewer hypothesis examples.
SLOW_KINDS = {"redis-real", "s3-mock", "s3-server"}


def few_examples(kind: str) -> settings:
    # Big JSON values are the point of these tests: hypothesis must not refuse
    # a run for generating them (its data_too_large check fails at random).
    return settings(
        max_examples=5 if kind in SLOW_KINDS else 15,
        deadline=None,
        suppress_health_check=[HealthCheck.data_too_large],
    )


def run(tasks: Any, memory: Memory, **options: Any) -> RunReport:
    options.setdefault("retry", 0)
    return LocalThreadedExecutor(tasks, memory=memory, progress=False, **options).run()


def run_within(seconds: float, tasks: Any, memory: Memory, **options: Any) -> RunReport:
    """``run`` on a thread of its own, failing the test if it has not ended in ``seconds``."""
    reports: list[RunReport] = []
    thread = threading.Thread(target=lambda: reports.append(run(tasks, memory, **options)))
    thread.daemon = True
    thread.start()
    thread.join(seconds)
    assert reports, "the run hung, or raised (see the thread's exception above)"
    return reports[0]


def echo(value: Any) -> Any:
    return value


def fail() -> None:
    raise ValueError("boom")


def raiser(exc: BaseException) -> Callable[[], None]:
    def raises() -> None:
        raise exc

    return raises


class Lent:
    """A memory lent to ``messor results``, which closes the memory it opens: this stays open."""

    def __init__(self, memory: Memory) -> None:
        self.memory = memory

    def __enter__(self) -> Lent:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def iter_records(self, status: str | None = None) -> Any:
        return self.memory.iter_records(status)


def exported(memory: Memory, form: str) -> dict[str, tuple[str, Any, str | None]]:
    """``{id: (status, result, error)}`` as ``messor results -o out.<form>`` writes them."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"out.{form}"
        lent = (Lent(memory), None)
        # The command's handler as main() calls it, without main()'s logging set-up,
        # which would outlast this test.
        arguments = build_parser().parse_args(["results", "-o", str(path)])
        with mock.patch.object(export, "open_chosen_memory", return_value=lent):
            assert arguments.handler(arguments) == 0
        with path.open(encoding="utf-8", newline="") as file:
            text = file.read()
    rows: list[dict[str, Any]]
    if form == "csv":
        rows = [
            {
                "id": row["id"],
                "status": row["status"],
                "result": json.loads(row["result"]) if row["result"] else None,
                "error": row["error"] or None,
            }
            for row in csv.DictReader(io.StringIO(text, newline=""))
        ]
    elif form == "json":
        rows = json.loads(text)
    else:
        # Only "\n" ends a record: str.splitlines() would also split at U+2028 and others.
        rows = [json.loads(line) for line in text.split("\n") if line]
    by_id = {row["id"]: (row["status"], row["result"], row["error"]) for row in rows}
    assert len(by_id) == len(rows)
    return by_id


# -- task ids: any valid Unicode str -------------------------------------------------------

#: Every id the issue names, and those that have broken stores elsewhere.
EVERY_ODD_ID = list(
    dict.fromkeys(
        [
            *properties.TRICKY_IDS,
            *ODD_TASK_IDS,
            *(chr(code) for code in [*range(32), 127]),  # each control character alone
            "x" * 20_000,
            "../x",
            "/etc/passwd",
            "C:\\x",
            "\\\\server\\share",
            ".*",
            "^$",
            "(?i)",
            "$1",
            "?*[!a]",
            "%s %d {} {0}",
            "';--",
            "NaN",
            "0",
            "-1",
            "true",
            "[]",
            '"quoted"',
            "messor:{test}:status",
            "messor:{test}:ids:completed",
            "status",
            "HEAD",
            "log/00000000000000000001-0123456789ab-00000001.json.gz",
            "blobs/x",
        ]
    )
)


def check_ids_round_trip(memory: Memory, ids: list[str], formats: tuple[str, ...]) -> None:
    """Every other id completes (its result: the id), the rest fail; then a resume."""
    completed, failed = ids[::2], ids[1::2]
    tasks = [
        FunctionTask(task_id, echo, task_id) if n % 2 == 0 else FunctionTask(task_id, fail)
        for n, task_id in enumerate(ids)
    ]
    report = run(tasks, memory)
    assert (report.completed, report.failed) == (len(completed), len(failed))
    expected: dict[str, tuple[str, Any, str | None]] = {i: (COMPLETED, i, None) for i in completed}
    expected.update(dict.fromkeys(failed, (FAILED, None, "ValueError: boom")))

    assert memory.get_statuses(ids) == {i: status for i, (status, _, _) in expected.items()}
    assert all(memory.get_task_result(i) == i for i in completed)
    assert sorted(memory.get_failed_tasks()) == sorted((i, "ValueError: boom") for i in failed)
    assert set(memory.dump_all()["task_statuses"]) == set(ids)
    for form in formats:
        assert exported(memory, form) == expected

    again = run(tasks, memory)
    assert (again.skipped, again.completed, again.failed) == (len(completed), 0, len(failed))


@pytest.mark.parametrize("kind", MEMORY_KINDS)
def test_every_odd_id_round_trips_through_a_run_the_memory_the_export_and_a_resume(
    kind: str,
) -> None:
    with fresh_memory(kind) as memory:
        check_ids_round_trip(memory, EVERY_ODD_ID, ("jsonl", "csv", "json"))


@pytest.mark.parametrize("kind", MEMORY_KINDS)
def test_any_unicode_id_round_trips_through_a_run_the_memory_the_export_and_a_resume(
    kind: str,
) -> None:
    @few_examples(kind)
    @given(ids=st.lists(properties.TASK_IDS, min_size=1, max_size=4, unique=True))
    def check(ids: list[str]) -> None:
        with fresh_memory(kind) as memory:
            check_ids_round_trip(memory, ids, ("jsonl",))

    check()


def test_the_empty_string_is_an_id_like_any_other_and_a_second_one_a_duplicate() -> None:
    # An id only has to name one task in every run, and "" does. The usual
    # bug behind it (every get_id() returns an unset "") is caught anyway:
    # two tasks with one id are refused before anything is written.
    with fresh_memory("sqlite-ram") as memory:
        run([FunctionTask("", echo, "empty")], memory)
        assert memory.get_task_result("") == "empty"
        with pytest.raises(ValueError, match="Two tasks of this run have the id ''"):
            run([FunctionTask("", echo, 1), FunctionTask("", echo, 2)], memory)
        assert memory.get_task_result("") == "empty"


class Task:
    """A task in the seed's style whose get_id() returns whatever it was given."""

    def __init__(self, task_id: Any) -> None:
        self.task_id = task_id

    def get_id(self) -> Any:
        return self.task_id

    def __call__(self) -> str:
        return "done"

    def __repr__(self) -> str:
        return f"Task({self.task_id!r})"


class RaisingId(Task):
    def get_id(self) -> Any:
        raise KeyError("no id yet")


class Unprintable(Task):
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


BAD_IDS = [
    (Task(7), r"Task\(7\)\.get_id\(\) returned int 7; task ids must be str"),
    (Task(None), r"returned NoneType None"),
    (Task(b"page-1"), r"returned bytes b'page-1'"),
    (Task(1.5), r"returned float 1\.5"),
    (Task(["a"]), r"returned list \['a'\]"),
    (Task(10**5000), r"returned int <int object>"),  # too long to print: still named
    (Task("page\udcff"), r"returned 'page\\udcff', which is not valid Unicode .*surrogate"),
    (Task("\ud800"), r"not valid Unicode"),
    (RaisingId("x"), r"Task\('x'\)\.get_id\(\) raised KeyError: 'no id yet'"),
    (Unprintable(3), r"<Unprintable object>\.get_id\(\) returned int 3"),
]


@pytest.mark.parametrize(("task", "message"), BAD_IDS, ids=lambda v: type(v).__name__)
def test_an_id_no_memory_can_store_is_refused_naming_the_task_before_anything_is_written(
    task: Task, message: str
) -> None:
    # After a thousand good ones: the list is checked whole before the first chunk is written.
    tasks = [*(FunctionTask(f"good-{n}", echo, n) for n in range(1500)), task]
    with fresh_memory("in-process") as memory:
        with pytest.raises(InvalidTaskError, match=message) as raised:
            run(tasks, memory)
        assert isinstance(raised.value, TypeError)
        assert memory.count_by_status() == {PENDING: 0, COMPLETED: 0, FAILED: 0}


@pytest.mark.parametrize("kind", MEMORY_KINDS)
def test_an_id_with_a_lone_surrogate_is_refused_up_front_on_every_memory(kind: str) -> None:
    # It used to reach the memory: a bare UnicodeEncodeError after the first chunk had run.
    tasks = [*(Task(f"good-{n}") for n in range(1500)), Task("caf\udce9")]
    with fresh_memory(kind) as memory:
        with pytest.raises(InvalidTaskError, match=r"'caf\\udce9'"):
            run(tasks, memory)
        assert memory.get_pending_tasks() == []
        assert memory.get_completed_tasks() == []


@settings(max_examples=30, deadline=None)
@given(task_id=properties.IDS_WITH_A_LONE_SURROGATE)
def test_any_id_with_a_lone_surrogate_is_refused_naming_it(task_id: str) -> None:
    with fresh_memory("in-process") as memory:
        with pytest.raises(InvalidTaskError, match="not valid Unicode"):
            run([Task("fine"), Task(task_id)], memory)
        assert memory.count_by_status()[COMPLETED] == 0


def test_a_bad_id_from_a_generator_stops_the_run_after_the_tasks_read_before_it() -> None:
    def tasks() -> Iterator[Task]:
        yield Task("first")
        yield Task("second")
        yield Task(42)
        yield Task("never read")

    with fresh_memory("sqlite-ram") as memory:
        with pytest.raises(InvalidTaskError, match="returned int 42"):
            run(tasks(), memory)
        assert sorted(memory.get_completed_tasks()) == ["first", "second"]
        assert memory.get_pending_tasks() == []


# -- task data: get_data() -----------------------------------------------------------------


class WithData(Task):
    def __init__(self, task_id: str, data: Callable[[], Any]) -> None:
        super().__init__(task_id)
        self.data = data

    def get_data(self) -> Any:
        return self.data()


def test_get_data_that_raises_is_refused_naming_the_task() -> None:
    def broken() -> Any:
        raise AttributeError("'Page' object has no attribute 'url'")

    with fresh_memory("sqlite-ram") as memory:
        with pytest.raises(InvalidTaskError, match=r"Task\('p'\)\.get_data\(\) raised Attr"):
            run([WithData("p", broken)], memory)
        assert memory.get_pending_tasks() == []


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"when": datetime(2026, 1, 1)}, "datetime is not JSON serializable"),
        ({"pages": {1: "a"}}, "dict key 1 is not a str"),
        ({"ratio": float("nan")}, "Out of range float"),
    ],
    ids=["datetime", "int key", "nan"],
)
def test_get_data_that_is_not_json_is_refused_naming_the_task(data: Any, reason: str) -> None:
    with fresh_memory("sqlite-ram") as memory:
        with pytest.raises(TaskDataError, match=f"The data of task 'p' .*{reason}"):
            run([WithData("p", lambda: data)], memory)
        assert memory.get_pending_tasks() == []


# -- results: any JSON value ---------------------------------------------------------------


@pytest.mark.parametrize("kind", MEMORY_KINDS)
def test_any_json_result_round_trips_through_a_run_the_memory_and_the_export(kind: str) -> None:
    @few_examples(kind)
    @given(values=st.lists(properties.JSON_VALUES, min_size=1, max_size=3))
    def check(values: list[Any]) -> None:
        ids = [f"r{n}" for n in range(len(values))]
        with fresh_memory(kind) as memory:
            run([FunctionTask(i, echo, v) for i, v in zip(ids, values, strict=True)], memory)
            rows = exported(memory, "jsonl")
            for task_id, value in zip(ids, values, strict=True):
                got = memory.get_task_result(task_id)
                assert json.dumps(got) == json.dumps(value)  # types too: False is not 0
                assert json.dumps(rows[task_id][1]) == json.dumps(value)

    check()


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


def test_a_tuple_comes_back_as_a_list_and_a_subclass_as_its_json_type() -> None:
    value = (Level.HIGH, OrderedDict(b=1, a=(True, 0.5)), "text")
    with fresh_memory("sqlite-ram") as memory:
        run([FunctionTask("t", echo, value)], memory)
        got = memory.get_task_result("t")
    assert json.dumps(got) == json.dumps([3, {"b": 1, "a": [True, 0.5]}, "text"])
    assert type(got[0]) is int


class Treacherous(dict[str, int]):
    """A result whose own methods raise while it is encoded."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(a=1)
        self.exc = exc

    def items(self) -> Any:
        raise self.exc


class SlowToEncode(dict[str, int]):
    def items(self) -> Any:
        time.sleep(1.0)
        return super().items()


def circular_list() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value


def circular_dict() -> dict[str, Any]:
    value: dict[str, Any] = {}
    value["self"] = value
    return value


def a_generator() -> Iterator[int]:
    yield 1


async def a_coroutine() -> int:
    return 1


async def an_async_generator() -> Any:
    yield 1


#: Task functions whose result is not JSON, and what the error recorded says.
NOT_JSON: dict[str, tuple[Callable[[], Any], str]] = {
    "set": (lambda: {1, 2}, "Object of type set is not JSON serializable"),
    "bytes": (lambda: b"\x00\xff", "Object of type bytes is not JSON serializable"),
    "object": (object, "Object of type object is not JSON serializable"),
    "datetime": (lambda: datetime(2026, 1, 1), "Object of type datetime is not"),
    "enum": (lambda: Color.RED, "Object of type Color is not JSON serializable"),
    "nan": (lambda: float("nan"), "Out of range float values are not JSON compliant"),
    "infinity": (lambda: float("inf"), "Out of range float values"),
    "nan inside": (lambda: {"a": [1, float("-inf")]}, "Out of range float values"),
    "int key": (lambda: {1: "a"}, "the dict key 1 is not a str: it would read back as '1'"),
    "colliding keys": (lambda: {1: "lost", "1": "kept"}, "the dict key 1 is not a str"),
    "bool key": (lambda: {True: 1}, "the dict key True is not a str: it would read back as 'true'"),
    "None key": (lambda: {None: 1}, "the dict key None is not a str: it would read back as 'null'"),
    "float key": (lambda: {"x": {-1.5: 0}}, "the dict key -1.5 is not a str"),
    "deep int key": (lambda: [{"a": [{"b": {2: 0}}]}], "the dict key 2 is not a str"),
    "tuple key": (lambda: {(1, 2): 0}, "keys must be str, int, float, bool or None"),
    "circular list": (circular_list, "Circular reference detected"),
    "circular dict": (circular_dict, "Circular reference detected"),
    "int of 5000 digits": (lambda: 10**5000, "Exceeds the limit (4300 digits)"),
    "encoding raises": (lambda: Treacherous(RuntimeError("changed size")), "changed size"),
    "encoding raises SystemExit": (lambda: Treacherous(SystemExit(9)), "SystemExit: 9"),
    "generator": (a_generator, "returned a generator, which has computed nothing yet"),
    "coroutine": (a_coroutine, "returned a coroutine: its function is async def"),
    "async generator": (an_async_generator, "returned a generator"),
}


@pytest.mark.parametrize("kind", MEMORY_KINDS)
def test_a_result_that_is_not_json_fails_its_task_once_with_the_reason(kind: str) -> None:
    calls: Counter[str] = Counter()

    def counted(name: str, function: Callable[[], Any]) -> Callable[[], Any]:
        def task() -> Any:
            calls[name] += 1
            return function()

        return task

    tasks = [FunctionTask(name, counted(name, f)) for name, (f, _) in NOT_JSON.items()]
    tasks.append(FunctionTask("fine", lambda: {"1": [1.5, None]}))
    with fresh_memory(kind) as memory:
        report = run_within(20, tasks, memory, retry=2)
        errors = dict(memory.get_failed_tasks())
        assert memory.get_task_result("fine") == {"1": [1.5, None]}
    assert report.failed == len(NOT_JSON)
    for name, (_, reason) in NOT_JSON.items():
        assert reason in (errors[name] or ""), name
        assert repr(name) in (errors[name] or ""), name  # the message names the task
    assert set(calls.values()) == {1}  # not retried: the same value would come back


def test_a_coroutine_returned_by_a_task_is_closed_so_nothing_warns_that_it_never_ran() -> None:
    with fresh_memory("in-process") as memory:
        run([FunctionTask("async", a_coroutine)], memory)
        [(_, error)] = memory.get_failed_tasks()
    gc.collect()  # an unclosed coroutine warns here; the suite turns warnings into errors
    assert error is not None
    assert "asyncio.run()" in error


def test_a_result_slow_to_encode_counts_towards_the_tasks_timeout() -> None:
    with fresh_memory("in-process") as memory:
        report = run([FunctionTask("slow", SlowToEncode, a=1)], memory, timeout=0.2)
        [(_, error)] = memory.get_failed_tasks()
    assert report.timed_out == 1
    assert error is not None
    assert error.startswith("messor.errors.TaskTimeoutError: no result after 0.2 s")


@pytest.mark.parametrize("kind", [kind for kind in MEMORY_KINDS if kind != "seed-only"])
def test_a_memory_refuses_dict_keys_that_are_not_str_naming_the_task(kind: str) -> None:
    # Only through the executor does a minimal third-party memory ("seed-only") get this.
    with fresh_memory(kind) as memory:
        with pytest.raises(TaskDataError, match=r"'d'.*the dict key 1 is not a str"):
            memory.store_tasks([("d", {"pages": {1: "a"}})])
        memory.store_tasks([("t", {})])
        with pytest.raises(TaskDataError, match=r"'t'.*the dict key None is not a str"):
            memory.update_task_statuses([("t", COMPLETED, {None: "lost"}, None)])
        assert memory.get_pending_tasks() == ["t"]


@pytest.mark.parametrize("kind", MEMORY_KINDS)
def test_a_result_of_50_mb_is_stored_and_read_back_whole(kind: str) -> None:
    big = "x" * 50_000_000
    with fresh_memory(kind) as memory:
        report = run([FunctionTask("big", lambda: big), FunctionTask("small", echo, 1)], memory)
        assert report.completed == 2
        assert memory.get_task_result("big") == big
        assert {r.task_id: r.result == big for r in memory.iter_records()} == {
            "big": True,
            "small": False,
        }


def shrink_the_largest_value(kind: str, memory: Memory, limit: int) -> str:
    """Make ``memory`` refuse values over ``limit`` bytes as it refuses its real maximum.

    Returns what its error says; the real maxima are SQLite's 1 GB, the Redis
    server's proto-max-bulk-len (512 MB by default) and S3's 5 GB per object.
    """
    if kind.startswith("sqlite"):
        memory._conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, limit)  # type: ignore[attr-defined]
        return "is too large for SQLite"
    memory.max_result_bytes = limit
    return f"more than {memory!r} stores in one value ({limit} bytes)"


NO_LIMIT = ("in-process", "seed-only", "primitives-only")


@pytest.mark.parametrize("kind", [k for k in MEMORY_KINDS if k not in NO_LIMIT])
def test_a_result_larger_than_the_memory_takes_fails_its_task_and_the_run_goes_on(
    kind: str,
) -> None:
    with fresh_memory(kind) as memory:
        reason = shrink_the_largest_value(kind, memory, 10_000)
        tasks = [
            FunctionTask(f"t{n}", lambda n=n: "x" * (20_000 if n == 2 else 10)) for n in range(5)
        ]
        report = run(tasks, memory)
        [(task_id, error)] = memory.get_failed_tasks()
        assert len(memory.get_completed_tasks()) == 4
    assert task_id == "t2"
    assert reason in (error or "")
    assert (report.completed, report.failed, report.refused_results[0][0]) == (4, 1, "t2")


# -- errors: whatever a task raises --------------------------------------------------------


class StrRaises(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str")


class StrRaisesSystemExit(Exception):
    def __str__(self) -> str:
        raise SystemExit("from __str__")


class ReprRaises(Exception):
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class CustomBase(BaseException):
    """Not an Exception: the way some libraries signal cancellation."""


HERE = __name__
UNREADABLE = "<the exception's message could not be read>"

#: What a task raises, and the error text recorded for it.
RAISED: list[tuple[BaseException, str]] = [
    (ValueError("plain"), "ValueError: plain"),
    (ValueError(), "ValueError"),
    (ValueError("line\nbreak\ttab\x00nul\x1b[0m"), "ValueError: line\nbreak\ttab\x00nul\x1b[0m"),
    (ValueError("lone \udcff surrogate"), "ValueError: lone \\udcff surrogate"),
    (StrRaises(), f"{HERE}.StrRaises: {UNREADABLE}"),
    (StrRaisesSystemExit(), f"{HERE}.StrRaisesSystemExit: {UNREADABLE}"),
    (ReprRaises("shown"), f"{HERE}.ReprRaises: shown"),
    (SystemExit(3), "SystemExit: 3"),
    (KeyboardInterrupt(), "KeyboardInterrupt"),
    (GeneratorExit(), "GeneratorExit"),
    (CustomBase("cancelled"), f"{HERE}.CustomBase: cancelled"),
]


@pytest.mark.parametrize(("exc", "error"), RAISED, ids=[repr(e) for _, e in RAISED])
def test_whatever_a_task_raises_fails_that_task_only_with_a_readable_error(
    exc: BaseException, error: str
) -> None:
    with fresh_memory("in-process") as memory:
        tasks = [FunctionTask("t", raiser(exc)), FunctionTask("ok", echo, 1)]
        report = run_within(10, tasks, memory)
        assert memory.get_failed_tasks() == [("t", error)]
        assert memory.get_task_result("ok") == 1
    assert (report.completed, report.failed, report.stopped_because) == (1, 1, None)


@pytest.mark.parametrize("kind", MEMORY_KINDS)
def test_base_exceptions_fail_their_task_are_retried_and_never_end_the_run(kind: str) -> None:
    # Ctrl-C reaches the run loop, never a task's thread: a KeyboardInterrupt
    # a task raises is that task's failure, like a SystemExit.
    raised = [SystemExit(1), KeyboardInterrupt(), GeneratorExit(), CustomBase("x")]
    calls: Counter[str] = Counter()

    def raises(name: str, exc: BaseException) -> None:
        calls[name] += 1
        raise exc

    tasks = [FunctionTask(type(e).__name__, raises, type(e).__name__, e) for e in raised]
    tasks.append(FunctionTask("ok", echo, "fine"))
    with fresh_memory(kind) as memory:
        report = run_within(20, tasks, memory, retry=1)
        failed = dict(memory.get_failed_tasks())
        assert memory.get_task_result("ok") == "fine"
    assert (report.completed, report.failed, report.retried) == (1, 4, 4)
    assert failed == {
        "SystemExit": "SystemExit: 1",
        "KeyboardInterrupt": "KeyboardInterrupt",
        "GeneratorExit": "GeneratorExit",
        "CustomBase": f"{HERE}.CustomBase: x",
    }
    assert set(calls.values()) == {2}


@pytest.mark.parametrize("kind", MEMORY_KINDS)
def test_a_huge_error_message_is_recorded_cut_keeping_its_start_and_end(kind: str) -> None:
    message = "start " + "x" * 10_000_000 + " end"
    with fresh_memory(kind) as memory:
        run([FunctionTask("t", raiser(ValueError(message)))], memory)
        [(_, error)] = memory.get_failed_tasks()
    assert error is not None
    assert error.startswith("ValueError: start xxx")
    assert error.endswith("xxx end")
    assert f"[... {len('ValueError: ') + len(message) - MAX_ERROR_CHARS} characters cut ...]" in (
        error
    )
    assert len(error) < MAX_ERROR_CHARS + 50
