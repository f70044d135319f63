"""SessionKNN: the V-SKNN formulas on hand-checked cases, bounded memory, and serving without side effects."""

from __future__ import annotations

import copy
import math

import pytest

from shopstream.models.events import Event
from shopstream.models.session_knn import SessionKNN

T0 = 1_700_000_000.0


def feed(model: SessionKNN, clicks: list[tuple[str, str]], t0: float = T0, kind: str = "view") -> None:
    for n, (session, item) in enumerate(clicks):
        model.learn_one(Event(f"e{t0}-{n}", t0 + n, session, kind, item))


def test_unknown_session_and_non_positive_k_give_nothing() -> None:
    model = SessionKNN()
    feed(model, [("s1", "a")])
    assert model.recommend_session("nope", 5) == []
    assert model.recommend_session("s1", 0) == []


def test_vec_similarity_and_div_decay_match_hand_computation() -> None:
    model = SessionKNN(similarity="vec")
    feed(model, [("n1", "a"), ("n1", "x"), ("n2", "b"), ("n2", "y"), ("cur", "a"), ("cur", "b")])
    scores = dict(model.recommend_session("cur", 10))
    # cur = [a, b]: weights a=1/2, b=2/2; vec divides by 2 distinct items.
    # n1 shares a (sim 0.25, last shared click 2 steps back -> 1/2); n2 shares b (sim 0.5, step 1).
    assert scores["x"] == pytest.approx(0.25 * 0.5)
    assert scores["y"] == pytest.approx(0.5)
    assert scores["a"] == pytest.approx(0.125) and scores["b"] == pytest.approx(0.5)


def test_cosine_divides_by_both_norms() -> None:
    model = SessionKNN(similarity="cosine", weighting="same")
    feed(model, [("n1", "a"), ("n1", "x"), ("n1", "z"), ("cur", "a")])
    assert dict(model.recommend_session("cur", 5))["x"] == pytest.approx(1 / math.sqrt(3))


def test_remind_false_excludes_the_sessions_own_items() -> None:
    model = SessionKNN(remind=False)
    feed(model, [("n1", "a"), ("n1", "x"), ("cur", "a")])
    assert [item for item, _ in model.recommend_session("cur", 5)] == ["x"]


def test_session_is_not_its_own_neighbour() -> None:
    model = SessionKNN()
    feed(model, [("cur", "a"), ("cur", "b")])
    assert model.recommend_session("cur", 5) == []


def test_lambda_inh_favours_items_near_the_shared_one() -> None:
    model = SessionKNN(lambda_inh=1.0, weighting_score="same")
    feed(model, [("n1", "far"), ("n1", "mid"), ("n1", "near"), ("n1", "a"), ("cur", "a")])
    ranked = [item for item, _ in model.recommend_session("cur", 4)]
    assert ranked == ["a", "near", "mid", "far"]


def test_steep_lambda_ipw_keeps_silenced_neighbours_as_fill() -> None:
    model = SessionKNN(lambda_ipw=1e-5)
    feed(model, [("n1", "a"), ("n1", "x"), ("n2", "b"), ("n2", "y"), ("cur", "a"), ("cur", "b")])
    ranked = model.recommend_session("cur", 10)
    assert ranked[0][1] > 0 and {item for item, score in ranked if score == 0.0} == {"a", "x"}


def test_sample_size_keeps_only_the_most_recent_sessions_per_item() -> None:
    model = SessionKNN(sample_size=2)
    feed(model, [("old", "a"), ("old", "o"), ("mid", "a"), ("mid", "m"), ("new", "a"), ("new", "n")])
    feed(model, [("cur", "a")], t0=T0 + 100)
    items = {item for item, _ in model.recommend_session("cur", 10)}
    assert items == {"a", "m", "n"}


def test_window_forgets_the_oldest_clicks_of_a_session() -> None:
    model = SessionKNN(window=2)
    feed(model, [("n1", "a"), ("n1", "b"), ("n1", "c"), ("cur", "a")])
    assert model.recommend_session("cur", 5) == []  # n1 no longer holds "a"


def test_max_sessions_and_ttl_bound_memory_and_clean_the_index() -> None:
    model = SessionKNN(max_sessions=2, session_ttl_s=50)
    feed(model, [("s1", "a"), ("s2", "b"), ("s3", "c")])
    assert model.size() == {"sessions": 2, "items": 2}
    feed(model, [("s4", "d")], t0=T0 + 1_000)
    assert model.size() == {"sessions": 1, "items": 1}


def test_impressions_and_removals_are_not_learned() -> None:
    model = SessionKNN()
    feed(model, [("s1", "a")], kind="impression")
    feed(model, [("s1", "b")], kind="remove_from_cart")
    assert model.size() == {"sessions": 0, "items": 0}


def test_serving_changes_nothing() -> None:
    model = SessionKNN()
    feed(model, [("n1", "a"), ("n1", "x"), ("cur", "a"), ("n2", "b")])
    order = list(model._sessions)
    first = model.recommend_session("cur", 5)
    assert list(model._sessions) == order  # serving did not make "cur" the most recent
    assert model.recommend_session("cur", 5) == first


def test_bad_parameters_are_rejected() -> None:
    with pytest.raises(ValueError):
        SessionKNN(similarity="jaccard")
    with pytest.raises(ValueError):
        SessionKNN(k=0)


@pytest.mark.parametrize("options", [{"similarity": "vec"}, {"similarity": "cosine", "idf_weighting": 1.0}])
def test_similar_items_are_the_list_of_a_session_that_viewed_only_that_item(options: dict) -> None:
    """V-SKNN's item similarity: what a new session of the one item would be recommended (the item aside),
    without learning that session."""
    from shopstream.producers.synthetic import SyntheticTraffic

    model = SessionKNN(k=50, sample_size=200, **options)
    events = SyntheticTraffic(seed=3, start_ts=T0, n_items=300).take(4000)
    for e in events:
        model.learn_one(Event(e["event_id"], e["ts"], e["session_id"], e["type"], e["item_id"]))
    items = list(dict.fromkeys(e["item_id"] for e in events))[:40]
    for item in items:
        similar = model.similar_items(item, 10)
        assert similar and item not in dict(similar)
        probe = copy.deepcopy(model)
        probe.learn_one(Event("probe", events[-1]["ts"], "probe-session", "view", item))
        reference = [(i, s) for i, s in probe.recommend_session("probe-session", 1000) if i != item][:10]
        assert [i for i, _ in similar] == [i for i, _ in reference]
        if not options.get("idf_weighting"):  # with IDF the learned probe session shifts the weights a little
            assert [s for _, s in similar] == pytest.approx([s for _, s in reference])
    assert model.similar_items("unknown", 10) == [] and model.similar_items(items[0], 0) == []
