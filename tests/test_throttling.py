"""How an exception is read: a server's throttle (429/503/529 and Retry-After), an HTTP status
for retry_on and give_up_on, found in requests, httpx and aiohttp errors by their shape."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
import pytest
import requests

import messor
from messor import FailForGood, Throttled, http_status, throttle_of
from messor.errors import ConfigurationError
from messor.run.throttling import MAX_RETRY_AFTER, Throttle, parse_retry_after
from messor.run.verdicts import Rules
from tests.api_server import ApiConfig, ApiServer


class FakeResponse:
    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        self.headers = headers or {}


class ClientError(Exception):
    """What an unknown HTTP client might raise: an exception carrying its response."""

    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.response = FakeResponse(status, headers)


@pytest.fixture(scope="module")
def api() -> Iterator[ApiServer]:
    """Quota of one request, then 429 with Retry-After: 7."""
    with ApiServer(ApiConfig(rate=0.001, burst=1, retry_after=7)) as server:
        yield server


# -- clients' own exceptions, against a real server -----------------------------------------------


def test_a_requests_429_is_a_throttle_with_the_servers_retry_after(api: ApiServer) -> None:
    with requests.Session() as session:
        session.get(f"{api.url}/items/1").raise_for_status()  # the one request the quota allows
        with pytest.raises(requests.HTTPError) as raised:
            session.get(f"{api.url}/items/2").raise_for_status()
    assert throttle_of(raised.value) == Throttle(7.0, 429)


def test_an_httpx_429_is_a_throttle_with_the_servers_retry_after(api: ApiServer) -> None:
    with httpx.Client() as client, pytest.raises(httpx.HTTPStatusError) as raised:
        client.get(f"{api.url}/items/3").raise_for_status()
    assert throttle_of(raised.value) == Throttle(7.0, 429)


def test_an_aiohttp_429_is_a_throttle_read_from_the_error_itself(api: ApiServer) -> None:
    async def fetch() -> BaseException:
        async with aiohttp.ClientSession() as session:
            try:
                async with session.get(f"{api.url}/items/4", raise_for_status=True):
                    pass
            except aiohttp.ClientResponseError as exc:
                return exc
        raise AssertionError("no error")

    assert throttle_of(asyncio.run(fetch())) == Throttle(7.0, 429)


def test_a_404_is_no_throttle_but_http_status_matches_it() -> None:
    with (
        ApiServer(ApiConfig(missing=frozenset({"gone"}))) as api,
        pytest.raises(requests.HTTPError) as raised,
    ):
        requests.get(f"{api.url}/items/gone", timeout=30).raise_for_status()
    assert throttle_of(raised.value) is None
    assert http_status(404, 410)(raised.value)
    assert not http_status(500, 503)(raised.value)


# -- the shapes, one by one -----------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503, 529])
def test_429_503_and_529_are_throttles(status: int) -> None:
    assert throttle_of(ClientError(status, {"Retry-After": "3"})) == Throttle(3.0, status)


@pytest.mark.parametrize("status", [200, 404, 500, 502, 504])
def test_other_statuses_are_not(status: int) -> None:
    assert throttle_of(ClientError(status, {"Retry-After": "3"})) is None


def test_a_throttle_without_retry_after_says_so() -> None:
    assert throttle_of(ClientError(503)) == Throttle(None, 503)


def test_a_response_found_along_the_cause_chain_counts() -> None:
    def call_the_sdk() -> None:
        try:
            raise ClientError(429, {"retry-after": "2"})
        except ClientError as exc:
            raise RuntimeError("the SDK wrapped it") from exc

    with pytest.raises(RuntimeError) as wrapped:
        call_the_sdk()
    assert throttle_of(wrapped.value) == Throttle(2.0, 429)


def test_an_exception_without_a_response_or_with_an_odd_one_is_no_throttle() -> None:
    odd = ValueError("x")
    odd.response = object()  # type: ignore[attr-defined]
    assert throttle_of(odd) is None
    assert throttle_of(ValueError("x")) is None


def test_messor_throttled_is_a_throttle_with_its_key_and_reason() -> None:
    found = throttle_of(Throttled(2.5, key="api-key-7", reason="quota"))
    assert found == Throttle(2.5, None, "api-key-7", "quota")
    assert found is not None
    assert found.explicit
    assert throttle_of(Throttled()) == Throttle(None, None, None, "")


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "2", True])
def test_throttled_refuses_a_retry_after_that_is_not_seconds(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="retry_after"):
        Throttled(bad)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("3", 3.0), (" 1.5 ", 1.5), ("0", 0.0), ("-4", 0.0), ("99999", MAX_RETRY_AFTER)],
)
def test_retry_after_in_seconds_is_clamped_to_an_hour(header: str, seconds: float) -> None:
    assert parse_retry_after(header) == seconds


def test_retry_after_as_an_http_date_counts_from_now() -> None:
    now = time.time()
    header = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(header, now) == pytest.approx(30, abs=1)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after(past, now) == 0.0


@pytest.mark.parametrize("header", [None, "", "soon", "Tue, 99 Foo 2026", b"\xff"])
def test_an_unreadable_or_missing_retry_after_is_none(header: Any) -> None:
    assert parse_retry_after(header) is None


def test_an_http_date_in_the_header_is_read_from_a_real_server() -> None:
    config = ApiConfig(rate=0.001, burst=1, retry_after=20, retry_after_date=True)
    with ApiServer(config) as api, requests.Session() as session:
        session.get(f"{api.url}/a")
        answer = session.get(f"{api.url}/b")
    found = throttle_of(requests.HTTPError(response=answer))
    assert found is not None
    assert found.retry_after == pytest.approx(20, abs=1.5)


# -- retry_on, give_up_on and FailForGood, as judged where an attempt ran ------------------------


def test_rules_judge_give_up_then_throttle_then_retry() -> None:
    rules = Rules(retry_on=http_status(500, 503), give_up_on=http_status(404))
    gone = rules.judge(ClientError(404))
    assert (gone.gave_up, gone.retryable) == (True, False)
    busy = rules.judge(ClientError(503))
    assert (busy.gave_up, busy.retryable, busy.throttle) == (False, True, Throttle(None, 503))
    bad = rules.judge(ClientError(400))
    assert (bad.gave_up, bad.retryable) == (False, False)
    assert Rules().judge(FailForGood("404")).gave_up


def test_a_rule_that_raises_does_not_match_and_says_so_in_the_error() -> None:
    def broken(exc: BaseException) -> bool:
        raise KeyError("oops")

    verdict = Rules(retry_on=broken).judge(ValueError("x"))
    assert not verdict.retryable
    assert "retry_on raised KeyError" in verdict.note


@pytest.mark.parametrize("codes", [(), (99,), (600,), ("404",), (True,)])
def test_http_status_refuses_what_is_not_a_status(codes: tuple[Any, ...]) -> None:
    with pytest.raises(ConfigurationError, match="http_status"):
        http_status(*codes)


def test_retry_on_and_give_up_on_take_types_predicates_or_both() -> None:
    options = messor.RunOptions(
        retry_on=(TimeoutError, http_status(503)),  # type: ignore[arg-type]
        give_up_on=KeyError,  # type: ignore[arg-type]
    )
    assert options.give_up_on == (KeyError,)
    assert callable(options.retry_on)
    assert options.retry_on(TimeoutError())
    assert options.retry_on(ClientError(503))
    assert not options.retry_on(ClientError(404))
    with pytest.raises(ConfigurationError, match="give_up_on"):
        messor.RunOptions(give_up_on="KeyError")  # type: ignore[arg-type]
