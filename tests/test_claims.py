"""One run at a time per memory: a second harvest on a store in use is refused, never doubled."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import messor
from messor import FunctionTask, LocalThreadedExecutor, Memory, RunInProgressError, SQLiteMemory
from messor.memories.claims import RunOwner
from tests.conftest import make_memory
from tests.redis_server import real_redis

ROOT = Path(__file__).resolve().parent.parent


def slow_harvest(memory: Memory, started: threading.Event, finish: threading.Event) -> None:
    """A run that holds ``memory`` until ``finish`` is set."""

    def wait() -> str:
        started.set()
        finish.wait(30)
        return "done"

    LocalThreadedExecutor([FunctionTask("slow", wait)], memory=memory).run()


@pytest.fixture(params=["sqlite-file", "sqlite-ram", "in-process", "redis-real"])
def memory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Memory]:
    memory = make_memory(request.param, tmp_path)
    yield memory
    memory.close()


def test_a_second_run_on_a_memory_in_use_is_refused_and_runs_nothing(memory: Memory) -> None:
    started, finish = threading.Event(), threading.Event()
    first = threading.Thread(target=slow_harvest, args=(memory, started, finish))
    first.start()
    ran: list[str] = []
    try:
        assert started.wait(30)
        with pytest.raises(RunInProgressError, match=f"process {os.getpid()} on") as refused:
            LocalThreadedExecutor([FunctionTask("other", ran.append, "x")], memory=memory).run()
        assert "run the same tasks twice" in str(refused.value)
    finally:
        finish.set()
        first.join()
    assert ran == []
    assert memory.get_task_status("slow") == "completed"
    # Once the first run ended, the memory is free again.
    LocalThreadedExecutor([FunctionTask("other", ran.append, "x")], memory=memory).run()
    assert ran == ["x"]


def test_a_run_that_fails_to_start_lets_go_of_the_memory(memory: Memory) -> None:
    duplicates = [FunctionTask("same", int), FunctionTask("same", int)]
    with pytest.raises(messor.DuplicateTaskError):
        LocalThreadedExecutor(duplicates, memory=memory).run()
    report = LocalThreadedExecutor([FunctionTask("same", int)], memory=memory).run()
    assert report.completed == 1


HOLDER = """
import sys, time
from messor import FunctionTask, LocalThreadedExecutor

def hold():
    print("holding", flush=True)
    time.sleep(60)

LocalThreadedExecutor([FunctionTask("hold", hold)], memory=sys.argv[1]).run()
"""


def start_holder(spec: str) -> subprocess.Popen[str]:
    """A harvest in another process that holds ``spec`` until killed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDER), spec],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "holding\n"
    return process


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_another_process_is_refused_until_the_holder_dies_even_by_sigkill(
    kind: str, tmp_path: Path
) -> None:
    if kind == "sqlite":
        spec = f"sqlite:///{tmp_path / 'harvest.db'}"
    else:
        spec = f"{real_redis().url}?namespace={uuid.uuid4().hex}"
    holder = start_holder(spec)
    try:
        with pytest.raises(RunInProgressError, match=f"process {holder.pid} on"):
            LocalThreadedExecutor([FunctionTask("mine", int)], memory=spec).run()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
    # No waiting: the kernel dropped the file lock; the Redis claim of a
    # process that is gone from this host is taken over.
    started = time.monotonic()
    report = LocalThreadedExecutor([FunctionTask("mine", int)], memory=spec).run()
    assert report.completed == 1
    assert time.monotonic() - started < 5
    memory = messor.open_memory(spec)
    assert memory.get_task_status("hold") == "pending"  # the killed run's task, not stuck
    memory.close()


# -- the Redis claim -------------------------------------------------------------------------


@pytest.fixture
def redis_memory() -> Iterator[Memory]:
    memory = messor.open_memory(f"{real_redis().url}?namespace={uuid.uuid4().hex}")
    yield memory
    memory.clear()
    memory.close()


def claim_key(memory: Memory) -> str:
    return f"messor:{{{memory.namespace}}}:run"  # type: ignore[attr-defined]


def test_a_redis_claim_of_another_host_is_refused_until_it_lapses(redis_memory: Memory) -> None:
    client = real_redis().client()
    elsewhere = RunOwner(pid=1, host="another-host")
    client.set(claim_key(redis_memory), elsewhere.to_json(), px=600)
    with pytest.raises(RunInProgressError, match=r"process 1 on another-host.*lapses"):
        redis_memory.claim_run(RunOwner())
    time.sleep(0.7)
    redis_memory.claim_run(RunOwner())()


def test_a_redis_claim_is_renewed_while_the_run_lasts_and_removed_after(
    redis_memory: Memory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_memory, "claim_seconds", 0.6)
    client = real_redis().client()
    owner = RunOwner()
    release = redis_memory.claim_run(owner)
    time.sleep(1.5)  # more than twice its lifetime: renewed meanwhile
    assert json.loads(client.get(claim_key(redis_memory)) or "{}")["token"] == owner.token
    redis_memory.clear()  # clearing the tasks leaves the claim
    with pytest.raises(RunInProgressError):
        redis_memory.claim_run(RunOwner())
    release()
    assert client.get(claim_key(redis_memory)) is None


def test_a_redis_claim_taken_over_is_not_released_by_its_old_holder(redis_memory: Memory) -> None:
    client = real_redis().client()
    release = redis_memory.claim_run(RunOwner())
    newcomer = RunOwner(pid=1, host="another-host")
    client.set(claim_key(redis_memory), newcomer.to_json())  # as if ours had lapsed
    release()
    assert json.loads(client.get(claim_key(redis_memory)) or "{}")["token"] == newcomer.token


def test_a_redis_claim_this_process_could_not_end_is_taken_over_by_its_next_run(
    redis_memory: Memory,
) -> None:
    # As if Redis had been down when the run ended: the key outlived the run.
    client = real_redis().client()
    owner = RunOwner()
    release = redis_memory.claim_run(owner)
    value = client.get(claim_key(redis_memory))
    release()
    client.set(claim_key(redis_memory), value or "", px=60_000)
    report = LocalThreadedExecutor([FunctionTask("next", int)], memory=redis_memory).run()
    assert report.completed == 1
    # But a live run of this process is never taken over.
    started, finish = threading.Event(), threading.Event()
    first = threading.Thread(target=slow_harvest, args=(redis_memory, started, finish))
    first.start()
    try:
        assert started.wait(30)
        with pytest.raises(RunInProgressError):
            redis_memory.claim_run(RunOwner())
    finally:
        finish.set()
        first.join()


def test_two_names_for_one_sqlite_file_share_one_claim(tmp_path: Path) -> None:
    real = SQLiteMemory(tmp_path / "harvest.db")
    (tmp_path / "link.db").symlink_to(tmp_path / "harvest.db")
    linked = SQLiteMemory(tmp_path / "link.db")
    release = real.claim_run(RunOwner())
    try:
        with pytest.raises(RunInProgressError):
            linked.claim_run(RunOwner())
    finally:
        release()


# -- who holds a claim: a pid means something only in its own host, boot and PID namespace ---


def unused_pid() -> int:
    """A pid that no process of this PID namespace has (right now)."""
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    return next(p for p in range(pid_max - 1, 300, -1) if not Path(f"/proc/{p}").exists())


def test_a_holder_is_taken_for_dead_only_where_host_boot_and_pid_namespace_all_match() -> None:
    gone = RunOwner(pid=unused_pid())
    assert gone.is_dead_here()  # here, and no such process: its run is over
    for elsewhere in (
        dataclasses.replace(gone, host="another-host"),
        dataclasses.replace(gone, boot="0a7f9c1e-another-boot"),  # a cloned VM: same name
        dataclasses.replace(gone, pid_namespace="pid:[4026532999]"),  # a container
    ):
        assert not elsewhere.is_dead_here()


def test_a_claim_written_without_boot_and_namespace_still_parses_but_is_never_local() -> None:
    old = json.dumps({"pid": unused_pid(), "host": socket.gethostname(), "started": 0.0,
                      "token": "t"})  # fmt: skip
    holder = RunOwner.from_json(old)
    assert holder is not None
    assert holder.describe().startswith(f"process {holder.pid} on")
    assert not holder.is_local()
    assert not holder.is_dead_here()


def test_a_redis_claim_without_boot_and_namespace_is_waited_out_not_taken_over(
    redis_memory: Memory,
) -> None:
    # Written by a Messor that recorded host and pid only: maybe a live
    # run in a container, whose pid means nothing here.
    client = real_redis().client()
    old = {"pid": unused_pid(), "host": socket.gethostname(), "started": 0.0, "token": "t"}
    client.set(claim_key(redis_memory), json.dumps(old), px=60_000)
    with pytest.raises(RunInProgressError, match=f"process {old['pid']} on .*lapses"):
        redis_memory.claim_run(RunOwner())


def run_in_another_pid_namespace(script: Path, *args: str) -> subprocess.Popen[str]:
    """``python script args`` in a new PID namespace, as a container runs it, under a pid that
    no process of this namespace has; it must print one line once ready."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    probe = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot make a PID namespace here (needs root): {probe.stderr!r}")
    pid = unused_pid()
    # Its first processes get pids from ns_last_pid on. Not exec'd: sh is pid 1.
    shell = f'echo {pid - 1} > /proc/sys/kernel/ns_last_pid || exit 1; "$@" & wait $!'
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "sh", "-c", shell,
         "sh", sys.executable, str(script), *args],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stdout.readline() == "holding\n"
    return process


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_a_run_in_another_pid_namespace_of_this_host_is_never_taken_for_dead(
    kind: str, tmp_path: Path
) -> None:
    if kind == "sqlite":
        spec = f"sqlite:///{tmp_path / 'harvest.db'}"
    else:
        spec = f"{real_redis().url}?namespace={uuid.uuid4().hex}"
    script = tmp_path / "holder.py"
    script.write_text(textwrap.dedent(HOLDER))
    holder = run_in_another_pid_namespace(script, spec)
    try:
        if kind == "sqlite":
            owner = RunOwner.from_json((tmp_path / "harvest.db-run").read_text())
        else:
            memory = messor.open_memory(spec)
            owner = RunOwner.from_json(real_redis().client().get(claim_key(memory)))
            memory.close()
        assert owner is not None
        assert owner.host == socket.gethostname()
        # The holder's pid names no process here: by host and pid alone, it is dead.
        assert not Path(f"/proc/{owner.pid}").exists()
        with pytest.raises(RunInProgressError, match=f"process {owner.pid} on"):
            LocalThreadedExecutor([FunctionTask("mine", int)], memory=spec).run()
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
