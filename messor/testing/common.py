"""What every part of the contract shares: the ``memory`` fixture and the values it stores."""

from __future__ import annotations

from typing import Any

import pytest

from messor.memories.base import Memory

__all__ = ["JSON_VALUES", "ODD_TASK_IDS", "ContractPart", "short_repr"]

#: Results that must come back exactly (type included: False is not 0).
JSON_VALUES: list[Any] = [
    0,
    1,
    -17,
    2**63 + 1,
    0.5,
    -1e-300,
    "",
    "text",
    "日本語 ✓ 🎉 \u00e9\u0301",
    "line\nbreak\ttab \x00 nul",
    "\ud800 lone surrogate",
    True,
    False,
    None,
    [],
    {},
    [1, "two", None, False, [3.0]],
    {"nested": {"list": [0, "", False, None]}, "ünï": "cödé"},
    {"big": "x" * 100_000},
]

#: Task ids that must be stored and found exactly: any str that is valid Unicode is an id.
ODD_TASK_IDS: list[str] = [
    "",
    "\x00",
    "nul\x00inside",
    "".join(map(chr, [*range(1, 32), *range(127, 160)])),  # every other control character
    "\u2028\u2029\ufeff\u200b",
    "null",
    "messor:{default}:status",
    "x" * 10_000,
    "https://example.com/a?b=c&d=e#f",
    "path/with/slashes/",
    "/leading/slash",
    "..",
    "../../etc/passwd",
    "quote ' double \" backtick `",
    "'; DROP TABLE messor_tasks; --",
    "glob * ? [abc] % _",
    "ünïcödé 日本語 🎉",
    "spaces  and\ttabs",
    "x" * 300,
    " ",
    "a\\b",
    "{json}",
]


def short_repr(value: object) -> str:
    """A test's name for a parameter: its repr, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:30]}...({len(text)} chars)"


class ContractPart:
    """What each part of the contract needs: a ``memory`` fixture, which the subclass provides."""

    @pytest.fixture
    def memory(self) -> Memory:
        raise NotImplementedError("provide a `memory` fixture that yields an empty memory")
