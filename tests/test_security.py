"""Security: no code loaded from stored data, SQL only with parameters, ids kept inside their
namespace, and a password in a memory URL seen nowhere: repr, logs, errors, the command line."""

from __future__ import annotations

import ast
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import messor
from messor import FunctionTask, LocalThreadedExecutor, RunInProgressError
from messor.memories.claims import RunOwner
from messor.run.attempt import Attempt
from messor.run.pacing import Pacer
from messor.run.throttling import Throttle
from messor.testing import ODD_TASK_IDS
from tests.redis_server import free_port, real_redis

ROOT = Path(__file__).resolve().parent.parent
#: Every module users install: the core, the plugins, the example plugins.
PRODUCT = [
    *sorted((ROOT / "messor").rglob("*.py")),
    *sorted((ROOT / "messor_redis" / "src").rglob("*.py")),
    *sorted((ROOT / "messor_s3" / "src").rglob("*.py")),
    *sorted((ROOT / "examples" / "messor-jsonl" / "src").rglob("*.py")),
    *sorted((ROOT / "examples" / "messor-folder" / "src").rglob("*.py")),
]
#: Modules that turn bytes into objects or code: never for data read back from a store.
CODE_LOADERS = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve",
                "jsonpickle", "yaml"}  # fmt: skip


def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def test_the_product_is_found() -> None:
    names = {p.name for p in PRODUCT}
    assert {"sqlite.py", "base.py", "plugin.py", "claims.py"} <= names
    assert len(PRODUCT) > 30


@pytest.mark.parametrize("path", PRODUCT, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_can_load_code_from_stored_data(path: Path) -> None:
    for node in ast.walk(parsed(path)):
        if isinstance(node, ast.Import):
            assert not {a.name.split(".")[0] for a in node.names} & CODE_LOADERS, node.lineno
        elif isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] not in CODE_LOADERS, node.lineno
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in {"eval", "exec", "__import__"}, node.lineno


#: What may be interpolated into SQL text: module constants and placeholders, never a value.
SQL_PIECES = {"columns", "marks", "where", "_ROWS_PER_PAGE", "SCHEMA_VERSION"}
SQL_CALLS = {"execute", "executemany", "executescript", "_fetchall"}


def test_sql_is_built_only_from_constants_with_values_as_parameters() -> None:
    tree = parsed(ROOT / "messor" / "memories" / "sqlite.py")
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in SQL_CALLS
    ]
    assert len(calls) > 10
    for call in calls:
        for part in ast.walk(call.args[0]):
            if isinstance(part, ast.FormattedValue):
                names = {n.id for n in ast.walk(part.value) if isinstance(n, ast.Name)}
                assert names <= SQL_PIECES, f"line {call.lineno}: {names - SQL_PIECES}"
    # _select_by_ids puts its `columns` into the SQL: every caller names them literally.
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "_select_by_ids":
            assert isinstance(node.args[1], ast.Constant), node.lineno
    # `marks` are only question marks.
    assert "marks = ','.join('?' * len(chunk))" in ast.unparse(tree)


def test_no_task_id_or_status_reaches_outside_its_redis_namespace() -> None:
    client = real_redis().client()
    mine, other = uuid.uuid4().hex, uuid.uuid4().hex
    client.set("victim", "untouched")
    neighbour = messor.open_memory(f"{real_redis().url}?namespace={other}")
    neighbour.store_tasks([("n", {})])
    before = set(client.keys("*"))
    memory = messor.open_memory(f"{real_redis().url}?namespace={mine}")
    odd = [*ODD_TASK_IDS, "*", "victim", f"messor:{{{other}}}:status", "}{", "\n", "\x00"]
    ids = list(dict.fromkeys(odd))
    LocalThreadedExecutor([FunctionTask(i, str, i) for i in ids], memory=memory).run()
    memory.update_task_statuses([(ids[0], "failed", None, "x")])
    created = set(client.keys("*")) - before
    assert created
    assert all(str(key).startswith(f"messor:{{{mine}}}:") for key in created), created
    assert client.get("victim") == "untouched"
    assert neighbour.get_task_status("n") == "pending"
    memory.clear()
    assert set(client.keys("*")) == before
    client.delete("victim")
    neighbour.clear()


# -- a planted password ------------------------------------------------------------------------

PASSWORD = "planted-PW-5e7a"


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A memory URL with a real password: an ACL user on the test redis-server."""
    server = real_redis()
    client = server.client()
    user = f"u{uuid.uuid4().hex[:8]}"
    client.acl_setuser(user, enabled=True, passwords=[f"+{PASSWORD}"], keys=["*"],
                       commands=["+@all"])  # fmt: skip
    yield f"redis://{user}:{PASSWORD}@127.0.0.1:{server.port}/0?namespace={uuid.uuid4().hex}"
    client.acl_deluser(user)


def failing(n: int) -> int:
    if n % 3 == 0:
        raise ConnectionError(f"page {n} did not answer")
    return n


def test_the_password_is_in_no_repr_log_error_or_report(
    redis_url: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level
    memory = messor.open_memory(redis_url)
    tasks = [messor.task(failing, n) for n in range(30)]
    executor = LocalThreadedExecutor(tasks, memory=memory, retry=1, progress=True)
    report = executor.run()
    executor.status_summary(failures=5)
    seen = [repr(memory), str(memory), repr(executor.memory), repr(report), caplog.text]
    release = memory.claim_run(RunOwner())
    try:
        with pytest.raises(RunInProgressError) as refused:
            LocalThreadedExecutor(tasks, memory=redis_url).run()
        seen.append(str(refused.value))
    finally:
        release()
    wrong = redis_url.replace(PASSWORD, f"{PASSWORD}-wrong")
    unreachable = redis_url.replace(str(real_redis().port), str(free_port()))
    for url in (wrong, unreachable):
        with pytest.raises(messor.MemoryUnavailableError) as failed:
            messor.open_memory(url, retry_for=0)
        seen.append(str(failed.value))
    out, err = capsys.readouterr()  # the summary and the progress bar
    seen += [out, err]
    assert report.completed == 20
    assert "***" in repr(memory)
    for text in seen:
        assert PASSWORD not in text
    memory.clear()


def test_the_command_line_never_shows_the_password(redis_url: str, tmp_path: Path) -> None:
    (tmp_path / "pages.py").write_text(
        "import messor\nfrom tests.test_security import failing\n"
        "tasks = [messor.task(failing, n) for n in range(12)]\n",
        encoding="utf-8",
    )
    (tmp_path / "messor.toml").write_text(f'memory = "{redis_url}"\n', encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"}
    env.pop("MESSOR_MEMORY", None)
    messor_cli = [sys.executable, "-m", "messor"]
    wrong = redis_url.replace(PASSWORD, f"{PASSWORD}-wrong")
    commands = [
        ["run", "pages:tasks", "--progress"],
        ["status"],
        ["status", "--json"],
        ["failed", "--json"],
        ["results"],
        ["retry", "--failed"],
        ["run", "pages:tasks", "--memory", wrong],
        ["status", "--memory", redis_url.replace("redis://", "redis:")],  # a typo'd URL
    ]
    outputs = []
    for command in commands:
        done = subprocess.run([*messor_cli, *command], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120, check=False)  # fmt: skip
        outputs.append(done.stdout + done.stderr)
    assert "Completed tasks: 8" in outputs[1]
    assert "redis://u" in outputs[1]  # the memory is named, its password hidden
    for command, output in zip(commands, outputs, strict=True):
        assert PASSWORD not in output, command
    messor.open_memory(redis_url).clear()


def _paused_by_a_429(
    key: Callable[[Any], str], task: Any, learned: dict[str, dict[str, float]]
) -> Pacer:
    pacer = Pacer((messor.Limit(concurrency=4, key=key),), None, cap=8, learned=learned)
    now = time.monotonic()
    attempt = pacer.next(now, lambda: Attempt("t", task))
    assert attempt is not None
    pacer.throttle(attempt, Throttle(retry_after=30.0, status=429), now)
    return pacer


def test_a_limits_key_that_may_be_a_secret_is_shown_and_kept_only_as_a_digest() -> None:
    secret = "sk-live-0123456789abcdef"
    pacer = _paused_by_a_429(lambda task: secret, FunctionTask("t", print), {})
    reason = pacer.state(time.monotonic()).pause_reason or ""
    assert reason.startswith("429 key#")
    assert secret not in reason
    # The next run finds what this one learned under the same digest.
    label = reason.removeprefix("429 ")
    again = _paused_by_a_429(lambda task: secret, FunctionTask("t", print), {label: {"rate": 7.0}})
    assert again.paces[secret].rate.at(time.monotonic()) == pytest.approx(7.0, rel=0.05)


def test_a_host_from_by_host_is_shown_as_it_is() -> None:
    page = FunctionTask("page", print, "https://api.example.org/items/1")
    pacer = _paused_by_a_429(messor.by_host, page, {})
    assert pacer.state(time.monotonic()).pause_reason == "429 api.example.org"
