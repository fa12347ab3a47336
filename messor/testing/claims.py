"""Keeping runs apart: what ``claim_run`` does, as the memory declares it.

A memory that ``claims_runs`` refuses a second run while one holds it; one
that is ``multi_writer`` lets several runs write at once; one that is neither
leaves keeping runs apart to its user.
"""

from __future__ import annotations

import pytest

from messor.errors import RunInProgressError
from messor.memories.base import Memory
from messor.memories.claims import RunOwner, release_nothing
from messor.testing.common import ContractPart

__all__ = ["ClaimsContract"]


class ClaimsContract(ContractPart):
    """``claim_run`` and the capabilities ``claims_runs`` and ``multi_writer``."""

    def test_claims_runs_says_whether_claim_run_claims(self, memory: Memory) -> None:
        release = memory.claim_run(RunOwner())
        try:
            assert (release is not release_nothing) == memory.claims_runs
            assert not (memory.claims_runs and memory.multi_writer)  # one or the other
        finally:
            release()

    def test_a_claimed_memory_refuses_a_second_claim_naming_the_first(self, memory: Memory) -> None:
        if not memory.claims_runs:
            pytest.skip(f"{type(memory).__name__} does not keep runs apart (claims_runs is False)")
        first = RunOwner()
        release = memory.claim_run(first)
        try:
            with pytest.raises(RunInProgressError, match=f"process {first.pid} on"):
                memory.claim_run(RunOwner())
        finally:
            release()
        release_again = memory.claim_run(RunOwner())  # free once released
        release_again()
        release_again()  # a second release is harmless

    def test_a_multi_writer_memory_lets_a_second_run_in(self, memory: Memory) -> None:
        if not memory.multi_writer:
            pytest.skip(f"{type(memory).__name__} takes one writer (multi_writer is False)")
        first, second = memory.claim_run(RunOwner()), memory.claim_run(RunOwner())
        first()
        second()
