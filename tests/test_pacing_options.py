"""The pacing options from the command line: ``messor run -c auto --limit ... --tokens ...
--retry-on-status ... --give-up-on-status ... --budget ...``, each checked with a clear error."""

from __future__ import annotations

import argparse

import pytest

from messor import Adaptive, ConfigurationError, Limit, RunOptions, by_host, http_status


def from_command_line(*flags: str) -> RunOptions:
    parser = argparse.ArgumentParser(exit_on_error=False)
    RunOptions.add_arguments(parser)
    return RunOptions.from_arguments(parser.parse_args(list(flags)))


def test_the_pacing_flags_build_the_options() -> None:
    options = from_command_line(
        "-c", "auto",
        "--limit", "rate=5/s,concurrency=2,key=host",
        "--limit", "rate=600/m",
        "--tokens", "90000/m",
        "--retry-on-status", "500,503",
        "--give-up-on-status", "404,410",
        "--max-throttles", "5",
        "--budget", "cost=5,tokens_out=1e6",
    )  # fmt: skip
    assert options.adaptive == Adaptive()
    assert options.limits == (
        Limit(rate="5/s", concurrency=2, key=by_host),
        Limit(rate="600/m"),
        Limit(tokens="90000/m"),
    )
    assert options.retry_on == http_status(500, 503)
    assert options.give_up_on == http_status(404, 410)
    assert options.max_throttles == 5
    assert options.budget == {"cost": 5.0, "tokens_out": 1e6}


def test_adaptive_takes_the_number_as_its_ceiling() -> None:
    options = from_command_line("-c", "32", "--adaptive")
    assert (options.max_concurrency, options.adaptive) == (32, Adaptive(ceiling=32))


def test_retry_on_types_and_statuses_combine() -> None:
    options = from_command_line("--retry-on", "TimeoutError", "--retry-on-status", "503")
    assert callable(options.retry_on)
    assert options.retry_on(TimeoutError())
    assert not options.retry_on(ValueError())


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--limit", "rate=5/s,key=path"], "the command line knows key=host"),
        (["--limit", "speed=5"], "write rate=5/s,concurrency=2,tokens=90000/m,key=host"),
        (["--limit", "concurrency=two"], "concurrency must be a whole number"),
        (["--limit", "rate=often"], "Limit rate 'often' is not a rate"),
        (["--tokens", "lots"], "Limit tokens 'lots' is not a rate"),
        (["--retry-on-status", "5xx"], "--retry-on-status takes HTTP status codes"),
        (["--give-up-on-status", "404,9000"], "--give-up-on-status takes HTTP status codes"),
        (["--budget", "cost=five"], "--budget 'cost=five': write totals as name=number"),
        (["--budget", "cost=0"], "budget: stop_when_spent: cost must be a number > 0"),
        (["--max-throttles", "0"], "max_throttles must be an int >= 1"),
    ],
)
def test_a_bad_pacing_flag_is_refused_saying_what_to_write(flags: list[str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        from_command_line(*flags)


def test_c_takes_a_number_or_auto() -> None:
    with pytest.raises(argparse.ArgumentError, match="expected a number of tasks or auto"):
        from_command_line("-c", "many")
