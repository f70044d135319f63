"""The served recommender: every model of the stack, fed one batch at a time, with fallbacks.

The worker and ``shopstream evaluate`` both drive this class, so what is measured offline is
what is served online. Each event of a batch first scores the lists its session and user were
actually shown (predict before learn), then every model learns the batch in order (``learn_many``:
the matrix factorisation in one vectorised step), then each touched session, user, item and
category gets its list recomputed once.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from sys import intern
from typing import Any

from shopstream.models.base import (
    GlobalRecommender,
    ItemRecommender,
    Scored,
    SessionRecommender,
    UserRecommender,
)
from shopstream.models.bounded import ExpiringDict, LRUDict, SeenIds
from shopstream.models.events import Event
from shopstream.models.forecast import WindowedForecaster
from shopstream.models.mf import ImplicitMF
from shopstream.models.online_eval import OnlineScores, ScoreDelta
from shopstream.models.propensity import SessionPropensity
from shopstream.models.repeat_blend import RepeatBuyBlend
from shopstream.models.session_knn import SessionKNN
from shopstream.models.throttle import RefreshThrottle
from shopstream.models.transitions import POSITIVE_TYPES, ItemTransitions
from shopstream.models.trending import Trending


@dataclass(slots=True)
class RecList:
    """One list to publish: ``kind`` is session, user, item, trending or category."""

    kind: str
    id: str
    model: str
    items: list[str]
    scores: list[float]
    origin: float  # earliest origin time (e.g. Kafka timestamp) of the events that changed it
    extra: dict[str, Any] | None = None  # propensity on session lists; the forecast on forecast kinds


@dataclass(slots=True)
class BatchOutput:
    lists: list[RecList] = field(default_factory=list)
    learned: Counter[str] = field(default_factory=Counter)  # by event type
    duplicates: Counter[str] = field(default_factory=Counter)
    scores: list[ScoreDelta] = field(default_factory=list)  # online hit-rate counts since the last batch


@dataclass(frozen=True, slots=True)
class StackConfig:
    """Capacities and horizons of the model stack; every structure is bounded by one of these."""

    top_k: int = 20
    max_sessions: int = 200_000
    max_users: int = 200_000
    max_items: int = 200_000
    session_ttl_s: float = 1800.0
    trending_half_life_s: float = 6 * 3600.0
    dedupe_window: int = 500_000
    session_model: str = "transitions"  # or "vsknn" (see docs/evaluation.md for both)
    mf_negatives: int = 1
    forecast_window_s: float = 86400.0
    forecast_horizon: int = 7
    forecast_lateness_s: float = 600.0  # partitions are consumed side by side, not in time order
    item_refresh_s: float = 5.0  # an item's similar-items list is rewritten at most this often (event time)
    user_refresh_s: float = 1.0  # and a user's list; session lists are rewritten in every batch that touches them
    trending_refresh_s: float = 1.0  # and the trending lists (global and per category)
    seed: int = 0


class RecommenderStack:
    """All models behind one ``process`` call, with the fallback chain session → trending.

    Examples
    --------
    >>> stack = RecommenderStack(StackConfig(top_k=3))
    >>> batch = [(Event(f"e{i}", 1e9 + i, "s1", "view", item), 0.0) for i, item in enumerate("abab")]
    >>> out = stack.process(batch)
    >>> sorted({(r.kind, r.id) for r in out.lists})
    [('item', 'a'), ('item', 'b'), ('session', 's1'), ('trending', 'all')]
    >>> stack.process(batch).duplicates
    Counter({'view': 4})
    """

    def __init__(
        self,
        config: StackConfig | None = None,
        session_model: SessionRecommender | None = None,
        item_model: ItemRecommender | None = None,
        trending: GlobalRecommender | None = None,
        user_model: UserRecommender | None = None,
    ) -> None:
        self.config = config = config or StackConfig()
        transitions = ItemTransitions(
            max_items=config.max_items, max_sessions=config.max_sessions, session_ttl_s=config.session_ttl_s
        )
        self.session_model = session_model or (
            transitions if config.session_model == "transitions" else SessionKNN(
                k=100, sample_size=500, similarity="vec", weighting="div", max_sessions=config.max_sessions,
                session_ttl_s=config.session_ttl_s,
            )
        )
        self.item_model = item_model or transitions
        self.trending = trending or Trending(
            half_life_s=config.trending_half_life_s, max_items=config.max_items
        )
        self.user_model = user_model or RepeatBuyBlend(
            mf=ImplicitMF(
                n_negatives=config.mf_negatives, max_users=config.max_users, max_items=config.max_items,
                seed=config.seed,
            ),
            max_users=config.max_users,
            seed=config.seed,
        )
        self.forecaster = WindowedForecaster(
            window_s=config.forecast_window_s, max_series=config.max_items,
            allowed_lateness_s=config.forecast_lateness_s,
        )
        self.propensity = SessionPropensity(timeout_s=config.session_ttl_s, max_sessions=config.max_sessions)
        parts = (self.session_model, self.item_model, self.trending, self.user_model, self.forecaster,
                 self.propensity)
        self.models = list({id(m): m for m in parts}.values())
        self.scores = OnlineScores(ks=(10, 20))
        self._seen = SeenIds(config.dedupe_window)
        # What each session and user was last shown, by which model: the basis of online scoring.
        # Session entries go with the session (its TTL), so they level off on an endless stream.
        self._served_sessions: ExpiringDict[str, tuple[str, list[str]]] = ExpiringDict(
            config.max_sessions, config.session_ttl_s
        )
        self._served_users: LRUDict[str, tuple[str, list[str]]] = LRUDict(config.max_users)
        self._last_category: ExpiringDict[str, str] = ExpiringDict(config.max_sessions, config.session_ttl_s)
        self._now = -math.inf  # event time of the batch being processed
        self._last_session: LRUDict[str, str] = LRUDict(config.max_users)
        self._user_lists: dict[str, list[Scored]] = {}  # the user model's lists of the keys being recomputed
        # Trending lists fill most session lists: each is computed once per refresh interval (event time).
        self._trending_memo: dict[str | None, list[Scored]] = {}
        self._trending_memo_since = -math.inf
        # Item and user lists change slowly while popular items and active users are touched by every
        # batch: their keys wait here (with the oldest origin) until the list is older than its refresh.
        self._throttle = RefreshThrottle(
            {"item": config.item_refresh_s, "user": config.user_refresh_s, "trending": config.trending_refresh_s,
             "category": config.trending_refresh_s},
            config.max_items + config.max_users,
        )

    def process(self, batch: Sequence[tuple[Event, float]]) -> BatchOutput:
        """Learn a batch of ``(event, origin_time)`` in order and return the lists it changed."""
        out = BatchOutput()
        touched: dict[tuple[str, str], float] = {}
        now = max((event.ts for event, _ in batch), default=0.0)
        self._advance(now)
        periods = self.forecaster.periods
        fresh: list[Event] = []
        for event, origin in batch:
            if not self._seen.first_time(event.event_id):
                out.duplicates[event.type] += 1
                continue
            _intern_ids(event)
            fresh.append(event)
            out.learned[event.type] += 1
            if event.type in POSITIVE_TYPES:
                self._score_served(event)
            keys = [("session", event.session_id)]
            slow = [("item", event.item_id), ("trending", "all")]
            if event.user_id is not None:
                self._last_session[event.user_id] = event.session_id
                slow.append(("user", event.user_id))
            if event.category is not None:
                self._last_category.set(event.session_id, event.category, event.ts)
                slow.append(("category", event.category))
            for key in slow:
                self._throttle.mark(key, origin, event.ts)
            if event.type == "purchase":
                keys += [("forecast_shop", "all"), ("forecast_item", event.item_id)]
                if event.category is not None:
                    keys.append(("forecast_category", event.category))
            for key in keys:
                if key not in touched or origin < touched[key]:
                    touched[key] = origin
        for model in self.models:  # models are independent: each learns the whole batch in order
            model.learn_many(fresh)
        if self.forecaster.periods > periods and batch:
            # A window closed (any event moves the watermark): the shop forecast changed even without a purchase.
            touched.setdefault(("forecast_shop", "all"), min(origin for _, origin in batch))
        touched.update(self._throttle.due(now))
        out.lists = self._recompute_all(touched)
        out.scores = self.scores.drain()
        return out

    def flush(self, now: float) -> BatchOutput:
        """The throttled lists due by ``now`` (event time), for when no batch comes to release them."""
        self._advance(now)
        return BatchOutput(lists=self._recompute_all(dict(self._throttle.due(now))))

    def _recompute_all(self, touched: dict[tuple[str, str], float]) -> list[RecList]:
        # The user model scores all touched users together (one matrix product per chunk, not one per user).
        users = [key for kind, key in touched if kind == "user"]
        self._user_lists = dict(zip(users, self.user_model.recommend_users(users, self.config.top_k), strict=True))
        # Sessions before users: a user the user model does not know yet is served their session's list.
        ordered = sorted(touched.items(), key=lambda kv: kv[0][0] == "user")
        return [lst for key, origin in ordered if (lst := self._recompute(*key, origin))]

    def _score_served(self, event: Event) -> None:
        shown = [("session", self._served_sessions.peek(event.session_id))]
        if event.user_id is not None:
            shown.append(("user", self._served_users.peek(event.user_id)))
        for kind, served in shown:
            if served is not None:
                self.scores.record(f"{kind}:{served[0]}", served[1], event.item_id)

    def _recompute(self, kind: str, key: str, origin: float) -> RecList | None:
        k = self.config.top_k
        model = self.trending.name
        if kind.startswith("forecast_"):
            return self._forecast(kind, key, origin)
        if kind == "session":
            ranked = self.session_model.recommend_session(key, k)
            if ranked:
                model = self.session_model.name
            ranked = _fill(ranked, self._trending(self._last_category.peek(key)), k)
            ranked = _fill(ranked, self._trending(None), k)
        elif kind == "user":
            ranked, model = self._user_list(key, k)
        elif kind == "item":
            ranked = self.item_model.similar_items(key, k)
            model = self.item_model.name
        elif kind == "category":
            ranked = self._trending(key)
        else:
            ranked = self._trending(None)
        if not ranked:
            return None
        items = [item for item, _ in ranked]
        extra = None
        if kind == "user":
            self._served_users[key] = (model, items)
        elif kind == "session":
            self._served_sessions.set(key, (model, items), self._now)
            if (propensity := self.propensity.predict_session(key)) is not None:
                extra = {"purchase_propensity": round(propensity, 4)}
        return RecList(kind, key, model, items, [score for _, score in ranked], origin, extra)

    def _forecast(self, kind: str, key: str, origin: float) -> RecList | None:
        series = kind.removeprefix("forecast_")
        values = self.forecaster.forecast((series, None if series == "shop" else key), self.config.forecast_horizon)
        if not values:
            return None
        extra = {"window_s": self.config.forecast_window_s, "forecast": [round(v, 3) for v in values]}
        return RecList(kind, key, self.forecaster.name, [], [], origin, extra)

    def _advance(self, now: float) -> None:
        """Event time moved on: expire per-session state and the trending memo."""
        self._now = max(self._now, now)
        self._served_sessions.expire(self._now)
        self._last_category.expire(self._now)
        if now - self._trending_memo_since >= self.config.trending_refresh_s:
            self._trending_memo.clear()
            self._trending_memo_since = now

    def _trending(self, category: str | None) -> list[Scored]:
        ranked = self._trending_memo.get(category)
        if ranked is None:
            ranked = self._trending_memo[category] = self.trending.top(self.config.top_k, category)
        return ranked

    def _user_list(self, user_id: str, k: int) -> tuple[list[Scored], str]:
        """The user model's list (scored beforehand with the other touched users), else what the user's
        current session is being served."""
        ranked = self._user_lists.pop(user_id)
        if ranked:
            return _fill(ranked, self._trending(None), k), self.user_model.name
        session = self._last_session.peek(user_id)
        served = self._served_sessions.peek(session) if session is not None else None
        if served is None:
            return self._trending(None), self.trending.name
        return [(item, 1.0 / (rank + 1)) for rank, item in enumerate(served[1])], served[0]

    def evictions(self) -> dict[str, int]:
        """Cap evictions of every model, summed by kind (each model holds its own entities)."""
        totals: Counter[str] = Counter(
            {"served_lists": self._served_sessions.evictions + self._served_users.evictions}
        )
        for model in self.models:
            totals.update(model.evictions())
        return dict(totals)

    def size(self) -> dict[str, int]:
        sizes: dict[str, int] = {
            "served_lists": len(self._served_sessions) + len(self._served_users), "dedupe_ids": len(self._seen)
        }
        for model in self.models:
            for kind, n in model.size().items():
                sizes[kind] = max(sizes.get(kind, 0), n)
        return sizes


def _intern_ids(event: Event) -> None:
    """One string per id, whatever event it came in: the histories, graphs, sessions and lists that keep
    an id then share it instead of each holding its own copy from JSON decoding."""
    event.session_id = intern(event.session_id)
    event.item_id = intern(event.item_id)
    if event.user_id is not None:
        event.user_id = intern(event.user_id)
    if event.category is not None:
        event.category = intern(event.category)


def _fill(ranked: list[Scored], fallback: list[Scored], k: int) -> list[Scored]:
    """Top up a short list from a fallback list, without repeats; fallback scores rank below."""
    if len(ranked) >= k or not fallback:
        return ranked[:k]
    have = {item for item, _ in ranked}
    floor = min((score for _, score in ranked), default=1.0)
    top_fallback = fallback[0][1] or 1.0
    extra = [(item, floor * 0.5 * score / top_fallback) for item, score in fallback if item not in have]
    return ranked + extra[: k - len(ranked)]
