"""The claim a harvest holds on a Redis namespace while it runs (``messor:{ns}:run``).

The key holds the owner (process, host, boot, PID namespace, start, a random
token) and expires unless renewed: a thread renews it every third of its
lifetime, so a run that dies on any machine frees the namespace within the
lapse (``CLAIM_SECONDS`` unless the memory says otherwise). A claim left by a
process provably gone (same host, boot and PID namespace: see
:meth:`RunOwner.is_local`) is taken over at once, so a run restarted right
after a crash never waits, and so is one of this very process that no run of
it holds any more (the store was down when its run ended). Every change
compares the token first (in a script), so a run never renews or ends a claim
that is not its own.

A run that cannot renew in time (its process paused longer than the lapse)
has lost the claim, whoever holds it now: the renewal thread tells the run
through the owner's :class:`~messor.plugin.ClaimWatch`, and the memory's
writes, fenced by the claim (see :mod:`messor_redis.scripts`), fail.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from messor.plugin import Release, RunOwner, claim_lost, mark_held, refuse

__all__ = ["CLAIM_SECONDS", "LONGER", "claim_namespace"]

logger = logging.getLogger("messor")

#: How long a claim outlives its last renewal.
CLAIM_SECONDS = 30.0
#: How a user gives a claim a longer lapse.
LONGER = "set claim_seconds (in the memory's URL, say ?claim_seconds=300)"

# KEYS[1] the claim; ARGV[1] expected holder (exact JSON), ARGV[2] new value, ARGV[3] ms
_REPLACE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""
# KEYS[1] the claim; ARGV[1] our token's JSON, ARGV[2] ms (0: end the claim)
_RENEW_OR_END = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '0' then redis.call('DEL', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
"""


def claim_namespace(
    memory: Any,
    key: str,
    owner: RunOwner,
    call: Callable[[Callable[[], Any]], Any],
    *,
    seconds: float = CLAIM_SECONDS,
) -> Release:
    """Claim ``key`` for ``owner`` or raise RunInProgressError; return the release.

    ``call`` runs a Redis operation with the memory's retries. The claim is
    certain (``owner.watch``) until ``seconds`` after each renewal was sent:
    Redis, which received it later, keeps the key at least that long.
    """
    client = memory.client
    value, ms = owner.to_json(), int(seconds * 1000)
    replace = client.register_script(_REPLACE)
    renew_or_end = client.register_script(_RENEW_OR_END)
    # Marked held before it is: another run of this process that reads the
    # key meanwhile must not take it for a stale claim of ours.
    mark_held(owner, True)
    try:
        while True:
            sent = time.monotonic()
            if call(lambda: client.set(key, value, nx=True, px=ms)):
                break
            held = call(lambda: client.get(key))
            if held is None:
                continue  # it lapsed meanwhile: try again
            holder = RunOwner.from_json(held)
            if holder is None or not holder.is_dead_here():
                raise refuse(
                    memory, holder, lapses=f" (a claim lapses {seconds:g} s after its run dies)"
                )
            sent = time.monotonic()
            if call(partial(replace, keys=[key], args=[held, value, ms])):
                logger.info("Took over the claim of a run that died: %s", holder.describe())
                break
    except BaseException:
        mark_held(owner, False)
        raise
    owner.watch.renewed(sent + seconds)
    stop = threading.Event()

    def lose() -> None:
        try:
            holder = RunOwner.from_json(client.get(key))  # who has it now, for the message
        except Exception:
            holder = None
        owner.watch.lost(claim_lost(memory, seconds, holder, longer=LONGER))

    def renew() -> None:
        # After a pause longer than the lapse the wait is over at once: the
        # loss is found before the run gets far. A renewal sent before a pause
        # and answered after it leaves the claim in doubt: renew again at once.
        while not stop.wait(seconds / 3 if owner.watch.certain else 0):
            sent = time.monotonic()
            try:
                renewed = renew_or_end(keys=[key], args=[value, ms])
            except Exception as exc:  # keep trying: the memory reports lasting outages
                if owner.watch.certain:
                    logger.warning("%r: could not renew this run's claim: %s", memory, exc)
                    continue
                renewed = 0  # it lapsed meanwhile: lost, whoever holds it now
            if not renewed:
                lose()
                return
            owner.watch.renewed(sent + seconds)

    thread = threading.Thread(target=renew, name="messor-claim", daemon=True)
    thread.start()

    def release() -> None:
        if stop.is_set():
            return
        stop.set()
        thread.join()
        mark_held(owner, False)  # even if the key stays: this process may take it over
        try:
            call(lambda: renew_or_end(keys=[key], args=[value, 0]))
        except Exception as exc:  # the claim lapses by itself
            logger.warning("%r: could not end this run's claim (it lapses): %s", memory, exc)

    return release
