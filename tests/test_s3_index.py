"""The S3 index: segments folded in any order give what their events give in time order.

The reference applies every event one after another, as one writer would see
them; the index keeps only a few registers per task and must agree with it
whatever order the segments arrive in, split between snapshots or not.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from messor_s3.index import Index

from messor.memories.base import COMPLETED, FAILED, PENDING

TASKS = ["a", "b"]
SEGMENT = "log/{:020d}-000000000000-00000000.json.gz"


def reference(segments: list[tuple[str, list[list[Any]]]]) -> dict[str, tuple[str, str, Any]]:
    """Every event applied in stamp order by one writer: id -> (data, status, result)."""
    tasks: dict[str, dict[str, Any]] = {}
    for _, events in sorted(segments):
        for event in events:
            kind, task_id = event[0], event[1]
            if kind == "s":
                task = tasks.setdefault(task_id, {"data": None, "status": PENDING, "result": None})
                task["data"] = task["data"] or event[2]  # the first store wins
            elif kind == "d":
                tasks.pop(task_id, None)
            elif kind == "r":  # a conditional reset: only from the statuses it names
                if task_id in tasks and tasks[task_id]["status"] in event[2]:
                    tasks[task_id].update(status=PENDING, result=None)
            else:
                _, _, status, result, _, _, keep = event
                # Known, unless a clear forgot its store: then it exists from here on.
                task = tasks.setdefault(task_id, {"data": None, "status": None, "result": None})
                if not (keep and status != COMPLETED and task["status"] == COMPLETED):
                    task.update(status=status, result=result)
    return {i: (t["data"] or "{}", t["status"], t["result"]) for i, t in tasks.items()}


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[str, list[list[Any]]]]:
    """Segments of events as the memory's API can write them: updates only of known tasks."""
    known: set[str] = set()
    segments = []
    for number in range(draw(st.integers(1, 8))):
        events: list[list[Any]] = []
        for _ in range(draw(st.integers(1, 4))):
            task_id = draw(st.sampled_from(TASKS))
            updates = st.sampled_from(["s", "u", "u", "u", "r", "r", "d"])
            kind = draw(updates) if task_id in known else "s"
            if kind == "s":
                events.append(["s", task_id, draw(st.sampled_from(["{}", '{"v":1}', '{"v":2}']))])
                known.add(task_id)
            elif kind == "d":
                events.append(["d", task_id])
                known.discard(task_id)
            elif kind == "r":
                statuses = draw(st.sampled_from([[FAILED], [COMPLETED, FAILED], [PENDING]]))
                events.append(["r", task_id, statuses])
            else:
                status = draw(st.sampled_from([PENDING, COMPLETED, FAILED, "leased"]))
                result = f'"{number}"' if status == COMPLETED else None
                keep = draw(st.sampled_from([0, 1]))
                events.append(["u", task_id, status, result, None, None, keep])
        # Clock readings grow with the writer's sequence (a hybrid logical clock).
        segments.append((f"log/{number + 1:020d}-{'0' * 12}-{number:08d}.json.gz", events))
    return segments


def folded(segments: list[tuple[str, list[list[Any]]]]) -> dict[str, tuple[str, str, Any]]:
    index = Index()
    for name, events in segments:
        index.apply(events, name)
    return {
        task_id: (index.entries[task_id].data, state.status, state.result)
        for task_id, state in index.visible()
    }


@settings(max_examples=400, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_any_order_of_segments_folds_to_the_state_of_time_order(
    segments: list[tuple[str, list[list[Any]]]], rng: Any
) -> None:
    shuffled = list(segments)
    rng.shuffle(shuffled)
    assert folded(shuffled) == reference(segments)


@settings(max_examples=200, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_a_snapshot_folds_on_like_the_log_it_replaces(
    segments: list[tuple[str, list[list[Any]]]], rng: Any
) -> None:
    cut = rng.randrange(len(segments) + 1)
    shuffled = list(segments)
    rng.shuffle(shuffled)
    index = Index()
    for name, events in shuffled[:cut]:
        index.apply(events, name)
    index = Index.from_rows(index.rows(forget_before=0))
    for name, events in shuffled[cut:]:
        index.apply(events, name)
    got = {i: (index.entries[i].data, s.status, s.result) for i, s in index.visible()}
    assert got == reference(segments)


def view(index: Index) -> dict[str, tuple[str, str, Any]]:
    return {i: (index.entries[i].data, s.status, s.result) for i, s in index.visible()}


@settings(max_examples=200, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_snapshots_of_overlapping_parts_of_the_log_fold_together_like_the_whole_log(
    segments: list[tuple[str, list[list[Any]]]], rng: Any
) -> None:
    """What reading every snapshot listed does when HEAD is missing."""
    parts = []
    for _ in range(rng.randint(1, 3)):
        index = Index()
        for name, events in rng.sample(segments, rng.randrange(len(segments) + 1)):
            index.apply(events, name)
        parts.append(list(index.rows(forget_before=0)))
    merged = Index.from_rows(parts[0])
    for rows in parts[1:]:
        merged.absorb(rows)
    for name, events in rng.sample(segments, len(segments)):
        merged.apply(events, name)
    assert view(merged) == reference(segments)


@settings(max_examples=200, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_a_floor_forgets_every_event_below_it_wherever_they_are_folded_in(
    segments: list[tuple[str, list[list[Any]]]], rng: Any
) -> None:
    """A clear at clock reading ``cut``: before or after its segments, the same index."""
    cut = rng.randint(1, len(segments) + 1)
    kept = [(name, events) for name, events in segments if int(name[4:24]) >= cut]
    shuffled = rng.sample(segments, len(segments))
    at = rng.randrange(len(shuffled) + 1)
    index = Index()
    for name, events in shuffled[:at]:
        index.apply(events, name)
    index.wipe(cut)
    index = Index.from_rows(index.rows(forget_before=0))
    index.wipe(cut)  # what a snapshot written after the clear carries on
    for name, events in shuffled[at:]:
        index.apply(events, name)
    assert view(index) == reference(kept)


def test_a_reset_does_not_discard_a_completion_stamped_before_it_that_arrives_after_it() -> None:
    index = Index()
    index.apply([["s", "t", "{}"], ["u", "t", FAILED, None, None, "boom", 1]], SEGMENT.format(1))
    index.apply([["r", "t", [FAILED]]], SEGMENT.format(3))  # its writer saw "failed"
    index.apply([["u", "t", COMPLETED, '"done"', None, None, 1]], SEGMENT.format(2))  # late
    state = index.entries["t"].view
    assert state is not None
    assert (state.status, state.result) == (COMPLETED, '"done"')
