"""Trending keeps its item cap within a batch, evicting the weakest, and learns a batch exactly as one by one."""

import random

import numpy as np
import pytest

from shopstream.models.events import Event
from shopstream.models.trending import Trending


def test_a_batch_with_more_new_items_than_room_keeps_the_cap():
    model = Trending(max_items=20)
    model.learn_many([Event(f"e{i}", 1e9 + i, "s", "view", f"i{i}") for i in range(100)]
                     + [Event(f"p{i}", 1e9 + 100, "s", "purchase", "i99") for i in range(3)])
    assert model.size()["items"] <= 20 and model.evictions()["items"] >= 80
    assert model.top(1) == [("i99", pytest.approx(16.0, rel=1e-4))]


def _stream(seed: int, n: int, items: int, categories: int) -> list[Event]:
    """Removals (negative weights) and impressions (none) among the clicks, some hours-long gaps (the landmark
    moves), categories missing on some events."""
    rng = random.Random(seed)
    kinds = ["view"] * 5 + ["add_to_cart", "purchase", "remove_from_cart", "remove_from_cart", "impression"]
    ts, events = 1e9, []
    for i in range(n):
        ts += rng.choice([1.0, 30.0, 5e5]) if rng.random() < 0.01 else rng.random() * 3
        category = None if rng.random() < 0.2 else f"c{rng.randrange(categories)}"
        events.append(Event(f"e{i}", ts, "s", rng.choice(kinds), f"i{int(rng.paretovariate(1.2)) % items}",
                            category=category))
    return events


def _state(model: Trending) -> list[tuple[str | None, list[tuple[str, float]], int]]:
    scopes = [(None, model._global), *model._by_category.items()]
    return [(scope, sorted(zip(scores._index._rows, scores._scores[list(scores._index._rows.values())].tolist(),
                               strict=True)), scores.evictions) for scope, scores in scopes]


@pytest.mark.parametrize(("seed", "max_items", "max_categories", "batch"),
                         [(0, 10_000, 100, 40), (1, 30, 100, 7), (2, 10_000, 3, 25), (3, 100, 5, 500), (4, 50, 50, 1)])
def test_a_batch_learns_exactly_what_its_events_learn_one_by_one(seed, max_items, max_categories, batch):
    """Every score equal to the float (``np.add.at`` adds in order), the same rows evicted and the categories in
    the same recency order, with removals clamping at zero, the landmark moving and both caps binding."""
    events = _stream(seed, 3000, items=200, categories=12)
    one_by_one, batched = (Trending(max_items=max_items, max_categories=max_categories) for _ in range(2))
    for event in events:
        one_by_one.learn_one(event)
    for start in range(0, len(events), batch):
        batched.learn_many(events[start : start + batch])
    assert _state(batched) == _state(one_by_one)
    assert np.array_equal(batched._global._scores, one_by_one._global._scores)
    assert batched._global._t_ref == one_by_one._global._t_ref and batched.evictions() == one_by_one.evictions()
    for category in [None, *one_by_one.categories()]:
        assert batched.top(20, category) == one_by_one.top(20, category)
