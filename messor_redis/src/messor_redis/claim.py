"""The claim a harvest holds on a Redis namespace while it runs (``messor:{ns}:run``).

The key holds the owner (process, host, boot, PID namespace, start, a random
token) and expires unless renewed: a thread renews it every third of its
lifetime, so a run that dies on any machine frees the namespace within
``CLAIM_SECONDS``. A claim left by a process provably gone (same host, boot
and PID namespace: see :meth:`RunOwner.is_local`) is taken over at once, so a
run restarted right after a crash never waits, and so is one of this very
process that no run of it holds any more (the store was down when its run ended). Every
change compares the token first (in a script), so a run never renews or ends
a claim that is not its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from messor.claims import Release, RunOwner, mark_held, refuse

__all__ = ["CLAIM_SECONDS", "claim_namespace"]

logger = logging.getLogger("messor")

#: How long a claim outlives its last renewal.
CLAIM_SECONDS = 30.0

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

    ``call`` runs a Redis operation with the memory's retries.
    """
    client = memory.client
    value, ms = owner.to_json(), int(seconds * 1000)
    replace = client.register_script(_REPLACE)
    renew_or_end = client.register_script(_RENEW_OR_END)
    # Marked held before it is: another run of this process that reads the
    # key meanwhile must not take it for a stale claim of ours.
    mark_held(owner, True)
    try:
        while not call(lambda: client.set(key, value, nx=True, px=ms)):
            held = call(lambda: client.get(key))
            if held is None:
                continue  # it lapsed meanwhile: try again
            holder = RunOwner.from_json(held)
            if holder is None or not holder.is_dead_here():
                raise refuse(
                    memory, holder, lapses=f" (a claim lapses {seconds:g} s after its run dies)"
                )
            if call(partial(replace, keys=[key], args=[held, value, ms])):
                logger.info("Took over the claim of a run that died: %s", holder.describe())
                break
    except BaseException:
        mark_held(owner, False)
        raise
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(seconds / 3):
            try:
                if not renew_or_end(keys=[key], args=[value, ms]):
                    logger.warning(
                        "%r: this run's claim was lost (it lapsed while Redis was unreachable?); "
                        "another run may start on the same tasks",
                        memory,
                    )
                    return
            except Exception as exc:  # keep trying: the memory reports lasting outages
                logger.warning("%r: could not renew this run's claim: %s", memory, exc)

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
