"""The session blend: weights follow the components' running hit-rates, so it serves at least as well as the
better component, with memory bounded by its components' caps."""

from __future__ import annotations

import random

import pytest

from shopstream.models.base import Scored, SessionRecommender
from shopstream.models.evaluation.session_protocol import evaluate_sessions
from shopstream.models.events import Event
from shopstream.models.session_blend import SessionBlend, default_knns
from shopstream.models.session_knn import SessionKNN
from shopstream.models.transitions_index import IndexedTransitions
from tests.unit.test_session_knn_reference import random_log

RING = 200


def ring_walks(sessions: int, seed: int = 3) -> list[Event]:
    """Sessions walking a ring of items, mostly one step forward: the next item follows the last one."""
    rng = random.Random(seed)
    events: list[Event] = []
    for s in range(sessions):
        item = rng.randrange(RING)
        for _ in range(rng.randint(2, 8)):
            events.append(Event(f"e{len(events)}", 1e9 + len(events), f"s{s}", "view", f"i{item}"))
            item = (item + 1) % RING if rng.random() < 0.9 else rng.randrange(RING)
    return events


class RepeatLast(SessionRecommender):
    """A confidently wrong component on ring walks: all its mass on the session's last item, never next."""

    name = "repeat_last"

    def __init__(self) -> None:
        self._last: dict[str, str] = {}

    def learn_one(self, event: Event) -> None:
        self._last[event.session_id] = event.item_id

    def recommend_session(self, session_id: str, k: int) -> list[Scored]:
        last = self._last.get(session_id)
        return [] if last is None or k < 1 else [(last, 1.0)]


def mrr(factory: object, events: list[Event]) -> float:
    return evaluate_sessions(events, {"m": factory}, ks=(20,))["m"]["mrr@20"]  # type: ignore[dict-item]


def test_learn_many_equals_learn_one_in_order() -> None:
    events = ring_walks(300)
    batched, single = SessionBlend(score_every=3), SessionBlend(score_every=3)
    for start in range(0, len(events), 97):
        batched.learn_many(events[start : start + 97])
    for event in events:
        single.learn_one(event)
    sessions = sorted({e.session_id for e in events})[:50]
    assert batched.weights() == single.weights()
    assert [batched.recommend_session(s, 10) for s in sessions] == [single.recommend_session(s, 10) for s in sessions]


@pytest.mark.parametrize("seed", [1, 2])
def test_fused_lists_and_weights_equal_the_plain_path(seed: int) -> None:
    """The kernels' path (both kNN lists in one call, added in a kernel) against each component's own list added
    in a dict, after every click of random streams, with the index's caps binding so that some of the transitions'
    items are not in the index."""
    fused, plain = (
        SessionBlend(IndexedTransitions(), default_knns(window=5, max_sessions=40), depth=30, score_every=3, fused=f)
        for f in (True, False)
    )
    assert fused._knns is not None and plain._knns is None
    strangers = 0
    for n, (sid, item, ts) in enumerate(random_log(seed, sessions=150)):
        event = Event(f"e{n}", ts, sid, "view", item)
        fused.learn_one(event)
        plain.learn_one(event)
        assert fused.weights() == plain.weights()
        for k in (3, 20, 1_000):
            assert fused.recommend_session(sid, k) == plain.recommend_session(sid, k), (n, k)
        index = fused._knns.index
        strangers += None in index.item_ids(i for i, _ in fused.transitions.recommend_session(sid, 30))
    assert strangers > 0 and len(set(fused.weights())) > 1


def test_caps_bound_memory() -> None:
    cap = 40
    model = SessionBlend(IndexedTransitions(max_items=cap, max_sessions=cap), default_knns(window=5, max_sessions=cap))
    model.learn_many(ring_walks(500))
    sizes = model.size()
    assert sizes["sessions"] <= cap and sizes["items"] <= cap * 5, sizes
    assert model.evictions()["sessions"] > 0


def test_seeded_runs_repeat_exactly() -> None:
    first, second = SessionBlend(), SessionBlend()
    for model in (first, second):
        model.learn_many(ring_walks(300, seed=11))
    assert first.weights() == second.weights()
    assert first.recommend_session("s299", 20) == second.recommend_session("s299", 20)


def test_weights_leave_a_confidently_wrong_component_out() -> None:
    """Equal weights would rank the wrong component's item first in every list; learned weights do not."""
    events = ring_walks(600)
    transitions = mrr(IndexedTransitions, events)
    blend = mrr(lambda: SessionBlend(others=[RepeatLast()]), events)
    equal = mrr(lambda: SessionBlend(others=[RepeatLast()], score_every=10**9), events)  # never scored: equal weights
    assert blend >= transitions - 0.01
    assert equal < transitions - 0.2  # the scenario is one where blending blindly hurts
    model = SessionBlend(others=[RepeatLast()])
    model.learn_many(events)
    assert model.weights()[0] > 0.99


def test_blend_reaches_the_better_of_transitions_and_knn() -> None:
    events = ring_walks(600)
    components = [mrr(IndexedTransitions, events), mrr(lambda: default_knns()[0], events)]
    assert max(components) - min(components) > 0.1  # one component is clearly better here
    assert mrr(SessionBlend, events) >= max(components) - 0.01


def test_similar_items_come_from_the_transitions_model() -> None:
    transitions = IndexedTransitions()
    model = SessionBlend(transitions, [SessionKNN()])
    model.learn_many(ring_walks(50))
    assert model.similar_items("i5", 5) == transitions.similar_items("i5", 5)


def test_rejects_nonpositive_settings() -> None:
    with pytest.raises(ValueError):
        SessionBlend(score_every=0)
