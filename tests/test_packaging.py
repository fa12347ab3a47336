"""The four distributions install as a user installs them: built, checked, from a folder.

``python3 dev.py dist`` builds each wheel from its sdist (so an sdist missing
a file fails the build) and runs ``twine check``; the slow test below does
that into a temporary folder, then ``pip install --find-links <folder>
'messor[redis,s3,dask]'`` in a fresh virtual environment, where every
dependency but our four comes from the package registry.
"""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import tarfile
import tomllib
import venv
import zipfile
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

import dev

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_PROJECTS = [
    ROOT / "messor_redis",
    ROOT / "messor_s3",
    ROOT / "messor_dask",
    ROOT / "examples" / "messor-jsonl",
    ROOT / "examples" / "messor-folder",
]
LICENSE = (ROOT / "LICENSE").read_text()


def pyproject(project: Path) -> dict[str, Any]:
    with (project / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)["project"]  # type: ignore[no-any-return]


CORE_VERSION = pyproject(ROOT)["version"]


@pytest.mark.parametrize("project", PLUGIN_PROJECTS, ids=lambda p: p.name)
def test_a_plugin_distribution_pins_the_minor_series_of_the_core(project: Path) -> None:
    # A plugin uses messor.plugin, whose names keep their meaning within a minor
    # series only: it must accept this core and refuse the next minor one.
    pins = [Requirement(r) for r in pyproject(project)["dependencies"]]
    (core,) = [pin for pin in pins if pin.name == "messor"]
    major, minor = (int(n) for n in CORE_VERSION.split(".")[:2])
    assert core.specifier.contains(CORE_VERSION), core
    assert not core.specifier.contains(f"{major}.{minor + 1}.0"), core
    assert not core.specifier.contains(f"{major}.{minor}.0.dev0"), core


@pytest.mark.parametrize("project", PLUGIN_PROJECTS, ids=lambda p: p.name)
def test_a_plugin_distribution_ships_the_project_license(project: Path) -> None:
    # A distribution can only ship files inside its own folder: each keeps a copy.
    assert (project / "LICENSE").read_text() == LICENSE
    assert pyproject(project)["license-files"] == ["LICENSE"]


# -- built and installed ------------------------------------------------------------------


def declared_entry_points(project: Path) -> dict[str, dict[str, str]]:
    metadata = pyproject(project)
    groups = dict(metadata.get("entry-points", {}))
    if "scripts" in metadata:
        groups["console_scripts"] = metadata["scripts"]
    return groups


def wheel_entry_points(wheel: zipfile.ZipFile) -> dict[str, dict[str, str]]:
    names = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    parser = configparser.ConfigParser()
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    for name in names:
        parser.read_string(wheel.read(name).decode())
    return {group: dict(parser[group]) for group in parser.sections()}


def check_wheel(path: Path, project: Path, package: str) -> None:
    with zipfile.ZipFile(path) as wheel:
        names = set(wheel.namelist())
        assert f"{package}/py.typed" in names, path.name
        (license_file,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert wheel.read(license_file).decode() == LICENSE, path.name
        assert wheel_entry_points(wheel) == declared_entry_points(project), path.name


def check_sdist(path: Path) -> None:
    with tarfile.open(path) as sdist:
        top = path.name.removesuffix(".tar.gz")
        names = {name.removeprefix(f"{top}/") for name in sdist.getnames()}
    assert {"pyproject.toml", "PKG-INFO", "README.md", "LICENSE"} <= names, path.name
    assert any(name.endswith("/py.typed") for name in names), path.name


@pytest.mark.slow
def test_the_built_distributions_install_from_a_folder_into_a_fresh_environment(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "dist"
    built = dev.build_distributions(folder)  # also twine check --strict: exits if it fails

    projects = {"messor": ROOT, **{p.name: p for p in PLUGIN_PROJECTS[:3]}}
    expected = {f"{name}-{CORE_VERSION}" for name in projects}
    assert sorted(p.name for p in built) == sorted(
        [f"{stem}-py3-none-any.whl" for stem in expected] + [f"{s}.tar.gz" for s in expected]
    )
    for name, project in projects.items():
        check_wheel(folder / f"{name}-{CORE_VERSION}-py3-none-any.whl", project, package=name)
        check_sdist(folder / f"{name}-{CORE_VERSION}.tar.gz")

    environment = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(environment)
    bin_dir = environment / ("Scripts" if os.name == "nt" else "bin")
    python = str(bin_dir / "python")
    # Nothing of this repository's environment may leak into the fresh one.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def run(*command: str) -> str:
        done = subprocess.run(
            command, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    run(python, "-m", "pip", "install", "--find-links", str(folder), "messor[redis,s3,dask]")

    listing = json.loads(run(str(bin_dir / "messor"), "backends", "--json"))
    assert listing["failed_plugins"] == []
    offered = {b["name"]: (b["distribution"], b["version"]) for b in listing["backends"]}
    assert offered["redis"] == ("messor-redis", CORE_VERSION)
    assert offered["s3"] == ("messor-s3", CORE_VERSION)

    script = """
import json, messor, messor_redis, messor_s3, messor_dask
harvest = messor.LocalThreadedExecutor([messor.task(str, 1)], memory="memory://").run()
print(json.dumps({
    "files": [m.__file__ for m in (messor, messor_redis, messor_s3, messor_dask)],
    "dask": messor_dask.DaskExecutor.__name__,
    "completed": harvest.completed,
}))
"""
    found = json.loads(run(python, "-I", "-c", script))
    site = str(environment)
    assert all(file.startswith(site) for file in found["files"]), found["files"]
    assert found["dask"] == "DaskExecutor"
    assert found["completed"] == 1
