"""Running the installed ``messor`` console script in a subprocess, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

MESSOR = Path(sys.executable).parent / "messor"


def messor(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed console script; its exit code is the caller's to check."""
    environment = {k: v for k, v in os.environ.items() if k != "MESSOR_MEMORY"}
    environment.update(env or {})
    return subprocess.run(
        [str(MESSOR), *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )


def assert_one_line_error(done: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert done.returncode == code, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("messor: error: ")
    for word in words:
        assert word in line
