"""A checkpointed stack is the stack: restored, it serves and learns exactly as the one that never stopped."""

from __future__ import annotations

import os
import pickle
from collections import Counter

import orjson
import pytest

from shopstream.models.engine import RecommenderStack
from shopstream.models.events import Event, parse_event
from shopstream.models.stack_config import StackConfig
from shopstream.producers.synthetic import SyntheticTraffic
from shopstream.streams import checkpoint
from shopstream.streams.checkpoint import Manifest, Snapshot, dump_stack, load_stack, split


def stream(n: int) -> list[tuple[Event, float]]:
    return [(parse_event(raw, now=2e9), 0.0) for raw in SyntheticTraffic(seed=3, start_ts=1.7e9, rate=50).take(n)]


def lists(stack: RecommenderStack, events: list[tuple[Event, float]]) -> list[tuple[str, str, list[str], list[float]]]:
    out = []
    for i in range(0, len(events), 700):
        out += [(r.kind, r.id, r.items, r.scores) for r in stack.process(events[i : i + 700]).lists]
    return out


def hit_rates(stack: RecommenderStack, events: list[tuple[Event, float]]) -> dict[tuple[str, int], float]:
    """Online HR@K per served model over ``events``, as the worker's metrics would show it."""
    hits: Counter[tuple[str, int]] = Counter()
    predictions: Counter[tuple[str, int]] = Counter()
    for i in range(0, len(events), 700):
        for delta in stack.process(events[i : i + 700]).scores:
            hits[delta.model, delta.k] += delta.hits
            predictions[delta.model, delta.k] += delta.predictions
    return {key: hits[key] / n for key, n in predictions.items() if n}


def test_restored_stack_serves_and_learns_as_the_uninterrupted_one() -> None:
    events = stream(12_000)
    config = StackConfig(max_items=3000, max_users=2000, max_sessions=2000, dedupe_window=20_000,
                         hit_rate_sample=1.0)  # every session scored: 2,000 events hold few of the default sample
    uninterrupted, checkpointed = RecommenderStack(config), RecommenderStack(config)
    lists(uninterrupted, events[:8000])
    lists(checkpointed, events[:8000])
    restored = load_stack(dump_stack(checkpointed))
    assert lists(restored, events[8000:10_000]) == lists(uninterrupted, events[8000:10_000])
    # The next events' online hit-rate is the uninterrupted worker's (the issue asked for within 5 %).
    after_restore = hit_rates(restored, events[10_000:])
    assert after_restore[("session:transitions", 20)] > 0.1
    assert after_restore == hit_rates(uninterrupted, events[10_000:])
    assert restored.size() == uninterrupted.size() and restored.learned == uninterrupted.learned == 12_000
    # The dedupe ids came along: a replay of what the checkpoint holds is not learned again.
    assert sum(restored.process(events[7000:8000]).duplicates.values()) == 1000


def test_a_checkpoint_holds_what_was_learned_not_the_preallocated_capacity() -> None:
    small, large = RecommenderStack(StackConfig()), RecommenderStack(StackConfig(max_items=10**6, max_users=10**6))
    for stack in (small, large):
        lists(stack, stream(2000))
    assert len(dump_stack(large)) < 1.5 * len(dump_stack(small))
    assert len(pickle.dumps(large)) < 20 * 2**20


def test_payload_splits_and_manifest_round_trip() -> None:
    payload = bytes(range(256)) * 100
    assert b"".join(split(payload, 1000)) == payload and max(map(len, split(payload, 1000))) == 1000
    manifest = Manifest(1, 3, "ab", 25_600, {0: 10, 3: 7}, 1.5, "layout", [2, 5], "epoch-1")
    assert Manifest.decode(manifest.encode()) == manifest
    older = orjson.loads(manifest.encode())  # a manifest from before slots and epochs were recorded
    del older["slots"], older["epoch"]
    assert Manifest.decode(orjson.dumps(older)) == Manifest(1, 3, "ab", 25_600, {0: 10, 3: 7}, 1.5, "layout")


def test_a_forked_snapshot_dumps_what_the_stack_holds_at_the_fork() -> None:
    stack = RecommenderStack(StackConfig(max_items=3000, max_users=2000, max_sessions=2000))
    events = stream(3000)
    lists(stack, events[:2000])
    expected = dump_stack(stack)
    snapshot = Snapshot(stack)
    lists(stack, events[2000:])  # the worker learns on while the child dumps its copy
    assert snapshot.payload() == expected
    assert load_stack(expected).learned == 2000


@pytest.mark.parametrize("config", [
    StackConfig(session_model="vsknn"), StackConfig(session_model="session_blend"), StackConfig(experiment="thompson"),
], ids=["vsknn", "session_blend", "experiment"])
def test_every_selectable_stack_checkpoints_and_serves_on(config: StackConfig) -> None:
    events = stream(3000)
    uninterrupted, checkpointed = RecommenderStack(config), RecommenderStack(config)
    lists(uninterrupted, events[:2000])
    lists(checkpointed, events[:2000])
    restored = load_stack(dump_stack(checkpointed))
    assert lists(restored, events[2000:]) == lists(uninterrupted, events[2000:])


def test_the_snapshot_child_dumps_at_the_lowest_cpu_priority(monkeypatch: pytest.MonkeyPatch) -> None:
    # The child's dump reports its own niceness: the worker, the broker and Redis come first on a busy machine.
    monkeypatch.setattr(checkpoint, "dump_stack", lambda _: str(os.getpriority(os.PRIO_PROCESS, 0)).encode())
    assert int(Snapshot(RecommenderStack(StackConfig())).payload()) == 19
