"""The ``messor`` command line: inspect, export, reset and run harvests from a terminal.

    messor backends              the installed memories and executors, and plugins that failed
    messor status                counts per status, the recent rate, the latest failures
    messor failed                failed tasks with their errors
    messor results -o out.jsonl  every task's outcome, streamed to a file
    messor retry --failed        failed tasks become pending: the next run retries them
    messor run tasks:TASKS       run a task set with the executor's options
    messor dashboard             a live web page of the harvest (messor[dashboard])

Every command takes ``--memory SPEC``; without it the memory is found as
``open_memory()`` finds it. A mistake gets one line on stderr and a non-zero
exit code: 2 for a mistake in the command (a usage error, a memory or module that
cannot be used), 1 for a store that fails, 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from messor.cli.common import CommandError, Formatter, print_error
from messor.cli.dashboard import add_command as add_dashboard_command
from messor.cli.inspect import add_commands
from messor.cli.running import add_command as add_run_command
from messor.errors import ConfigurationError, MessorError, UnknownBackendError
from messor.terminal import printable_lines

__all__ = ["main"]

EPILOG = """\
examples:
  messor status                              the harvest in ./messor.db (or as configured)
  messor status --memory redis://host/0 --watch 10
  messor failed --limit 20
  messor results --status completed --format csv -o results.csv
  messor retry --failed
  messor run crawl:pages -c 32 --retry 3 --rate-limit 10/s
  messor dashboard --memory redis://host/0   a live page on http://127.0.0.1:8642/

The memory: --memory SPEC, else $MESSOR_MEMORY, else memory = "..." in ./messor.toml
(or [tool.messor] in ./pyproject.toml), else the SQLite file ./messor.db.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="messor",
        description="Inspect, export, reset and run Messor harvests.",
        epilog=EPILOG,
        formatter_class=Formatter,
    )
    parser.add_argument("--version", action="version", version=f"messor {_version()}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    add_commands(commands)
    add_run_command(commands)
    add_dashboard_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code (the console script exits with it)."""
    parser = build_parser()
    arguments = parser.parse_args(argv)
    _show_warnings()
    try:
        code: int = arguments.handler(arguments)
    except KeyboardInterrupt:
        print_error("interrupted")
        return 130
    except BrokenPipeError:
        # `messor results | head`: the reader has what it wanted.
        _silence_stdout()
        return 0
    except CommandError as exc:
        print_error(str(exc))
        return exc.exit_code
    except (ConfigurationError, UnknownBackendError) as exc:
        print_error(str(exc))
        return 2
    except (MessorError, ConnectionError, OSError) as exc:
        print_error(str(exc) or type(exc).__name__)
        return 1
    return code


def _show_warnings() -> None:
    """Messor's warnings (a plugin that failed to load, a memory that could not tidy up)."""
    logger = logging.getLogger("messor")
    if any(getattr(h, "messor_cli", False) for h in logger.handlers):
        return  # main() called again in this process
    handler = logging.StreamHandler()
    handler.messor_cli = True  # type: ignore[attr-defined]
    handler.setFormatter(_Formatter())
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    # A plugin that failed to load is named where it matters (`messor backends`,
    # an unknown memory's error), not before every command.
    logging.getLogger("messor.plugins").setLevel(logging.ERROR)


class _Formatter(logging.Formatter):
    """``messor: warning: ...``: a log line may quote a task's error or id, escaped here."""

    def format(self, record: logging.LogRecord) -> str:
        return printable_lines(f"messor: {record.levelname.lower()}: {super().format(record)}")


def _silence_stdout() -> None:
    # Python flushes stdout at exit and would complain about the closed pipe again.
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _version() -> str:
    from messor import __version__

    return __version__
