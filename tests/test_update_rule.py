"""``UpdateRule``: the rule of one ``Memory.update`` call, checked when it is made.

What each rule does to the changes of an update is the contract kit's
(``messor.testing``, ``PrimitivesContract``), on every memory.
"""

from __future__ import annotations

import pytest

from messor.plugin import FAILED, ConfigurationError, TaskStatus, UpdateRule


@pytest.mark.parametrize(
    "only_from",
    ["failed", ["failed"], {1}, frozenset({None})],
    ids=["a str, whose letters would be the statuses", "a list", "ints", "None in a set"],
)
def test_only_from_other_than_a_set_of_statuses_is_refused_naming_the_field_and_the_fix(
    only_from: object,
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        UpdateRule(only_from=only_from)  # type: ignore[arg-type]
    message = str(refused.value)
    assert message.startswith("UpdateRule.only_from must be None or a set of statuses")
    assert "frozenset({'failed'})" in message
    assert repr(only_from) in message
    assert isinstance(refused.value, ValueError)


def test_an_unknown_missing_is_refused_naming_the_field_and_its_values() -> None:
    with pytest.raises(ConfigurationError) as refused:
        UpdateRule(missing="skip")  # type: ignore[arg-type]
    assert str(refused.value) == "UpdateRule.missing must be 'raise' or 'ignore', got 'skip'"


def test_keep_completed_other_than_a_bool_is_refused_naming_the_field() -> None:
    with pytest.raises(ConfigurationError, match=r"^UpdateRule.keep_completed must be True or Fa"):
        UpdateRule(keep_completed="yes")  # type: ignore[arg-type]


def test_only_from_is_kept_as_a_frozenset_of_plain_strings() -> None:
    # A memory hands it to a store as it is: no mutable set, no str subclass.
    rule = UpdateRule(only_from={TaskStatus.FAILED, "completed"})  # type: ignore[arg-type]
    assert rule.only_from == frozenset({FAILED, "completed"})
    assert type(rule.only_from) is frozenset
    assert {type(status) for status in rule.only_from} == {str}
    assert rule == UpdateRule(only_from=frozenset({"completed", "failed"}))
    assert hash(rule) == hash(UpdateRule(only_from=frozenset({"completed", "failed"})))
