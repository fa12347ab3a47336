"""The dashboard in a real headless Chromium while a harvest runs, on SQLite, Redis and S3.

The run and the dashboard use separate memory objects on one store, as a run
on one machine and a dashboard on another would.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from messor import LocalThreadedExecutor, Memory, SQLiteMemory, open_memory
from messor.failures import group_key
from messor.memories.base import FAILED, PENDING
from tests.browser import chromium, dashboard
from tests.dashboard_screenshot import image_facts, take
from tests.paused_run import PausedRun

pytestmark = pytest.mark.slow

WAIT = 60.0
FIRST, TOTAL = 30, 40  # tasks that end at once; the rest wait for the test
NOT_FOUND = group_key("LookupError", "<n> Not Found: <url>")


def store(kind: str, directory: Path) -> Callable[[], Memory]:
    """Opens a new memory object on one store of ``kind`` each time it is called."""
    if kind == "sqlite":
        return lambda: SQLiteMemory(directory / "h.db")
    if kind == "redis":
        from tests.redis_server import real_redis

        url = f"{real_redis().url}?namespace={uuid.uuid4().hex}"
        return lambda: open_memory(url)
    from tests.s3_server import new_bucket, server_endpoint

    endpoint = server_endpoint()
    url = f"s3://{new_bucket(endpoint)}/harvest?endpoint_url={endpoint}&batch_delay=0"
    return lambda: open_memory(url)


class GatedRun:
    """A harvest on its own thread: FIRST tasks end at once (one in five fails with a 404),
    the others wait until :meth:`finish`."""

    def __init__(self, memory: Memory) -> None:
        memory.beat_interval = 0.1  # a beat every 0.1 s, S3's too: the test has no time to wait
        self.gate = threading.Event()
        self.executor = LocalThreadedExecutor(
            [self._task(n) for n in range(TOTAL)], memory, max_concurrency=4, retry=0
        )
        self.thread = threading.Thread(target=self.executor.run)

    def _task(self, n: int) -> Any:
        def call() -> int:
            if n >= FIRST:
                assert self.gate.wait(WAIT)
            elif n % 5 == 0:
                raise LookupError(f"{400 + n} Not Found: https://example.org/page/{n}")
            return n

        call.get_id = lambda: f"page-{n:02d}"  # type: ignore[attr-defined]
        return call

    def __enter__(self) -> GatedRun:
        self.thread.start()
        return self

    def finish(self) -> None:
        self.gate.set()
        self.thread.join(WAIT)

    def __exit__(self, *exc: object) -> None:
        self.finish()


def wait(driver: Any, condition: Callable[[Any], Any], what: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT, poll_frequency=0.05).until(condition, what)


def text(driver: Any, element_id: str) -> str:
    return str(driver.execute_script(f"return document.getElementById('{element_id}').textContent"))


def shown_counts(driver: Any) -> dict[str, int] | None:
    """The counts the page shows; None before it shows any."""
    shown = [
        text(driver, f"count-{s}").replace(",", "") for s in ("pending", "completed", "failed")
    ]
    if not all(n.isdigit() for n in shown):
        return None
    return dict(zip(("pending", "completed", "failed"), map(int, shown), strict=True))


def run_states(driver: Any) -> list[str]:
    return list(driver.execute_script(
        "return [...document.querySelectorAll('#runs tbody tr')].map(r => r.className)"
    ))  # fmt: skip


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


@pytest.mark.parametrize("kind", ["sqlite", "redis", "s3"])
def test_the_page_shows_the_memorys_numbers_live_while_a_run_goes_on(
    kind: str, tmp_path: Path, browser: Any
) -> None:
    opened = store(kind, tmp_path)
    with opened() as watcher, GatedRun(opened()) as run, dashboard(watcher) as url:
        done = watcher.count_by_status
        wait(browser, lambda _: done()["completed"] + done()["failed"] == FIRST, "first tasks")
        browser.get(url + "/?interval=0.2")
        browser.execute_script("window.sameDocument = true")
        wait(browser, lambda d: shown_counts(d) == done(), f"the page to show {done()}")
        assert shown_counts(browser) == {"pending": 10, "completed": 24, "failed": 6}
        wait(browser, lambda d: run_states(d) == ["live"], "the live run")
        chart_drawn = "return document.getElementById('chart-line').getBBox().width > 100"
        wait(browser, lambda d: d.execute_script(chart_drawn), "the chart")
        assert browser.execute_script(
            "return document.getElementById('chart-line').getAttribute('d')"
        )
        assert text(browser, "count-total") == "40"

        run.finish()
        wait(browser, lambda d: (shown_counts(d) or {}).get("completed") == 34, "the update")
        assert shown_counts(browser) == done() == {"pending": 0, "completed": 34, "failed": 6}
        wait(browser, lambda d: run_states(d) == ["finished"], "the run to show finished")
        assert text(browser, "percent") == "100%"
        assert browser.execute_script("return window.sameDocument") is True  # never reloaded
        groups_shown = "return document.querySelector('#groups tbody tr') !== null"
        wait(browser, lambda d: d.execute_script(groups_shown), "failure groups")
        row = browser.execute_script(
            "const r = document.querySelector('#groups tbody tr');"
            "return [r.dataset.key, r.querySelector('.count').textContent]"
        )
        assert row == [NOT_FOUND, "6"]
        if kind == "redis":
            watcher.clear()


def test_a_run_paused_by_the_server_shows_until_when_and_why_with_its_throttles_and_usage(
    tmp_path: Path, browser: Any
) -> None:
    path = tmp_path / "h.db"
    with PausedRun(SQLiteMemory(path)), SQLiteMemory(path) as watcher, dashboard(watcher) as url:
        browser.get(url + "/?interval=0.2")
        wait(browser, lambda d: run_states(d) == ["live"], "the live run")
        cells = browser.execute_script(
            "const r = document.querySelector('#runs tbody tr');"
            "return Object.fromEntries([...r.cells].map((c, i) => "
            "[document.querySelectorAll('#runs th')[i].textContent, c.textContent]))"
        )
        gave_up_shown = browser.execute_script("return !document.getElementById('card-gave_up')"
                                               ".hidden")  # fmt: skip
        assert text(browser, "count-gave_up") == "1"
    pause = re.fullmatch(r"until .+ \(429 quota\), (9|10) min left", cells["paused by the server"])
    assert pause is not None, cells
    assert (cells["throttled"], cells["failed"]) == ("1", "0 + 1 for good")
    assert cells["spent"] == "tokens_in 1,210 · cost 0.5"
    assert gave_up_shown is True


def test_a_retry_button_resets_a_failure_group_with_the_flag_and_its_token(
    tmp_path: Path, browser: Any
) -> None:
    with SQLiteMemory(tmp_path / "h.db") as memory:
        with GatedRun(memory):
            pass
        assert memory.count_by_status()[FAILED] == 6
        with dashboard(memory, allow_retry=True) as url:
            browser.get(url + "/")
            button = wait(browser, lambda d: d.execute_script(
                f"return document.querySelector('tr[data-key=\"{NOT_FOUND}\"] button.retry')"),
                "the retry button")  # fmt: skip
            button.click()
            wait(browser, lambda d: "6 tasks are pending again" in text(d, "retry-message"),
                 "the retry's answer")  # fmt: skip
        assert memory.count_by_status() == {PENDING: 6, "completed": 34, FAILED: 0}


def test_without_the_flag_there_is_no_button_and_the_page_cannot_retry(
    tmp_path: Path, browser: Any
) -> None:
    with SQLiteMemory(tmp_path / "h.db") as memory:
        with GatedRun(memory):
            pass
        with dashboard(memory) as url:
            browser.get(url + "/")
            wait(browser, lambda d: "6" in text(d, "groups-note"), "the failure groups")
            assert text(browser, "mode") == "read-only"
            assert browser.execute_script("return document.querySelectorAll('button').length") == 0
            status = browser.execute_async_script(
                """const done = arguments[arguments.length - 1];
                fetch('/api/retry', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                     body: JSON.stringify({group: arguments[0]})})
                  .then(r => done(r.status));""",
                NOT_FOUND,
            )
        assert status == 403
        assert memory.count_by_status()[FAILED] == 6


def test_with_the_flag_a_request_without_the_pages_token_is_refused(
    tmp_path: Path, browser: Any
) -> None:
    with SQLiteMemory(tmp_path / "h.db") as memory:
        with GatedRun(memory):
            pass
        with dashboard(memory, allow_retry=True) as url:
            browser.get(url + "/")
            statuses = browser.execute_async_script(
                """const done = arguments[arguments.length - 1];
                const send = (token) => fetch('/api/retry', {method: 'POST',
                    headers: {'Content-Type': 'application/json', 'X-Messor-Token': token},
                    body: JSON.stringify({group: arguments[0]})}).then(r => r.status);
                Promise.all([send(''), send('a-guess')]).then(done);""",
                NOT_FOUND,
            )
        assert statuses == [403, 403]
        assert memory.count_by_status()[FAILED] == 6


def test_a_screenshot_of_the_dashboard_is_a_picture_not_a_blank_page(
    tmp_path: Path, browser: Any
) -> None:
    path, facts = take(tmp_path / "dashboard.png", tmp_path)
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert facts["width"] == 1280
    assert facts["height"] >= 800
    browser.get("about:blank")
    blank = image_facts(browser, browser.get_screenshot_as_png())
    assert blank["colours"] <= 2  # what the check below tells apart
    assert facts["colours"] > 50  # text, bars, the chart
