"""Trending keeps its item cap within a batch, evicting the weakest."""

import pytest

from shopstream.models.events import Event
from shopstream.models.trending import Trending


def test_a_batch_with_more_new_items_than_room_keeps_the_cap():
    model = Trending(max_items=20)
    model.learn_many([Event(f"e{i}", 1e9 + i, "s", "view", f"i{i}") for i in range(100)]
                     + [Event(f"p{i}", 1e9 + 100, "s", "purchase", "i99") for i in range(3)])
    assert model.size()["items"] <= 20 and model.evictions()["items"] >= 80
    assert model.top(1) == [("i99", pytest.approx(16.0, rel=1e-4))]
