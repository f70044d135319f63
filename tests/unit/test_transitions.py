"""ItemTransitions learns a batch in one pass per graph: the same graphs as event by event."""

import random

import pytest

from shopstream.models.events import Event
from shopstream.models.transitions import ItemTransitions


def _stream(n: int, seed: int = 0) -> list[Event]:
    rng = random.Random(seed)
    kinds = ["view"] * 6 + ["add_to_cart", "purchase", "remove_from_cart", "impression"]
    return [
        Event(f"e{i}", 1e9 + i * 7, f"s{rng.randrange(40)}", rng.choice(kinds), f"i{int(rng.paretovariate(1.2)) % 60}")
        for i in range(n)
    ]


def _edges(model: ItemTransitions) -> list[dict[str, dict[str, float]]]:
    return [dict(graph._edges) for graph in (model._next, model._covisit)]


@pytest.mark.parametrize("batch", [1, 7, 500])
def test_batches_learn_what_single_events_learn(batch):
    events = _stream(3000)
    # A session TTL shorter than the stream, so expiry happens inside batches too.
    one_by_one, batched = ItemTransitions(session_ttl_s=600), ItemTransitions(session_ttl_s=600)
    for event in events:
        one_by_one.learn_one(event)
    for start in range(0, len(events), batch):
        batched.learn_many(events[start : start + batch])
    assert one_by_one.expired_sessions == batched.expired_sessions > 0
    for expected, got in zip(_edges(one_by_one), _edges(batched), strict=True):
        assert expected.keys() == got.keys()
        for src, edges in expected.items():
            assert got[src] == pytest.approx(edges)
    for session in {e.session_id for e in events}:  # ties may come in another order: compare the scores
        expected = [score for _, score in one_by_one.recommend_session(session, 10)]
        assert [score for _, score in batched.recommend_session(session, 10)] == pytest.approx(expected)
    expected = dict(one_by_one.similar_items("i1", 50))
    assert dict(batched.similar_items("i1", 50)) == pytest.approx(expected) and len(expected) > 3


def test_neighbours_stay_capped_within_a_batch():
    model = ItemTransitions(max_neighbours=3)
    model.learn_many([Event(f"e{i}", 1e9 + i, f"s{i // 2}", "view", "hub" if i % 2 == 0 else f"x{i}")
                      for i in range(200)])
    assert len(model._covisit._edges.peek("hub")) <= 2 * 3
    assert len(model.similar_items("hub", 10)) == 3
