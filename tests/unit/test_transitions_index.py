"""IndexedTransitions (compiled, integer ids) against ItemTransitions (dicts, the reference) served uncached:
the same graphs in the same order, the same lists, exactly, on random streams with every cap binding."""

import pickle
import random

import pytest

from shopstream.models.events import Event
from shopstream.models.transitions import ItemTransitions
from shopstream.models.transitions_index import IndexedTransitions
from shopstream.models.transitions_kernel import HEAD


def _stream(n: int, seed: int, sessions: int = 40, items: int = 60) -> list[Event]:
    rng = random.Random(seed)
    kinds = ["view"] * 6 + ["add_to_cart", "purchase", "remove_from_cart", "impression"]
    return [
        Event(f"e{i}", 1e9 + i * 7, f"s{rng.randrange(sessions)}", rng.choice(kinds),
              f"i{int(rng.paretovariate(1.1)) % items}")
        for i in range(n)
    ]


def _reference_graphs(model: ItemTransitions) -> list[list[tuple[str, list[tuple[str, float]]]]]:
    """Each graph's rows from least to most recently written, each row's edges in insertion order."""
    graphs = (model._next, model._covisit)
    return [[(src, list(edges.items())) for src, edges in graph._edges.items()] for graph in graphs]


def _indexed_graphs(model: IndexedTransitions) -> list[list[tuple[str, list[tuple[str, float]]]]]:
    graphs = []
    for g in range(2):
        rows, row = [], int(model._ends[g, HEAD])
        while row >= 0:
            n = int(model._cnt[g, row])
            edges = zip(model._names[model._dst[g, row, :n]].tolist(), model._wt[g, row, :n].tolist(), strict=True)
            rows.append((model._names[model._item_of[g, row]], list(edges)))
            row = int(model._nxt[g, row])
        graphs.append(rows)
    return graphs


def _assert_same(indexed: IndexedTransitions, reference: ItemTransitions, k: int) -> int:
    graphs = _reference_graphs(reference)
    assert _indexed_graphs(indexed) == graphs
    # Every id in use is an item some row or edge names: ids are freed with the last reference to them.
    named = {src for graph in graphs for src, _ in graph} | {
        dst for graph in graphs for _, edges in graph for dst, _ in edges}
    assert set(indexed._ids) == named
    assert indexed.size() == reference.size() and indexed.evictions() == reference.evictions()
    served = 0
    sessions = [*reference._sessions, "unknown"]
    with reference.uncached():
        expected = [reference.recommend_session(session, k) for session in sessions]
    for session, listed in zip(sessions, expected, strict=True):
        assert indexed.recommend_session(session, k) == listed
        served += bool(listed)
    assert indexed.recommend_sessions(sessions, k) == expected  # a step's lists in one call
    for item in sorted(named):
        assert indexed.similar_items(item, k) == reference.similar_items(item, k)
    return served


@pytest.mark.parametrize(
    ("window", "max_items", "max_neighbours", "k"),
    [(3, 200_000, 50, 20), (3, 25, 4, 10), (1, 15, 2, 5), (6, 30, 3, 100)],
)
def test_same_graphs_and_lists_as_the_dict_reference(window, max_items, max_neighbours, k):
    events = _stream(5000, seed=window * 1000 + max_items)
    settings = dict(window=window, max_items=max_items, max_neighbours=max_neighbours, max_sessions=30,
                    session_ttl_s=2000.0)
    indexed, reference = IndexedTransitions(**settings), ItemTransitions(**settings)
    cuts, start, served = random.Random(7), 0, 0
    while start < len(events):  # the reference one event at a time: batches learn what their events do
        end = start + cuts.choice([1, 3, 40, 400])
        indexed.learn_many(events[start:end])
        for event in events[start:end]:
            reference.learn_one(event)
        served += _assert_same(indexed, reference, k)
        start = end
    assert served > 1000
    if max_items < 100:  # the caps bound: rows evicted, edges pruned, ids freed and handed out again
        assert reference.evictions()["items"] > 50
        assert indexed._free or indexed._high > len(indexed._ids)


def test_restored_from_a_pickle_learns_and_serves_as_uninterrupted():
    events = _stream(3000, seed=3)
    settings = dict(max_items=20, max_neighbours=3)
    uninterrupted, first = IndexedTransitions(**settings), IndexedTransitions(**settings)
    uninterrupted.learn_many(events)
    first.learn_many(events[:1500])
    restored = pickle.loads(pickle.dumps(first))
    restored.learn_many(events[1500:])
    assert _indexed_graphs(restored) == _indexed_graphs(uninterrupted)
    sessions = sorted({e.session_id for e in events})
    assert [restored.recommend_session(s, 10) for s in sessions] == [
        uninterrupted.recommend_session(s, 10) for s in sessions]


def test_arrays_grow_within_a_batch_as_rows_are_needed_and_stop_at_the_cap():
    """Rows are allocated as items arrive (a catch-up batch must not reserve the cap), also mid-batch."""
    rng = random.Random(5)
    events = [Event(f"e{i}", 1e9 + i, f"s{rng.randrange(300)}", "view", f"i{rng.randrange(3000)}") for i in range(6000)]
    indexed, reference = IndexedTransitions(max_items=1500), ItemTransitions(max_items=1500)
    indexed.learn_many(events)  # one batch: the rows double several times inside it
    reference.learn_many(events)
    assert _indexed_graphs(indexed) == _reference_graphs(reference)
    assert 1024 < indexed._cnt.shape[1] <= 1500 == indexed.size()["items"] and reference.evictions()["items"] > 0
    small = IndexedTransitions(max_items=100_000)
    small.learn_many(events[:300])
    assert small._cnt.shape[1] <= 512


def test_ids_stay_near_the_rows_when_items_never_come_back():
    model = IndexedTransitions(max_items=300, max_neighbours=2, window=2)
    model.learn_many([Event(f"e{i}", 1e9 + i, f"s{i // 2}", "view", f"i{i}") for i in range(4000)])
    assert model._cnt.shape[1] == 300 and model.size()["items"] == 300
    # Each session of two clicks links two items; the evicted rows' ids are freed, so ids stay near the rows.
    assert len(model._ids) <= 2 * 300 + 2


@pytest.mark.parametrize("model", [ItemTransitions, IndexedTransitions])
def test_caps_below_one_are_refused(model):
    for setting in ("window", "max_items", "max_neighbours", "max_sessions"):
        with pytest.raises(ValueError, match="at least 1"):
            model(**{setting: 0})


def test_a_list_of_no_length_asks_nothing_and_changes_nothing():
    """A k below 1 must not leave the kernel's scratch marks behind (they would drop items from later lists)."""
    events = _stream(600, seed=9)
    indexed, reference = IndexedTransitions(), ItemTransitions()
    indexed.learn_many(events)
    reference.learn_many(events)
    sessions = sorted({e.session_id for e in events})
    for k in (0, -3):
        assert all(indexed.recommend_session(s, k) == [] for s in sessions)
        assert indexed.similar_items("i1", k) == reference.similar_items("i1", k) == []
    with reference.uncached():
        assert [indexed.recommend_session(s, 10) for s in sessions] == [
            reference.recommend_session(s, 10) for s in sessions]
