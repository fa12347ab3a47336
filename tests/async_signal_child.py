"""An AsyncExecutor harvest run as the README shows it, ``asyncio.run(main())``, to signal.

    python tests/async_signal_child.py MEMORY_SPEC STARTED_LOG HANGING

Runs 2 coroutine tasks that hang for a minute when HANGING is "yes", then
200 that take 50 ms each, 3 at once, through ``await executor.run_async()``.
Each task appends its id to STARTED_LOG when it starts. Nothing catches the
KeyboardInterrupt that ``asyncio.run`` raises after a Ctrl-C: as in the README.
"""

from __future__ import annotations

import asyncio
import os
import sys

import messor


async def work(log: int, task_id: str, seconds: float) -> str:
    os.write(log, f"{task_id}\n".encode())
    await asyncio.sleep(seconds)
    return task_id


async def main(memory: str, started_log: str, hanging: str) -> None:
    log = os.open(started_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    tasks = [messor.FunctionTask(f"hang{n}", work, log, f"hang{n}", 60) for n in range(2)]
    tasks = tasks if hanging == "yes" else []
    tasks += [messor.FunctionTask(f"quick{n}", work, log, f"quick{n}", 0.05) for n in range(200)]
    executor = messor.AsyncExecutor(tasks, memory=memory, max_concurrency=3)
    await executor.run_async()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
