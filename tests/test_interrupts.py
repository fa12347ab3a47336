"""Ctrl-C during a run: stop gracefully first, abandon on the second press."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from messor import FunctionTask, LocalThreadedExecutor, SQLiteMemory
from messor.run.interrupts import InterruptGuard


@pytest.fixture
def guard() -> Iterator[tuple[InterruptGuard, list[str]]]:
    calls: list[str] = []
    guard = InterruptGuard(calls.append, lambda: 42)
    guard.install()
    yield guard, calls
    guard.restore()


def sigint() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def test_the_first_ctrl_c_asks_the_run_to_stop_and_raises_nothing(
    guard: tuple[InterruptGuard, list[str]],
) -> None:
    interrupts, calls = guard
    sigint()
    assert calls == ["Ctrl-C"]
    assert interrupts.first_signal == signal.SIGINT


def test_the_second_ctrl_c_raises_keyboard_interrupt(
    guard: tuple[InterruptGuard, list[str]],
) -> None:
    sigint()
    with pytest.raises(KeyboardInterrupt):
        sigint()


def test_while_flushing_the_first_ctrl_c_only_says_what_is_being_saved(
    guard: tuple[InterruptGuard, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    interrupts, _ = guard
    sigint()
    interrupts.flushing()
    sigint()
    assert "recording 42 finished tasks" in caplog.text
    with pytest.raises(KeyboardInterrupt):
        sigint()


def test_an_ignored_sigint_stays_ignored_during_a_run() -> None:
    seen: list[object] = []
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        task = FunctionTask("t", lambda: seen.append(signal.getsignal(signal.SIGINT)))
        LocalThreadedExecutor([task], memory=SQLiteMemory(":memory:")).run()
        assert seen == [signal.SIG_IGN]
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
