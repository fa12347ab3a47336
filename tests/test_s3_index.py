"""The S3 index: segments folded in any order give what their events give in time order."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from messor_s3.index import Index

from messor.memory import COMPLETED, FAILED, PENDING

TASKS = ["a", "b"]


def reference(segments: list[tuple[str, list[list[Any]]]]) -> dict[str, tuple[str, str, Any]]:
    """Every event applied in stamp order by one writer: id -> (data, status, result)."""
    tasks: dict[str, dict[str, Any]] = {}
    for _, events in sorted(segments):
        for event in events:
            kind, task_id = event[0], event[1]
            if kind == "s":
                tasks.setdefault(task_id, {"data": event[2], "status": PENDING, "result": None})
            elif kind == "d":
                tasks.pop(task_id, None)
            else:
                _, _, status, result, _, _, keep = event
                task = tasks[task_id]
                if not (keep and status != COMPLETED and task["status"] == COMPLETED):
                    task.update(status=status, result=result)
    return {i: (t["data"], t["status"], t["result"]) for i, t in tasks.items()}


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[str, list[list[Any]]]]:
    """Segments of events as the memory's API can write them: updates only of known tasks."""
    known: set[str] = set()
    segments = []
    for number in range(draw(st.integers(1, 8))):
        events: list[list[Any]] = []
        for _ in range(draw(st.integers(1, 4))):
            task_id = draw(st.sampled_from(TASKS))
            updates = st.sampled_from(["s", "u", "u", "u", "d"])
            kind = draw(updates) if task_id in known else "s"
            if kind == "s":
                events.append(["s", task_id, draw(st.sampled_from(["{}", '{"v":1}', '{"v":2}']))])
                known.add(task_id)
            elif kind == "d":
                events.append(["d", task_id])
                known.discard(task_id)
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
