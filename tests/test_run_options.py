"""``RunOptions``: every run option checked once, held by every executor, the CLI built from it."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

import pytest

import messor
from messor import (
    AsyncExecutor,
    ConfigurationError,
    FunctionTask,
    LocalThreadedExecutor,
    RunOptions,
)
from messor.run.stops import ConsecutiveFailures, StopOnException
from tests.console import messor as run_messor


def parser() -> argparse.ArgumentParser:
    made = argparse.ArgumentParser(exit_on_error=False)
    RunOptions.add_arguments(made)
    return made


def from_command_line(*flags: str) -> RunOptions:
    return RunOptions.from_arguments(parser().parse_args(list(flags)))


# -- checked once, at construction --------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_concurrency": 2.5}, "max_concurrency"),
        ({"retry": -1}, "retry"),
        ({"retry": True}, "retry"),
        ({"retry_on": "TimeoutError"}, "retry_on"),
        ({"backoff": -1}, "backoff"),
        ({"backoff_max": float("inf")}, "backoff_max"),
        ({"rate_limit": "fast"}, "rate_limit"),
        ({"rate_burst": 0}, "rate_burst"),
        ({"timeout": 0}, "timeout"),
        ({"stop_all_when": True}, "stop_all_when"),
        ({"progress": "yes"}, "progress"),
    ],
)
def test_a_bad_option_is_refused_naming_it(options: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        RunOptions(**options)


def test_options_are_frozen() -> None:
    options = RunOptions(retry=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.retry = 3  # type: ignore[misc]


def test_one_exception_class_and_one_stop_condition_are_kept_as_tuples() -> None:
    def never() -> bool:
        return False

    options = RunOptions(retry_on=TimeoutError, stop_all_when=never)  # type: ignore[arg-type]
    assert options.retry_on == (TimeoutError,)
    assert options.stop_all_when == (never,)
    assert RunOptions(stop_all_when=[never]).stop_all_when == (never,)  # type: ignore[arg-type]


# -- held by every executor ---------------------------------------------------------------------


@pytest.mark.parametrize("executor", [LocalThreadedExecutor, AsyncExecutor])
def test_an_executors_keywords_build_its_options(executor: type[messor.Executor]) -> None:
    built = executor([], "memory://", 8, retry=3, timeout=5, rate_limit="10/s")
    assert built.options == RunOptions(max_concurrency=8, retry=3, timeout=5, rate_limit="10/s")
    assert (built.max_concurrency, built.retry, built.timeout) == (8, 3, 5)


@pytest.mark.parametrize("executor", [LocalThreadedExecutor, AsyncExecutor])
def test_an_executor_takes_its_options_at_once_and_fills_in_its_default_concurrency(
    executor: type[messor.Executor],
) -> None:
    built = executor([], "memory://", options=RunOptions(retry=0, backoff=2))
    assert built.options == RunOptions(max_concurrency=4, retry=0, backoff=2)
    assert built.retry == 0


def test_options_given_both_as_keywords_and_at_once_are_refused_naming_the_keywords() -> None:
    with pytest.raises(ConfigurationError, match=r"not both \(retry, timeout given as keywords"):
        LocalThreadedExecutor([], "memory://", retry=3, timeout=9, options=RunOptions(retry=2))


def test_setting_an_option_on_an_executor_checks_it_and_the_next_run_uses_it() -> None:
    calls: list[int] = []

    def flaky() -> int:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("try again")
        return len(calls)

    memory = messor.InProcessMemory()
    executor = LocalThreadedExecutor([FunctionTask("t", flaky)], memory, retry=0, progress=False)
    with pytest.raises(ConfigurationError, match="retry"):
        executor.retry = -1
    executor.retry = 2
    assert executor.options.retry == 2
    report = executor.run()
    assert (report.completed, report.retried) == (1, 2)
    assert memory.get_task_result("t") == 3


# -- the command line is built from it ----------------------------------------------------------


def test_every_option_has_a_flag_on_the_command_line() -> None:
    flags = {name for action in parser()._actions for name in action.option_strings}
    for option in dataclasses.fields(RunOptions):
        names = [n for flag in option.metadata["flags"] for n in flag.names]
        assert names, option.name
        assert set(names) <= flags


def test_no_flags_give_the_default_options() -> None:
    assert from_command_line() == RunOptions()


def test_the_flags_round_trip_into_the_options() -> None:
    options = from_command_line(
        "-c", "16", "--retry", "3", "--retry-on", "TimeoutError,ConnectionError",
        "--backoff", "0.5", "--backoff-max", "8", "--rate-limit", "600/m", "--rate-burst", "5",
        "--timeout", "30", "--stop-after-failures", "7", "--stop-on", "PermissionError",
        "--no-progress",
    )  # fmt: skip
    expected = RunOptions(
        max_concurrency=16,
        retry=3,
        retry_on=(TimeoutError, ConnectionError),
        backoff=0.5,
        backoff_max=8.0,
        rate_limit="600/m",
        rate_burst=5,
        timeout=30.0,
        stop_all_when=options.stop_all_when,
        progress=False,
    )
    assert options == expected
    streak, stop = options.stop_all_when
    assert isinstance(streak, ConsecutiveFailures)
    assert streak.count == 7
    assert isinstance(stop, StopOnException)
    assert stop.exception_types == (PermissionError,)


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--retry-on", "NoSuchError"], "--retry-on: 'NoSuchError' is not an exception class"),
        (["--stop-on", "json.loads"], "--stop-on: 'json.loads' is not an exception class"),
        (["--stop-after-failures", "0"], "--stop-after-failures: stop_after_consecutive"),
        (["--rate-limit", "often"], "rate_limit 'often' is not a rate"),
        (["--retry", "-2"], "retry must be an int >= 0"),
    ],
)
def test_a_bad_flag_value_is_a_configuration_error_naming_it(flags: list[str], words: str) -> None:
    with pytest.raises(ConfigurationError, match=words):
        from_command_line(*flags)


@pytest.mark.slow
def test_messor_run_help_lists_each_option_with_its_default(tmp_path: Any) -> None:
    shown = " ".join(run_messor("run", "--help", cwd=tmp_path).stdout.split())
    assert "--retry N more attempts after a failure (1)" in shown
    assert "--backoff-max SECONDS longest wait (60)" in shown
    assert "--progress, --no-progress" in shown
    assert "--executor SPEC" in shown
