"""Executors as plugins: ``register_executors``, ``open_executor``, ``messor run --executor``."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import pytest

import messor
from messor import AsyncExecutor, LocalThreadedExecutor, RunOptions
from messor.plugins import Catalog, load_catalog
from tests.console import messor as run_messor

ROOT = Path(__file__).resolve().parents[1]
MESSOR_ROOT = Path(messor.__file__).resolve().parents[1]

#: Writes a plugin module from its source and returns an entry point naming it.
PluginWriter = Callable[[str, str], EntryPoint]

GOOD_PLUGIN = """
import messor


class FakeExecutor(messor.LocalThreadedExecutor):
    def __init__(self, url, tasks, memory, options):
        super().__init__(tasks, memory, options=options)
        self.url = url


def open_fake(url, *, tasks, memory, options):
    return FakeExecutor(url, tasks, memory, options)


@messor.hookimpl
def register_executors(register):
    register("fakex", open_fake, schemes=["fakexs"], description="a fake executor")
"""

RAISING_PLUGIN = """
import messor


@messor.hookimpl
def register_memories(register):
    register("halfway", lambda url, **options: messor.InProcessMemory())


@messor.hookimpl
def register_executors(register):
    raise RuntimeError("the executor plugin broke while registering")
"""

LOCAL_CLASH_PLUGIN = """
import messor


@messor.hookimpl
def register_executors(register):
    register("local", lambda url, **kwargs: None)
"""


def core_entry_points() -> list[EntryPoint]:
    return [ep for ep in entry_points(group="messor") if ep.value == "messor.builtin_plugin"]


@pytest.fixture
def write_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PluginWriter]:
    """Write plugin modules (uniquely named) into a directory on sys.path."""
    directory = tmp_path / "plugin_modules"
    directory.mkdir()
    monkeypatch.syspath_prepend(str(directory))
    modules: list[str] = []

    def write(plugin_name: str, source: str) -> EntryPoint:
        module = f"messor_test_{plugin_name}_{uuid.uuid4().hex[:12]}"
        (directory / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        importlib.invalidate_caches()
        modules.append(module)
        return EntryPoint(name=plugin_name, value=module, group="messor")

    yield write
    for module in modules:
        sys.modules.pop(module, None)


def load_with(*fakes: EntryPoint) -> Catalog:
    return load_catalog([*core_entry_points(), *fakes])


@pytest.fixture
def core_only(monkeypatch: pytest.MonkeyPatch) -> Catalog:
    """Make open_executor see only the core's executors, as if no extra were installed."""
    catalog = load_catalog(core_entry_points())
    monkeypatch.setattr(messor.plugins, "_catalog", catalog)
    return catalog


# -- the built-in executors and messor-dask's --------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"), [("local", LocalThreadedExecutor), ("async", AsyncExecutor)]
)
def test_the_builtin_executors_come_through_the_cores_entry_point(
    name: str, kind: type[messor.Executor]
) -> None:
    backend = load_catalog().executors.find(name)
    assert (backend.plugin, backend.distribution) == ("builtin", "messor")
    executor = messor.open_executor(name, [], "memory://", RunOptions(retry=4))
    assert type(executor) is kind
    assert (executor.retry, executor.max_concurrency) == (4, 4)


def test_without_a_spec_the_executor_of_messor_toml_is_used_else_local(tmp_path: Path) -> None:
    assert type(messor.open_executor(None, [], "memory://")) is LocalThreadedExecutor
    (tmp_path / "messor.toml").write_text('executor = "async"\n', encoding="utf-8")
    assert type(messor.open_executor(None, [], "memory://")) is AsyncExecutor


def test_a_local_executor_url_with_a_location_is_refused() -> None:
    with pytest.raises(messor.ConfigurationError, match="runs in this process: write local"):
        messor.open_executor("local://somewhere", [], "memory://")


def test_the_dask_executor_is_found_through_messor_dasks_entry_point() -> None:
    from messor_dask import DaskExecutor

    backend = load_catalog().executors.find("dask")
    assert (backend.plugin, backend.distribution) == ("dask", "messor-dask")
    executor = messor.open_executor(
        "dask://127.0.0.1:8799", [], "memory://", RunOptions(retry=2, timeout=5)
    )
    assert isinstance(executor, DaskExecutor)
    assert executor.address == "tcp://127.0.0.1:8799"
    assert executor.where == "on the Dask cluster at tcp://127.0.0.1:8799"
    assert (executor.retry, executor.timeout) == (2, 5)
    default_port: Any = messor.open_executor("dask://sched", [], "memory://")
    assert default_port.address == "tcp://sched:8786"


@pytest.mark.parametrize("spec", ["dask", "dask://", "dask://host:1/path", "dask://u:pw@host:1"])
def test_a_dask_spec_without_just_host_and_port_says_how_to_write_it(spec: str) -> None:
    with pytest.raises(messor.ConfigurationError, match=r"dask://HOST:PORT") as raised:
        messor.open_executor(spec, [], "memory://")
    assert "pw" not in str(raised.value)


@pytest.mark.usefixtures("core_only")
@pytest.mark.parametrize("spec", ["dask", "dask://scheduler:8786"])
def test_a_missing_dask_executor_says_to_install_the_dask_extra(spec: str) -> None:
    with pytest.raises(messor.UnknownBackendError) as raised:
        messor.open_executor(spec, [])
    assert "pip install 'messor[dask]'" in str(raised.value)


@pytest.mark.usefixtures("core_only")
def test_an_unknown_executor_lists_the_installed_ones_and_hides_secrets_of_its_url() -> None:
    with pytest.raises(messor.UnknownBackendError) as raised:
        messor.open_executor("spark://user:hunter2@host:7077", [])
    message = str(raised.value)
    assert (
        "executor 'spark://user:***@host:7077' (from argument) is not one Messor knows" in message
    )
    assert "Installed executors: local (local://), async (async://)." in message
    assert "hunter2" not in message


@pytest.mark.usefixtures("core_only")
def test_an_unknown_executor_suggests_a_close_match() -> None:
    with pytest.raises(messor.UnknownBackendError, match="Did you mean 'async'"):
        messor.open_executor("asnyc", [])


# -- third-party executors, with fake entry points ----------------------------------------------


def test_a_plugin_executor_is_found_by_its_name_and_each_url_scheme(
    write_plugin: PluginWriter,
) -> None:
    catalog = load_with(write_plugin("good", GOOD_PLUGIN))
    for key in ("fakex", "fakexs", "FAKEXS"):
        assert catalog.executors.find(key).plugin == "good"
    assert "fakex" not in catalog.memories.backends


def test_open_executor_gives_the_factory_the_url_tasks_memory_and_options(
    write_plugin: PluginWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(messor.plugins, "_catalog", load_with(write_plugin("good", GOOD_PLUGIN)))
    memory = messor.InProcessMemory()
    tasks = [messor.FunctionTask("t", int, 7)]
    executor: Any = messor.open_executor("fakexs://host:1/x", tasks, memory, RunOptions(retry=5))
    assert type(executor).__name__ == "FakeExecutor"
    assert (executor.url.scheme, executor.url.host, executor.url.port) == ("fakexs", "host", 1)
    assert (executor.tasks, executor.memory, executor.retry) == (tasks, memory, 5)
    executor.run()
    assert memory.get_task_result("t") == 7
    by_name: Any = messor.open_executor("fakex", tasks, memory)
    assert by_name.url is None


def test_a_plugin_whose_register_executors_raises_is_recorded_and_the_others_keep_working(
    write_plugin: PluginWriter,
) -> None:
    catalog = load_with(write_plugin("good", GOOD_PLUGIN), write_plugin("raising", RAISING_PLUGIN))
    [failure] = catalog.failures
    assert failure.plugin == "raising"
    assert failure.error == "RuntimeError: the executor plugin broke while registering"
    assert "halfway" not in catalog.memories.backends  # a broken plugin offers nothing
    assert catalog.executors.find("fakex").plugin == "good"
    assert catalog.executors.find("local").plugin == "builtin"
    with pytest.raises(messor.UnknownBackendError, match="Could not load plugin 'raising'"):
        catalog.executors.find("nosuch")


def test_a_plugin_executor_named_local_is_refused_and_the_builtin_stays(
    write_plugin: PluginWriter,
) -> None:
    catalog = load_with(write_plugin("clash", LOCAL_CLASH_PLUGIN))
    [failure] = catalog.failures
    assert failure.error.startswith("ValueError: executor 'local'")
    assert "clashes with executor 'local' of messor" in failure.error
    assert catalog.executors.find("local").plugin == "builtin"


def test_two_plugins_offering_one_executor_name_make_it_refused_naming_both(
    write_plugin: PluginWriter,
) -> None:
    twin = GOOD_PLUGIN.replace('schemes=["fakexs"]', 'schemes=["twinxs"]')
    catalog = load_with(write_plugin("good", GOOD_PLUGIN), write_plugin("twin", twin))
    with pytest.raises(messor.ConfigurationError, match=r"executor 'fakex'.*plugin 'twin'"):
        catalog.executors.find("fakex")
    assert catalog.executors.find("fakexs").plugin == "good"


# -- installed as a user installs: the example of docs/executors.md -----------------------------

DOCS = (ROOT / "docs" / "executors.md").read_text(encoding="utf-8")

CRUNCH = """
import multiprocessing
import messor


def square(n):
    return {"square": n * n, "in_a_worker_process": multiprocessing.parent_process() is not None}


numbers = [messor.task(square, n) for n in range(6)]
"""

BROKEN_EXECUTOR = """
import messor


@messor.hookimpl
def register_executors(register):
    raise RuntimeError("the cluster client is too old")
"""


def install(site: Path, name: str, files: dict[str, str], entry: str) -> None:
    """An installed distribution in ``site`` (its dist-info and files), as pip leaves one."""
    dist_info = site / f"{name.replace('-', '_')}-0.1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n")
    (dist_info / "entry_points.txt").write_text(f"[messor]\n{entry}\n")
    for path, source in files.items():
        (site / path).parent.mkdir(parents=True, exist_ok=True)
        (site / path).write_text(textwrap.dedent(source), encoding="utf-8")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """messor-processes, as docs/executors.md writes it, and a broken executor plugin."""
    site = tmp_path_factory.mktemp("site")
    blocks = dict(re.findall(r"```python\n# (messor_processes/\S+\.py)\n(.*?)```", DOCS, re.S))
    assert set(blocks) == {"messor_processes/executor.py", "messor_processes/plugin.py"}
    blocks["messor_processes/__init__.py"] = ""
    install(site, "messor-processes", blocks, "processes = messor_processes.plugin")
    install(site, "cluster-exec", {"cluster_exec.py": BROKEN_EXECUTOR}, "cluster = cluster_exec")
    return site


def in_site(site: Path) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(site), str(MESSOR_ROOT)])}


@pytest.mark.slow
def test_the_docs_example_executor_runs_a_harvest_from_messor_run_executor(
    site: Path, tmp_path: Path
) -> None:
    (tmp_path / "crunch.py").write_text(CRUNCH, encoding="utf-8")
    command = ["run", "crunch:numbers", "--executor", "processes://", "-c", "2"]
    done = run_messor(*command, cwd=tmp_path, env=in_site(site))
    assert done.returncode == 0, done.stderr
    assert "This run: 6 completed, 0 failed" in done.stdout
    memory = messor.SQLiteMemory(tmp_path / "messor.db")
    results = [memory.get_task_result(task_id) for task_id in memory.get_completed_tasks()]
    assert sorted(r["square"] for r in results) == [0, 1, 4, 9, 16, 25]
    assert all(r["in_a_worker_process"] for r in results)
    again = run_messor(*command, cwd=tmp_path, env=in_site(site))
    assert "This run: 0 completed, 0 failed, 0 retries, 6 already done" in again.stdout


@pytest.mark.slow
def test_messor_backends_lists_the_executors_and_the_broken_executor_plugin(
    site: Path, tmp_path: Path
) -> None:
    data = json.loads(run_messor("backends", "--json", cwd=tmp_path, env=in_site(site)).stdout)
    executors = {row["name"]: row for row in data["executors"]}
    assert {"local", "async", "dask", "processes"} <= set(executors)
    assert executors["processes"]["distribution"] == "messor-processes"
    assert executors["dask"]["schemes"] == ["dask://"]
    [broken] = data["failed_plugins"]
    assert (broken["plugin"], broken["distribution"]) == ("cluster", "cluster-exec")
    assert "RuntimeError: the cluster client is too old" in broken["error"]
    text = run_messor("backends", cwd=tmp_path, env=in_site(site)).stdout
    assert re.search(r"^EXECUTOR +SCHEMES +DISTRIBUTION +DESCRIPTION$", text, re.M)
    assert re.search(r"^processes +processes:// +messor-processes 0\.1\.0 ", text, re.M)


@pytest.mark.slow
def test_messor_run_with_an_executor_of_a_broken_plugin_names_the_plugin_and_its_error(
    site: Path, tmp_path: Path
) -> None:
    (tmp_path / "crunch.py").write_text(CRUNCH, encoding="utf-8")
    done = run_messor(
        "run", "crunch:numbers", "--executor", "cluster://head:1", cwd=tmp_path, env=in_site(site)
    )
    assert done.returncode == 2
    assert "executor 'cluster://head:1' (from argument) is not one Messor knows" in done.stderr
    assert "Could not load plugin 'cluster'" in done.stderr
    assert "the cluster client is too old" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_messor_run_executor_async_runs_coroutine_tasks(tmp_path: Path) -> None:
    source = (
        "import asyncio, messor\n"
        "async def wait(n):\n    await asyncio.sleep(0)\n    return n\n"
        "tasks = [messor.task(wait, n) for n in range(20)]\n"
    )
    (tmp_path / "waits.py").write_text(source, encoding="utf-8")
    done = run_messor("run", "waits:tasks", "--executor", "async", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "This run: 20 completed, 0 failed" in done.stdout


@pytest.mark.slow
def test_messor_run_with_an_unknown_executor_is_a_one_line_error_listing_the_installed(
    tmp_path: Path,
) -> None:
    (tmp_path / "crunch.py").write_text(CRUNCH, encoding="utf-8")
    done = run_messor("run", "crunch:numbers", "--executor", "nosuch", cwd=tmp_path)
    assert done.returncode == 2
    assert "executor 'nosuch' (from argument) is not one Messor knows" in done.stderr
    assert "Installed executors: local (local://), async (async://), dask (dask://)" in done.stderr


@pytest.mark.slow
def test_listing_executors_imports_no_dask() -> None:
    code = (
        "import sys; from messor.cli import main; main(['backends', '--json']); "
        "print([m for m in ('dask', 'distributed') if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
