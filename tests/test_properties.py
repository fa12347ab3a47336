"""Properties every memory has, for any task id and any JSON value hypothesis can think of."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from messor import Memory
from messor.memories.base import COMPLETED, PENDING
from tests.conftest import MEMORY_KINDS, make_memory

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None)


@contextmanager
def fresh_memory(kind: str) -> Iterator[Memory]:
    """An empty memory of ``kind``, closed (and its directory removed) afterwards."""
    with tempfile.TemporaryDirectory() as directory:
        memory = make_memory(kind, Path(directory))
        try:
            yield memory
        finally:
            memory.close()


# -- task ids --------------------------------------------------------------------------------

#: Any str that is valid Unicode (no lone surrogates): what get_id() may return.
UNICODE_TEXT = st.text(st.characters(codec="utf-8"))

#: Ids that have broken stores before: SQL, glob and path syntax, invisible and control text.
TRICKY_IDS = [
    "",
    " ",
    "  padded  ",
    "\t\n\r\x0b\x0c",
    "\x00",
    "a\x00b",
    "\x1b[31mred\x1b[0m",
    "\x7f",
    "/",
    "../../etc/passwd",
    "C:\\Windows\\system32",
    "~/.ssh/id_rsa",
    "file:///tmp/x?mode=ro",
    "'; DROP TABLE messor_tasks; --",
    "' OR '1'='1",
    '"',
    "%",
    "_",
    "a%b_c",
    "*",
    "?",
    "[a-z]",
    "\\",
    "\u200b",
    "\ufeff",
    "e\u0301",
    "\u00e9",
    "\ufffe",
    "\U0010ffff",
    "🎉",
]


def _repeat_to(text: str, length: int) -> str:
    return (text * length)[:length]


LONG_IDS = st.builds(
    _repeat_to,
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=8),
    st.integers(min_value=1_000, max_value=20_000),
)

TASK_IDS = st.one_of(UNICODE_TEXT, st.sampled_from(TRICKY_IDS), LONG_IDS)


@pytest.mark.parametrize("kind", MEMORY_KINDS)
@PROPERTY_SETTINGS
@given(ids=st.lists(TASK_IDS, min_size=2, max_size=2, unique=True))
@example(ids=["", " "])
@example(ids=["a", "a\x00"])
@example(ids=["a\x00b", "a"])
@example(ids=["e\u0301", "\u00e9"])
@example(ids=["A", "a"])
@example(ids=["%", "x"])
@example(ids=["a_c", "abc"])
@example(ids=["*", "x"])
@example(ids=["x" * 100_000, "x" * 99_999])
def test_any_unicode_task_id_is_stored_and_found_exactly(kind: str, ids: list[str]) -> None:
    task_id, other = ids
    with fresh_memory(kind) as memory:
        memory.store_tasks([(task_id, {"id": task_id}), (other, {"id": other})])
        memory.update_task_statuses([(task_id, COMPLETED, task_id, None)])

        assert memory.get_task_status(task_id) == COMPLETED
        assert memory.get_task_status(other) == PENDING
        assert memory.get_task_result(task_id) == task_id
        assert memory.get_statuses([task_id, other]) == {task_id: COMPLETED, other: PENDING}
        assert memory.get_completed_tasks() == [task_id]
        assert memory.dump_all() == {
            "task_definitions": {task_id: {"id": task_id}, other: {"id": other}},
            "task_statuses": {task_id: COMPLETED, other: PENDING},
            "task_results": {task_id: task_id},
            "task_errors": {},
        }


# -- results -----------------------------------------------------------------------------------

#: Any Python str, lone surrogates included (st.text() alone never draws them).
ANY_TEXT = st.text(st.one_of(st.characters(), st.characters(categories=["Cs"])))

#: Python refuses to print ints of more than 4300 digits (sys.get_int_max_str_digits),
#: so no JSON text can hold them; every int below that must round-trip.
HUGE = 10**4000

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-HUGE, max_value=HUGE),
    st.floats(allow_nan=False, allow_infinity=False),
    ANY_TEXT,
)

JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.one_of(st.lists(children), st.dictionaries(ANY_TEXT, children)),
    max_leaves=25,
)


@pytest.mark.parametrize("kind", MEMORY_KINDS)
@PROPERTY_SETTINGS
@given(value=JSON_VALUES)
@example(value=[1, 1.0, True, 0, 0.0, -0.0, False, None, ""])
@example(value={"a\ud800": "\udfff", "": {"": []}})
@example(value=2**64 + 1)
def test_any_json_value_round_trips_exactly_as_a_result(kind: str, value: Any) -> None:
    with fresh_memory(kind) as memory:
        memory.store_tasks([("t", {})])
        memory.update_task_statuses([("t", COMPLETED, value, None)])
        got = memory.get_task_result("t")
    assert got == value
    assert json.dumps(got) == json.dumps(value)


# -- invalid task ids ----------------------------------------------------------------------------


def _with_lone_surrogate(before: str, surrogate: str, after: str) -> str:
    return before + surrogate + after


IDS_WITH_A_LONE_SURROGATE = st.builds(
    _with_lone_surrogate, ANY_TEXT, st.characters(categories=["Cs"]), ANY_TEXT
)


# "seed-only" stands for a minimal third-party memory: it need not check ids this closely.
@pytest.mark.parametrize("kind", [kind for kind in MEMORY_KINDS if kind != "seed-only"])
@PROPERTY_SETTINGS
@given(task_id=IDS_WITH_A_LONE_SURROGATE)
@example(task_id="a\ud800")
@example(task_id="\udcff")
def test_a_task_id_with_a_lone_surrogate_is_refused_naming_it(kind: str, task_id: str) -> None:
    with fresh_memory(kind) as memory:
        with pytest.raises(TypeError, match=re.escape(repr(task_id))):
            memory.store_tasks([(task_id, {})])
        assert memory.get_pending_tasks() == []
