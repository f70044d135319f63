"""RepeatBuyBlend: own history leads, popularity fills, unknown users get nothing, state is bounded."""

import pickle
import random

import numpy as np
import pytest

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


def _blend_of_one_user(model: RepeatBuyBlend, user: str):
    """The blend written out for one user, item by item: the oracle of the vectorised lists."""
    preference = model._mf.item_scores(user)
    known = preference[np.isfinite(preference)]
    scores = model._popularity_part() + model.mf_weight * (preference - known.min()) / (known.max() - known.min())
    own = {item: s for item, s in model._histories[user].scores.items() if item in model._mf.item_index}
    for item, s in own.items():
        scores[model._mf.item_index.get(item)] += model.repeat_weight * s / max(own.values())
    order = sorted(range(scores.size), key=lambda row: -scores[row])
    return {model._mf.item_index.ids(np.array([row]))[0]: scores[row] for row in order[:5] if np.isfinite(scores[row])}


def test_many_users_are_scored_together_as_each_alone(monkeypatch):
    rng = random.Random(0)
    model = RepeatBuyBlend(mf=ImplicitMF(n_factors=8, max_items=25, seed=0), seed=0)  # 40 items: evictions
    _feed(model, [(float(n), f"u{rng.randrange(30)}", f"i{int(rng.paretovariate(1.0)) % 40}") for n in range(2000)])
    users = [f"u{n}" for n in range(30)] + ["stranger"]
    monkeypatch.setattr("shopstream.models.repeat_blend._CHUNK_USERS", 7)
    monkeypatch.setattr("shopstream.models.repeat_blend._CANDIDATES", 4)  # some lists need more: a fallback
    model._shared = None
    ranked_over_all: list[str] = []
    blend = model._blend

    def spy(ids, with_history, own, rows):  # type: ignore[no-untyped-def]
        if rows is None:
            ranked_over_all.extend(ids)
        return blend(ids, with_history, own, rows)

    monkeypatch.setattr(model, "_blend", spy)
    lists = model.recommend_users(users, 5)
    assert lists[-1] == [] and all(lists[:-1])
    assert 0 < len(ranked_over_all) < 30  # both ways were taken: among candidates, and over every item
    for user, got in zip(users[:-1], lists, strict=False):
        assert dict(got) == pytest.approx(_blend_of_one_user(model, user))
