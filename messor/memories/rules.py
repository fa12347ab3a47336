"""Which changes of one ``Memory.update`` call apply: :class:`UpdateRule` and its judge.

A rule is one frozen, checked object rather than keywords of ``update``, so
that every memory declares ``update(changes, rule)`` once: a rule the core
needs later arrives as a new field whose default keeps today's meaning, and a
memory that hands its rule to :func:`changes_to_apply` needs no change.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import ClassVar, Literal

from messor.errors import ConfigurationError, TaskNotFoundError
from messor.memories.records import COMPLETED, EncodedUpdate

__all__ = ["Missing", "UpdateRule", "changes_to_apply"]

#: What ``Memory.update`` does with an unknown id: raise ``TaskNotFoundError``, or skip it.
Missing = Literal["raise", "ignore"]


@dataclass(frozen=True)
class UpdateRule:
    """When a change of :meth:`Memory.update` is skipped, and what an unknown id does.

    Each change is judged against the state the earlier changes of the call
    left. A bad field is a :class:`~messor.errors.ConfigurationError` naming
    it, when the rule is made. The rules the core uses are ready-made:
    :attr:`OVERWRITE`, :attr:`RECORD` and :meth:`reset_from`.
    """

    #: Skip a change of a completed task unless it is a completion itself:
    #: another run on the same store may have completed a task this one failed.
    keep_completed: bool = False
    #: Skip a change unless the task's status is one of these (None: whatever it is).
    #: Any set of str is taken, kept as a frozenset of plain strings.
    only_from: frozenset[str] | None = None
    #: An unknown id: "raise" :class:`~messor.errors.TaskNotFoundError` and
    #: apply nothing of the call, or "ignore" it (skip its change).
    missing: Missing = "raise"

    #: Every change applies; an unknown id raises: ``update_task_statuses``, ``update``'s default.
    OVERWRITE: ClassVar[UpdateRule]
    #: A failure never replaces a completion: how the run's writer records outcomes.
    RECORD: ClassVar[UpdateRule]

    def __post_init__(self) -> None:
        if not isinstance(self.keep_completed, bool):
            raise ConfigurationError(
                f"UpdateRule.keep_completed must be True or False, got {self.keep_completed!r}"
            )
        only_from = self.only_from
        if only_from is not None:
            if not isinstance(only_from, Set) or not all(isinstance(s, str) for s in only_from):
                raise ConfigurationError(
                    "UpdateRule.only_from must be None or a set of statuses, such as "
                    f"frozenset({{'failed'}}), got {only_from!r}"
                )
            # Plain strings: no store meets a str subclass (TaskStatus members, say).
            object.__setattr__(self, "only_from", frozenset(map(str, only_from)))
        if self.missing not in ("raise", "ignore"):
            raise ConfigurationError(
                f"UpdateRule.missing must be 'raise' or 'ignore', got {self.missing!r}"
            )

    @classmethod
    def reset_from(cls, statuses: Collection[str]) -> UpdateRule:
        """The rule of ``reset_tasks``: only tasks whose status is one of ``statuses``,
        unknown ids ignored (``messor retry`` names ids that may be gone)."""
        return cls(only_from=frozenset(statuses), missing="ignore")


UpdateRule.OVERWRITE = UpdateRule()
UpdateRule.RECORD = UpdateRule(keep_completed=True)


def changes_to_apply(
    changes: Sequence[EncodedUpdate],
    statuses: Callable[[list[str]], Mapping[str, str]],
    rule: UpdateRule,
) -> list[EncodedUpdate]:
    """The changes that :meth:`Memory.update` applies under ``rule``, in order.

    For a memory that can read statuses and write in one step (under a lock,
    in one transaction): ``statuses`` is called at most once, with the ids
    whose status decides whether their change applies, and returns the
    status of each one the store knows, as it holds it then. Each change is
    judged against the state the earlier changes of the call left. Raises
    :class:`~messor.errors.TaskNotFoundError` for an unknown id that was
    looked up when ``rule.missing`` is "raise"; an unknown id that needed no
    look-up is the caller's to find (its write changes nothing).
    """
    keep_completed, only_from = rule.keep_completed, rule.only_from
    check_all = only_from is not None or rule.missing == "ignore"
    to_check = [
        c.task_id for c in changes if check_all or (keep_completed and c.status != COMPLETED)
    ]
    if not to_check:
        return list(changes)
    known = dict(statuses(to_check))
    chosen = []
    for change in changes:
        if check_all or (keep_completed and change.status != COMPLETED):
            status = known.get(change.task_id)
            if status is None:
                if rule.missing == "raise":
                    raise TaskNotFoundError(change.task_id)
                continue
            if keep_completed and status == COMPLETED and change.status != COMPLETED:
                continue
            if only_from is not None and status not in only_from:
                continue
        chosen.append(change)
        known[change.task_id] = change.status
    return chosen
