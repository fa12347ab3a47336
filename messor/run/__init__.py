"""The run loop every executor shares, and its parts.

:mod:`~messor.run.harvest` decides and records (registration, resume,
retries, stop conditions, pacing, Ctrl-C, summary), with what becomes of each
outcome in :mod:`~messor.run.settling`; :mod:`~messor.run.attempt`
is one try at one task; :mod:`~messor.run.sources` reads and registers
tasks; :mod:`~messor.run.writer` records outcomes in batches;
:mod:`~messor.run.controls` (rate limit, backoff), :mod:`~messor.run.stops`
(stop conditions) and :mod:`~messor.run.interrupts` (signals) serve it.
"""
