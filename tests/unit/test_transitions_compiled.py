"""ItemTransitions' compiled session lists against its pure-Python reference, after every event of random streams.

Both models learn the same events (the learning is shared code), so their votes are the same; the compiled
loop must rank them as the reference does, with the caps binding: neighbours per item, items (so the
compiled path's item rows are dropped and assigned again), sessions and their TTL, and the vote cache.
"""

from __future__ import annotations

import pickle
import random

import pytest

from shopstream.models.events import Event
from shopstream.models.transitions import ItemTransitions

CAPS = {
    "wide": {},
    "tight": {"window": 4, "max_items": 25, "max_neighbours": 3, "max_sessions": 15, "session_ttl_s": 300.0},
    "fresh votes": {"window": 2, "max_items": 40, "max_neighbours": 5, "vote_staleness": 0.0},
}


def _stream(n: int, seed: int) -> list[Event]:
    rng = random.Random(seed)
    kinds = ["view"] * 6 + ["add_to_cart", "purchase", "remove_from_cart"]
    return [
        Event(f"e{i}", 1e9 + i * 3, f"s{rng.randrange(30)}", rng.choice(kinds), f"i{int(rng.paretovariate(0.6)) % 400}")
        for i in range(n)
    ]


@pytest.mark.parametrize("caps", CAPS.values(), ids=CAPS.keys())
@pytest.mark.parametrize("seed", [0, 1])
def test_compiled_lists_are_the_references(caps, seed):
    reference, compiled = ItemTransitions(**caps, compiled=False), ItemTransitions(**caps)
    generations = set()
    for event in _stream(2500, seed):
        reference.learn_one(event)
        compiled.learn_one(event)
        for k in (1, 5, 200):
            expected = reference.recommend_session(event.session_id, k)
            assert compiled.recommend_session(event.session_id, k) == expected
        with reference.uncached(), compiled.uncached():  # as the online hit-rate asks
            assert compiled.recommend_session(event.session_id, 20) == reference.recommend_session(event.session_id, 20)
        generations.add(compiled._generation)
    if caps:
        assert len(generations) > 1  # the item rows were dropped and assigned again


def test_a_restored_model_ranks_as_before():
    model = ItemTransitions(max_items=30)
    events = _stream(600, 2)
    model.learn_many(events)
    restored = pickle.loads(pickle.dumps(model))
    for session in {event.session_id for event in events}:
        assert restored.recommend_session(session, 20) == model.recommend_session(session, 20)
