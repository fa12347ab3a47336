"""The contract every Messor memory passes, for backend authors to run against theirs.

Subclass :class:`MemoryContract` in a test module and give it one fixture,
``memory``, that yields an empty memory::

    import pytest
    from messor.testing import MemoryContract

    class TestMyMemory(MemoryContract):
        @pytest.fixture
        def memory(self, tmp_path):
            m = MyMemory(tmp_path / "store")
            yield m
            m.close()

Order is not part of the contract: listings are compared as sets.

Every test of the class then runs against that memory. It is made of parts,
one per concern, each a class of its own to run alone (``class
TestMyMemoryBasics(BasicsContract)``, same fixture) while a memory is being
written:

* :class:`BasicsContract`: the seed's ten methods;
* :class:`PrimitivesContract`: insert, update (its rules), lookup, scan,
  delete, and the updates built on them, ``record_outcomes`` and ``reset_tasks``;
* :class:`RecordsContract`: JSON round trips, odd task ids, many records;
* :class:`ConcurrencyContract`: many threads at once, resets racing a harvest;
* :class:`ClaimsContract`, :class:`TimesContract`, :class:`LimitsContract`:
  what the memory declares it does (``claims_runs`` and ``multi_writer``,
  ``keeps_times``, ``max_result_bytes``), and that it does it. A test of a
  capability the memory does not declare is skipped, with the reason;
* :class:`HarvestsContract`: harvests run by the executor on the memory.

Needs pytest.
"""

from __future__ import annotations

from messor.testing.basics import BasicsContract
from messor.testing.claims import ClaimsContract
from messor.testing.common import JSON_VALUES, ODD_TASK_IDS
from messor.testing.concurrency import ConcurrencyContract
from messor.testing.harvests import HarvestsContract
from messor.testing.limits import LimitsContract
from messor.testing.primitives import PrimitivesContract
from messor.testing.records import RecordsContract
from messor.testing.times import TimesContract

__all__ = [
    "JSON_VALUES",
    "ODD_TASK_IDS",
    "BasicsContract",
    "ClaimsContract",
    "ConcurrencyContract",
    "HarvestsContract",
    "LimitsContract",
    "MemoryContract",
    "PrimitivesContract",
    "RecordsContract",
    "TimesContract",
]


class MemoryContract(
    BasicsContract,
    PrimitivesContract,
    RecordsContract,
    ConcurrencyContract,
    ClaimsContract,
    TimesContract,
    LimitsContract,
    HarvestsContract,
):
    """Tests every Messor memory passes. Subclass it and provide a ``memory`` fixture."""
