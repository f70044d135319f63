"""Trending learns a batch in one vectorised pass per scope: the same scores as event by event."""

import random

import pytest

from shopstream.models.events import Event
from shopstream.models.trending import Trending


def _stream(n: int, seed: int = 0) -> list[Event]:
    rng = random.Random(seed)
    kinds = ["view"] * 6 + ["add_to_cart", "purchase", "impression"]
    return [
        Event(f"e{i}", 1e9 + i * 60, "s", rng.choice(kinds), f"i{int(rng.paretovariate(1.1)) % 300}",
              category=rng.choice(["toys", "books", None]))
        for i in range(n)
    ]


@pytest.mark.parametrize("batch", [7, 1000])
def test_batches_score_what_single_events_score(batch):
    events = _stream(5000)  # 5000 minutes: the landmark moves forward several times (half-life 1 h)
    one_by_one, batched = Trending(half_life_s=3600), Trending(half_life_s=3600)
    for event in events:
        one_by_one.learn_one(event)
    for start in range(0, len(events), batch):
        batched.learn_many(events[start : start + batch])
    for category in (None, "toys", "books"):
        expected = one_by_one.top(30, category)
        assert len(expected) == 30
        assert dict(batched.top(30, category)) == pytest.approx(dict(expected), rel=1e-9)


def test_a_batch_with_more_new_items_than_room_keeps_the_cap():
    model = Trending(max_items=20)
    model.learn_many([Event(f"e{i}", 1e9 + i, "s", "view", f"i{i}") for i in range(100)]
                     + [Event(f"p{i}", 1e9 + 100, "s", "purchase", "i99") for i in range(3)])
    assert model.size()["items"] <= 20 and model.evictions()["items"] >= 80
    assert model.top(1) == [("i99", pytest.approx(16.0, rel=1e-4))]
