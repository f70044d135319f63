"""RepeatBuyBlend: own history leads, popularity fills, unknown users get nothing, state is bounded."""

import pickle

from shopstream.models.events import Event
from shopstream.models.mf import ImplicitMF
from shopstream.models.repeat_blend import RepeatBuyBlend

DAY = 86400.0


def _feed(model: RepeatBuyBlend, stream: list[tuple[float, str, str]]) -> None:
    for n, (ts, user, item) in enumerate(stream):
        model.learn_one(Event(f"e{n}", 1e9 + ts, f"{user}@{ts}", "purchase", item, user_id=user))


def test_own_history_first_then_popular():
    model = RepeatBuyBlend(mf=ImplicitMF(n_factors=4, seed=0), popularity_weight=0.2, seed=0)
    crowd = [(float(n), f"c{n}", "hit") for n in range(30)]
    _feed(model, [*crowd, (40.0, "me", "rare"), (41.0, "me", "rare"), (42.0, "me", "odd")])
    assert [item for item, _ in model.recommend_user("me", 3)] == ["rare", "odd", "hit"]


def test_recent_history_outranks_old_with_decay():
    model = RepeatBuyBlend(history_half_life_s=7 * DAY, popularity_weight=0.0, mf_weight=0.0, seed=0)
    _feed(model, [(0.0, "me", "old"), (1.0, "me", "old"), (60 * DAY, "me", "new")])
    assert [item for item, _ in model.recommend_user("me", 2)] == ["new", "old"]


def test_unknown_user_is_not_inserted():
    model = RepeatBuyBlend(seed=0)
    _feed(model, [(0.0, "a", "x")])
    before = model.size()
    assert model.recommend_user("nobody", 5) == []
    assert model.size() == before


def test_history_and_users_are_capped():
    model = RepeatBuyBlend(mf=ImplicitMF(n_factors=2, max_items=50, seed=0), max_users=10, max_history=3)
    _feed(model, [(float(n), f"u{n % 25}", f"i{n % 40}") for n in range(2000)])
    assert model.size()["histories"] == 10 and model.size()["items"] == 40
    assert all(len(h.scores) <= 3 for h in model._histories.values())


def test_pickle_round_trip():
    model = RepeatBuyBlend(seed=0)
    _feed(model, [(float(n), f"u{n % 3}", f"i{n % 5}") for n in range(50)])
    clone = pickle.loads(pickle.dumps(model))
    assert clone.recommend_user("u1", 5) == model.recommend_user("u1", 5)
