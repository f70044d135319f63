"""ImplicitMF: learns a planted preference, serves without inserting, stays within its caps."""

import pickle

import numpy as np
from river import optim, reco

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
    assert len(model.user_index) == 30 and model.item_index.high == 20
    assert all(len(model.purchased(f"u{u}")) <= 5 for u in range(97))
    assert model.item_scores(f"u{2999 % 97}") is not None and model.item_scores("u0") is None
    assert model.evictions() == {"users": 3000 - 30, "items": 3000 - 20}


def test_one_event_at_a_time_is_rivers_funk_mf_step():
    """``learn_one`` takes exactly the SGD step of ``river.reco.FunkMF`` (same loss, L2 and rate)."""
    model = ImplicitMF(n_factors=4, lr=0.05, l2=0.01, n_negatives=0, seed=3)
    river = reco.FunkMF(n_factors=4, optimizer=optim.SGD(0.05), l2=0.01)
    rng = np.random.default_rng(1)
    kinds = ["view", "add_to_cart", "purchase", "remove_from_cart"]
    for n in range(300):
        user, item, kind = f"u{rng.integers(7)}", f"i{rng.integers(11)}", kinds[rng.integers(4)]
        model.learn_one(_buy(n, user, item, "view"))  # both known to the model from here on
        river.u_latents[user] = model._user_factors[model._users[user][0]].astype(float)
        river.i_latents[item] = model._factors[model.item_index.get(item)].astype(float)
        model.learn_one(_buy(n + 1000, user, item, kind))
        river.learn_one(user, item, model._targets[kind])
        np.testing.assert_allclose(model._user_factors[model._users[user][0]], river.u_latents[user], atol=1e-6)
        np.testing.assert_allclose(model._factors[model.item_index.get(item)], river.i_latents[item], atol=1e-6)


def test_a_batch_learns_exactly_what_one_event_at_a_time_learns():
    """``learn_many`` learns a batch's pairs in one pass: the factors end as one event at a time leaves them."""
    batched, sequential = ImplicitMF(n_factors=4, n_negatives=2, seed=5), ImplicitMF(n_factors=4, n_negatives=2, seed=5)
    rng = np.random.default_rng(2)
    stream = [_buy(n, f"u{rng.integers(9)}", f"i{rng.integers(13)}", "add_to_cart") for n in range(2000)]
    for start in range(0, len(stream), 500):
        batched.learn_many(stream[start : start + 500])
        for event in stream[start : start + 500]:
            sequential.learn_one(event)
    for user in (f"u{u}" for u in range(9)):
        np.testing.assert_allclose(batched.item_scores(user), sequential.item_scores(user), atol=1e-4)


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
