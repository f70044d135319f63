"""The online hit-rate is a function of the event stream: the same counts whatever the batching, and K workers
counting the keys they own add up to one worker's."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from shopstream.models.engine import RecommenderStack, StackConfig
from shopstream.models.events import Event, parse_event
from shopstream.models.ownership import KeyOwner
from shopstream.models.transitions import ItemTransitions
from shopstream.producers.synthetic import SyntheticTraffic

T0 = 1_700_000_000.0
Counts = dict[tuple[str, int], tuple[int, int, float]]


def stream(n: int, seed: int = 3, **traffic: float) -> list[Event]:
    return [parse_event(raw, now=2e9) for raw in SyntheticTraffic(seed=seed, start_ts=T0, **traffic).take(n)]


def scored(stack: RecommenderStack, events: list[Event], batch: int) -> Counts:
    """Hits, predictions and reciprocal-rank sums per (model, K) over the stream fed in batches of ``batch``."""
    totals: Counter[tuple[str, int]] = Counter()
    predictions: Counter[tuple[str, int]] = Counter()
    rr: dict[tuple[str, int], float] = {}
    for start in range(0, len(events), batch):
        for delta in stack.process([(e, 0.0) for e in events[start : start + batch]]).scores:
            key = (delta.model, delta.k)
            totals[key] += delta.hits
            predictions[key] += delta.predictions
            rr[key] = rr.get(key, 0.0) + delta.rr_sum
    return {key: (totals[key], predictions[key], rr[key]) for key in predictions}


CONFIGS = {
    "default": {},
    "sampled": {"hit_rate_sample": 0.3},
    "blend": {"session_model": "session_blend"},
    "thompson": {"experiment": "thompson"},
}


@pytest.mark.parametrize("name", CONFIGS)
def test_the_same_stream_scores_the_same_in_batches_of_1_40_and_5000(name: str) -> None:
    options = {"hit_rate_sample": 1.0, "max_items": 400, "max_sessions": 300, "max_users": 200} | CONFIGS[name]
    # A small catalogue and small caps, so neighbour lists are pruned and every cap evicts along the stream.
    events = stream(5000, n_items=300)
    counts = [scored(RecommenderStack(StackConfig(**options)), events, batch)  # type: ignore[arg-type]
              for batch in (1, 40, 5000)]
    # Hits and predictions exactly; the reciprocal-rank sums are drained once per batch, so they are added up
    # in other groupings: equal but for the last bits.
    for other in counts[1:]:
        assert {key: n[:2] for key, n in other.items()} == {key: n[:2] for key, n in counts[0].items()}
        assert {key: n[2] for key, n in other.items()} == pytest.approx({key: n[2] for key, n in counts[0].items()},
                                                                        rel=1e-12)
    predictions = {model: n for (model, k), (_, n, _) in counts[0].items() if k == 10}
    assert predictions.get("session:transitions" if name != "blend" else "session:session_blend", 0) > 500
    assert any(model.startswith("user:") for model in predictions), predictions


def test_workers_counting_the_keys_they_own_add_up_to_one_worker() -> None:
    events = stream(4000)
    config = StackConfig(hit_rate_sample=1.0)
    whole = scored(RecommenderStack(config), events, 40)
    parts = []
    for slot, batch in ((0, 7), (1, 300)):  # and each worker batches differently
        stack = RecommenderStack(config)
        stack.owner = KeyOwner(2, frozenset({slot}))
        parts.append(scored(stack, events, batch))
    assert parts[0] and parts[1]
    for key, (hits, predictions, rr) in whole.items():
        split = [part.get(key, (0, 0, 0.0)) for part in parts]
        assert (hits, predictions) == (split[0][0] + split[1][0], split[0][1] + split[1][1])
        assert rr == pytest.approx(split[0][2] + split[1][2])


def test_the_sample_scores_a_share_of_the_sessions() -> None:
    events = stream(4000)
    every = scored(RecommenderStack(StackConfig(hit_rate_sample=1.0)), events, 40)
    tenth = scored(RecommenderStack(StackConfig(hit_rate_sample=0.1)), events, 40)
    n_every = every[("session:transitions", 10)][1]
    n_tenth = tenth[("session:transitions", 10)][1]
    assert 0.05 * n_every < n_tenth < 0.2 * n_every


def test_transitions_learn_a_batch_exactly_as_one_event_at_a_time() -> None:
    """Pruning over the neighbour cap and the item cap's evictions included: a batch is not one step."""
    events = stream(3000, n_items=60)
    single, batched = (ItemTransitions(max_items=40, max_neighbours=4, max_sessions=50) for _ in range(2))
    for event in events:
        single.learn_one(event)
    cuts = random.Random(1)
    start = 0
    while start < len(events):
        end = start + cuts.randint(1, 400)
        batched.learn_many(events[start:end])
        start = end
    assert single.evictions()["items"] > 0
    for graph in ("_next", "_covisit"):
        assert list(getattr(single, graph)._edges.items()) == list(getattr(batched, graph)._edges.items())
    sessions = sorted({e.session_id for e in events})
    with single.uncached(), batched.uncached():
        assert [single.recommend_session(s, 10) for s in sessions] == [
            batched.recommend_session(s, 10) for s in sessions]


def test_uncached_serving_neither_reads_nor_fills_the_vote_cache() -> None:
    clicks = [("a", "x"), ("a", "y"), ("b", "y"), ("b", "z"), ("c", "y"), ("c", "z")]
    events = [Event(f"e{i}", T0 + i, session, "view", item) for i, (session, item) in enumerate(clicks)]
    served, fresh = ItemTransitions(vote_staleness=1e9), ItemTransitions()  # a cached vote is never refreshed
    served.learn_many(events[:2])
    stale = served.recommend_session("a", 5)  # caches the votes of x and y
    for model in (served, fresh):
        model.learn_many(events[2:] if model is served else events)
    with served.uncached():
        uncached = served.recommend_session("a", 5)
    assert uncached == fresh.recommend_session("a", 5) != stale  # y's transitions to z count
    assert served.recommend_session("a", 5) == stale  # the cache was not refreshed by the uncached answer
