"""Plugin distributions use only Messor's public API: ``messor`` and ``messor.plugin``.

They pin ``messor>=0.1,<0.2`` and are released on their own; an import of an
inner module (``messor.memories.base``, ``messor.run.harvest``) would break
them the day the core moves that module, while the pin promised it works.
Their tests may also use ``messor.testing``, the contract kit.
"""

from __future__ import annotations

import ast
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import messor
import messor.errors
import messor.plugin

ROOT = Path(__file__).resolve().parent.parent
#: The source trees of the plugin distributions of this repository.
PLUGIN_SOURCES = [
    ROOT / "messor_redis" / "src",
    ROOT / "messor_s3" / "src",
    ROOT / "messor_dask" / "src",
    ROOT / "examples" / "messor-jsonl" / "src",
    ROOT / "examples" / "messor-folder" / "src",
]
PLUGIN_TESTS = [
    ROOT / "examples" / "messor-jsonl" / "tests",
    ROOT / "examples" / "messor-folder" / "tests",
]

PUBLIC = {"messor", "messor.plugin"}
PUBLIC_IN_TESTS = {*PUBLIC, "messor.testing"}
#: The core's modules: ``from messor import errors`` and ``messor.errors.X`` reach inside too.
SUBMODULES = {info.name for info in pkgutil.iter_modules(messor.__path__)}


def private_uses(source: str, allowed: set[str]) -> Iterator[tuple[int, str]]:
    """``(line, what)`` for each use in ``source`` of a messor module not in ``allowed``."""
    tree = ast.parse(source)
    names_of_messor = set()  # what `import messor` (or `import messor as m`) binds
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "messor" or alias.name.startswith("messor."):
                    if alias.name not in allowed:
                        yield node.lineno, f"import {alias.name}"
                    names_of_messor.add(alias.asname or "messor")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != "messor":
                continue
            if node.module not in allowed:
                yield node.lineno, f"from {node.module} import ..."
            for alias in node.names:
                if node.module == "messor" and _private_submodule(alias.name, allowed):
                    yield node.lineno, f"from messor import {alias.name}"
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in names_of_messor
            and _private_submodule(node.attr, allowed)
        ):
            yield node.lineno, f"{node.value.id}.{node.attr}"


def _private_submodule(name: str, allowed: set[str]) -> bool:
    return name in SUBMODULES and f"messor.{name}" not in allowed


def modules(*trees: Path) -> list[Path]:
    return sorted(path for tree in trees for path in tree.rglob("*.py"))


def check(path: Path, allowed: set[str]) -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for line, what in sorted(private_uses(path.read_text(encoding="utf-8"), allowed))
    ]
    assert not found, (
        "A plugin distribution uses an inner module of messor; import it from "
        f"{' or '.join(sorted(allowed))} instead:\n" + "\n".join(found)
    )


@pytest.mark.parametrize("path", modules(*PLUGIN_SOURCES), ids=lambda p: str(p.relative_to(ROOT)))
def test_plugin_modules_import_only_messor_and_messor_plugin(path: Path) -> None:
    check(path, PUBLIC)


@pytest.mark.parametrize("path", modules(*PLUGIN_TESTS), ids=lambda p: str(p.relative_to(ROOT)))
def test_plugin_tests_import_only_the_public_api_and_messor_testing(path: Path) -> None:
    check(path, PUBLIC_IN_TESTS)


@pytest.mark.parametrize("tree", PLUGIN_SOURCES + PLUGIN_TESTS, ids=lambda p: p.parent.name)
def test_every_plugin_distribution_is_checked(tree: Path) -> None:
    assert modules(tree), f"no modules under {tree}: has the distribution moved?"


@pytest.mark.parametrize(
    ("source", "found"),
    [
        (
            "import messor\nfrom messor.memories.base import Memory\n",
            (2, "from messor.memories.base import ..."),
        ),
        ("import messor.run.harvest\n", (1, "import messor.run.harvest")),
        ("from messor import errors\n", (1, "from messor import errors")),
        ("import messor as m\n\nx = m.memories.claims.RunOwner\n", (3, "m.memories")),
        ("from messor.testing import MemoryContract\n", (1, "from messor.testing import ...")),
    ],
)
def test_the_check_names_the_line_of_an_inner_import(source: str, found: tuple[int, str]) -> None:
    assert list(private_uses(source, PUBLIC)) == [found]


def test_public_names_pass_the_check() -> None:
    source = (
        "import messor\nimport messor.plugin\nfrom messor import Memory, open_memory\n"
        "from messor.plugin import Harvest, hookimpl\nx = messor.plugin.Memory\n"
        "y = messor.task\n"
    )
    assert list(private_uses(source, PUBLIC)) == []


def test_every_messor_error_is_in_the_plugin_api() -> None:
    errors = {
        name
        for name, value in vars(messor.errors).items()
        if isinstance(value, type) and issubclass(value, messor.MessorError)
    }
    assert errors <= set(messor.plugin.__all__)
    assert all(getattr(messor.plugin, name) is getattr(messor.errors, name) for name in errors)
