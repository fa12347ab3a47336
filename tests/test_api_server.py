"""The throttling API of tests/api_server.py answers and logs as real APIs do.

Pacing tests and benchmarks/pacing.py take its word for what a client did, so
its quota, its Retry-After, its in-flight cap and its log are specified here.
Most tests step a fake clock instead of sleeping.

Measured on this 2-core machine, the server in a child process: 11,800
requests/s from 64 keep-alive connections of a raw asyncio client, 18,900/s
when it answers 429; ``requests`` from 32 threads reaches 2,000/s, bound by
the client. ``http.server.ThreadingHTTPServer`` with keep-alive, for
comparison: 300 and 700/s.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import threading
import time

import httpx
import pytest
import requests

from tests.api_server import ApiConfig, ApiProcess, ApiServer


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def get(api: ApiServer | ApiProcess, path: str, **headers: str) -> requests.Response:
    return requests.get(f"{api.url}{path}", headers=headers, timeout=60)


def statuses(api: ApiServer, count: int, path: str = "/items/1") -> list[int]:
    with requests.Session() as session:
        return [session.get(f"{api.url}{path}", timeout=60).status_code for _ in range(count)]


def test_a_key_over_its_quota_gets_429_with_the_seconds_until_its_next_token() -> None:
    with ApiServer(ApiConfig(rate=0.5, burst=1), clock=Clock()) as api:
        assert get(api, "/items/1").status_code == 200
        answer = get(api, "/items/2")
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "2"


def test_the_quota_refills_at_its_rate_and_no_faster() -> None:
    clock = Clock()
    with ApiServer(ApiConfig(rate=10), clock=clock) as api:
        assert statuses(api, 11) == [200] * 10 + [429]
        clock.now += 0.25
        assert statuses(api, 3) == [200, 200, 429]


def test_a_fixed_retry_after_is_announced_whatever_the_bucket_holds() -> None:
    with ApiServer(ApiConfig(rate=100, burst=1, retry_after=2), clock=Clock()) as api:
        get(api, "/items/1")
        assert get(api, "/items/2").headers["Retry-After"] == "2"


def test_retry_after_as_an_http_date_names_a_moment_no_sooner_than_the_wait() -> None:
    config = ApiConfig(rate=1, retry_after=30, retry_after_date=True)
    with ApiServer(config, clock=Clock()) as api:
        get(api, "/items/1")
        before = time.time()
        header = get(api, "/items/2").headers["Retry-After"]
    moment = email.utils.parsedate_to_datetime(header).timestamp()
    assert before + 30 <= moment <= time.time() + 31


def test_declined_requests_take_no_token() -> None:
    clock = Clock()
    with ApiServer(ApiConfig(rate=1), clock=clock) as api:
        assert statuses(api, 5) == [200, 429, 429, 429, 429]
        clock.now += 1
        assert statuses(api, 2) == [200, 429]


def test_the_quota_changes_at_the_given_time_after_the_first_request() -> None:
    clock = Clock()
    with ApiServer(ApiConfig(rate=10, rate_changes=((5.0, 2.0),)), clock=clock) as api:
        assert statuses(api, 11) == [200] * 10 + [429]
        clock.now += 6
        assert statuses(api, 3) == [200, 200, 429]
        assert [entry.rate for entry in api.log()] == [10.0] * 11 + [2.0] * 3


def test_each_api_key_has_a_quota_of_its_own() -> None:
    config = ApiConfig(rate=1, key_by="X-Api-Key", rates_by_key={"gold": 3})
    with ApiServer(config, clock=Clock()) as api:
        answers = {
            key: [get(api, "/items/1", **{"X-Api-Key": key}).status_code for _ in range(4)]
            for key in ("alice", "bob", "gold")
        }
        keys = {entry.key for entry in api.log()}
    assert answers == {
        "alice": [200, 429, 429, 429],
        "bob": [200, 429, 429, 429],
        "gold": [200, 200, 200, 429],
    }
    assert keys == {"alice", "bob", "gold"}


def test_a_quota_per_first_path_segment_limits_each_host_like_prefix_apart() -> None:
    with ApiServer(ApiConfig(rate=1, key_by="path"), clock=Clock()) as api:
        answers = [get(api, path).status_code for path in ("/a/1", "/a/2", "/b/1", "/b/2")]
    assert answers == [200, 429, 200, 429]


def test_requests_beyond_the_in_flight_cap_are_declined_as_overloaded() -> None:
    config = ApiConfig(max_in_flight=2, overload_status=529, latency=60)
    with ApiServer(config) as api:
        hold(api, 2)
        answer = get(api, "/items/3")
        log = api.log()
    assert answer.status_code == 529
    assert "Retry-After" not in answer.headers
    assert [(entry.path, entry.in_flight) for entry in log] == [("/items/3", 2)]


def hold(api: ApiServer, count: int) -> None:
    """Start ``count`` requests that wait out a long latency; return once the server has them."""

    def wait(path: str) -> None:
        with contextlib.suppress(requests.ConnectionError):  # the server closed first
            get(api, path)

    for n in range(count):
        threading.Thread(target=wait, args=(f"/held/{n}",), daemon=True).start()
    deadline = time.monotonic() + 30
    while api.in_flight < count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert api.in_flight == count


def test_an_overloaded_answer_may_announce_a_retry_after_window() -> None:
    config = ApiConfig(max_in_flight=0, overload_retry_after=5)
    clock = Clock()
    with ApiServer(config, clock=clock) as api:
        answer = get(api, "/items/1")
        clock.now += 1
        get(api, "/items/2")
        log = api.log()
    assert (answer.status_code, answer.headers["Retry-After"]) == (503, "5")
    assert [entry.in_window for entry in log] == [False, True]


def test_missing_ids_are_answered_404_and_others_with_their_id() -> None:
    with ApiServer(ApiConfig(missing=frozenset({"7"}))) as api:
        missing, found = get(api, "/items/7"), get(api, "/items/8")
    assert missing.status_code == 404
    assert (found.status_code, found.json()) == (200, {"id": "8"})


def test_accepted_requests_are_answered_once_their_latency_passed() -> None:
    with ApiServer(ApiConfig(latency=(0.2, 0.3))) as api:
        for n in range(3):
            get(api, f"/items/{n}")
        log = api.log()
    assert all(entry.answered - entry.arrived >= 0.19 for entry in log)


def test_declined_requests_are_answered_without_waiting_out_the_latency() -> None:
    with ApiServer(ApiConfig(rate=0.01, latency=60)) as api:
        hold(api, 1)  # it took the only token
        answer = requests.get(f"{api.url}/items/2", timeout=30)
    assert answer.status_code == 429


def test_the_log_marks_requests_sent_inside_a_window_announced_to_their_key() -> None:
    config = ApiConfig(rate=1, retry_after=2, key_by="X-Api-Key")
    clock = Clock()
    with ApiServer(config, clock=clock) as api:
        get(api, "/items/1", **{"X-Api-Key": "a"})
        clock.now += 0.5
        get(api, "/items/2", **{"X-Api-Key": "a"})  # 429: a must wait until 1002.5
        sent_before = str(clock.now - 0.001)  # already in flight when the 429 went out
        clock.now += 0.5
        get(api, "/items/3", **{"X-Api-Key": "a", "X-Sent-At": sent_before})
        get(api, "/items/4", **{"X-Api-Key": "a"})  # 429 again: a must wait until 1003
        get(api, "/items/5", **{"X-Api-Key": "b"})
        clock.now += 2.1
        get(api, "/items/6", **{"X-Api-Key": "a"})
        get(api, "/items/7", **{"X-Api-Key": "a"})  # 429: a new wait, until 1005.1
        clock.now += 0.25
        get(api, "/items/8", **{"X-Api-Key": "a"})
        log = api.log()
    assert [(entry.path, entry.status, entry.in_window) for entry in log] == [
        ("/items/1", 200, False),
        ("/items/2", 429, False),
        ("/items/3", 200, False),
        ("/items/4", 429, True),
        ("/items/5", 200, False),
        ("/items/6", 200, False),
        ("/items/7", 429, False),
        ("/items/8", 429, True),
    ]
    assert log[2].sent == pytest.approx(1000.499)
    assert [entry.retry_after for entry in log] == [None, "2", None, "2", None, None, "2", "2"]


def test_the_log_says_how_long_the_key_had_been_told_to_wait_when_a_request_was_sent() -> None:
    clock = Clock()
    with ApiServer(ApiConfig(rate=0.01, burst=1, retry_after=2), clock=clock) as api:
        get(api, "/items/1")
        for _ in range(4):  # 429s, each announcing a window that overlaps the last
            clock.now += 1.5
            get(api, "/items/2")
        clock.now += 2.5  # past every window: the next 429 starts a new wait
        get(api, "/items/3")
        clock.now += 0.5
        get(api, "/items/4")
        ages = [entry.window_age for entry in api.log()]
    assert ages == [None, None, 1.5, 3.0, 4.5, None, 0.5]


def test_the_log_holds_every_request_of_many_concurrent_connections_once() -> None:
    async def many(url: str) -> list[int]:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=50)) as client:
            answers = await asyncio.gather(*(client.get(f"{url}/items/{n}") for n in range(300)))
        return [answer.status_code for answer in answers]

    with ApiServer(ApiConfig(latency=(0.0, 0.01))) as api:
        seen = asyncio.run(many(api.url))
        log = api.log()
    assert seen == [200] * 300
    assert sorted(entry.path for entry in log) == sorted(f"/items/{n}" for n in range(300))
    assert all(entry.arrived <= entry.answered for entry in log)
    assert max(entry.in_flight for entry in log) <= 50


@pytest.mark.slow
def test_the_same_server_runs_in_a_child_process_and_hands_over_its_log() -> None:
    config = ApiConfig(rate=0.01, retry_after=2, latency=(0.0, 0.01), missing=frozenset({"9"}))
    with ApiProcess(config) as api:
        answers = [get(api, path).status_code for path in ("/items/1", "/items/9", "/items/2")]
        log = api.log()
    assert answers == [200, 429, 429]
    assert [(entry.path, entry.status, entry.retry_after) for entry in log] == [
        ("/items/1", 200, None),
        ("/items/9", 429, "2"),
        ("/items/2", 429, "2"),
    ]
    assert [entry.in_window for entry in log] == [False, False, True]
