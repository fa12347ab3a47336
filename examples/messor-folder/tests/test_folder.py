"""messor-folder passes the contract every Messor memory passes."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from messor.testing import MemoryContract

from messor_folder.memory import FolderMemory


class TestFolderMemory(MemoryContract):
    @pytest.fixture
    def memory(self, tmp_path: Path) -> Iterator[FolderMemory]:
        memory = FolderMemory(tmp_path / "harvest")
        yield memory
        memory.close()
