"""A harvest killed with SIGKILL at any instant loses nothing recorded, redoes nothing recorded.

The campaign (tests/crash_campaign.py) kills a harvest in a child process at
random instants, at least twenty times per memory, and checks the memory and
the execution log after every run. Its seed is random unless
``MESSOR_CRASH_SEED`` is set; every violation names it, to replay a failure.
``benchmarks/crash_campaign.py`` runs the same campaign for longer.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.crash_campaign import Campaign, store_factory

KILLS = 20
TASKS = 400


@pytest.mark.slow
@pytest.mark.parametrize("memory", ["sqlite", "redis", "s3"])
def test_a_harvest_killed_at_random_instants_loses_nothing_and_redoes_nothing_recorded(
    memory: str, tmp_path: Path
) -> None:
    seed = int(os.environ.get("MESSOR_CRASH_SEED") or random.randrange(2**32))
    campaign = Campaign(memory, store_factory(memory, tmp_path), tmp_path, tasks=TASKS, seed=seed)
    tally = campaign.run(KILLS)
    assert not tally.violations, "\n".join(tally.violations)
    assert tally.kills >= KILLS, f"seed {seed}: only {tally.kills} of the runs were killed"
