"""``messor run MODULE:ATTRIBUTE``: run a task set from a terminal, with the executor's options.

Its flags are those of :class:`~messor.options.RunOptions`, and ``--executor``
chooses among the installed executors (:func:`messor.open_executor`).
"""

from __future__ import annotations

import argparse
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
from messor.options import RunOptions
from messor.run.attempt import describe_error
from messor.run.harvest import RunReport
from messor.selection import open_executor
from messor.terminal import printable

__all__ = ["add_command", "load_tasks"]

EPILOG = """\
examples:
  messor run crawl:pages                      pages: a list or generator of tasks in crawl.py
  messor run crawl:make_pages -c 32           make_pages(): a function returning them
  messor run jobs/crawl.py:pages --retry 3 --retry-on TimeoutError,ConnectionError
  messor run crawl:pages --rate-limit 600/m --timeout 30 --stop-after-failures 20
  messor run crawl:pages -c auto --limit rate=5/s,concurrency=2,key=host
  messor run crawl:pages --retry 3 --retry-on-status 500,502,503,504 --give-up-on-status 404,410
  messor run ask:questions --executor async -c auto --tokens 90000/m --budget cost=5
  messor run fetch:coroutines --executor async -c 500
  messor run crawl:pages --executor dask://scheduler:8786 --memory redis://host/0   (messor[dask])

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
        "tasks, or a function returning one) on the chosen executor (threads by default), "
        "recording every outcome; a second run resumes.",
        epilog=EPILOG,
        formatter_class=Formatter,
    )
    parser.add_argument("target", metavar="MODULE:ATTRIBUTE", help="where the tasks are")
    add_memory_argument(parser)
    parser.add_argument(
        "--executor",
        metavar="SPEC",
        help="where tasks run: an executor's name or URL; local (threads, the default), async "
        "(coroutines), or one a plugin offers (messor backends lists them); also "
        'executor = "..." in messor.toml',
    )
    RunOptions.add_arguments(parser)
    parser.add_argument(
        "--failures", type=int, default=5, metavar="N", help="failures to list at the end (5)"
    )
    parser.set_defaults(handler=run)


def run(arguments: argparse.Namespace) -> int:
    tasks = load_tasks(arguments.target)
    options = RunOptions.from_arguments(arguments)
    memory, choice = open_chosen_memory(arguments.memory, create=True)
    with memory:
        executor = open_executor(arguments.executor, tasks, memory, options)
        where = f" {executor.where}" if executor.where else ""
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
    return 1 if report.failed or report.gave_up else 0


def _report_line(report: RunReport) -> str:
    gave_up = f", {report.gave_up} failed for good" if report.gave_up else ""
    line = (
        f"This run: {report.completed} completed, {report.failed} failed{gave_up}, "
        f"{report.retried} retries, {report.skipped} already done in an earlier run "
        f"({report.elapsed:.1f} s)"
    )
    if report.throttled:
        line += (
            f"\nThrottled by a server {report.throttled} times; paused "
            f"{report.paused_seconds:.1f} s in all"
        )
    if report.usage:
        spent = ", ".join(f"{name} {amount:g}" for name, amount in report.usage.items())
        line += f"\nUsage reported by the tasks: {printable(spent)}"
    return line


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
