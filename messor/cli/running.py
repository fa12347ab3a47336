"""``messor run MODULE:ATTRIBUTE``: run a task set from a terminal, with the executor's options."""

from __future__ import annotations

import argparse
import builtins
import difflib
import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from messor.cli.common import CommandError, Formatter, add_memory_argument, open_chosen_memory
from messor.errors import MessorError
from messor.executors.base import Executor
from messor.executors.threads import LocalThreadedExecutor
from messor.memories.base import Memory
from messor.run.attempt import describe_error
from messor.run.harvest import RunReport, StopConditions
from messor.run.stops import stop_after_consecutive_failures, stop_on
from messor.selection import configured
from messor.terminal import printable

__all__ = ["add_command", "load_tasks"]

EPILOG = """\
examples:
  messor run crawl:pages                      pages: a list or generator of tasks in crawl.py
  messor run crawl:make_pages -c 32           make_pages(): a function returning them
  messor run jobs/crawl.py:pages --retry 3 --retry-on TimeoutError,ConnectionError
  messor run crawl:pages --rate-limit 600/m --timeout 30 --stop-after-failures 20
  messor run crawl:pages --executor dask://scheduler:8786 --memory redis://host/0

Tasks are objects with get_id() and __call__() (see messor.task for functions).
MODULE is imported as `python -m` would, from the working directory first.
Ctrl-C: running tasks finish and are recorded; twice: they are abandoned and
stay pending. Run the same command again to resume.

exit codes: 0 every task completed, 1 some failed or the run stopped early,
2 a mistake in the command, 130 Ctrl-C, 143 SIGTERM.
"""


def add_command(commands: Any) -> None:
    parser = commands.add_parser(
        "run",
        help="run a task set from MODULE:ATTRIBUTE",
        description="Run the tasks that MODULE:ATTRIBUTE names (a list or generator of "
        "tasks, or a function returning one) with the local threaded executor, recording "
        "every outcome; a second run resumes.",
        epilog=EPILOG,
        formatter_class=Formatter,
    )
    parser.add_argument("target", metavar="MODULE:ATTRIBUTE", help="where the tasks are")
    add_memory_argument(parser)
    parser.add_argument(
        "-c",
        "--max-concurrency",
        type=int,
        metavar="N",
        help="tasks at once (local: 4; dask: twice the cluster's threads)",
    )
    parser.add_argument(
        "--executor",
        metavar="SPEC",
        help="where tasks run: local (threads, the default) or dask://HOST:PORT, a Dask "
        'scheduler (also executor = "..." in messor.toml)',
    )
    parser.add_argument(
        "--retry", type=int, default=1, metavar="N", help="more attempts after a failure (1)"
    )
    parser.add_argument(
        "--retry-on",
        metavar="ERRORS",
        help="retry only these exception types, comma-separated (TimeoutError,requests.HTTPError)",
    )
    parser.add_argument(
        "--backoff",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait up to SECONDS * 2**(n-1) before the n-th retry (0)",
    )
    parser.add_argument(
        "--backoff-max", type=float, default=60.0, metavar="SECONDS", help="longest wait (60)"
    )
    parser.add_argument(
        "--rate-limit", metavar="RATE", help="at most RATE starts: 10/s, 600/m, 1000/h"
    )
    parser.add_argument(
        "--rate-burst", type=int, default=1, metavar="N", help="starts at once after a pause (1)"
    )
    parser.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="a task running longer fails"
    )
    parser.add_argument(
        "--stop-after-failures",
        type=int,
        metavar="N",
        help="stop starting tasks after N failed attempts in a row",
    )
    parser.add_argument(
        "--stop-on", metavar="ERRORS", help="stop starting tasks after one of these exceptions"
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        help="show a progress bar (default: when stderr is a terminal)",
    )
    parser.add_argument(
        "--failures", type=int, default=5, metavar="N", help="failures to list at the end (5)"
    )
    parser.set_defaults(handler=run)


def run(arguments: argparse.Namespace) -> int:
    tasks = load_tasks(arguments.target)
    conditions: list[Any] = []
    if arguments.stop_after_failures is not None:
        conditions.append(stop_after_consecutive_failures(arguments.stop_after_failures))
    if arguments.stop_on:
        conditions.append(stop_on(*_exception_types(arguments.stop_on, "--stop-on")))
    retry_on = _exception_types(arguments.retry_on, "--retry-on") if arguments.retry_on else None
    memory, choice = open_chosen_memory(arguments.memory, create=True)
    with memory:
        stop_all_when: StopConditions = conditions or None
        options: dict[str, Any] = {
            "stop_all_when": stop_all_when,
            "retry": arguments.retry,
            "progress": arguments.progress,
            "rate_limit": arguments.rate_limit,
            "rate_burst": arguments.rate_burst,
            "retry_on": retry_on,
            "backoff": arguments.backoff,
            "backoff_max": arguments.backoff_max,
            "timeout": arguments.timeout,
        }
        executor, where = _executor(arguments, tasks, memory, options)
        print(f"Running {arguments.target} into {choice.shown}{where}", flush=True)
        try:
            report = executor.run()
        except KeyboardInterrupt:  # the run has printed the counts
            print("Interrupted: every task finished so far is recorded. Run again to resume.")
            return 130
        except BaseException as exc:
            if isinstance(exc, MessorError) or not _where(exc):
                raise  # Messor's own error, for main() to print, or a bug in Messor
            # The task iterable's own code (a generator) raised or called sys.exit().
            raise CommandError(
                f"{arguments.target} {_ending(exc)}{_where(exc)} while giving its tasks, and "
                "the run stopped; every task finished before is recorded. Run again to resume",
                1,
            ) from exc
        print(_report_line(report))
        executor.status_summary(failures=arguments.failures)
    if report.interrupted:  # SIGTERM: the run finished its running tasks and returned
        print("Stopped by SIGTERM: every task finished so far is recorded. Run again to resume.")
        return 143
    if report.stopped:
        print(f"Stopped early: {printable(str(report.stopped_because))}. Run again to resume.")
        return 1
    return 1 if report.failed else 0


def _executor(
    arguments: argparse.Namespace, tasks: Iterable[object], memory: Memory, options: dict[str, Any]
) -> tuple[Executor, str]:
    """The executor ``--executor`` (or ``executor`` in messor.toml) names, and where it runs."""
    spec, source = arguments.executor, "--executor"
    if spec is None:
        spec, source = configured("executor", 'such as "dask://scheduler:8786"') or ("local", "")
    if spec == "local":
        concurrency = arguments.max_concurrency or 4
        return LocalThreadedExecutor(tasks, memory, concurrency, **options), ""
    if not spec.startswith("dask://") or not spec.removeprefix("dask://").strip("/"):
        raise CommandError(
            f"executor {spec!r} (from {source}) is not one Messor knows: write local, or "
            "dask://HOST:PORT for a Dask scheduler"
        )
    try:
        from messor_dask import DaskExecutor
    except ImportError:
        raise CommandError(
            f"executor {spec!r} needs messor-dask: pip install 'messor[dask]'"
        ) from None
    host = spec.removeprefix("dask://").strip("/")
    address = f"tcp://{host if ':' in host else host + ':8786'}"
    dask = DaskExecutor(tasks, memory, arguments.max_concurrency, address=address, **options)
    return dask, f" on the Dask cluster at {address}"


def _report_line(report: RunReport) -> str:
    return (
        f"This run: {report.completed} completed, {report.failed} failed, "
        f"{report.retried} retries, {report.skipped} already done in an earlier run "
        f"({report.elapsed:.1f} s)"
    )


def load_tasks(target: str) -> Iterable[object]:
    """The task iterable that ``MODULE:ATTRIBUTE`` names (calling it if it is a function)."""
    where, _, attribute = target.rpartition(":")
    if not where or not attribute:
        raise CommandError(
            f"{target!r} is not MODULE:ATTRIBUTE; write crawl:pages (pages in crawl.py) "
            "or jobs/crawl.py:pages"
        )
    module = _import(where)
    value: Any = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            close = difflib.get_close_matches(part, dir(value), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise CommandError(f"{where} has no attribute {attribute!r}{hint}")
        value = getattr(value, part)
    if callable(getattr(value, "get_id", None)):
        raise CommandError(
            f"{target} is a single task; name a list or generator of tasks, "
            "or a function returning one"
        )
    if not _iterable(value) and callable(value):
        try:
            value = value()
        except Exception as exc:
            raise CommandError(f"{target}() raised {describe_error(exc)}{_where(exc)}", 1) from exc
        except BaseException as exc:  # sys.exit() in the function: still not a task set
            raise _ended(f"{target}()", exc) from exc
    if not _iterable(value):
        raise CommandError(
            f"{target} is a {type(value).__name__}, not tasks: name a list or generator of "
            "tasks, or a function returning one"
        )
    tasks: Iterable[object] = value
    return tasks


def _iterable(value: object) -> bool:
    return hasattr(value, "__iter__") and not isinstance(value, str | bytes)


def _import(where: str) -> Any:
    """Import a module by name (the working directory first, as ``python -m``) or file path."""
    if where.endswith(".py") or "/" in where or os.sep in where:
        path = Path(where)
        if not path.is_file():
            raise CommandError(f"there is no file {where}")
        name = path.stem
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise CommandError(f"cannot import {where} as a Python module")
        sys.path.insert(0, str(path.resolve().parent))  # its neighbours import as in a script
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        loader: Any = spec.loader
        _run_import(where, lambda: loader.exec_module(module))
        return module
    sys.path.insert(0, os.getcwd())
    return _run_import(where, lambda: importlib.import_module(where))


def _run_import(where: str, load: Any) -> Any:
    try:
        return load()
    except ModuleNotFoundError as exc:
        if exc.name and (where == exc.name or where.startswith(f"{exc.name}.")):
            raise CommandError(
                f"no module named {where!r} in {os.getcwd()} or the installed packages"
            ) from exc
        raise CommandError(
            f"importing {where} failed: {describe_error(exc)}{_where(exc)}", 1
        ) from exc
    except Exception as exc:
        raise CommandError(
            f"importing {where} failed: {describe_error(exc)}{_where(exc)}", 1
        ) from exc
    except BaseException as exc:  # sys.exit() at import: a script, not a module to run
        raise _ended(
            f"importing {where}",
            exc,
            ". messor run imports the module: put a script's own start-up under "
            '`if __name__ == "__main__":`',
        ) from exc


def _ended(what: str, exc: BaseException, hint: str = "") -> CommandError:
    """The error for the user's code ending by a BaseException (sys.exit(), Ctrl-C) before
    any task ran: without it, ``messor run`` would exit silently, or with the module's code."""
    if isinstance(exc, KeyboardInterrupt):
        return CommandError(f"{what} was interrupted{_where(exc)}; nothing ran", 130)
    return CommandError(f"{what} {_ending(exc)}{_where(exc)}; nothing ran{hint}", 1)


def _ending(exc: BaseException) -> str:
    """``called sys.exit(3)`` or ``raised ValueError: ...``."""
    if isinstance(exc, SystemExit):
        return f"called sys.exit({'' if exc.code is None else repr(exc.code)})"
    return f"raised {describe_error(exc)}"


def _where(exc: BaseException) -> str:
    """`` (file.py, line 12)``: where in the user's code an exception was raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = str(Path(__file__).resolve().parent.parent)
    theirs = [f for f in frames if not f.filename.startswith((ours, "<frozen"))]
    if not theirs:
        return ""
    return f" ({theirs[-1].filename}, line {theirs[-1].lineno})"


def _exception_types(names: str, option: str) -> tuple[type[BaseException], ...]:
    """Exception classes from ``TimeoutError,requests.HTTPError``."""
    types: list[type[BaseException]] = []
    for name in filter(None, (part.strip() for part in names.split(","))):
        module_name, _, class_name = name.rpartition(".")
        try:
            found = getattr(
                importlib.import_module(module_name) if module_name else builtins, class_name
            )
        except (ImportError, AttributeError):
            found = None
        if not (isinstance(found, type) and issubclass(found, BaseException)):
            raise CommandError(
                f"{option}: {name!r} is not an exception class; write a built-in one "
                "(TimeoutError) or module.Class (requests.HTTPError)"
            )
        types.append(found)
    if not types:
        raise CommandError(f"{option} needs at least one exception class")
    return tuple(types)
