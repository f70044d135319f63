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


class _CheckedEveryEvent(ItemTransitions):
    """The reference: expiry checked before every event, as before the threshold."""

    def learn_many(self, events):  # type: ignore[no-untyped-def]
        for event in events:
            self._next_expiry = -float("inf")
            super().learn_many([event])


@pytest.mark.parametrize("max_sessions", [10, 1000])
def test_expiry_threshold_expires_what_a_check_on_every_event_expires(max_sessions):
    """Out-of-order event time (partitions consumed side by side) and a session cap move the front."""
    rng = random.Random(1)
    events = [Event(f"e{i}", 1e9 + i * 5 + rng.uniform(-900, 900), f"s{rng.randrange(60)}", "view",
                    f"i{rng.randrange(30)}") for i in range(4000)]
    fast = ItemTransitions(session_ttl_s=600, max_sessions=max_sessions)
    reference = _CheckedEveryEvent(session_ttl_s=600, max_sessions=max_sessions)
    for start in range(0, len(events), 50):
        fast.learn_many(events[start : start + 50])
        reference.learn_many(events[start : start + 50])
    assert fast.expired_sessions == reference.expired_sessions > 100
    assert list(fast._sessions) == list(reference._sessions)
    (transitions, covisits), (expected_transitions, expected_covisits) = _edges(fast), _edges(reference)
    assert transitions == expected_transitions and covisits.keys() == expected_covisits.keys()
    for src, edges in expected_covisits.items():  # sums of 1, 1/2, 1/3 in another order: close, not equal
        assert covisits[src] == pytest.approx(edges)
