"""SessionPropensity on a documented simulation: carts and long sessions convert more often.

Simulation: each session has a latent intent drawn uniformly; it views 1-6 items, adds to cart with
probability ``intent``, and purchases with probability ``0.8 * intent`` if it carted, else 0.02.
"""

import pickle
import random

import pytest
from river import compose, linear_model, metrics, optim, preprocessing

from shopstream.models.events import Event
from shopstream.models.propensity import SessionPropensity


def _sessions(n: int, seed: int = 0):
    rng = random.Random(seed)
    t = 1e9
    for s in range(n):
        intent = rng.random()
        events = ["view"] * rng.randint(1, 6)
        carted = rng.random() < intent
        if carted:
            events.append("add_to_cart")
        bought = rng.random() < (0.8 * intent if carted else 0.02)
        if bought:
            events.append("purchase")
        yield [Event(f"{s}-{i}", (t := t + 5), f"s{s}", e, f"i{rng.randint(0, 50)}", price=3.0)
               for i, e in enumerate(events)], bought
        t += 4000  # beyond the timeout: the previous session expires


def test_converting_sessions_rank_higher_after_training():
    """Scored at each session's last event before the purchase (or before it goes quiet)."""
    model = SessionPropensity(timeout_s=1800)
    auc = metrics.ROCAUC()
    for n, (events, bought) in enumerate(_sessions(3000)):
        browsing = [e for e in events if e.type != "purchase"]
        for event in browsing:
            model.learn_one(event)
        if n >= 1000:
            auc.update(bought, model.predict_session(browsing[-1].session_id))  # label not yet known
        if bought:
            model.learn_one(events[-1])
    assert auc.get() > 0.75  # carting is the only signal here: the Bayes bound is about 0.8
    assert model.labelled[True] > 500 and model.labelled[False] > 1500


def test_sessions_are_bounded_and_closed_as_negatives():
    model = SessionPropensity(max_sessions=5, timeout_s=1e9)
    for n in range(50):
        model.learn_one(Event(f"e{n}", 1e9 + n, f"s{n}", "view", "a"))
    assert model.size() == {"sessions": 5} and model.labelled[False] == 45
    assert model.predict_session("s0") is None and model.predict_session("s49") is not None


def test_pickles():
    model = SessionPropensity()
    for events, _ in _sessions(50):
        for event in events:
            model.learn_one(event)
    clone = pickle.loads(pickle.dumps(model))
    last = events[0].session_id
    assert clone.predict_session(last) == model.predict_session(last)


def test_out_of_order_events_and_a_moving_front_label_as_a_check_on_every_event():
    """Partitions are consumed side by side: a session's events can come back in time, and the session
    at the front of the activity order can be touched, bought from or evicted."""
    rng = random.Random(2)
    fast, reference = (SessionPropensity(timeout_s=600, max_sessions=20) for _ in range(2))
    for i in range(4000):
        kind = rng.choice(["view"] * 8 + ["add_to_cart", "purchase"])
        event = Event(f"e{i}", 1e9 + i * 5 + rng.uniform(-900, 900), f"s{rng.randrange(50)}", kind, "a", price=1.0)
        fast.learn_one(event)
        reference._next_expiry = -float("inf")  # the reference checks expiry before every event
        reference.learn_one(event)
    assert fast.labelled == reference.labelled and fast.labelled[False] > 100
    assert list(fast._sessions) == list(reference._sessions)
    assert fast.predict_session(next(iter(fast._sessions))) is not None  # no math domain error on a gap < 0


def test_sessions_scored_together_as_river_scores_each():
    """The vectorised pass reads River's scaler and weights: River's own per-dict path is the reference, for
    open sessions at every stage, unknown ones, one with an infinite feature, and before any learning."""
    model = SessionPropensity(timeout_s=1800)
    model.learn_one(Event("first", 1e9, "first", "view", "a"))
    assert model.predict_sessions(["first", "nobody"]) == [model.predict_session("first"), None]
    for events, _ in _sessions(1500, seed=4):
        for event in events:
            model.learn_one(event)
    rng, t = random.Random(4), events[-1].ts
    kinds = ["view", "view", "view", "add_to_cart", "remove_from_cart"]
    for i in range(300):  # 60 sessions open at once, at every stage
        model.learn_one(Event(f"o{i}", (t := t + rng.uniform(0, 5)), f"open{rng.randrange(60)}", rng.choice(kinds),
                              f"i{rng.randrange(30)}", price=rng.choice([1.0, 9.5, 120.0])))
    model.learn_one(Event("inf", t + 1, "infinite", "add_to_cart", "a", price=float("inf")))
    asked = [*sorted(s for s in model._sessions if s.startswith("open")), "unknown", "infinite"]
    expected = [model.predict_session(session_id) for session_id in asked]
    got = model.predict_sessions(asked)
    assert [g is None for g in got] == [e is None for e in expected] and got[-2:] == [None, None]
    assert all(g == pytest.approx(e, rel=1e-9, abs=1e-12) for g, e in zip(got, expected, strict=True) if e is not None)
    assert sum(e is not None for e in expected) > 50 and len(set(expected)) > 40


def _river_default() -> compose.Pipeline:
    """The default pipeline, given explicitly: a given classifier learns through River's own ``learn_one``."""
    return compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression(optim.SGD(0.05)))


@pytest.mark.parametrize("batch", [1, 37, 5000])
def test_compiled_learning_is_rivers_learning(batch):
    """The default pipeline's labelled snapshots learned in one compiled pass per batch against the same pipeline
    learning them through River, on sessions that convert, time out, are evicted and carry an infinite price:
    the scaler's statistics, the weights, the intercept and every open session's score agree."""
    compiled = SessionPropensity(max_sessions=40)
    river = SessionPropensity(classifier=_river_default(), max_sessions=40)
    rng, t = random.Random(batch), 1e9
    kinds = ["view", "view", "view", "add_to_cart", "remove_from_cart", "purchase"]
    events = []
    for i in range(6000):
        t += rng.choice([1.0, 3.0, 60.0, 2500.0]) if rng.random() < 0.05 else rng.random() * 4
        price = float("inf") if i == 3000 else rng.choice([1.0, 9.5, 120.0])
        events.append(Event(f"e{i}", t, f"s{rng.randrange(70)}", rng.choice(kinds), f"i{rng.randrange(40)}",
                            price=price))
    for start in range(0, len(events), batch):
        compiled.learn_many(events[start : start + batch])
        river.learn_many(events[start : start + batch])
    (scaler, regression), (river_scaler, river_regression) = (m._model.steps.values() for m in (compiled, river))
    assert dict(scaler.counts) == dict(river_scaler.counts) and sum(compiled.labelled.values()) > 500
    for ours, theirs in ((scaler.means, river_scaler.means), (scaler.vars, river_scaler.vars),
                         (regression.weights, river_regression.weights)):
        assert list(ours) == list(theirs)
        assert all(ours[name] == pytest.approx(theirs[name], rel=1e-9, abs=1e-12) for name in theirs)
    assert regression.intercept == pytest.approx(river_regression.intercept, rel=1e-9)
    assert regression.optimizer.n_iterations == river_regression.optimizer.n_iterations
    open_sessions = list(river._sessions)
    assert list(compiled._sessions) == open_sessions
    for got, expected in zip(compiled.predict_sessions(open_sessions), river.predict_sessions(open_sessions),
                             strict=True):
        assert (got is None) == (expected is None)
        assert got is None or got == pytest.approx(expected, rel=1e-9, abs=1e-12)
