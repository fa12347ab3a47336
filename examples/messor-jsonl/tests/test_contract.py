"""messor-jsonl passes the contract every Messor memory passes."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from messor.testing import MemoryContract

from messor_jsonl import JSONLMemory


class TestJSONLMemory(MemoryContract):
    @pytest.fixture
    def memory(self, tmp_path: Path) -> Iterator[JSONLMemory]:
        memory = JSONLMemory(tmp_path / "tasks.jsonl")
        yield memory
        memory.close()
