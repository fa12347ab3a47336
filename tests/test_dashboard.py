"""`messor dashboard` over HTTP: its JSON, /metrics, exports, and what it refuses."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from messor import Memory, SQLiteMemory, open_memory
from messor.cli.common import CommandError
from messor.cli.dashboard import dashboard as dashboard_command
from messor.cli.dashboard import is_loopback
from messor.dashboard import data
from messor.failures import group_key
from messor.memories.base import COMPLETED, FAILED, GAVE_UP, TaskRecord
from tests.browser import dashboard
from tests.console import MESSOR, messor
from tests.paused_run import PAUSE, PausedRun
from tests.redis_server import free_port, real_redis

TOKEN = "t0ken-for-this-start"
NOT_FOUND = group_key("LookupError", "<n> Not Found")


def harvest(path: Path) -> SQLiteMemory:
    """30 tasks: 20 completed, 8 failed with a 404, 2 with a timeout; a beat of a live run."""
    memory = SQLiteMemory(path)
    memory.store_tasks([(f"t{n}", {}) for n in range(30)])
    memory.update_task_statuses(
        [(f"t{n}", COMPLETED, {"n": n}, None) for n in range(20)]
        + [(f"t{n}", FAILED, None, f"LookupError: {400 + n} Not Found") for n in range(20, 28)]
        + [(f"t{n}", FAILED, None, "TimeoutError: no result after 30 s") for n in (28, 29)]
    )
    now = time.time()
    beat = {"run_id": "r1", "host": "h1", "pid": 7, "started": now - 60, "updated": now,
            "interval": 5.0, "known_total": 30, "completed": 20, "failed": 10, "retried": 4,
            "skipped": 0, "rate": 0.5, "concurrency": 8, "in_flight": 3, "throttled": 2,
            "usage": {"tokens": 1234, "cost": 0.5}, "finished": False,
            "history": [[now - 60, 0], [now, 30]]}  # fmt: skip
    memory.write_beat("r1", json.dumps(beat))
    return memory


@pytest.fixture
def memory(tmp_path: Path) -> Iterator[Memory]:
    with harvest(tmp_path / "h.db") as memory:
        yield memory


def get(url: str, **headers: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def post(url: str, body: Any, **headers: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_overview_gives_the_memorys_counts_progress_and_runs(memory: Memory) -> None:
    with dashboard(memory) as url:
        status, text = get(url + "/api/overview")
    assert status == 200
    overview = json.loads(text)
    assert (
        overview["counts"]
        == memory.count_by_status()
        == {
            "pending": 0,
            "completed": 20,
            "failed": 10,
        }
    )
    assert overview["progress"]["percent"] == 100.0
    [run] = overview["runs"]
    assert (run["state"], run["host"], run["concurrency"]) == ("live", "h1", 8)
    assert run["history"]
    assert overview["allow_retry"] is False


def test_failure_groups_come_biggest_first_with_keys_and_examples(memory: Memory) -> None:
    with dashboard(memory) as url:
        found = json.loads(get(url + "/api/failures")[1])
    assert found["complete"] is True
    assert [(g["key"], g["count"]) for g in found["groups"]] == [
        (NOT_FOUND, 8),
        (group_key("TimeoutError", "no result after <n> s"), 2),
    ]
    assert found["groups"][0]["example_error"] == "LookupError: 420 Not Found"


def test_failure_groups_read_a_bounded_sample_never_every_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Counting(SQLiteMemory):
        read = 0

        def iter_records(self, status: str | None = None) -> Iterator[TaskRecord]:
            for record in super().iter_records(status):
                Counting.read += 1
                yield record

    monkeypatch.setattr(data, "FAILURE_SAMPLE", 500)
    memory = Counting(":memory:")
    memory.store_tasks([(f"t{n}", {}) for n in range(5000)])
    memory.update_task_statuses([(f"t{n}", FAILED, None, f"E: {n}") for n in range(5000)])
    found = data.Watcher(memory, "m").failure_groups()
    assert Counting.read <= 501
    assert (found["complete"], found["examined"], found["sample"]) == (False, 500, 500)


def test_metrics_parse_as_prometheus_text_with_counts_rate_retries_and_usage(
    memory: Memory,
) -> None:
    with dashboard(memory) as url:
        status, text = get(url + "/metrics")
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(text)}
    tasks = {s.labels["status"]: s.value for s in families["messor_tasks"].samples}
    assert tasks == {"pending": 0, "completed": 20, "failed": 10, "gave_up": 0}
    assert families["messor_rate_per_second"].samples[0].value == 0.5
    [retries] = families["messor_run_retries"].samples
    assert (retries.name, retries.labels, retries.value) == (
        "messor_run_retries_total",
        {"run_id": "r1", "host": "h1"},
        4,
    )
    assert families["messor_run_retries"].type == "counter"
    assert families["messor_run_throttled"].samples[0].value == 2
    usage = {s.labels["name"]: s.value for s in families["messor_run_usage"].samples}
    assert usage == {"cost": 0.5, "tokens": 1234}
    live = {s.labels["state"]: s.value for s in families["messor_runs"].samples}
    assert live == {"live": 1, "stale": 0, "finished": 0}


def test_a_run_paused_by_the_server_shows_its_pause_throttles_usage_and_tasks_failed_for_good(
    tmp_path: Path,
) -> None:
    path = tmp_path / "h.db"
    with PausedRun(SQLiteMemory(path)) as run, SQLiteMemory(path) as seen, dashboard(seen) as url:
        overview = json.loads(get(url + "/api/overview")[1])
        metrics = get(url + "/metrics")[1]
    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    assert overview["counts"] == {"pending": 1, "completed": 1, "failed": 0, "gave_up": 1}
    assert overview["progress"]["done"] == 2
    [beat] = overview["runs"]
    assert (beat["state"], beat["pause_reason"], beat["throttled"]) == ("live", "429 quota", 1)
    assert run.started + PAUSE <= beat["paused_until"] <= run.paused + PAUSE
    assert (beat["gave_up"], beat["usage"]) == (1, {"tokens_in": 1210, "cost": 0.5})

    tasks = {s.labels["status"]: s.value for s in families["messor_tasks"].samples}
    assert tasks == {"pending": 1, "completed": 1, "failed": 0, "gave_up": 1}
    for family, value in (("messor_run_gave_up", 1), ("messor_run_throttled", 1)):
        [sample] = families[family].samples
        assert (sample.labels["run_id"], sample.value) == (beat["run_id"], value)
    usage = {s.labels["name"]: s.value for s in families["messor_run_usage"].samples}
    assert usage == {"tokens_in": 1210, "cost": 0.5}


def test_tasks_failed_for_good_can_be_exported(tmp_path: Path) -> None:
    memory = SQLiteMemory(tmp_path / "h.db")
    memory.store_tasks([("a", {}), ("b", {})])
    memory.update_task_statuses([("a", GAVE_UP, None, "404 Not Found")])
    with memory, dashboard(memory) as url:
        status, text = get(url + "/export?status=gave_up&format=jsonl")
        refused, message = get(url + "/export?status=lost&format=jsonl")
    assert status == 200
    [row] = [json.loads(line) for line in text.splitlines()]
    assert (row["id"], row["status"], row["error"]) == ("a", "gave_up", "404 Not Found")
    assert refused == 400
    assert "status one of all, pending, completed, failed, gave_up" in message


def test_metrics_escape_label_values_that_hold_quotes_and_newlines() -> None:
    overview = {"counts": {}, "runs": [{"run_id": 'a"b\\c\nd', "host": "h", "state": "live"}]}
    families = {f.name: f for f in text_string_to_metric_families(data.prometheus_text(overview))}
    assert families["messor_run_completed"].samples[0].labels["run_id"] == 'a"b\\c\nd'


def test_an_export_streams_what_messor_results_writes(memory: Memory, tmp_path: Path) -> None:
    with dashboard(memory) as url:
        status, csv_text = get(url + "/export?status=completed&format=csv")
        assert get(url + "/export?format=xml")[0] == 400
    assert status == 200
    exported = messor("results", "-m", "h.db", "--status", "completed", "-o", "out.csv",
                      cwd=tmp_path)  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert csv_text == (tmp_path / "out.csv").read_bytes().decode()
    assert csv_text.count("\n") == 21


# -- safety -------------------------------------------------------------------------------


def test_a_read_only_dashboard_refuses_every_retry_and_shows_no_token(memory: Memory) -> None:
    with dashboard(memory, token=TOKEN) as url:
        status, answer = post(
            url + "/api/retry", {"group": NOT_FOUND}, **{"X-Messor-Token": TOKEN,
                                                         "Content-Type": "application/json"}
        )  # fmt: skip
        page = get(url + "/")[1]
    assert status == 403
    assert "--allow-retry" in answer["error"]
    assert TOKEN not in page
    assert memory.count_by_status()[FAILED] == 10


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"Content-Type": "application/json"}, 403),  # no token
        ({"X-Messor-Token": "guess", "Content-Type": "application/json"}, 403),
        (
            {
                "X-Messor-Token": TOKEN,
                "Content-Type": "application/json",
                "Origin": "http://evil.example",
            },
            403,
        ),
        ({"X-Messor-Token": TOKEN, "Content-Type": "text/plain"}, 415),  # a form could send it
    ],
)
def test_a_retry_without_the_token_from_another_origin_or_not_json_is_refused(
    memory: Memory, headers: dict[str, str], code: int
) -> None:
    with dashboard(memory, allow_retry=True, token=TOKEN) as url:
        assert post(url + "/api/retry", {"group": NOT_FOUND}, **headers)[0] == code
    assert memory.count_by_status()[FAILED] == 10


def test_a_retry_with_the_token_resets_the_groups_failures_only(memory: Memory) -> None:
    with dashboard(memory, allow_retry=True, token=TOKEN) as url:
        assert f'content="{TOKEN}"' in get(url + "/")[1]
        origin = url  # what the browser sends from the page itself
        status, answer = post(
            url + "/api/retry",
            {"group": NOT_FOUND},
            **{"X-Messor-Token": TOKEN, "Content-Type": "application/json", "Origin": origin},
        )
        assert TOKEN not in get(url + "/api/overview")[1]
    assert (status, answer) == (200, {"group": NOT_FOUND, "reset": 8})
    assert memory.count_by_status() == {"pending": 8, "completed": 20, "failed": 2}


def test_on_loopback_a_request_for_another_host_name_is_refused(memory: Memory) -> None:
    # A page of evil.example whose name resolves to 127.0.0.1 (DNS rebinding).
    with dashboard(memory) as url:
        assert get(url + "/api/overview", Host="evil.example:80")[0] == 421
        assert get(url + "/api/overview", Host="localhost")[0] == 200


def test_the_page_loads_nothing_from_elsewhere(memory: Memory) -> None:
    with dashboard(memory) as url:
        request = urllib.request.Request(url + "/")
        with urllib.request.urlopen(request, timeout=30) as response:
            policy = response.headers["Content-Security-Policy"]
            page = response.read().decode()
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert "http://" not in page
    assert "https://" not in page


def test_is_loopback_knows_the_addresses_of_this_machine_only() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.0.0.2", "::1", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.4", "example.org"]))


def arguments(**options: Any) -> argparse.Namespace:
    """What ``messor dashboard`` parses, given to its handler (``main()`` would configure
    the ``messor`` loggers for the rest of the test session)."""
    return argparse.Namespace(
        **{"memory": None, "host": "127.0.0.1", "port": 8642, "allow_retry": False, **options}
    )


def test_binding_beyond_loopback_warns_loudly(
    memory: Memory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import uvicorn

    served: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.append(options))
    assert dashboard_command(arguments(memory=str(tmp_path / "h.db"), host="0.0.0.0")) == 0
    assert served == [{"host": "0.0.0.0", "port": 8642, "log_level": "warning"}]
    assert "WARNING: listening on 0.0.0.0, not on loopback" in capsys.readouterr().err


def test_without_the_extra_the_command_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn raises ImportError
    with pytest.raises(CommandError) as refused:
        dashboard_command(arguments())
    assert refused.value.exit_code == 2
    assert "pip install 'messor[dashboard]'" in str(refused.value)
    assert "uvicorn" in str(refused.value)


@pytest.mark.slow
def test_a_password_in_the_memory_url_never_reaches_the_page_or_its_json() -> None:
    import subprocess

    secret = "s3cret-Pa55"
    client = real_redis().client()
    user = f"u{uuid.uuid4().hex[:8]}"
    client.acl_setuser(user, enabled=True, passwords=[f"+{secret}"], keys=["*"],
                       commands=["+@all"])  # fmt: skip
    spec = f"redis://{user}:{secret}@127.0.0.1:{real_redis().port}/0?namespace={user}"
    try:
        with open_memory(spec) as redis_memory:
            redis_memory.store_tasks([("a", {})])
            redis_memory.update_task_statuses([("a", FAILED, None, "ConnectionError: refused")])
            port = free_port()
            process = subprocess.Popen(
                [str(MESSOR), "dashboard", "--memory", spec, "--port", str(port)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            try:
                pages = _when_up(f"http://127.0.0.1:{port}")
            finally:
                process.terminate()
                output = process.communicate(timeout=30)[0]
            redis_memory.clear()
    finally:
        client.acl_deluser(user)
    assert f"redis://{user}:***@127.0.0.1" in pages[0]
    assert user in pages[1]  # the namespace, shown
    for text in [*pages, output]:
        assert secret not in text


def _when_up(url: str) -> list[str]:
    """The page, its JSON and /metrics, once the server answers."""
    waiting = threading.Event()
    for _ in range(1200):
        try:
            return [
                get(url + path)[1] for path in ("/", "/api/overview", "/api/failures", "/metrics")
            ]
        except OSError:
            waiting.wait(0.05)
    raise AssertionError("the dashboard did not start")


def test_polling_reads_the_beats_a_few_times_an_interval_not_on_every_poll(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from messor import InProcessMemory

    class Counting(InProcessMemory):
        beat_interval = 15.0  # as S3, where each read is billed
        reads = 0

        def read_beats(self) -> dict[str, str]:
            Counting.reads += 1
            return super().read_beats()

    monkeypatch.setattr(data, "FRESH_FOR", 0.0)  # counts afresh on every poll
    memory = Counting()
    memory.store_tasks([("a", {})])
    watcher = data.Watcher(memory, "m")
    for _ in range(20):
        assert watcher.overview()["counts"]["pending"] == 1
    assert Counting.reads == 1
