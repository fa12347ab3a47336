"""Fixtures shared by the whole suite."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from messor import InProcessMemory, Memory, SQLiteMemory, open_memory
from tests.redis_server import real_redis
from tests.seed_memory import SeedOnlyMemory


@pytest.fixture(autouse=True)
def isolated_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test runs in its own empty directory, with no memory configured."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MESSOR_MEMORY", raising=False)
    return tmp_path


MEMORY_KINDS = ["sqlite-file", "sqlite-ram", "in-process", "seed-only", "redis-fake", "redis-real"]


def make_memory(kind: str, directory: Path) -> Memory:
    """An empty memory of ``kind`` (Redis ones in a namespace of their own)."""
    if kind == "redis-fake":
        import fakeredis

        from messor_redis import RedisMemory

        client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
        return RedisMemory(client, namespace="test")
    if kind == "redis-real":
        return open_memory(f"{real_redis().url}?namespace={uuid.uuid4().hex}")
    if kind == "sqlite-file":
        return SQLiteMemory(directory / "harvest.db")
    if kind == "sqlite-ram":
        return SQLiteMemory(":memory:")
    if kind == "in-process":
        return InProcessMemory()
    if kind == "seed-only":
        return SeedOnlyMemory()
    raise ValueError(kind)


def opened_memory(kind: str, directory: Path) -> Iterator[Memory]:
    """A fixture body: an empty memory of ``kind``; cleared (shared server) and closed after."""
    memory = make_memory(kind, directory)
    yield memory
    if kind == "redis-real":
        memory.clear()
    memory.close()


@pytest.fixture(params=MEMORY_KINDS)
def any_memory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Memory]:
    """Each memory this repository ships, and one that implements only the seed's methods."""
    yield from opened_memory(request.param, tmp_path)
