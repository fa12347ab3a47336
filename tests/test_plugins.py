"""Loading memory plugins through the ``messor`` entry-point group, and what an unknown one says."""

from __future__ import annotations

import importlib
import json
import logging
import os
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
from messor import plugins
from messor.plugins import Catalog, load_catalog

#: Writes a plugin module from its source and returns an entry point naming it.
PluginWriter = Callable[[str, str], EntryPoint]

GOOD_PLUGIN = """
import messor


class FakeMemory(messor.InProcessMemory):
    def __init__(self, url, options):
        super().__init__()
        self.url = url
        self.options = options


def open_fake(url, **options):
    return FakeMemory(url, options)


@messor.hookimpl
def register_memories(register):
    register("fake", open_fake, schemes=["fakes"], description="a fake memory")
"""

IMPORT_ERROR_PLUGIN = """
raise ImportError("the fake client library is not installed")
"""

RAISING_PLUGIN = """
import messor


@messor.hookimpl
def register_memories(register):
    raise RuntimeError("the plugin broke while registering")
"""

MISSPELT_HOOK_PLUGIN = """
import messor


@messor.hookimpl
def register_memory(register):
    register("misspelt", lambda url, **options: messor.InProcessMemory())
"""

WRONG_ARGUMENT_PLUGIN = """
import messor


@messor.hookimpl
def register_memories(reg):
    reg("wrongarg", lambda url, **options: messor.InProcessMemory())
"""

SQLITE_CLASH_PLUGIN = """
import messor


@messor.hookimpl
def register_memories(register):
    register("sqlite", lambda url, **options: messor.InProcessMemory())
"""


def core_entry_points() -> list[EntryPoint]:
    """The installed entry point of the core's own memories and executors (and of nothing else)."""
    return [ep for ep in entry_points(group="messor") if ep.value == "messor.builtin_plugin"]


#: The directory holding the ``messor`` package under test, for subprocesses to import it too.
MESSOR_ROOT = Path(messor.__file__).resolve().parents[1]


def run_python(code: str, cwd: Path, site: Path | None = None) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter with no memory configured; return the JSON it prints.

    ``site`` (a directory of installed distributions) comes first on its path.
    """
    env = {k: v for k, v in os.environ.items() if k != "MESSOR_MEMORY"}
    path = [str(site)] if site is not None else []
    path += [str(MESSOR_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env["PYTHONPATH"] = os.pathsep.join(path)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


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
    """Load a catalog from the core's installed entry point plus ``fakes``."""
    return load_catalog([*core_entry_points(), *fakes])


def assert_good_plugin_and_builtins_work(catalog: Catalog) -> None:
    assert catalog.find("fake").plugin == "good"
    assert catalog.find("sqlite").plugin == "builtin"
    assert catalog.find("memory").plugin == "builtin"


# -- lazy loading ---------------------------------------------------------------


@pytest.mark.slow
def test_importing_messor_loads_no_plugin(tmp_path: Path) -> None:
    seen = run_python(
        """
        import json, sys
        import messor
        import messor.plugins
        print(json.dumps({
            "builtin_imported": "messor.memories.builtin" in sys.modules,
            "catalog_loaded": messor.plugins._catalog is not None,
        }))
        """,
        cwd=tmp_path,
    )
    assert seen == {"builtin_imported": False, "catalog_loaded": False}


@pytest.mark.slow
def test_first_open_memory_loads_the_plugins(tmp_path: Path) -> None:
    seen = run_python(
        """
        import json, sys
        import messor
        import messor.plugins
        memory = messor.open_memory("memory://")
        print(json.dumps({
            "builtin_imported": "messor.memories.builtin" in sys.modules,
            "catalog_loaded": messor.plugins._catalog is not None,
        }))
        """,
        cwd=tmp_path,
    )
    assert seen == {"builtin_imported": True, "catalog_loaded": True}


# -- the built-in memories ------------------------------------------------------


def test_the_messor_distribution_declares_the_builtin_plugin_entry_point() -> None:
    assert [(ep.name, ep.dist.name if ep.dist else None) for ep in core_entry_points()] == [
        ("builtin", "messor")
    ]


@pytest.mark.parametrize("name", ["sqlite", "memory"])
def test_builtin_memories_are_registered_through_the_installed_entry_point(name: str) -> None:
    backend = load_catalog().find(name)
    assert (backend.plugin, backend.distribution) == ("builtin", "messor")
    assert backend.version == messor.__version__


# -- third-party plugins, with fake entry points --------------------------------


def test_a_plugin_memory_is_found_by_its_name(write_plugin: PluginWriter) -> None:
    catalog = load_with(write_plugin("good", GOOD_PLUGIN))
    backend = catalog.find("fake")
    assert (backend.name, backend.plugin) == ("fake", "good")


@pytest.mark.parametrize("scheme", ["fake", "fakes", "FAKES"])
def test_a_plugin_memory_is_found_by_each_of_its_url_schemes(
    write_plugin: PluginWriter, scheme: str
) -> None:
    catalog = load_with(write_plugin("good", GOOD_PLUGIN))
    assert catalog.find(scheme).name == "fake"


def test_open_memory_passes_the_parsed_url_and_options_to_the_plugin_factory(
    write_plugin: PluginWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plugins, "_catalog", load_with(write_plugin("good", GOOD_PLUGIN)))
    memory: Any = messor.open_memory("fakes://host/place", colour="red")
    assert type(memory).__name__ == "FakeMemory"
    assert (memory.url.scheme, memory.url.host, memory.url.path) == ("fakes", "host", "/place")
    assert memory.options == {"colour": "red"}


def test_open_memory_by_bare_name_gives_the_plugin_factory_no_url(
    write_plugin: PluginWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plugins, "_catalog", load_with(write_plugin("good", GOOD_PLUGIN)))
    memory: Any = messor.open_memory("fake", path="somewhere")
    assert (memory.url, memory.options) == (None, {"path": "somewhere"})


def test_a_plugin_that_fails_to_import_is_recorded_and_the_others_keep_working(
    write_plugin: PluginWriter,
) -> None:
    catalog = load_with(
        write_plugin("good", GOOD_PLUGIN), write_plugin("noimport", IMPORT_ERROR_PLUGIN)
    )
    [failure] = catalog.failures
    assert failure.plugin == "noimport"
    assert failure.error == "ImportError: the fake client library is not installed"
    assert_good_plugin_and_builtins_work(catalog)


def test_a_plugin_whose_register_memories_raises_is_recorded_and_the_others_keep_working(
    write_plugin: PluginWriter,
) -> None:
    catalog = load_with(write_plugin("good", GOOD_PLUGIN), write_plugin("raising", RAISING_PLUGIN))
    [failure] = catalog.failures
    assert failure.plugin == "raising"
    assert failure.error == "RuntimeError: the plugin broke while registering"
    assert_good_plugin_and_builtins_work(catalog)


def test_a_plugin_with_a_misspelt_hook_is_recorded_and_the_others_keep_working(
    write_plugin: PluginWriter,
) -> None:
    catalog = load_with(
        write_plugin("good", GOOD_PLUGIN), write_plugin("misspelt", MISSPELT_HOOK_PLUGIN)
    )
    [failure] = catalog.failures
    assert failure.plugin == "misspelt"
    assert "no hook this Messor knows (register_memory)" in failure.error
    assert "register_memories" in failure.error
    assert "misspelt" not in catalog.backends
    assert_good_plugin_and_builtins_work(catalog)


def test_a_plugin_with_hooks_of_a_newer_messor_still_offers_its_memories(
    write_plugin: PluginWriter,
) -> None:
    entry_point = write_plugin(
        "newer",
        """
        import messor

        @messor.hookimpl
        def register_memories(register):
            register("newer", lambda url, **options: messor.InProcessMemory())

        @messor.hookimpl
        def register_schedules(register):
            raise AssertionError("this Messor has no such hook and must not call it")
        """,
    )
    catalog = load_with(entry_point)
    assert catalog.failures == []
    assert "newer" in catalog.backends


def test_a_plugin_whose_hook_has_a_wrong_argument_name_is_recorded_and_the_others_keep_working(
    write_plugin: PluginWriter,
) -> None:
    catalog = load_with(
        write_plugin("good", GOOD_PLUGIN), write_plugin("wrongarg", WRONG_ARGUMENT_PLUGIN)
    )
    [failure] = catalog.failures
    assert failure.plugin == "wrongarg"
    assert "PluginValidationError" in failure.error
    assert "reg" in failure.error
    assert "wrongarg" not in catalog.backends
    assert_good_plugin_and_builtins_work(catalog)


def test_a_plugin_memory_named_sqlite_is_refused_and_the_builtin_sqlite_stays(
    write_plugin: PluginWriter,
) -> None:
    catalog = load_with(
        write_plugin("good", GOOD_PLUGIN), write_plugin("clash", SQLITE_CLASH_PLUGIN)
    )
    [failure] = catalog.failures
    assert failure.plugin == "clash"
    assert failure.error.startswith("ValueError: memory 'sqlite'")
    assert "of plugin 'clash' clashes with memory 'sqlite' of messor" in failure.error
    assert_good_plugin_and_builtins_work(catalog)


def test_two_plugins_offering_one_name_make_it_refused_naming_both(
    write_plugin: PluginWriter,
) -> None:
    second = GOOD_PLUGIN.replace('schemes=["fakes"]', 'schemes=["fakes2"]')
    catalog = load_with(write_plugin("good", GOOD_PLUGIN), write_plugin("twin", second))
    [failure] = catalog.failures
    assert failure.plugin == "twin"
    # Which of the two a user gets must not depend on the order of installation.
    with pytest.raises(messor.ConfigurationError, match=r"plugin 'twin'.*plugin 'good'"):
        catalog.find("fake")
    assert catalog.find("fakes").plugin == "good"  # a scheme only one of them offers
    assert catalog.find("sqlite").plugin == "builtin"


def test_a_plugin_that_fails_to_load_is_logged_as_a_warning_naming_it(
    write_plugin: PluginWriter, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="messor"):
        load_with(write_plugin("noimport", IMPORT_ERROR_PLUGIN))
    [record] = [r for r in caplog.records if r.name == "messor.plugins"]
    assert record.levelno == logging.WARNING
    assert "'noimport'" in record.getMessage()
    assert "ImportError: the fake client library is not installed" in record.getMessage()


def test_the_unknown_backend_error_names_each_plugin_that_failed_to_load(
    write_plugin: PluginWriter,
) -> None:
    catalog = load_with(write_plugin("noimport", IMPORT_ERROR_PLUGIN))
    with pytest.raises(messor.UnknownBackendError) as raised:
        catalog.find("fake")
    assert "Could not load plugin 'noimport'" in str(raised.value)
    assert "ImportError: the fake client library is not installed" in str(raised.value)


# -- the real entry-point path: an installed distribution -----------------------

FAKEPLUG_MODULE = """
import messor


class FakeMemory(messor.InProcessMemory):
    pass


def open_fake(url, **options):
    return FakeMemory()


@messor.hookimpl
def register_memories(register):
    register("fake", open_fake, description="an installed fake memory")
"""

FAKEPLUG_ENTRY_POINTS = """
[messor]
fake = fakeplug.plugin
broken = fakeplug_missing.plugin
"""

FAKEPLUG_RUN = """
import json, os
import messor
import messor.plugins

seen = {}
fake = messor.open_memory("fake://")
seen["fake_type"] = f"{type(fake).__module__}.{type(fake).__qualname__}"
seen["fake_is_memory"] = isinstance(fake, messor.InProcessMemory)
backend = messor.plugins.get_catalog().find("fake")
seen["fake_origin"] = [backend.plugin, backend.distribution, backend.version]
with messor.open_memory("sqlite:///x.db") as sqlite:
    sqlite.store_tasks([("t1", {})])
    seen["sqlite"] = [type(sqlite).__name__, sqlite.get_pending_tasks()]
seen["sqlite_file_exists"] = os.path.isfile("x.db")
try:
    messor.open_memory("nosuch")
except messor.UnknownBackendError as exc:
    seen["unknown_error"] = str(exc)
print(json.dumps(seen))
"""


@pytest.fixture(scope="module")
def installed_fakeplug_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run a harvest script in a fresh interpreter that has ``fakeplug`` 1.0 installed."""
    site = tmp_path_factory.mktemp("site")
    package = site / "fakeplug"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "plugin.py").write_text(FAKEPLUG_MODULE, encoding="utf-8")
    dist_info = site / "fakeplug-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fakeplug\nVersion: 1.0\n", encoding="utf-8"
    )
    (dist_info / "entry_points.txt").write_text(FAKEPLUG_ENTRY_POINTS, encoding="utf-8")
    return run_python(FAKEPLUG_RUN, cwd=tmp_path_factory.mktemp("work"), site=site)


@pytest.mark.slow
def test_an_installed_plugin_memory_opens_by_its_url(
    installed_fakeplug_run: dict[str, Any],
) -> None:
    assert installed_fakeplug_run["fake_type"] == "fakeplug.plugin.FakeMemory"
    assert installed_fakeplug_run["fake_is_memory"] is True


@pytest.mark.slow
def test_an_installed_plugin_memory_records_its_distribution_and_version(
    installed_fakeplug_run: dict[str, Any],
) -> None:
    assert installed_fakeplug_run["fake_origin"] == ["fake", "fakeplug", "1.0"]


@pytest.mark.slow
def test_the_sqlite_memory_still_opens_when_an_installed_plugin_is_broken(
    installed_fakeplug_run: dict[str, Any],
) -> None:
    assert installed_fakeplug_run["sqlite"] == ["SQLiteMemory", ["t1"]]
    assert installed_fakeplug_run["sqlite_file_exists"] is True


@pytest.mark.slow
def test_an_unknown_backend_error_names_the_broken_installed_plugin_and_its_error(
    installed_fakeplug_run: dict[str, Any],
) -> None:
    message = installed_fakeplug_run["unknown_error"]
    assert "Could not load plugin 'broken' (fakeplug_missing.plugin from fakeplug 1.0)" in message
    assert "ModuleNotFoundError: No module named 'fakeplug_missing'" in message


# -- unknown backends -----------------------------------------------------------


@pytest.fixture
def core_only(monkeypatch: pytest.MonkeyPatch) -> Catalog:
    """Make open_memory see only the core's memories, as if no extra were installed."""
    catalog = load_catalog(core_entry_points())
    monkeypatch.setattr(plugins, "_catalog", catalog)
    return catalog


@pytest.mark.usefixtures("core_only")
def test_an_unknown_backend_raises_unknown_backend_error_which_is_a_lookup_error() -> None:
    with pytest.raises(LookupError) as raised:
        messor.open_memory("nosuch")
    assert isinstance(raised.value, messor.UnknownBackendError)
    assert "No memory backend named 'nosuch'" in str(raised.value)


@pytest.mark.usefixtures("core_only")
def test_an_unknown_backend_error_lists_the_installed_backends() -> None:
    with pytest.raises(messor.UnknownBackendError) as raised:
        messor.open_memory("nosuch://somewhere")
    assert "Installed backends: sqlite (sqlite://), memory (memory://)." in str(raised.value)


@pytest.mark.usefixtures("core_only")
def test_an_unknown_backend_error_suggests_a_close_match() -> None:
    with pytest.raises(messor.UnknownBackendError) as raised:
        messor.open_memory("sqlte")
    assert "Did you mean 'sqlite'?" in str(raised.value)


@pytest.mark.usefixtures("core_only")
@pytest.mark.parametrize(
    "spec",
    ["redis", "rediss", "unix", "redis://localhost:6379/0", "rediss://h/0", "unix:///tmp/r.sock"],
)
def test_a_missing_redis_memory_says_to_install_the_redis_extra(spec: str) -> None:
    with pytest.raises(messor.UnknownBackendError) as raised:
        messor.open_memory(spec)
    assert "pip install 'messor[redis]'" in str(raised.value)


@pytest.mark.usefixtures("core_only")
@pytest.mark.parametrize("spec", ["s3", "s3://bucket/prefix"])
def test_a_missing_s3_memory_says_to_install_the_s3_extra(spec: str) -> None:
    with pytest.raises(messor.UnknownBackendError) as raised:
        messor.open_memory(spec)
    assert "pip install 'messor[s3]'" in str(raised.value)


@pytest.mark.usefixtures("core_only")
def test_an_unknown_backend_error_names_the_environment_variable_it_came_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MESSOR_MEMORY", "nosuch://somewhere")
    with pytest.raises(messor.UnknownBackendError) as raised:
        messor.open_memory()
    assert "(from environment variable MESSOR_MEMORY)" in str(raised.value)


@pytest.mark.usefixtures("core_only")
def test_an_unknown_backend_error_names_the_config_file_it_came_from(tmp_path: Path) -> None:
    (tmp_path / "messor.toml").write_text('memory = "nosuch://somewhere"\n', encoding="utf-8")
    with pytest.raises(messor.UnknownBackendError) as raised:
        messor.open_memory()
    assert "(from messor.toml)" in str(raised.value)


def test_a_memory_name_that_cannot_be_a_url_scheme_is_refused_at_registration(
    write_plugin: PluginWriter,
) -> None:
    entry_point = write_plugin(
        "underscore",
        """
        import messor

        @messor.hookimpl
        def register_memories(register):
            register("my_store", lambda url, **options: messor.InProcessMemory())
        """,
    )
    catalog = load_with(entry_point)
    assert "my_store" not in catalog.backends
    [failure] = catalog.failures
    assert "'my_store'" in failure.error
    assert "URL scheme" in failure.error
