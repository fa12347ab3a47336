"""The crash campaign: harvests in a child process, killed with SIGKILL at random instants.

Shared by ``tests/test_crash_resume.py`` (about twenty kills per memory) and
``benchmarks/crash_campaign.py`` (as many as asked). A campaign is a series
of rounds; each round harvests the task set of ``tests/crash_child.py`` into
a fresh store, kills a few runs of it at random instants (during the imports,
the registration, the tasks, the final writes), then lets one run finish.
After every run the memory is read from this process and checked:

* every completed task holds its right result, and no recorded result was
  lost or changed;
* no task recorded completed before a run started was executed in it (the
  execution log says which ran), and none ran twice in one run;
* every status is pending, completed or failed, every id one of the set;

and after the last run of a round every task is completed, none pending or
failed. Every problem is collected as a *violation* naming the seed, so a
failure can be replayed.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from messor import open_memory
from messor.memories.base import COMPLETED, STATUSES
from tests.crash_child import LAST_FAILING_RUN, behaviour, expected_result

CHILD = Path(__file__).with_name("crash_child.py")
#: A run left alone that has not ended by then counts as stuck.
RUN_TIMEOUT = 120.0
#: Kills per round, at least (a round's last run still gets a run number past
#: LAST_FAILING_RUN: every task can complete in it).
KILLS_PER_ROUND = (3, 6)


@dataclass(frozen=True)
class Store:
    """One empty memory: the spec to read it with, and the specs a run may open it with."""

    spec: str
    run_specs: tuple[str, ...]


def store_factory(memory: str, directory: Path) -> Callable[[], Store]:
    """Fresh stores of ``memory`` ("sqlite", "redis" or "s3"), each empty.

    Redis runs on the session's redis-server, S3 on moto's server (see
    tests/redis_server.py and tests/s3_server.py; both skip without them).
    """
    if memory == "sqlite":
        return lambda: _one(f"sqlite:///{directory / f'{uuid.uuid4().hex}.db'}")
    if memory == "redis":
        from tests.redis_server import real_redis

        url = real_redis().url
        return lambda: _one(f"{url}?namespace=crash-{uuid.uuid4().hex}")
    if memory == "s3":
        from tests.s3_server import new_bucket, server_endpoint

        endpoint = server_endpoint()

        def s3() -> Store:
            # A bucket each: moto lists a prefix by going through the whole bucket.
            spec = f"s3://{new_bucket(endpoint)}/harvest?endpoint_url={endpoint}"
            # Not the default 0.5 s: at once, and gathered a little.
            return Store(spec, tuple(f"{spec}&batch_delay={d}" for d in ("0", "0.1")))

        return s3
    raise ValueError(f"unknown memory {memory!r}: sqlite, redis or s3")


def _one(spec: str) -> Store:
    return Store(spec, (spec,))


@dataclass(frozen=True)
class Kill:
    """When to kill a run: ``seconds`` after its launch or, given ``finished``, that long
    after the run's ``finished``-th task finished."""

    seconds: float
    finished: int = 0

    def __str__(self) -> str:
        if self.finished:
            return f"killed {self.seconds:.3f} s after its task #{self.finished} finished"
        return f"killed {self.seconds:.3f} s after its launch"


@dataclass
class Tally:
    """What a campaign did, and every violation it saw."""

    memory: str
    seed: int
    kills: int = 0
    rounds: int = 0
    runs: int = 0
    #: Runs that ended by themselves before the instant drawn to kill them.
    outlived: int = 0
    #: Tasks completed by the rounds (the task set's size per round).
    tasks: int = 0
    #: Task executions the logs show (more than ``tasks``: retries and redone work).
    executions: int = 0
    seconds: float = 0.0
    #: Kills by when they came: before any task of the run started ("early"),
    #: while tasks ran ("mid"), after every task was recorded ("late").
    phases: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)


@dataclass
class Log:
    """What one round's execution log says, per run."""

    started: dict[int, list[str]]
    finished: dict[int, set[str]]
    again: dict[int, set[str]]  # run -> tasks started again after finishing in it

    @classmethod
    def read(cls, path: Path) -> Log:
        started: dict[int, list[str]] = defaultdict(list)
        finished: dict[int, set[str]] = defaultdict(set)
        again: dict[int, set[str]] = defaultdict(set)
        text = path.read_text() if path.exists() else ""
        for line in text.splitlines():
            run_text, task_id, event = line.split()
            run = int(run_text)
            if event == "start":
                started[run].append(task_id)
                if task_id in finished[run]:
                    again[run].add(task_id)
            elif event == "finish":
                finished[run].add(task_id)
        return cls(started, finished, again)


class Campaign:
    """Kill harvests on stores from ``new_store``; see the module docstring."""

    def __init__(
        self,
        memory: str,
        new_store: Callable[[], Store],
        directory: Path,
        *,
        tasks: int,
        seed: int,
    ) -> None:
        self.new_store = new_store
        self.directory = directory
        self.count = tasks
        self.expected = {f"t{n}": expected_result(n) for n in range(tasks)}
        self.random = random.Random(seed)
        self.tally = Tally(memory, seed)
        #: Seconds from a launch to the first task (timed in the first round).
        self.startup = 0.0

    def run(self, kills: int) -> Tally:
        """Rounds until ``kills`` runs were killed (the first round, kill-free, times a run)."""
        began = time.monotonic()
        self._round(0)
        while self.tally.kills < kills:
            low, high = KILLS_PER_ROUND
            left = kills - self.tally.kills
            self._round(min(left, self.random.randint(low, high)))
        self.tally.seconds = time.monotonic() - began
        return self.tally

    # -- one round: a fresh store, killed ``kills`` times, then left to finish -------------

    def _round(self, kills: int) -> None:
        self.tally.rounds += 1
        store = self.new_store()
        log = self.directory / f"round-{self.tally.rounds}.log"
        completed: dict[str, Any] = {}
        killed = outlived = 0
        number = 0
        # Once every task is recorded, a kill could only hit a resume: end the round.
        while killed < kills and len(completed) < self.count:
            number += 1
            if outlived > kills + 5:
                break  # the draws keep missing: let the round end (the tally shows it)
            finishing = self._finishing(number, completed)
            ended, what = self._launch(store, log, number, self._kill(number, finishing))
            where = self._where(number, what)
            if ended is not None:
                outlived += 1
                self.tally.outlived += 1
                if ended:
                    self._violation(f"{where}: the run failed:\n{ended}")
            completed, executions = self._check(store, log, number, completed, where)
            if ended is None:
                killed += 1
                self.tally.kills += 1
                if number not in executions.started:
                    self.tally.phases["early"] += 1
                else:
                    late = finishing <= executions.finished[number]
                    self.tally.phases["late" if late else "mid"] += 1
        final = max(number + 1, LAST_FAILING_RUN + 1)
        ended, what = self._launch(store, log, final, None)
        where = self._where(final, what)
        if ended:
            self._violation(f"{where}: the last run failed:\n{ended}")
        _, executions = self._check(store, log, final, completed, where)
        self._check_done(store, where)
        self.tally.tasks += self.count
        self.tally.executions += sum(map(len, executions.started.values()))

    def _finishing(self, number: int, completed: dict[str, Any]) -> frozenset[str]:
        """The tasks that run ``number`` is to finish: those not done that it does not fail."""
        return frozenset(
            i
            for i in self.expected
            if i not in completed and behaviour(int(i[1:])).fails_until_run < number
        )

    def _kill(self, number: int, finishing: frozenset[str]) -> Kill:
        """A random instant of run ``number``: mostly mid-harvest, also very early and at the end.

        Mid-harvest instants follow the run's progress, not a clock: how long a
        run takes varies too much (with the machine, the memory, what is left).
        """
        draw = self.random.random()
        if draw < 0.2 or not finishing:  # the imports, opening the memory, registering
            return Kill(self.random.uniform(0, 1.2 * self.startup))
        if draw < 0.4:  # the last outcomes, the final flush, the way out
            return Kill(self.random.uniform(0, 0.15), len(finishing))
        return Kill(self.random.uniform(0, 0.01), self.random.randint(1, len(finishing)))

    def _launch(
        self, store: Store, log: Path, number: int, kill: Kill | None
    ) -> tuple[str | None, str]:
        """Run the child; kill it as ``kill`` says, or let it end (first round: timing it).

        Returns None if it was killed, else its failure ("" when it succeeded),
        and a description of the run.
        """
        self.tally.runs += 1
        generator = self.random.random() < 0.5
        spec = self.random.choice(store.run_specs)
        command = [
            sys.executable,
            str(CHILD),
            spec,
            str(log),
            str(self.count),
            "--run",
            str(number),
        ]
        if generator:
            command.append("--generator")
        what = f"tasks as a {'generator' if generator else 'list'}, {spec}"
        stderr = self.directory / "child-stderr.txt"
        with stderr.open("w+b") as errors:
            launched = time.monotonic()
            child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
            try:
                if kill is None and not self.startup:
                    self._time(child, log, launched)
                elif kill is None:
                    child.wait(timeout=RUN_TIMEOUT)
                else:
                    if kill.finished:
                        self._await(child, log, number, kill.finished)
                    child.wait(timeout=kill.seconds)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
                if kill is not None:
                    return None, f"{kill}, {what}"
                return f"stuck: still running after {RUN_TIMEOUT:g} s", what
            errors.seek(0)
            output = errors.read().decode(errors="replace")[-3000:]
        if child.returncode != 0:
            return f"exit status {child.returncode}; its stderr ends:\n{output}", what
        return "", f"{'not killed' if kill is None else 'outlived its kill'}, {what}"

    def _await(self, child: subprocess.Popen[bytes], log: Path, number: int, tasks: int) -> None:
        """Return once run ``number`` finished that many tasks (or ended)."""
        deadline = time.monotonic() + RUN_TIMEOUT
        with log.open("a+b") as lines:  # the child may not have created it yet
            lines.seek(0)
            partial = b""
            while tasks > 0 and child.poll() is None:
                if time.monotonic() > deadline:
                    raise subprocess.TimeoutExpired(child.args, RUN_TIMEOUT)
                chunk = lines.read()
                if not chunk:
                    time.sleep(0.002)
                    continue
                *whole, partial = (partial + chunk).split(b"\n")
                for line in whole:
                    run, _, event = line.decode().split()
                    if event == "finish" and int(run) == number:
                        tasks -= 1

    def _time(self, child: subprocess.Popen[bytes], log: Path, launched: float) -> None:
        """Wait for the first round's run, noting when its first task started."""
        deadline = launched + RUN_TIMEOUT
        while child.poll() is None:
            if not self.startup and log.exists() and log.stat().st_size:
                self.startup = time.monotonic() - launched
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(child.args, RUN_TIMEOUT)
            time.sleep(0.002)
        self.startup = self.startup or time.monotonic() - launched

    # -- the checks ----------------------------------------------------------------------

    def _check(
        self, store: Store, log: Path, number: int, before: dict[str, Any], where: str
    ) -> tuple[dict[str, Any], Log]:
        """Check the memory and the log after run ``number``; return the completed results."""
        executions = Log.read(log)
        try:
            with open_memory(store.spec) as memory:
                records = {r.task_id: r for r in memory.iter_records()}
        except Exception as exc:
            self._violation(f"{where}: the memory cannot be read: {exc!r}")
            return before, executions
        completed = {i: r.result for i, r in records.items() if r.status == COMPLETED}
        problems = {
            "ids that are not in the task set": set(records) - set(self.expected),
            "statuses other than pending, completed, failed": {
                f"{i}: {r.status}" for i, r in records.items() if r.status not in STATUSES
            },
            "completed with a wrong result": {
                f"{i}: {result!r}"
                for i, result in completed.items()
                if i in self.expected and result != self.expected[i]
            },
            "recorded completed before, not now": set(before) - set(completed),
            "executed although recorded completed before the run": set(
                executions.started.get(number, ())
            )
            & set(before),
            "executed again in the run after finishing in it": executions.again.get(number, set()),
            "recorded completed without ever finishing": set(completed).difference(
                *executions.finished.values()
            ),
        }
        for problem, ids in problems.items():
            if ids:
                self._violation(f"{where}: {len(ids)} {problem}: {sorted(ids)[:5]}")
        return completed, executions

    def _check_done(self, store: Store, where: str) -> None:
        """After a round's last run: every task completed, none pending or failed."""
        try:
            with open_memory(store.spec) as memory:
                counts = {s: n for s, n in memory.count_by_status().items() if n}
                if counts != {COMPLETED: self.count}:
                    self._violation(
                        f"{where}: not all tasks completed at the end: {counts} "
                        f"(want {self.count} completed)"
                    )
                elif not self.tally.violations:
                    memory.clear()  # a shared server's memory; kept to look at after a problem
        except Exception as exc:
            self._violation(f"{where}: the memory cannot be read: {exc!r}")

    def _where(self, number: int, what: str) -> str:
        tally = self.tally
        return f"seed {tally.seed}, {tally.memory}, round {tally.rounds}, run {number} ({what})"

    def _violation(self, text: str) -> None:
        self.tally.violations.append(text)
