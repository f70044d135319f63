"""Seeded, realistic shop traffic for the demo, the tests and the benchmark.

What makes it realistic enough to exercise the models: Zipf-skewed item popularity that drifts
over time, items grouped in categories and browsed in related runs (so transitions are
learnable), interleaved sessions with view → cart → purchase funnels, and returning users with
favourite categories next to anonymous visitors.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

import numpy as np


@dataclass(slots=True)
class _Session:
    session_id: str
    user_id: str | None
    category: int
    remaining: int
    current: int = -1
    cart: list[int] = field(default_factory=list)


class SyntheticTraffic:
    """An endless, deterministic stream of schema-v1 event dicts.

    Parameters
    ----------
    seed
        Same seed, same stream (event ids included, so replays deduplicate).
    n_items, n_categories, n_users
        Catalogue and audience sizes.
    start_ts
        Timestamp of the first event; events are ``1 / rate`` seconds apart.
    rate
        Events per second of simulated time.
    concurrent_sessions
        Sessions open at once, interleaved.
    anonymous_share
        Share of sessions without a ``user_id``.
    drift_every
        Events between popularity shifts (a tenth of the ranks are reshuffled).

    Examples
    --------
    >>> events = SyntheticTraffic(seed=1, start_ts=1.7e9).take(1000)
    >>> events[0]["event_id"], sorted({e["type"] for e in events})
    ('syn1-0', ['add_to_cart', 'purchase', 'remove_from_cart', 'view'])
    >>> events == SyntheticTraffic(seed=1, start_ts=1.7e9).take(1000)
    True
    """

    def __init__(
        self,
        seed: int = 0,
        n_items: int = 5_000,
        n_categories: int = 40,
        n_users: int = 20_000,
        start_ts: float = 1.7e9,
        rate: float = 1000.0,
        concurrent_sessions: int = 300,
        anonymous_share: float = 0.3,
        drift_every: int = 50_000,
    ) -> None:
        self.seed = seed
        self.n_items = n_items
        self.n_categories = n_categories
        self.n_users = n_users
        self.start_ts = start_ts
        self.rate = rate
        self.concurrent_sessions = concurrent_sessions
        self.anonymous_share = anonymous_share
        self.drift_every = drift_every
        rng = np.random.default_rng(seed)
        self._random = random.Random(seed)
        self._item_category = np.sort(rng.integers(0, n_categories, n_items)).tolist()
        self._category_start = np.searchsorted(self._item_category, np.arange(n_categories + 1)).tolist()
        self._rank = rng.permutation(n_items)
        self._prices = np.round(rng.lognormal(3.0, 0.8, n_items), 2).tolist()
        self._user_favourite = rng.integers(0, n_categories, n_users).tolist()
        self._user_cdf = list(accumulate(1.0 / (u + 1) ** 0.8 for u in range(n_users)))
        self._cdf: list[float] = []
        self._update_popularity()
        self._n = 0
        self._sessions = 0
        self._open: list[_Session] = []

    def _update_popularity(self) -> None:
        """Cumulative Zipf weights in item order; a category's items are a contiguous slice."""
        self._cdf = list(accumulate((1.0 / (1.0 + self._rank) ** 1.1).tolist()))

    def _drift(self) -> None:
        rng = np.random.default_rng((self.seed, self._n))
        moved = rng.choice(self.n_items, self.n_items // 10, replace=False)
        self._rank[moved] = self._rank[rng.permutation(moved)]
        self._update_popularity()

    def _draw(self, cdf: list[float], lo: int, hi: int) -> int:
        """An index in [lo, hi) drawn proportionally to the weights behind ``cdf``."""
        base = cdf[lo - 1] if lo > 0 else 0.0
        target = base + self._random.random() * (cdf[hi - 1] - base)
        return min(bisect.bisect_right(cdf, target, lo, hi), hi - 1)

    def _new_session(self) -> _Session:
        rnd = self._random
        self._sessions += 1
        user: str | None = None
        category = rnd.randrange(self.n_categories)
        if rnd.random() >= self.anonymous_share:
            u = self._draw(self._user_cdf, 0, self.n_users)
            user = f"u{u}"
            if rnd.random() < 0.7:
                category = self._user_favourite[u]
        length = 1 + int(np.log(1.0 - rnd.random()) / np.log(1 - 1 / 8))
        return _Session(f"s{self.seed}-{self._sessions}", user, category, length)

    def _next_item(self, session: _Session) -> int:
        rnd = self._random
        lo, hi = self._category_start[session.category], self._category_start[session.category + 1]
        if session.current >= 0 and hi > lo and rnd.random() < 0.6:
            # Related browsing: a nearby item of the same category.
            return min(max(session.current + rnd.randint(-3, 3), lo), hi - 1)
        if hi <= lo or rnd.random() < 0.1:
            lo, hi = 0, self.n_items
        return self._draw(self._cdf, lo, hi)

    def _event(self, session: _Session, etype: str, item: int) -> dict[str, Any]:
        event: dict[str, Any] = {
            "event_id": f"syn{self.seed}-{self._n}",
            "ts": round(self.start_ts + self._n / self.rate, 3),
            "session_id": session.session_id,
            "type": etype,
            "item_id": f"i{item}",
            "category": f"c{self._item_category[item]}",
            "price": self._prices[item],
        }
        if session.user_id is not None:
            event["user_id"] = session.user_id
        if etype in ("add_to_cart", "purchase", "remove_from_cart"):
            event["quantity"] = 1
        self._n += 1
        if self._n % self.drift_every == 0:
            self._drift()
        return event

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rnd = self._random
        while True:
            while len(self._open) < self.concurrent_sessions:
                self._open.append(self._new_session())
            slot = rnd.randrange(len(self._open))
            session = self._open[slot]
            if session.remaining <= 0:
                self._open[slot] = self._open[-1]
                self._open.pop()
                if session.cart and rnd.random() < 0.5:
                    for item in session.cart:
                        yield self._event(session, "purchase", item)
                continue
            session.remaining -= 1
            if session.cart and rnd.random() < 0.03:
                yield self._event(session, "remove_from_cart", session.cart.pop())
                continue
            session.current = self._next_item(session)
            yield self._event(session, "view", session.current)
            if rnd.random() < 0.12:
                session.cart.append(session.current)
                yield self._event(session, "add_to_cart", session.current)

    def take(self, n: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for event in self:
            out.append(event)
            if len(out) >= n:
                break
        return out


class ClickModel:
    """Shoppers' answers to the lists of one surface they are served: impressions, clicks and some add-to-carts.

    A shopper looks at the first ``shown`` items of a list of ``surface`` (session, user or item page),
    examining position ``p`` (0 first) with probability ``position_decay ** p`` (position bias), and clicks an
    examined item with the probability its list's strategy hides (``quality``): the per-strategy truth the
    demo's bandit has to discover. Every shown item becomes an ``impression`` and every click a ``view``, both
    with the ``list`` field the tracker sends (docs/events.md); a click is followed by an ``add_to_cart`` with
    probability ``cart_rate``.

    Examples
    --------
    >>> model = ClickModel({"vsknn": 1.0}, shown=3, position_decay=1.0, cart_rate=0.0)
    >>> served = {"items": ["a", "b", "c", "d"], "strategy": "vsknn", "propensity": 0.8}
    >>> [(e["type"], e["item_id"], e["list"]["position"]) for e in model.respond("s1", served, 1.7e9)][:4]
    [('impression', 'a', 0), ('impression', 'b', 1), ('impression', 'c', 2), ('view', 'a', 0)]
    >>> model.ctr("vsknn")
    1.0
    >>> ClickModel({}, surface="item").respond("s1", served, 1.7e9)[0]["list"]["surface"]
    'item'
    """

    def __init__(
        self, quality: dict[str, float], seed: int = 0, shown: int = 5, position_decay: float = 0.7,
        cart_rate: float = 0.2, surface: str = "session",
    ) -> None:
        self.quality = quality
        self.surface = surface
        self.shown = shown
        self.position_decay = position_decay
        self.cart_rate = cart_rate
        self.seed = seed
        self._random = random.Random(seed)
        self._n = 0

    def ctr(self, strategy: str) -> float:
        """The true click-through rate per impression of a full list by ``strategy``."""
        examined = sum(self.position_decay**p for p in range(self.shown)) / self.shown
        return self.quality.get(strategy, 0.0) * examined

    def respond(
        self, session_id: str, served: dict[str, Any], ts: float, user_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The events of one showing of ``served`` (a list's value) to the session's shopper."""
        strategy = served.get("strategy", served.get("model", "unknown"))
        request = f"r{self.seed}-{self.surface}-{self._n}"
        ref = {"surface": self.surface, "strategy": strategy, "request_id": request,
               "propensity": served.get("propensity", 1.0)}
        shown = served["items"][: self.shown]
        events = [self._event(session_id, user_id, "impression", item, ts, {**ref, "position": p})
                  for p, item in enumerate(shown)]
        quality = self.quality.get(strategy, 0.0)
        for p, item in enumerate(shown):
            if self._random.random() < self.position_decay**p * quality:
                events.append(self._event(session_id, user_id, "view", item, ts, {**ref, "position": p}))
                if self._random.random() < self.cart_rate:
                    events.append(self._event(session_id, user_id, "add_to_cart", item, ts, None))
        return events

    def _event(
        self, session_id: str, user_id: str | None, etype: str, item: str, ts: float, ref: dict[str, Any] | None
    ) -> dict[str, Any]:
        self._n += 1
        event: dict[str, Any] = {"event_id": f"clk{self.seed}-{self.surface}-{self._n}", "ts": ts,
                                 "session_id": session_id,
                                 "type": etype, "item_id": item}
        if user_id is not None:
            event["user_id"] = user_id
        if ref is not None:
            event["list"] = ref
        if etype == "add_to_cart":
            event["quantity"] = 1
        return event
