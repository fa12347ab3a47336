"""``import messor`` works where ``fcntl`` does not exist (Windows); the file claim says why
it cannot lock where no file lock exists, and uses ``msvcrt.locking`` where that does.

Each test runs a child interpreter in which ``fcntl`` cannot be imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Windows' msvcrt.locking, as documented, on POSIX record locks: it locks
#: ``nbytes`` from the file's current position, per open file, and a lock held
#: elsewhere is an OSError with errno EACCES (a PermissionError). It runs with
#: ``fcntl`` bound to the real module, imported before fcntl was blocked.
FAKE_MSVCRT = """
import errno
import os

LK_UNLCK, LK_LOCK, LK_NBLCK, LK_RLCK, LK_NBRLCK = range(5)


def locking(fd, mode, nbytes):
    assert mode == LK_NBLCK, mode
    position = os.lseek(fd, 0, os.SEEK_CUR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, nbytes, position, os.SEEK_SET)
    except OSError:
        raise PermissionError(errno.EACCES, "Permission denied") from None
"""


def run_without_fcntl(
    script: str, *, fake_msvcrt: bool = False, stdin: int | None = None
) -> subprocess.Popen[str]:
    """Start ``script`` in a child where ``import fcntl`` fails and messor is imported.

    ``msvcrt`` is then the fake (``fake_msvcrt``) or absent. The fake is put in
    place after ``import messor``: the standard library takes the presence of
    ``msvcrt`` at import for Windows (subprocess would look for ``_winapi``).
    """
    prelude = "import sys\nimport types\n"
    if fake_msvcrt:
        prelude += "import fcntl as real_fcntl\n"
    prelude += "sys.modules['fcntl'] = None\nsys.modules['msvcrt'] = None\nimport messor\n"
    if fake_msvcrt:
        prelude += (
            "msvcrt = types.ModuleType('msvcrt')\nmsvcrt.fcntl = real_fcntl\n"
            f"exec({FAKE_MSVCRT!r}, msvcrt.__dict__)\nsys.modules['msvcrt'] = msvcrt\n"
        )
    return subprocess.Popen(
        [sys.executable, "-c", prelude + textwrap.dedent(script)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def output_of(child: subprocess.Popen[str]) -> str:
    stdout, stderr = child.communicate(timeout=120)
    assert child.returncode == 0, stderr
    return stdout


@pytest.mark.slow
def test_without_any_file_lock_messor_imports_and_a_run_on_a_file_says_why_it_cannot_claim(
    tmp_path: Path,
) -> None:
    script = f"""
        import json

        memory = messor.SQLiteMemory({str(tmp_path / "harvest.db")!r})
        memory.store_tasks([("a", {{}})])
        memory.update_task_statuses([("a", "completed", 1, None)])
        found = {{"result": memory.get_task_result("a")}}
        try:
            messor.LocalThreadedExecutor([messor.task(str, 1)], memory=memory).run()
        except messor.MessorError as error:
            found["error"] = [type(error).__name__, str(error)]
        found["in_process"] = messor.LocalThreadedExecutor(
            [messor.task(str, 1)], memory="memory://"
        ).run().completed
        print(json.dumps(found))
    """
    found = json.loads(output_of(run_without_fcntl(script)))
    assert found["result"] == 1
    kind, message = found["error"]
    assert kind == "ConfigurationError"
    assert "harvest.db" in message
    assert "no file lock" in message
    assert "memory://" in message
    assert found["in_process"] == 1


@pytest.mark.slow
def test_with_msvcrt_instead_of_fcntl_a_second_run_is_refused_naming_the_first(
    tmp_path: Path,
) -> None:
    claim = f"""
        import os
        from messor.plugin import RunOwner

        memory = messor.SQLiteMemory({str(tmp_path / "harvest.db")!r})
        try:
            release = memory.claim_run(RunOwner())
        except messor.RunInProgressError as error:
            print("refused:", error)
        else:
            print("claimed by", os.getpid(), flush=True)
            sys.stdin.readline()
            release()
    """
    holder = run_without_fcntl(claim, fake_msvcrt=True, stdin=subprocess.PIPE)
    assert holder.stdout is not None
    assert holder.stdin is not None
    claimed = holder.stdout.readline()
    assert claimed == f"claimed by {holder.pid}\n"

    refused = output_of(run_without_fcntl(claim, fake_msvcrt=True, stdin=subprocess.DEVNULL))
    assert refused.startswith("refused: Another run is using")
    assert f"process {holder.pid} on " in refused

    holder.stdin.write("release\n")
    holder.stdin.flush()
    output_of(holder)
    again = output_of(run_without_fcntl(claim, fake_msvcrt=True, stdin=subprocess.DEVNULL))
    assert again.startswith("claimed by")
