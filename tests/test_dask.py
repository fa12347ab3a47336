"""messor-dask: a harvest on a real Dask cluster of worker processes, with workers, the driver
and the scheduler killed mid-run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import pytest
from distributed import Client, LocalCluster

import messor
from messor import FunctionTask, InProcessMemory, SQLiteMemory
from messor.errors import ConfigurationError
from messor_dask import DaskExecutor, SchedulerLostError
from tests.dask_tasks import executions, kill_my_worker, paced, paced_log, squares

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """Two worker processes of two threads each, kept by nannies (a killed one restarts)."""
    with LocalCluster(
        n_workers=2, threads_per_worker=2, processes=True, dashboard_address=":0"
    ) as cluster:
        yield cluster


@pytest.fixture
def client(cluster: LocalCluster) -> Iterator[Client]:
    with Client(cluster, set_as_default=False) as client:
        yield client


def test_5000_tasks_complete_with_their_results_and_resume_runs_none(
    client: Client, tmp_path: Path
) -> None:
    log, memory = tmp_path / "runs.log", SQLiteMemory(tmp_path / "harvest.db")
    report = DaskExecutor(squares(5000, log, "1"), memory=memory, client=client).run()
    assert report.completed == 5000
    assert memory.count_by_status() == {"pending": 0, "completed": 5000, "failed": 0}
    assert memory.get_task_result("sq-4321") == {"n": 4321, "square": 4321**2}
    assert set(executions(log).values()) == {1}
    again = DaskExecutor(squares(5000, log, "2"), memory=memory, client=client).run()
    assert (again.completed, again.skipped) == (0, 5000)
    assert executions(log, "2") == {}
    assert client.who_has() == {}  # every future was released


def test_failures_retries_and_stop_conditions_work_as_with_threads(
    client: Client, tmp_path: Path
) -> None:
    memory = SQLiteMemory(tmp_path / "harvest.db")
    tasks = [FunctionTask(f"div-{n}", divmod, 10, n) for n in range(-3, 4)]
    report = DaskExecutor(tasks, memory=memory, client=client, retry=2, max_concurrency=3).run()
    assert (report.completed, report.failed, report.retried) == (6, 1, 2)
    [(task_id, error)] = memory.get_failed_tasks()
    assert task_id == "div-0"
    assert error == "ZeroDivisionError: integer division or modulo by zero"
    assert memory.get_task_result("div-3") == [3, 1]


def test_at_most_max_concurrency_attempts_are_on_the_cluster(
    client: Client, tmp_path: Path
) -> None:
    seen: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.append(sum(len(keys) for keys in client.processing().values()))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        DaskExecutor(
            squares(60, tmp_path / "log", "1", 0.02), memory="memory://", client=client,
            max_concurrency=3,
        ).run()  # fmt: skip
    finally:
        stop.set()
        watcher.join()
    assert max(seen) == 3


def test_a_worker_killed_mid_run_costs_at_most_a_rerun_of_what_it_held(
    client: Client, tmp_path: Path
) -> None:
    log, memory = tmp_path / "runs.log", SQLiteMemory(tmp_path / "harvest.db")
    pids = client.run(os.getpid)
    victim = next(iter(pids.values()))
    executor = DaskExecutor(squares(400, log, "1", 0.01), memory=memory, client=client)
    run = threading.Thread(target=executor.run)
    run.start()
    while sum(executions(log).values()) < 100:
        time.sleep(0.01)
    os.kill(victim, signal.SIGKILL)
    run.join(timeout=120)
    assert not run.is_alive()
    assert memory.count_by_status() == {"pending": 0, "completed": 400, "failed": 0}
    runs = executions(log)
    assert set(runs) == {f"sq-{n}" for n in range(400)}
    # Only the attempts on the killed worker ran twice: at most the run's window.
    twice = [task for task, count in runs.items() if count > 1]
    assert len(twice) <= executor.max_concurrency
    assert max(runs.values()) <= 2


def test_a_task_that_kills_its_worker_becomes_a_recorded_failure_messor_retries(
    tmp_path: Path,
) -> None:
    # With allowed-failures 0, Dask gives up on the first death: Messor's retry decides.
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        log, memory = tmp_path / "runs.log", SQLiteMemory(tmp_path / "harvest.db")
        tasks = [FunctionTask("killer", kill_my_worker, str(log)), *squares(20, log, "1")]
        # One at a time: no other attempt shares the killer's worker (and its fate).
        report = DaskExecutor(tasks, memory=memory, client=client, retry=1, max_concurrency=1).run()
    assert (report.completed, report.failed, report.retried) == (20, 1, 1)
    [(task_id, error)] = memory.get_failed_tasks()
    assert task_id == "killer"
    assert "KilledWorker" in str(error)
    assert log.read_text().count("killer") == 2  # the attempt and Messor's one retry


DRIVER = """
import sys
from pathlib import Path
from messor_dask import DaskExecutor
from tests.dask_tasks import squares

address, memory, log = sys.argv[1:]
DaskExecutor(squares(300, Path(log), "driver", 0.02), memory=memory, address=address).run()
"""


def test_a_driver_killed_mid_run_resumes_without_redoing_recorded_tasks(
    cluster: LocalCluster, client: Client, tmp_path: Path
) -> None:
    log, path = tmp_path / "runs.log", tmp_path / "harvest.db"
    driver = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(DRIVER), cluster.scheduler_address,
         f"sqlite:///{path}", str(log)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    while sum(executions(log).values()) < 100:
        time.sleep(0.01)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    memory = SQLiteMemory(path)
    recorded = set(memory.get_completed_tasks())
    assert 0 < len(recorded) < 300
    assert all(memory.get_task_result(t)["square"] == int(t[3:]) ** 2 for t in recorded)
    DaskExecutor(squares(300, log, "resume", 0.0), memory=memory, client=client).run()
    assert memory.count_by_status() == {"pending": 0, "completed": 300, "failed": 0}
    assert not recorded & set(executions(log, "resume"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_a_scheduler_that_goes_away_ends_the_run_with_a_clear_error_and_records_intact(
    tmp_path: Path,
) -> None:
    # A scheduler and a worker of their own, as `dask scheduler` and `dask worker` run them.
    file = tmp_path / "scheduler.json"
    common = ["--scheduler-file", str(file), "--no-dashboard"]
    python = [sys.executable, "-m"]
    scheduler = subprocess.Popen(
        [*python, "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0", *common],
        stderr=subprocess.DEVNULL,
    )
    worker = subprocess.Popen(
        [*python, "distributed.cli.dask_worker", "--nthreads", "4", *common],
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    log, path = tmp_path / "runs.log", tmp_path / "harvest.db"
    try:
        with Client(scheduler_file=str(file), set_as_default=False, timeout=60) as probe:
            probe.wait_for_workers(1, timeout=60)
            address = probe.scheduler.address

        def kill_the_scheduler() -> None:
            _wait_for(log, 50)
            scheduler.send_signal(signal.SIGKILL)

        killer = threading.Thread(target=kill_the_scheduler)
        killer.start()
        with pytest.raises(SchedulerLostError, match=f"scheduler at {address} went away"):
            DaskExecutor(squares(400, log, "1", 0.02), memory=f"sqlite:///{path}",
                         address=address).run()  # fmt: skip
        killer.join()
    finally:
        for process in (scheduler, worker):
            process.kill()
            process.wait()
    memory = SQLiteMemory(path)
    counts = memory.count_by_status()
    assert counts["completed"] >= 40
    assert counts["completed"] + counts["pending"] == 400
    for task_id in memory.get_completed_tasks():
        assert memory.get_task_result(task_id)["square"] == int(task_id[3:]) ** 2


def _wait_for(log: Path, lines: int) -> None:
    while sum(executions(log).values()) < lines:
        time.sleep(0.01)


def test_the_cluster_must_be_named_once() -> None:
    with pytest.raises(ConfigurationError, match=r"client=.*address="):
        DaskExecutor([], memory="memory://")
    with pytest.raises(ConfigurationError, match="one of them"):
        DaskExecutor([], memory="memory://", client=object(), address="tcp://x:1")  # type: ignore[arg-type]


def test_an_unreachable_scheduler_is_a_clear_error() -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    with (
        dask.config.set({"distributed.comm.timeouts.connect": "2s"}),
        pytest.raises(SchedulerLostError, match=f"Cannot reach the Dask scheduler at {address}"),
    ):
        DaskExecutor([], memory="memory://", address=address).run()


def test_messor_run_takes_the_dask_executor_from_the_option_or_messor_toml(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SQUARES": "40", "SQUARES_LOG": str(log)}
    env.pop("MESSOR_MEMORY", None)
    dask_url = cluster.scheduler_address.replace("tcp://", "dask://")
    command = [sys.executable, "-m", "messor", "run", "tests.dask_tasks:from_environment"]
    done = subprocess.run([*command, "--executor", dask_url], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"on the Dask cluster at {cluster.scheduler_address}" in done.stdout
    assert "This run: 40 completed" in done.stdout
    (tmp_path / "messor.toml").write_text(f'executor = "{dask_url}"\n', encoding="utf-8")
    env["SQUARES"] = "50"
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert "This run: 10 completed, 0 failed, 0 retries, 40 already done" in done.stdout
    assert len(executions(log)) == 50
    (tmp_path / "messor.toml").write_text('executor = "spark://x"\n', encoding="utf-8")
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 2
    assert "executor 'spark://x' (from messor.toml) is not one Messor knows" in done.stderr


def test_a_task_past_its_timeout_fails_and_the_run_does_not_wait_for_it(
    client: Client, tmp_path: Path
) -> None:
    memory = SQLiteMemory(tmp_path / "harvest.db")
    tasks = [FunctionTask("slow", time.sleep, 5), *squares(10, tmp_path / "log", "1")]
    started = time.monotonic()
    report = DaskExecutor(tasks, memory=memory, client=client, retry=0, timeout=0.5).run()
    assert time.monotonic() - started < 4
    assert (report.completed, report.failed, report.timed_out) == (10, 1, 1)
    assert "TaskTimeoutError" in str(memory.get_failed_tasks()[0][1])


def test_a_result_lost_between_finishing_and_gathering_never_goes_to_another_task(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Dask may lose a finished result (its worker died, the scheduler cancelled
    # it) just before the gather: the other results must stay with their tasks.
    from messor_dask.workers import DaskWorkers

    gather = DaskWorkers._gather

    def losing_the_first(self: Any, futures: dict[str, Any]) -> dict[str, Any]:
        if futures:
            self.client.cancel([futures[min(futures)]])
            time.sleep(0.3)
        return gather(self, futures)

    monkeypatch.setattr(DaskWorkers, "_gather", losing_the_first)
    memory = InProcessMemory()
    tasks = [FunctionTask(f"t{n}", str, f"result of t{n}") for n in range(2)]
    DaskExecutor(tasks, memory=memory, client=client, retry=0, max_concurrency=2).run()
    statuses = memory.get_statuses(["t0", "t1"])
    assert "failed" in statuses.values()  # the lost one: recorded failed, retryable
    for task_id, status in statuses.items():
        if status == "completed":
            assert memory.get_task_result(task_id) == f"result of {task_id}"


# -- server-aware pacing, enforced by the driver ------------------------------------------------


def test_a_throttle_pauses_the_cluster_and_attempts_queued_there_are_taken_back(
    client: Client, tmp_path: Path
) -> None:
    log, marker = tmp_path / "paced.log", str(tmp_path / "throttled")
    tasks = [
        FunctionTask(f"p{n}", paced, f"https://api.example/{n}", str(log), 0.4, marker)
        for n in range(16)
    ]
    report = DaskExecutor(tasks, InProcessMemory(), client=client, retry=0).run()
    assert (report.completed, report.throttled, report.retried) == (16, 1, 0)
    events = paced_log(log)
    [at] = [t for event, _, t in events if event == "throttled"]
    # Attempts running then finish; none starts until the server's second has passed,
    # though twice the cluster's threads were sent (the rest waited there).
    late = [t for event, _, t in events if event == "start" and at + 0.25 < t < at + 1.0]
    assert late == []


def test_a_keyed_limit_holds_for_every_worker_of_the_cluster(
    client: Client, tmp_path: Path
) -> None:
    log = tmp_path / "paced.log"
    tasks = [
        FunctionTask(f"{host}-{n}", paced, f"https://{host}.example/{n}", str(log), 0.1)
        for n in range(6)
        for host in ("a", "b")
    ]
    limit = messor.Limit(concurrency=1, key=messor.by_host)
    report = DaskExecutor(tasks, InProcessMemory(), client=client, limits=[limit]).run()
    assert report.completed == 12
    running: dict[str, int] = {}
    most: dict[str, int] = {}
    overall = 0
    for event, host, _ in sorted(paced_log(log), key=lambda e: e[2]):
        running[host] = running.get(host, 0) + (1 if event == "start" else -1)
        most[host] = max(most.get(host, 0), running[host])
        overall = max(overall, sum(running.values()))
    assert most == {"a.example": 1, "b.example": 1}
    assert overall == 2
