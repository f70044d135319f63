"""The compiled session-kNN (SessionIndex + IndexedSessionKNN) against the pure-Python SessionKNN, click by click.

``SessionKNN`` is itself checked against the plain reading of session-rec's definitions
(test_session_knn_reference.py); here the fast path must give the same lists after every click of random
streams, with the caps binding (window, sessions, TTL, postings), and two scorers sharing one index.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest

from shopstream.models.events import Event
from shopstream.models.session_index import IndexedSessionKNN, KnnGroup, SessionIndex
from shopstream.models.session_knn import SessionKNN
from shopstream.models.session_knn_kernel import _top, _top_recent_first
from tests.unit.test_session_knn_reference import SETTINGS, random_log

CAPS = {
    "wide": {"window": 50, "max_sessions": 10_000, "session_ttl_s": None},
    "tight": {"window": 4, "max_sessions": 30, "session_ttl_s": None},  # windows and the session cap bind
    "ttl": {"window": 3, "max_sessions": 20, "session_ttl_s": 5 * 86_400.0},  # and idle sessions expire
}


def pair(setting: str, caps: dict[str, Any]) -> tuple[SessionKNN, IndexedSessionKNN]:
    params = dict(SETTINGS[setting])
    reference = SessionKNN(**params, **caps)
    sample_size = params.pop("sample_size")
    return reference, IndexedSessionKNN(SessionIndex(sample_size=sample_size, **caps), **params)


def same_lists(expected: list[tuple[str, float]], served: list[tuple[str, float]]) -> bool:
    """Same scores in the same order, and the same item behind every positive score above the list's last
    (items of equal scores may come in another order, so the last score's may be others of that score)."""
    if [round(s, 9) for _, s in expected] != [round(s, 9) for _, s in served]:
        return False
    cut = round(expected[-1][1], 9) if expected else 0.0
    above = {item: score for item, score in expected if score > 0 and round(score, 9) > cut}
    return above.keys() == {item for item, score in served if score > 0 and round(score, 9) > cut} and all(
        score == pytest.approx(above[item], rel=1e-9) for item, score in served if item in above
    )


@pytest.mark.parametrize("caps", sorted(CAPS))
@pytest.mark.parametrize("setting", sorted(SETTINGS))
@pytest.mark.parametrize("seed", [1, 2])
def test_lists_equal_the_pure_python_model_after_every_click(setting: str, caps: str, seed: int) -> None:
    reference, fast = pair(setting, CAPS[caps])
    compared = 0
    for n, (sid, item, ts) in enumerate(random_log(seed, sessions=150)):
        event = Event(f"e{n}", ts, sid, "view", item)
        reference.learn_one(event)
        fast.learn_one(event)
        for k in (3, 1_000):  # a short list (ties at its end, the zero fill of silenced neighbours) and all
            expected = reference.recommend_session(sid, k)
            assert same_lists(expected, fast.recommend_session(sid, k)), (n, sid, k)
            compared += bool(expected)
        assert fast.size() == reference.size()
    assert fast.evictions() == reference.evictions()
    assert compared > 150


def test_the_caps_bind_in_the_tight_runs() -> None:
    """The comparison would prove little if nothing were ever dropped from a window, a postings list or the index."""
    _, fast = pair("vsknn", CAPS["tight"])
    for n, (sid, item, ts) in enumerate(random_log(1, sessions=150)):
        fast.learn_one(Event(f"e{n}", ts, sid, "view", item))
    index = fast.index
    assert fast.evictions()["sessions"] > 100
    assert (index.n[: index.sessions] == index.window).any()
    assert (index.count == index.sample_size + 1).any()


def test_scorers_sharing_an_index_learn_each_click_once() -> None:
    vstan_params = {key: v for key, v in SETTINGS["vstan"].items() if key != "sample_size"}
    index = SessionIndex(sample_size=15)
    vsknn = IndexedSessionKNN(index, k=6, similarity="vec")
    vstan = IndexedSessionKNN(index, **vstan_params, learns=False)
    alone_vsknn = IndexedSessionKNN(SessionIndex(sample_size=15), k=6, similarity="vec")
    alone_vstan = IndexedSessionKNN(SessionIndex(sample_size=15), **vstan_params)
    for n, (sid, item, ts) in enumerate(random_log(3)):
        event = Event(f"e{n}", ts, sid, "view", item)
        for model in (vsknn, vstan, alone_vsknn, alone_vstan):
            model.learn_one(event)
        assert vsknn.recommend_session(sid, 20) == alone_vsknn.recommend_session(sid, 20)
        assert vstan.recommend_session(sid, 20) == alone_vstan.recommend_session(sid, 20)
    assert vstan.size() == {} and vsknn.size() == alone_vsknn.size()


@pytest.mark.parametrize("caps", sorted(CAPS))
def test_a_group_lists_what_each_scorer_lists_alone(caps: str) -> None:
    """One kernel call for several scorers (the blend's) gives each scorer's own list, ties in the same order."""
    params = {key: v for key, v in SETTINGS["vstan-shipped"].items() if key != "sample_size"}
    index = SessionIndex(sample_size=15, **CAPS[caps])
    scorers = [IndexedSessionKNN(index, k=6, similarity="vec"), IndexedSessionKNN(index, **params, learns=False)]
    group = KnnGroup(scorers)
    for n, (sid, item, ts) in enumerate(random_log(4, sessions=150)):
        index.learn_one(Event(f"e{n}", ts, sid, "view", item))
        for depth in (3, 1_000):
            lists = group.lists(sid, depth)
            assert lists is not None
            ids, scores, counts = lists
            for row, scorer in enumerate(scorers):
                n = counts[row]
                pairs = zip(ids[row, :n].tolist(), scores[row, :n].tolist(), strict=True)
                listed = [(index.names[i], s) for i, s in pairs]
                assert listed == scorer.recommend_session(sid, depth)
    assert group.lists("unknown", 5) is None
    with pytest.raises(ValueError):
        KnnGroup([scorers[0], IndexedSessionKNN(SessionIndex())])


@pytest.mark.parametrize("caps", sorted(CAPS))
def test_learning_in_batches_equals_learning_click_by_click(caps: str) -> None:
    """Runs of clicks go to the kernel in one call, cut where the oldest session is forgotten."""
    log = [Event(f"e{n}", ts, sid, "view", item) for n, (sid, item, ts) in enumerate(random_log(5, sessions=150))]
    single, batched = (IndexedSessionKNN(SessionIndex(sample_size=8, **CAPS[caps]), k=5) for _ in range(2))
    for event in log[:400]:
        single.learn_one(event)
    for start in range(0, 400, 37):
        batched.learn_many(log[start : min(start + 37, 400)])
    assert batched.size() == single.size() and batched.evictions() == single.evictions()
    for sid in sorted({event.session_id for event in log[:400]}):
        assert same_lists(single.recommend_session(sid, 50), batched.recommend_session(sid, 50)), sid


def test_a_pickled_index_serves_and_learns_on_alike() -> None:
    log = random_log(2)
    _, fast = pair("vstan-shipped", CAPS["tight"])
    for n, (sid, item, ts) in enumerate(log[:300]):
        fast.learn_one(Event(f"e{n}", ts, sid, "view", item))
    copy = pickle.loads(pickle.dumps(fast))
    for n, (sid, item, ts) in enumerate(log[300:], 300):
        for model in (fast, copy):
            model.learn_one(Event(f"e{n}", ts, sid, "view", item))
        assert copy.recommend_session(sid, 50) == fast.recommend_session(sid, 50)


def test_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        SessionIndex(window=0)
    with pytest.raises(ValueError):
        IndexedSessionKNN(SessionIndex(), similarity="jaccard")


@pytest.mark.parametrize("seed", range(20))
def test_the_kernels_top_k_is_a_stable_sort_cut_at_k(seed: int) -> None:
    """``_top`` (quicksort, then ties put in index order) picks what a stable sort of the values picks,
    and ``_top_recent_first`` breaks equal similarities by recency; values with many ties."""
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(1, 400)), int(rng.integers(1, 150))
    values = rng.integers(0, 12, n).astype(np.float64)
    assert _top(values, k).tolist() == np.argsort(-values, kind="stable")[:k].tolist()
    cands = rng.permutation(n)
    seq = rng.permutation(10 * n)[:n].astype(np.int64)  # unique, as click counters are
    expected = sorted(range(n), key=lambda i: (-values[i], -seq[cands[i]]))[:k]
    assert _top_recent_first(values, seq, cands, k).tolist() == expected
