"""The contract suite of ``messor.testing`` on every memory the core ships."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from messor import Memory
from messor.testing import MemoryContract
from tests.conftest import make_memory


def _opened(kind: str, directory: Path) -> Iterator[Memory]:
    memory = make_memory(kind, directory)
    yield memory
    memory.close()


class TestSQLiteFile(MemoryContract):
    @pytest.fixture
    def memory(self, tmp_path: Path) -> Iterator[Memory]:
        yield from _opened("sqlite-file", tmp_path)


class TestSQLiteInRAM(MemoryContract):
    @pytest.fixture
    def memory(self, tmp_path: Path) -> Iterator[Memory]:
        yield from _opened("sqlite-ram", tmp_path)


class TestInProcess(MemoryContract):
    @pytest.fixture
    def memory(self, tmp_path: Path) -> Iterator[Memory]:
        yield from _opened("in-process", tmp_path)


class TestSeedOnlyMemoryUsesTheBaseClassDefaults(MemoryContract):
    @pytest.fixture
    def memory(self, tmp_path: Path) -> Iterator[Memory]:
        yield from _opened("seed-only", tmp_path)


class TestRedisOnFakeRedis(MemoryContract):
    @pytest.fixture
    def memory(self, tmp_path: Path) -> Iterator[Memory]:
        yield from _opened("redis-fake", tmp_path)


class TestRedisOnARealServer(MemoryContract):
    @pytest.fixture
    def memory(self, tmp_path: Path) -> Iterator[Memory]:
        memory = make_memory("redis-real", tmp_path)
        yield memory
        memory.clear()
        memory.close()
