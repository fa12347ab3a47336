"""Many threads at once: nothing lost, no record torn, no completion undone by a reset."""

from __future__ import annotations

import threading

from messor.memories.base import COMPLETED, FAILED, PENDING, EncodedUpdate, Memory
from messor.testing.common import ContractPart

__all__ = ["ConcurrencyContract"]


class ConcurrencyContract(ContractPart):
    """Writers, readers and resets racing each other in one process."""

    def test_many_threads_at_once_lose_nothing(self, memory: Memory) -> None:
        errors: list[BaseException] = []

        def worker(n: int) -> None:
            try:
                ids = [f"w{n}-{i}" for i in range(30)]
                memory.store_tasks([(i, {"n": n}) for i in ids])
                for i in ids:
                    memory.update_task_statuses([(i, COMPLETED, {"id": i}, None)])
                    memory.get_task_status(i)
                memory.count_by_status()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert memory.count_by_status()[COMPLETED] == 16 * 30
        assert memory.get_task_result("w7-21") == {"id": "w7-21"}

    def test_64_threads_of_mixed_operations_keep_every_record_consistent(
        self, memory: Memory
    ) -> None:
        # Every thread registers its own tasks and also races the others on
        # shared ones: successes, failures and reads all at once.
        shared = [f"shared-{i}" for i in range(8)]
        memory.store_tasks([(i, {}) for i in shared])
        errors: list[BaseException] = []
        start = threading.Barrier(64, timeout=60)

        def worker(n: int) -> None:
            try:
                own = [f"t{n}-{i}" for i in range(4)]
                start.wait()
                memory.store_tasks([(i, {"n": n}) for i in [*own, *shared]])
                memory.record_outcomes(
                    [EncodedUpdate(own[0], COMPLETED, f'{{"by":{n}}}', None, 1)]
                    + [EncodedUpdate(own[1], FAILED, None, f"E{n}", 2)]
                    + [
                        EncodedUpdate(i, COMPLETED, f'{{"by":{n}}}', None, 1)
                        if n % 2
                        else EncodedUpdate(i, FAILED, None, f"late {n}", 1)
                        for i in shared
                    ]
                )
                memory.update_task_statuses([(own[2], COMPLETED, [n], None)])
                memory.get_statuses([*own, *shared])
                memory.count_by_status()
                for _ in memory.iter_records(FAILED):
                    pass
                assert memory.get_task_result(own[0]) == {"by": n}
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(64)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        records = {r.task_id: r for r in memory.iter_records()}
        assert len(records) == 64 * 4 + len(shared)
        # Odd threads completed every shared task; no failure replaced that.
        assert {records[i].status for i in shared} == {COMPLETED}
        assert all(records[i].result["by"] % 2 == 1 for i in shared)
        counts = memory.count_by_status()
        assert counts == {PENDING: 64, COMPLETED: 64 * 2 + len(shared), FAILED: 64}
        assert memory.get_statuses(["t5-1", "t5-3"]) == {"t5-1": FAILED, "t5-3": PENDING}
        assert memory.get_task_result("t9-2") == [9]

    def test_reset_tasks_racing_a_harvest_never_undoes_a_completion(self, memory: Memory) -> None:
        # A harvest records completions one by one while resets of every task
        # not completed run back to back, as `messor retry ID...` from another
        # terminal would. Each completion is recorded just as a reset starts,
        # the moment a reset that looks up and then writes gets wrong.
        ids = [f"race-{i}" for i in range(200)]
        memory.store_tasks([(i, {}) for i in ids])
        memory.update_task_statuses([(i, FAILED, None, "E") for i in ids])
        reset_started = threading.Semaphore(0)
        harvest_done = threading.Event()
        errors: list[BaseException] = []

        def harvest() -> None:
            try:
                for i in ids:
                    if not reset_started.acquire(timeout=60):
                        raise TimeoutError("no reset started for 60 s")
                    memory.record_outcomes([EncodedUpdate(i, COMPLETED, f'"{i}"', None, 1)])
            except BaseException as exc:
                errors.append(exc)
            finally:
                harvest_done.set()

        thread = threading.Thread(target=harvest)
        thread.start()
        try:
            while not harvest_done.is_set():
                reset_started.release()
                memory.reset_tasks(ids, only_from={PENDING, FAILED})
        finally:
            reset_started.release(len(ids))  # the harvest never waits for a reset that failed
            thread.join()
        assert errors == []
        assert memory.count_by_status() == {PENDING: 0, COMPLETED: len(ids), FAILED: 0}
        assert all(memory.get_task_result(i) == i for i in ids[::7])
