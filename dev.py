#!/usr/bin/env python3
"""Run Messor's example harvest or its whole test suite, setting up what they need first.

    python3 dev.py example [MEMORY]   run examples/harvest.py (default memory: ./messor.db)
    python3 dev.py test [PYTEST ARGS] ruff, mypy and the whole pytest suite
                                      (with PYTEST ARGS: only pytest, with those)
    python3 dev.py bench [OPTIONS]    the benchmark suite, benchmarks/throughput.py
                                      (--quick for a short run, --help for the rest)
    python3 dev.py dist [DIR]         wheels and sdists of messor, messor-dask, messor-redis
                                      and messor-s3 in DIR (default: dist/), checked by twine

Needs nothing but python3 (3.11 or newer) with pip and venv. The first call
creates .venv/ and installs there, in editable mode, the core distribution
``messor``, every plugin distribution of this repository (``messor_*/``) and
the test tools; then the example plugins ``examples/messor-*`` as a user
installs a third-party plugin (not editable). Later calls reinstall only when a
pyproject.toml or an example plugin changed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / "messor-dev.stamp"
DIST = ROOT / "dist"
#: Third-party memory plugins, kept here as examples: messor-folder is the walk-through
#: of docs/plugins.md, messor-jsonl a memory on an append-only log.
EXAMPLE_PLUGINS = sorted(p.parent for p in ROOT.glob("examples/messor-*/pyproject.toml"))


def projects() -> list[Path]:
    """The core and each plugin distribution of the repository."""
    return [ROOT, *sorted(p.parent for p in ROOT.glob("messor_*/pyproject.toml"))]


def ensure_environment() -> None:
    """Create .venv and install everything into it, unless it is up to date."""
    digest = hashlib.sha256(sys.version.encode())
    for project in projects():
        digest.update((project / "pyproject.toml").read_bytes())
    for example in EXAMPLE_PLUGINS:
        for file in [example / "pyproject.toml", *sorted(example.glob("src/**/*.py"))]:
            digest.update(file.read_bytes())
    if PYTHON.exists() and STAMP.exists() and STAMP.read_text() == digest.hexdigest():
        return
    if sys.version_info < (3, 11):  # noqa: UP036 (dev.py runs on any python3)
        sys.exit(f"Messor needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    print(
        "Setting up .venv (only when a pyproject.toml or an example plugin changed) ...",
        flush=True,
    )
    if not PYTHON.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(PYTHON), "-m", "pip", "--disable-pip-version-check", "--quiet"]
    # Dependency groups (PEP 735, the test tools) need pip 25.1 or newer.
    subprocess.run([*pip, "install", "--upgrade", "pip>=25.1"], check=True)
    editable = [arg for project in projects() for arg in ("-e", str(project))]
    subprocess.run([*pip, "install", *editable, "--group", "test"], check=True, cwd=ROOT)
    subprocess.run(
        [*pip, "install", "--force-reinstall", "--no-deps", *map(str, EXAMPLE_PLUGINS)], check=True
    )
    STAMP.write_text(digest.hexdigest())


def run_tests(pytest_args: list[str]) -> int:
    """Lint, type-check and test; with explicit pytest arguments, only pytest."""
    pytest = [str(PYTHON), "-m", "pytest", *pytest_args]
    if pytest_args:
        return subprocess.run(pytest, cwd=ROOT).returncode
    steps = [
        [str(PYTHON), "-m", "ruff", "check", "."],
        [str(PYTHON), "-m", "ruff", "format", "--check", "."],
        [str(PYTHON), "-m", "mypy"],
        pytest,
    ]
    failed = [" ".join(step[2:]) for step in steps if subprocess.run(step, cwd=ROOT).returncode]
    if failed:
        print(f"\nFAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def build_distributions(outdir: Path) -> list[Path]:
    """Build the sdist and wheel of each distribution into ``outdir``; return their paths.

    Each wheel is built from its sdist (``python -m build``'s default), as a
    packager downstream would, so a file missing from an sdist fails here.
    A file of the same name in ``outdir`` is replaced; nothing else there is
    touched. Then ``twine check --strict`` checks them as PyPI would.
    """
    outdir.mkdir(parents=True, exist_ok=True)
    built: list[Path] = []
    for project in projects():
        with tempfile.TemporaryDirectory() as scratch:
            build = subprocess.run(
                [str(PYTHON), "-m", "build", "--outdir", scratch, str(project)],
                capture_output=True,
                text=True,
            )
            if build.returncode:
                sys.exit(f"{build.stdout}{build.stderr}\nBuilding {project} failed (above)")
            for artefact in sorted(Path(scratch).iterdir()):
                built.append(Path(shutil.move(artefact, outdir / artefact.name)))
    twine = [str(PYTHON), "-m", "twine", "check", "--strict", *map(str, built)]
    if subprocess.run(twine).returncode:
        sys.exit("twine check found problems in the distributions (above)")
    return built


def dist(argv: list[str]) -> int:
    """Build and check every distribution, and say what was built."""
    if len(argv) > 1:
        print(__doc__, file=sys.stderr)
        return 2
    outdir = Path(argv[0]).resolve() if argv else DIST
    start = time.monotonic()
    built = build_distributions(outdir)
    for artefact in built:
        print(f"{artefact.stat().st_size / 1024:8.1f} kB  {artefact}")
    print(f"Built {len(built)} files in {time.monotonic() - start:.0f} s")
    return 0


def main(argv: list[str]) -> int:
    scripts = {
        "example": ROOT / "examples" / "harvest.py",
        "bench": ROOT / "benchmarks" / "throughput.py",
    }
    if not argv or argv[0] not in (*scripts, "test", "dist"):
        print(__doc__, file=sys.stderr)
        return 2
    ensure_environment()
    if argv[0] == "dist":
        return dist(argv[1:])
    if argv[0] in scripts:
        # Replace this process, so that Ctrl-C reaches the script alone (a
        # harvest then finishes its running tasks gracefully).
        os.execv(PYTHON, [str(PYTHON), str(scripts[argv[0]]), *argv[1:]])
    return run_tests(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
