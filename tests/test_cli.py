"""The ``messor`` console script, driven in a subprocess as a user drives it from a terminal."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from messor import SQLiteMemory
from tests.console import MESSOR, assert_one_line_error, messor
from tests.redis_server import free_port, real_redis

pytestmark = pytest.mark.slow

MESSOR_ROOT = Path(__file__).resolve().parent.parent

#: 200 pages; every tenth from the fourth on is broken for good.
CRAWL = """
import os, time
import messor

def fetch(n):
    time.sleep(float(os.environ.get("PAGE_SECONDS", "0.002")))
    if n % 10 == 3:
        raise LookupError(f"404 Not Found: page {n}")
    return {"page": n, "title": f"Page {n} ✓"}

pages = [messor.task(fetch, n) for n in range(200)]

def make_pages():
    return (messor.task(fetch, n) for n in range(200))
"""


@pytest.fixture
def crawl(tmp_path: Path) -> Path:
    """A directory with crawl.py in it (the harvest's working directory)."""
    (tmp_path / "crawl.py").write_text(CRAWL, encoding="utf-8")
    return tmp_path


@pytest.fixture
def harvested(crawl: Path) -> Path:
    """``crawl`` after one run of ``messor run crawl:pages`` into ./messor.db."""
    done = messor("run", "crawl:pages", "-c", "8", cwd=crawl)
    assert done.returncode == 1, done.stderr  # 20 pages failed
    return crawl


def test_the_console_script_and_python_m_messor_show_help_with_examples(tmp_path: Path) -> None:
    assert MESSOR.exists(), "the messor console script is not installed"
    for command in ([str(MESSOR)], [sys.executable, "-m", "messor"]):
        done = subprocess.run([*command, "--help"], capture_output=True, text=True, check=False)
        assert done.returncode == 0
        for name in ("backends", "status", "failed", "results", "retry", "run", "examples:"):
            assert name in done.stdout
    for name in ("backends", "status", "failed", "results", "retry", "run"):
        done = messor(name, "--help", cwd=tmp_path)
        assert done.returncode == 0
        assert "examples:" in done.stdout


# -- run --------------------------------------------------------------------------------


def test_run_records_every_page_and_a_second_run_resumes(harvested: Path) -> None:
    memory = SQLiteMemory(harvested / "messor.db")
    assert memory.count_by_status() == {"pending": 0, "completed": 180, "failed": 20}
    assert memory.get_task_result("fetch(7)") == {"page": 7, "title": "Page 7 ✓"}
    again = messor("run", "crawl:make_pages", cwd=harvested)  # a function returning a generator
    assert again.returncode == 1
    assert "This run: 0 completed, 20 failed" in again.stdout
    assert "180 already done in an earlier run" in again.stdout
    assert "Failed tasks: 20" in again.stdout


def test_run_takes_the_executors_options(crawl: Path) -> None:
    done = messor(
        "run", "crawl.py:pages", "--memory", "sqlite:///runs/a.db", "-c", "4", "--retry", "0",
        "--rate-limit", "2000/s", "--timeout", "5", "--retry-on", "TimeoutError", "--no-progress",
        cwd=crawl,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "This run: 180 completed, 20 failed, 0 retries" in done.stdout
    assert SQLiteMemory(crawl / "runs" / "a.db").count_by_status()["completed"] == 180


def test_run_stops_on_a_stop_condition_and_says_why(crawl: Path) -> None:
    done = messor("run", "crawl:pages", "--stop-on", "LookupError", "-c", "1", cwd=crawl)
    assert done.returncode == 1
    assert "Stopped early:" in done.stdout
    assert "LookupError" in done.stdout
    assert SQLiteMemory(crawl / "messor.db").count_by_status()["pending"] > 150


def test_run_with_every_task_completed_exits_zero(tmp_path: Path) -> None:
    source = (
        "import messor\ndef one(n):\n    return n\ntasks = [messor.task(one, n) for n in range(5)]"
    )
    (tmp_path / "ok.py").write_text(source, encoding="utf-8")
    done = messor("run", "ok:tasks", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Completed tasks: 5" in done.stdout


@pytest.mark.parametrize(
    ("target", "code", "words"),
    [
        ("crawl", 2, ["MODULE:ATTRIBUTE"]),
        ("nosuchmodule:pages", 2, ["no module named 'nosuchmodule'"]),
        ("crawl:pagez", 2, ["no attribute 'pagez'", "did you mean 'pages'"]),
        ("crawl:fetch", 1, ["fetch() raised TypeError"]),  # the user's function raised
        ("crawl:CRAWL_NUMBER", 2, ["is a int, not tasks"]),
        ("crawl:ONE_TASK", 2, ["is a single task"]),
        ("broken:tasks", 1, ["importing broken failed: ZeroDivisionError", "broken.py, line 2"]),
        ("missing.py:tasks", 2, ["there is no file missing.py"]),
    ],
)
def test_run_explains_a_target_it_cannot_use_in_one_line(
    crawl: Path, target: str, code: int, words: list[str]
) -> None:
    with (crawl / "crawl.py").open("a", encoding="utf-8") as module:
        module.write("CRAWL_NUMBER = 3\nONE_TASK = pages[0]\n")
    (crawl / "broken.py").write_text("x = 1\ny = x / 0\n", encoding="utf-8")
    assert_one_line_error(messor("run", target, cwd=crawl), code, *words)
    assert not (crawl / "messor.db").exists()


def test_ctrl_c_stops_a_run_which_the_same_command_resumes(crawl: Path) -> None:
    env = {"PAGE_SECONDS": "0.05"}
    process = subprocess.Popen(
        [str(MESSOR), "run", "crawl:pages", "-c", "4"],
        cwd=crawl,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().startswith("Running crawl:pages")
    time.sleep(0.8)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Interrupted: every task finished so far is recorded" in out
    assert "Traceback" not in err
    counts = SQLiteMemory(crawl / "messor.db").count_by_status()
    assert 0 < counts["completed"] < 180
    done = messor("run", "crawl:pages", "-c", "16", cwd=crawl, env={"PAGE_SECONDS": "0"})
    assert f"{counts['completed']} already done in an earlier run" in done.stdout
    assert SQLiteMemory(crawl / "messor.db").count_by_status()["completed"] == 180


# -- status, failed ------------------------------------------------------------------------


def test_status_shows_counts_recent_activity_and_the_latest_failures(harvested: Path) -> None:
    done = messor("status", cwd=harvested)
    assert done.returncode == 0, done.stderr
    assert "Memory: sqlite:///messor.db (from default)" in done.stdout
    assert "Pending tasks: 0\nCompleted tasks: 180\nFailed tasks: 20\n" in done.stdout
    assert "Recorded in the last minute: 200" in done.stdout
    assert "Latest failures (5 of 20" in done.stdout
    assert "LookupError: 404 Not Found: page" in done.stdout

    data = json.loads(messor("status", "--json", cwd=harvested).stdout)
    assert data["counts"] == {"pending": 0, "completed": 180, "failed": 20}
    assert data["recent"]["last_minute"] == {"completed": 180, "failed": 20}
    assert len(data["latest_failures"]) == 5
    assert data["latest_failures"][0]["attempts"] == 2


def test_status_watch_refreshes_with_a_rate_until_interrupted(harvested: Path) -> None:
    with subprocess.Popen(
        [str(MESSOR), "status", "--json", "--watch", "0.2"],
        cwd=harvested,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        first = json.loads(process.stdout.readline())
        second = json.loads(process.stdout.readline())
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    assert first["rate_per_second"] is None  # nothing to compare with yet
    assert second["rate_per_second"] == 0.0  # nothing ran meanwhile


def test_failed_lists_errors_and_attempts_with_a_limit(harvested: Path) -> None:
    done = messor("failed", "--limit", "3", cwd=harvested)
    lines = done.stdout.splitlines()
    assert lines[0] == "fetch(3): LookupError: 404 Not Found: page 3 (2 attempts)"
    assert lines[3] == "... and 17 more (--limit 0 lists all)"
    rows = json.loads(messor("failed", "--limit", "0", "--json", cwd=harvested).stdout)
    assert len(rows) == 20
    assert {row["id"] for row in rows} == {f"fetch({n})" for n in range(3, 200, 10)}


def test_inspecting_where_nothing_ran_says_so_and_creates_no_file(tmp_path: Path) -> None:
    for command in ("status", "failed", "results", "retry"):
        args = [command, "--failed"] if command == "retry" else [command]
        assert_one_line_error(
            messor(*args, cwd=tmp_path), 2, "no SQLite memory at messor.db", "--memory"
        )
    assert list(tmp_path.iterdir()) == []


def test_a_memory_chosen_by_environment_or_messor_toml_is_used(harvested: Path) -> None:
    (harvested / "messor.db").rename(harvested / "elsewhere.db")
    done = messor("status", cwd=harvested, env={"MESSOR_MEMORY": "elsewhere.db"})
    assert "Completed tasks: 180" in done.stdout
    assert "from environment variable MESSOR_MEMORY" in done.stdout
    (harvested / "messor.toml").write_text('memory = "sqlite:///elsewhere.db"\n')
    assert "Completed tasks: 180" in messor("status", cwd=harvested).stdout


def test_an_unknown_memory_is_one_line_naming_what_is_installed(tmp_path: Path) -> None:
    done = messor("status", "--memory", "postgres://db/harvest", cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("messor: error: No memory backend named 'postgres'")
    assert "sqlite" in done.stderr


def test_a_password_in_the_memory_url_never_reaches_the_terminal(crawl: Path) -> None:
    url = f"redis://:planted-pw-8531@127.0.0.1:{free_port()}/0"
    for args in (["status", "--memory", url], ["run", "crawl:pages", "--memory", url]):
        done = messor(*args, cwd=crawl)
        assert done.returncode != 0
        assert "planted-pw-8531" not in done.stdout + done.stderr
        assert "Traceback" not in done.stderr


# -- results -----------------------------------------------------------------------------


def test_results_export_one_record_per_task_in_each_format(harvested: Path) -> None:
    jsonl = messor("results", cwd=harvested).stdout.splitlines()
    records = {row["id"]: row for row in map(json.loads, jsonl)}
    assert len(records) == 200
    assert records["fetch(7)"]["result"] == {"page": 7, "title": "Page 7 ✓"}
    assert records["fetch(3)"]["status"] == "failed"
    assert records["fetch(3)"]["error"] == "LookupError: 404 Not Found: page 3"
    assert records["fetch(7)"]["updated_at"].endswith("Z")

    done = messor("results", "--status", "completed", "-o", "out/results.csv", cwd=harvested)
    assert done.stdout == "Wrote 180 tasks to out/results.csv (csv)\n"
    with (harvested / "out" / "results.csv").open(encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 180
    row = next(r for r in rows if r["id"] == "fetch(7)")
    assert json.loads(row["result"]) == {"page": 7, "title": "Page 7 ✓"}
    assert os.listdir(harvested / "out") == ["results.csv"]  # no partial file left

    failed = json.loads(
        messor("results", "--status", "failed", "--format", "json", cwd=harvested).stdout
    )
    assert len(failed) == 20
    assert all(r["result"] is None for r in failed)
    empty = messor("results", "--status", "pending", "--format", "json", cwd=harvested)
    assert json.loads(empty.stdout) == []


def test_results_into_a_closed_pipe_end_quietly(harvested: Path) -> None:
    done = subprocess.run(
        f"'{MESSOR}' results | head -n 2", shell=True, cwd=harvested, capture_output=True,
        text=True, check=False,
    )  # fmt: skip
    assert len(done.stdout.splitlines()) == 2
    assert done.stderr == ""


def test_results_of_odd_text_round_trip_exactly(tmp_path: Path) -> None:
    memory = SQLiteMemory(tmp_path / "messor.db")
    ids = ["tab\tnew\nline", "日本語 🎉", 'quote " comma ,', "\x00 nul", "surrogate"]
    # The last result is a valid JSON string that is not valid UTF-8 text.
    expected = [(i, {"v": i}) for i in ids[:-1]] + [("surrogate", {"v": "lone \ud800"})]
    memory.store_tasks([(i, {}) for i in ids])
    memory.update_task_statuses([(i, "completed", value, None) for i, value in expected])
    memory.close()
    rows = [json.loads(line) for line in messor("results", cwd=tmp_path).stdout.splitlines()]
    assert [(r["id"], r["result"]) for r in rows] == expected
    table = list(csv.reader(io.StringIO(messor("results", "--format", "csv", cwd=tmp_path).stdout)))
    assert [(row[0], json.loads(row[2])) for row in table[1:]] == expected


# -- retry --------------------------------------------------------------------------------


def test_retry_failed_makes_them_pending_and_the_next_run_runs_them(harvested: Path) -> None:
    done = messor("retry", "--failed", cwd=harvested)
    assert done.stdout == "20 tasks are pending again: the next run of the harvest runs them.\n"
    counts = SQLiteMemory(harvested / "messor.db").count_by_status()
    assert counts == {"pending": 20, "completed": 180, "failed": 0}
    again = messor("run", "crawl:pages", cwd=harvested)
    assert "This run: 0 completed, 20 failed" in again.stdout


def test_retry_by_id_refuses_unknown_ids_and_completed_results_unless_forced(
    harvested: Path,
) -> None:
    memory = SQLiteMemory(harvested / "messor.db")
    assert_one_line_error(messor("retry", "fetch(3)", "nope", cwd=harvested), 2, "'nope' is not")
    assert_one_line_error(
        messor("retry", "fetch(3)", "fetch(4)", cwd=harvested),
        2,
        "'fetch(4)' is completed",
        "--force",
    )
    assert memory.get_task_status("fetch(3)") == "failed"  # nothing changed
    assert messor("retry", "fetch(3)", cwd=harvested).returncode == 0
    assert memory.get_task_status("fetch(3)") == "pending"
    assert messor("retry", "--force", "fetch(4)", cwd=harvested).returncode == 0
    assert memory.get_task_result("fetch(4)") is None
    assert_one_line_error(messor("retry", cwd=harvested), 2, "--failed")


# -- against a real redis-server ----------------------------------------------------------------


def test_every_command_works_against_a_real_redis_server(crawl: Path) -> None:
    url = f"{real_redis().url}?namespace=cli-{uuid.uuid4().hex}"
    env = {"MESSOR_MEMORY": url}
    assert messor("run", "crawl:pages", "-c", "8", cwd=crawl, env=env).returncode == 1
    assert not (crawl / "messor.db").exists()
    status = json.loads(messor("status", "--json", cwd=crawl, env=env).stdout)
    assert status["counts"] == {"pending": 0, "completed": 180, "failed": 20}
    done = messor("status", cwd=crawl, env=env)
    assert "no times" in done.stdout or "Recorded" in done.stdout
    assert len(json.loads(messor("failed", "--json", cwd=crawl, env=env).stdout)) == 20
    rows = messor("results", "--status", "completed", cwd=crawl, env=env).stdout.splitlines()
    assert len(rows) == 180
    assert messor("retry", "--failed", cwd=crawl, env=env).returncode == 0
    again = messor("run", "crawl:pages", "--memory", url, cwd=crawl)
    assert "180 already done in an earlier run" in again.stdout


# -- backends and plugins ----------------------------------------------------------------------


def test_backends_lists_each_memory_with_its_distribution(tmp_path: Path) -> None:
    done = messor("backends", cwd=tmp_path)
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["NAME", "SCHEMES", "DISTRIBUTION", "DESCRIPTION"]
    sqlite = next(line for line in lines if line.startswith("sqlite "))
    assert "sqlite://" in sqlite
    assert "messor 0.1.0" in sqlite
    data = json.loads(messor("backends", "--json", cwd=tmp_path).stdout)
    by_name = {row["name"]: row for row in data["backends"]}
    assert by_name["redis"]["distribution"] == "messor-redis"
    assert by_name["redis"]["schemes"] == ["redis://", "rediss://", "unix://"]
    assert by_name["s3"]["distribution"] == "messor-s3"
    assert data["failed_plugins"] == []


def test_listing_backends_imports_no_client_library() -> None:
    code = (
        "import sys; from messor.cli import main; main(['backends', '--json']); "
        "print([m for m in ('redis', 'boto3', 'botocore') if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def write_distribution(site: Path, name: str, module: str, source: str, entry: str) -> None:
    """An installed distribution (dist-info and module) in ``site``, as pip leaves one."""
    dist_info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(f"[messor]\n{entry} = {module}\n")
    (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")


PLUGIN = """
import messor

@messor.hookimpl
def register_memories(register):
    register("dup", lambda url, **options: messor.InProcessMemory(), description="{name}")
"""


def test_broken_and_clashing_plugins_are_reported_and_the_rest_keep_working(
    tmp_path: Path,
) -> None:
    site = tmp_path / "site"
    write_distribution(site, "alpha-store", "alpha_plugin", PLUGIN, "alpha")
    write_distribution(site, "beta-store", "beta_plugin", PLUGIN, "beta")
    write_distribution(
        site, "broken-store", "broken_plugin", "raise ImportError('no client')", "broken"
    )
    env = {"PYTHONPATH": os.pathsep.join([str(site), str(MESSOR_ROOT)])}
    done = messor("backends", "--json", cwd=tmp_path, env=env)
    data: dict[str, Any] = json.loads(done.stdout)
    assert {"sqlite", "memory", "redis", "s3", "dup"} <= {b["name"] for b in data["backends"]}
    errors = {f["plugin"]: f for f in data["failed_plugins"]}
    assert errors["broken"]["distribution"] == "broken-store"
    assert "ImportError: no client" in errors["broken"]["error"]
    assert "alpha-store 1.0" in errors["beta"]["error"]
    assert "beta-store 1.0" in errors["beta"]["error"]
    text = messor("backends", cwd=tmp_path, env=env).stdout
    assert "could not load plugin 'broken'" in text
    # Which plugin's "dup" would be used must not depend on install order: refused.
    assert_one_line_error(
        messor("status", "--memory", "dup", cwd=tmp_path, env=env),
        2,
        "alpha-store 1.0",
        "beta-store 1.0",
    )
    # The other memories work as before.
    assert messor("status", "--memory", "memory://", cwd=tmp_path, env=env).returncode == 0


def test_the_example_plugin_installed_like_a_users_is_listed_and_chosen_by_name(
    crawl: Path,
) -> None:
    data = json.loads(messor("backends", "--json", cwd=crawl).stdout)
    [jsonl] = [row for row in data["backends"] if row["name"] == "jsonl"]
    assert (jsonl["distribution"], jsonl["version"]) == ("messor-jsonl", "0.1.0")
    # By URL in the environment, by bare name in messor.toml, by --memory.
    env = {"MESSOR_MEMORY": "jsonl:///harvest.jsonl"}
    assert messor("run", "crawl:pages", "-c", "8", cwd=crawl, env=env).returncode == 1
    assert (crawl / "harvest.jsonl").exists()
    assert not (crawl / "messor.db").exists()
    (crawl / "messor.toml").write_text('memory = "jsonl"\n', encoding="utf-8")
    (crawl / "harvest.jsonl").rename(crawl / "messor.jsonl")  # the bare name's file
    assert "Completed tasks: 180" in messor("status", cwd=crawl).stdout
    done = messor("failed", "--json", "--memory", "jsonl:///messor.jsonl", cwd=crawl)
    assert len(json.loads(done.stdout)) == 20


def test_control_characters_in_ids_and_errors_cannot_rewrite_the_terminal(
    tmp_path: Path,
) -> None:
    memory = SQLiteMemory(tmp_path / "messor.db")
    evil = "page\x1b[2J\x1b[31m-1"
    memory.store_tasks([(evil, {})])
    memory.update_task_statuses([(evil, "failed", None, "Error: \x1b]0;pwned\x07 bad")])
    memory.close()
    for command in (["failed"], ["status"]):
        out = messor(*command, cwd=tmp_path).stdout
        assert "\x1b" not in out
        assert "\x07" not in out
        assert "page\\x1b[2J\\x1b[31m-1" in out
    exact = json.loads(messor("failed", "--json", cwd=tmp_path).stdout)
    assert exact[0]["id"] == evil
