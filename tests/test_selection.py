"""Choosing a memory: ``messor.open_memory`` specs, configuration files and secrets in URLs."""

from __future__ import annotations

import logging
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import messor
from messor import (
    ConfigurationError,
    FunctionTask,
    InProcessMemory,
    LocalThreadedExecutor,
    Memory,
    MemoryURL,
    SQLiteMemory,
    UnknownBackendError,
)
from messor.selection import choose_memory

SECRET = "hunter2"


def open_sqlite(spec: str | None = None, **options: Any) -> SQLiteMemory:
    """``open_memory(spec, **options)``, checked to be a SQLite memory, closed by the caller."""
    memory = messor.open_memory(spec, **options)
    assert isinstance(memory, SQLiteMemory), memory
    return memory


def opened_path(spec: str | None = None, **options: Any) -> str:
    """The SQLite file ``open_memory(spec, **options)`` opens (the memory is closed again)."""
    with closing(open_sqlite(spec, **options)) as memory:
        return memory.path


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


# -- specs ----------------------------------------------------------------------


def test_sqlite_url_with_three_slashes_opens_a_file_relative_to_the_working_directory(
    tmp_path: Path,
) -> None:
    with closing(open_sqlite("sqlite:///rel.db")) as memory:
        memory.store_tasks([("t1", {})])
    assert (tmp_path / "rel.db").is_file()
    with SQLiteMemory(tmp_path / "rel.db") as reopened:
        assert reopened.get_pending_tasks() == ["t1"]


def test_sqlite_url_with_four_slashes_opens_an_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "elsewhere" / "abs.db"
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert target.is_absolute()
    with closing(open_sqlite(f"sqlite:///{target}")) as memory:
        assert memory.path == str(target)
    assert target.is_file()
    assert list(work.iterdir()) == []


def test_sqlite_url_of_memory_opens_an_in_ram_database(tmp_path: Path) -> None:
    with closing(open_sqlite("sqlite:///:memory:")) as memory:
        assert memory.path == ":memory:"
        memory.store_tasks([("t1", {})])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("spec", ["sqlite://", "sqlite:///"])
def test_a_sqlite_url_without_a_file_is_refused_rather_than_kept_in_ram(spec: str) -> None:
    # a forgotten file name must not silently lose every result at exit
    with pytest.raises(ConfigurationError, match=r"sqlite:///:memory:"):
        messor.open_memory(spec)


@pytest.mark.parametrize("spec", ["redis:pw-SECRET@cache:6379/0", "rediss:/u:pw-SECRET@c/0"])
def test_a_url_missing_its_slashes_is_refused_not_taken_for_a_file(
    spec: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigurationError, match="//") as raised:
        messor.open_memory(spec)
    assert "SECRET" not in str(raised.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("spec", "meant"),
    [
        ("redis//host:6379/0", "redis://host:6379/0"),  # the colon missing
        ("redis:/host", "redis://host"),  # a slash missing
        ("s3:/bucket/harvests", "s3://bucket/harvests"),
        ("sqlite//x.db", "sqlite:///x.db"),  # a file, relative: three slashes
        ("sqlite:/x.db", "sqlite:///x.db"),
        ("sqlite////var/x.db", "sqlite:////var/x.db"),  # absolute: four
        ("unix:/run/redis.sock", "unix:///run/redis.sock"),
        ("REDIS//cache/0", "redis://cache/0"),  # schemes are case-insensitive
        ("reddis//host/0", "redis://host/0"),  # a typo in the scheme too
        (f"rediss//:{SECRET}@cache/0", "rediss://:***@cache/0"),  # the password hidden
    ],
)
def test_a_mistyped_url_is_refused_naming_the_url_it_likely_meant(
    spec: str, meant: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        messor.open_memory(spec)
    assert f"did you mean {meant!r}?" in str(raised.value)
    assert SECRET not in str(raised.value)
    assert list(tmp_path.iterdir()) == []  # no SQLite file ./redis/host:6379/0


def test_a_doubled_slash_after_a_word_that_names_no_memory_is_refused_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"missing the ':'.*single slashes"):
        messor.open_memory("data//harvest.db")
    assert list(tmp_path.iterdir()) == []


def test_a_url_with_a_typo_in_a_known_scheme_suggests_it() -> None:
    with pytest.raises(UnknownBackendError, match="Did you mean 'redis'"):
        messor.open_memory("reddis://host:6379/0")


@pytest.mark.parametrize(("spec", "backend"), [("Redis://host/0", "redis"), ("S3://b/p", "s3")])
def test_a_url_scheme_is_case_insensitive(spec: str, backend: str) -> None:
    assert choose_memory(spec).backend.name == backend
    assert opened_path("SQLite:///harvest.db") == "harvest.db"


def test_a_plain_relative_path_opens_a_file_and_reports_each_directory_it_creates(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="messor"):
        assert opened_path("data/2024/harvest.db") == "data/2024/harvest.db"
        assert opened_path("data/2024/again.db") == "data/2024/again.db"
    assert (tmp_path / "data" / "2024" / "harvest.db").is_file()
    [created] = [r.getMessage() for r in caplog.records if "directo" in r.getMessage()]
    assert created == (
        "Created the directories data, data/2024 for the SQLite file data/2024/harvest.db"
    )


def test_a_token_given_as_user_name_is_hidden() -> None:
    url = MemoryURL("https://TOKEN-SECRET@store.example/bucket")
    assert "SECRET" not in repr(url)
    assert "SECRET" not in str(url)


@pytest.mark.parametrize("key", ["api_key", "apikey", "X-Amz-Signature", "passwd", "auth"])
def test_secret_looking_query_values_are_hidden(key: str) -> None:
    url = MemoryURL(f"s3://bucket/prefix?region=eu-west-1&{key}=SECRET")
    assert "SECRET" not in repr(url)
    assert "region=eu-west-1" in str(url)
    assert url.query[key] == "SECRET"


def test_a_memory_url_does_not_expose_its_secret_through_its_attributes() -> None:
    url = MemoryURL("redis://u:SECRET@h/0")
    assert not hasattr(url, "__dict__")
    assert all("SECRET" not in repr(getattr(url, name)) for name in ("scheme", "host", "path"))


def test_memory_url_opens_an_in_process_memory() -> None:
    assert isinstance(messor.open_memory("memory://"), InProcessMemory)


def test_each_memory_url_opens_a_new_independent_memory() -> None:
    first = messor.open_memory("memory://")
    second = messor.open_memory("memory://")
    first.store_tasks([("t1", {})])
    assert first.get_pending_tasks() == ["t1"]
    assert second.get_pending_tasks() == []


def test_bare_name_sqlite_opens_the_file_given_as_path_option(tmp_path: Path) -> None:
    assert opened_path("sqlite", path="harvest.db") == "harvest.db"
    assert (tmp_path / "harvest.db").is_file()


def test_bare_name_sqlite_without_path_opens_messor_db_in_the_working_directory(
    tmp_path: Path,
) -> None:
    assert opened_path("sqlite") == "messor.db"
    assert (tmp_path / "messor.db").is_file()


def test_bare_name_memory_opens_an_in_process_memory() -> None:
    assert isinstance(messor.open_memory("memory"), InProcessMemory)


@pytest.mark.parametrize("spec", ["harvest.db", "data/run.sqlite"])
def test_a_path_to_a_sqlite_file_opens_that_file(spec: str, tmp_path: Path) -> None:
    assert opened_path(spec) == spec
    assert (tmp_path / spec).is_file()


# -- where the spec comes from when none is given --------------------------------


def test_without_spec_or_configuration_messor_db_in_the_working_directory_is_used(
    tmp_path: Path,
) -> None:
    assert opened_path() == "messor.db"
    assert (tmp_path / "messor.db").is_file()


def test_environment_variable_wins_over_messor_toml_and_pyproject(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MESSOR_MEMORY", "sqlite:///from_env.db")
    write(tmp_path / "messor.toml", 'memory = "sqlite:///from_messor_toml.db"\n')
    write(tmp_path / "pyproject.toml", '[tool.messor]\nmemory = "sqlite:///from_pyproject.db"\n')
    assert opened_path() == "from_env.db"


def test_messor_toml_wins_over_pyproject(tmp_path: Path) -> None:
    write(tmp_path / "messor.toml", 'memory = "sqlite:///from_messor_toml.db"\n')
    write(tmp_path / "pyproject.toml", '[tool.messor]\nmemory = "sqlite:///from_pyproject.db"\n')
    assert opened_path() == "from_messor_toml.db"


def test_pyproject_tool_messor_memory_wins_over_the_default(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[tool.messor]\nmemory = "sqlite:///from_pyproject.db"\n')
    assert opened_path() == "from_pyproject.db"
    assert not (tmp_path / "messor.db").exists()


def test_messor_toml_without_memory_key_falls_through_to_pyproject(tmp_path: Path) -> None:
    write(tmp_path / "messor.toml", "[something_else]\nkey = 1\n")
    write(tmp_path / "pyproject.toml", '[tool.messor]\nmemory = "sqlite:///from_pyproject.db"\n')
    assert opened_path() == "from_pyproject.db"


def test_pyproject_without_tool_messor_falls_through_to_the_default(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[project]\nname = "harvest"\n')
    assert opened_path() == "messor.db"


def test_an_empty_environment_variable_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MESSOR_MEMORY", "  ")
    write(tmp_path / "messor.toml", 'memory = "sqlite:///from_messor_toml.db"\n')
    assert opened_path() == "from_messor_toml.db"


# -- configuration errors ---------------------------------------------------------


def test_invalid_toml_in_messor_toml_raises_configuration_error_naming_the_file(
    tmp_path: Path,
) -> None:
    write(tmp_path / "messor.toml", 'memory = "sqlite:///x.db\n')
    with pytest.raises(ConfigurationError) as raised:
        messor.open_memory()
    assert str(tmp_path / "messor.toml") in str(raised.value)


def test_invalid_toml_in_pyproject_raises_configuration_error_naming_the_file(
    tmp_path: Path,
) -> None:
    write(tmp_path / "pyproject.toml", "[tool.messor\n")
    with pytest.raises(ConfigurationError) as raised:
        messor.open_memory()
    assert str(tmp_path / "pyproject.toml") in str(raised.value)


def test_a_non_string_memory_in_messor_toml_raises_configuration_error_naming_the_file(
    tmp_path: Path,
) -> None:
    write(tmp_path / "messor.toml", "memory = 5\n")
    with pytest.raises(ConfigurationError) as raised:
        messor.open_memory()
    assert "messor.toml" in str(raised.value)
    assert "got 5" in str(raised.value)


def test_a_configuration_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="colour"):
        messor.open_memory("sqlite", colour="red")


def test_an_unknown_option_raises_configuration_error_naming_the_option() -> None:
    with pytest.raises(ConfigurationError) as raised:
        messor.open_memory("sqlite", colour="red")
    assert "colour" in str(raised.value)
    assert "'sqlite'" in str(raised.value)


def test_an_unknown_option_is_refused_before_any_file_is_created(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        messor.open_memory("sqlite:///x.db", colour="red")
    assert list(tmp_path.iterdir()) == []


def test_a_sqlite_url_with_a_host_raises_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="names a host"):
        messor.open_memory("sqlite://host/x.db")
    assert list(tmp_path.iterdir()) == []


def test_a_sqlite_url_with_query_options_raises_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="timeout"):
        messor.open_memory("sqlite:///x.db?timeout=5")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("spec", [5, b"sqlite:///x.db", ["memory://"]])
def test_a_spec_that_is_not_a_string_raises_configuration_error(spec: Any) -> None:
    with pytest.raises(ConfigurationError, match=type(spec).__name__):
        messor.open_memory(spec)


# -- secrets in URLs ----------------------------------------------------------------


def test_memory_url_str_and_repr_hide_the_password() -> None:
    url = MemoryURL.parse(f"redis://user:{SECRET}@host:6379/0")
    for shown in (str(url), repr(url), f"{url}", f"{url!r}"):
        assert SECRET not in shown
        assert "***" in shown
    assert str(url) == "redis://user:***@host:6379/0"


def test_memory_url_still_gives_the_password_to_the_client_library() -> None:
    text = f"redis://user:{SECRET}@host:6379/0"
    url = MemoryURL.parse(text)
    assert url.password == SECRET
    assert url.unredacted() == text
    assert (url.username, url.host, url.port, url.path) == ("user", "host", 6379, "/0")


def test_memory_url_hides_a_password_given_as_query_option() -> None:
    url = MemoryURL.parse(f"redis://host:6379/0?password={SECRET}&db=1")
    for shown in (str(url), repr(url)):
        assert SECRET not in shown
        assert "password=***" in shown
        assert "db=1" in shown
    assert url.query["password"] == SECRET


def test_the_unknown_backend_error_of_a_url_with_a_password_does_not_show_it() -> None:
    with pytest.raises(messor.UnknownBackendError) as raised:
        messor.open_memory(f"nosuch://u:{SECRET}@h/0")
    assert "'nosuch'" in str(raised.value)
    assert SECRET not in str(raised.value)


def test_the_bad_port_error_of_a_url_with_a_password_does_not_show_it() -> None:
    with pytest.raises(ConfigurationError) as raised:
        messor.open_memory(f"redis://:{SECRET}@h:notaport/0")
    assert "port" in str(raised.value)
    assert SECRET not in str(raised.value)


def test_the_host_error_of_a_sqlite_url_with_a_password_does_not_show_it() -> None:
    with pytest.raises(ConfigurationError) as raised:
        messor.open_memory(f"sqlite://u:{SECRET}@host/x.db")
    assert "names a host" in str(raised.value)
    assert SECRET not in str(raised.value)


# -- the executor's memory= -----------------------------------------------------------


def test_executor_records_in_the_memory_a_spec_string_names(tmp_path: Path) -> None:
    executor = LocalThreadedExecutor(
        [FunctionTask("t1", lambda: 42)], memory="sqlite:///x.db", progress=False
    )
    memory = executor.memory
    assert isinstance(memory, SQLiteMemory)
    assert memory.path == "x.db"
    executor.run()
    memory.close()
    with SQLiteMemory(tmp_path / "x.db") as reopened:
        assert reopened.get_task_result("t1") == 42


def test_executor_without_memory_uses_the_configured_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESSOR_MEMORY", "memory://")
    executor = LocalThreadedExecutor([], memory=None)
    assert isinstance(executor.memory, InProcessMemory)


def test_executor_without_memory_or_configuration_uses_messor_db(tmp_path: Path) -> None:
    executor = LocalThreadedExecutor([])
    memory: Memory = executor.memory
    assert isinstance(memory, SQLiteMemory)
    memory.close()
    assert memory.path == "messor.db"
    assert (tmp_path / "messor.db").is_file()


# -- malformed URLs ----------------------------------------------------------------------


@pytest.mark.parametrize("spec", [f"my_redis://:{SECRET}@h/0", f"://:{SECRET}@h/0"])
def test_the_error_for_a_url_without_a_valid_scheme_does_not_show_the_password(
    spec: str,
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        messor.open_memory(spec)
    assert SECRET not in str(raised.value)


@pytest.mark.parametrize("password", ["hun#ter2", "hun?ter2", "hun/ter2"])
def test_a_password_with_an_unencoded_delimiter_is_not_shown(password: str) -> None:
    text = f"redis://:{password}@host:6379/0"
    try:
        shown = repr(MemoryURL.parse(text))
    except ConfigurationError as exc:
        shown = str(exc)
    assert "ter2" not in shown


def test_a_malformed_ipv6_host_raises_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        messor.open_memory("redis://[::1/0")
