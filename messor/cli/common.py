"""What the commands share: the ``--memory`` option, opening it, errors and output."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from messor.errors import ConfigurationError
from messor.memories.base import Memory
from messor.selection import MemoryChoice, choose_memory
from messor.terminal import printable_lines

__all__ = [
    "CommandError",
    "Formatter",
    "add_memory_argument",
    "open_chosen_memory",
    "print_error",
    "utf8_stdout",
]


class CommandError(Exception):
    """A user mistake the command explains in one line, with its exit code."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples of a command's help as written."""


def print_error(message: str) -> None:
    """``messor: error: message`` on stderr; ids and errors quoted in it cannot rewrite the
    terminal (see :mod:`messor.terminal`)."""
    print(f"messor: error: {printable_lines(message)}", file=sys.stderr, flush=True)


def add_memory_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--memory",
        "-m",
        metavar="SPEC",
        help="the memory: a URL (sqlite:///harvest.db, redis://host/0, s3://bucket/prefix), "
        "a backend name or a SQLite file (default: $MESSOR_MEMORY, messor.toml, ./messor.db)",
    )


def open_chosen_memory(spec: str | None, *, create: bool = False) -> tuple[Memory, MemoryChoice]:
    """Open the memory the user chose (or the configured one).

    Without ``create``, a memory whose factory takes ``create`` is opened
    with ``create=False``: a command that inspects a harvest in the wrong
    SQLite file, Redis namespace or S3 prefix says so instead of showing an
    empty one.
    """
    choice = choose_memory(spec)
    if not create and "create" in inspect.signature(choice.backend.factory).parameters:
        choice = dataclasses.replace(choice, options={**choice.options, "create": False})
    try:
        return choice.open(), choice
    except ConfigurationError as exc:
        if choice.source == "default":
            raise ConfigurationError(
                f"{exc}. Run this where the harvest ran, or give --memory SPEC "
                "(or set MESSOR_MEMORY)"
            ) from exc
        raise


@contextmanager
def utf8_stdout() -> Iterator[TextIO]:
    """Standard output as UTF-8 whatever the locale, for exports and JSON."""
    buffer: Any = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # replaced by a test or a notebook: already text
        yield sys.stdout
        return
    sys.stdout.flush()
    stream = io.TextIOWrapper(buffer, encoding="utf-8", newline="", errors="backslashreplace")
    try:
        yield stream
    finally:
        stream.flush()
        stream.detach()  # sys.stdout keeps its buffer
