"""ImplicitMF: learns a planted preference, serves without inserting, stays within its caps."""

import pickle

import numpy as np

from shopstream.models.events import Event
from shopstream.models.mf import ImplicitMF


def _buy(n: int, user: str, item: str, etype: str = "purchase") -> Event:
    return Event(f"e{n}", 1e9 + n, f"s-{user}", etype, item, user_id=user)


def _planted(model: ImplicitMF, n_events: int = 4000) -> ImplicitMF:
    """Two taste groups: even users buy items a*, odd users buy items b*."""
    rng = np.random.default_rng(0)
    for n in range(n_events):
        u = int(rng.integers(40))
        group = "a" if u % 2 == 0 else "b"
        model.learn_one(_buy(n, f"u{u}", f"{group}{int(rng.integers(10))}"))
    return model


def test_learns_planted_preference():
    model = _planted(ImplicitMF(n_factors=8, seed=0))
    for user, group in [("u0", "a"), ("u1", "b"), ("u6", "a"), ("u7", "b")]:
        top = [item for item, _ in model.recommend_user(user, 10)]
        assert sum(item.startswith(group) for item in top) >= 9, (user, top)


def test_unknown_user_gets_nothing_and_is_not_inserted():
    model = _planted(ImplicitMF(n_factors=4, seed=0), 200)
    before = model.size()
    assert model.recommend_user("stranger", 5) == []
    assert model.item_scores("stranger") is None
    assert model.size() == before and not model.knows("stranger")


def test_zero_weight_events_are_ignored_and_weights_configurable():
    model = ImplicitMF(event_weights={"view": 0.0, "purchase": 1.0}, seed=0)
    model.learn_one(_buy(0, "u", "a", etype="view"))
    assert model.size() == {"users": 0, "items": 0}


def test_caps_hold_and_rows_are_reused():
    model = ImplicitMF(n_factors=4, max_users=30, max_items=20, max_history=5, seed=0)
    for n in range(3000):
        model.learn_one(_buy(n, f"u{n % 97}", f"i{n % 53}"))
    assert model.size() == {"users": 30, "items": 20}
    assert len(model._mf.u_latents) <= 30 and len(model._mf.i_latents) <= 20
    assert all(len(model.purchased(f"u{u}")) <= 5 for u in range(97))
    assert model.item_scores(f"u{2999 % 97}") is not None and model.item_scores("u0") is None
    # the mirrored matrix agrees with River's factors for every live item
    for item in list(model._items):
        row = model.item_index.get(item)
        np.testing.assert_allclose(model._factors[row], model._mf.i_latents[item])


def test_cache_matches_river_predictions():
    model = _planted(ImplicitMF(n_factors=6, seed=3), 500)
    scores = model.item_scores("u4")
    for item, row in list(model._items.items())[:10]:
        assert np.isclose(scores[row], model._mf.predict_one("u4", item))


def test_exclude_purchased():
    model = _planted(ImplicitMF(n_factors=8, exclude_purchased=True, seed=0), 400)
    bought = set(model.purchased("u0"))
    assert bought and not bought & {item for item, _ in model.recommend_user("u0", 20)}


def test_seeded_runs_agree_and_pickle_round_trips():
    a, b = _planted(ImplicitMF(n_factors=4, seed=7), 300), _planted(ImplicitMF(n_factors=4, seed=7), 300)
    assert a.recommend_user("u3", 5) == b.recommend_user("u3", 5)
    c = pickle.loads(pickle.dumps(a))
    assert c.recommend_user("u3", 5) == a.recommend_user("u3", 5)
    c.learn_one(_buy(10_000, "u3", "a1"))  # still learns after unpickling
