"""The contract suite of ``messor.testing`` on every memory the core ships."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from messor import Memory
from messor.testing import MemoryContract
from tests.conftest import opened_memory


class TestSQLiteFile(MemoryContract):
    @pytest.fixture
    def memory(self, tmp_path: Path) -> Iterator[Memory]:
        yield from opened_memory("sqlite-file", tmp_path)


class TestSQLiteInRAM(MemoryContract):
    @pytest.fixture
    def memory(self, tmp_path: Path) -> Iterator[Memory]:
        yield from opened_memory("sqlite-ram", tmp_path)


class TestInProcess(MemoryContract):
    @pytest.fixture
    def memory(self, tmp_path: Path) -> Iterator[Memory]:
        yield from opened_memory("in-process", tmp_path)


class TestSeedOnlyMemoryUsesTheBaseClassDefaults(MemoryContract):
    @pytest.fixture
    def memory(self, tmp_path: Path) -> Iterator[Memory]:
        yield from opened_memory("seed-only", tmp_path)


class TestPrimitivesOnlyMemoryGetsEveryOtherMethodFromTheBaseClass(MemoryContract):
    @pytest.fixture
    def memory(self, tmp_path: Path) -> Iterator[Memory]:
        yield from opened_memory("primitives-only", tmp_path)


class TestRedisOnFakeRedis(MemoryContract):
    @pytest.fixture
    def memory(self, tmp_path: Path) -> Iterator[Memory]:
        yield from opened_memory("redis-fake", tmp_path)


class TestRedisOnARealServer(MemoryContract):
    @pytest.fixture
    def memory(self, tmp_path: Path) -> Iterator[Memory]:
        yield from opened_memory("redis-real", tmp_path)


class TestS3OnMotoInProcess(MemoryContract):
    @pytest.fixture
    def memory(self, tmp_path: Path) -> Iterator[Memory]:
        yield from opened_memory("s3-mock", tmp_path)


class TestS3OnMotoServer(MemoryContract):
    @pytest.fixture
    def memory(self, tmp_path: Path) -> Iterator[Memory]:
        yield from opened_memory("s3-server", tmp_path)
