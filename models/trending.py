"""Time-decayed trending items, global and per category.

Forward decay (Cormode et al., 2009): an event at time t adds ``w * exp((t - t_ref) / tau)``, so
old scores never need touching; the landmark ``t_ref`` moves forward before the exponent can
overflow. Scores sit in one NumPy array per scope, so top-k never loops over the catalogue.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from shopstream.models.base import DEFAULT_EVENT_WEIGHTS, GlobalRecommender, Scored
from shopstream.models.bounded import LRUDict
from shopstream.models.events import Event
from shopstream.models.item_index import ItemIndex, top_k

_MAX_EXPONENT = 50.0


class DecayedScores:
    """Exponentially decayed item scores in a capped array; the weakest items make room.

    >>> s = DecayedScores(half_life_s=3600.0, capacity=10)
    >>> s.add("old", 1.0, ts=0.0); s.add("new", 1.0, ts=7200.0)
    >>> [(item, round(score, 2)) for item, score in s.top(2)]
    [('new', 1.0), ('old', 0.25)]
    """

    def __init__(self, half_life_s: float, capacity: int) -> None:
        self.half_life_s = half_life_s
        self.capacity = capacity
        self._tau = half_life_s / math.log(2)
        self._index = ItemIndex(capacity)
        self._scores = np.zeros(capacity)
        self._t_ref: float | None = None
        self._t_now = 0.0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._index)

    def add(self, item_id: str, weight: float, ts: float) -> None:
        self.add_many([item_id], [weight], [ts])

    def add_many(self, item_ids: Sequence[str], weights: Sequence[float], timestamps: Sequence[float]) -> None:
        """Add a batch of weighted events in one vectorised pass.

        The sum is the same as adding them one by one; a score is floored at zero after the batch rather
        than after each removal, and room for the batch's new items is made before any is added.
        """
        if not item_ids:
            return
        ts = np.asarray(timestamps, dtype=np.float64)
        newest = float(ts.max())
        if self._t_ref is None:
            self._t_ref = float(ts.min())
        if (newest - self._t_ref) / self._tau > _MAX_EXPONENT:
            self._scores *= math.exp((self._t_ref - newest) / self._tau)
            self._t_ref = newest
        self._t_now = max(self._t_now, newest)
        get = self._index.get
        rows = [get(item_id) for item_id in item_ids]
        new = {item_id for item_id, row, w in zip(item_ids, rows, weights, strict=True) if row is None and w > 0}
        if len(new) > self.capacity:  # more new items than room: in halves, the later evicting the earlier
            half = len(item_ids) // 2
            self.add_many(item_ids[:half], weights[:half], timestamps[:half])
            self.add_many(item_ids[half:], weights[half:], timestamps[half:])
            return
        if new:
            missing = len(new) - (self.capacity - len(self._index))
            if missing > 0:
                self._evict(missing)
            for item_id in new:
                self._scores[self._index.add(item_id)] = 0.0
            rows = [get(item_id) for item_id in item_ids]
        keep = np.fromiter((row is not None for row in rows), dtype=bool, count=len(rows))
        at = np.fromiter((row for row in rows if row is not None), dtype=np.int64)
        added = np.asarray(weights, dtype=np.float64)[keep] * np.exp((ts[keep] - self._t_ref) / self._tau)
        np.add.at(self._scores, at, added)
        self._scores[at] = np.maximum(self._scores[at], 0.0)

    def _evict(self, needed: int) -> None:
        """Drop the weakest tenth (or more, if a batch needs more room) in one vectorised pass."""
        rows = self._index.rows_in_use()
        n = min(len(rows), max(needed, len(rows) // 10))
        weakest = rows[np.argpartition(self._scores[rows], n - 1)[:n]]
        for item_id in self._index.ids(weakest):
            self._index.remove(item_id)
        self._scores[weakest] = 0.0
        self.evictions += n

    def top(self, k: int) -> list[Scored]:
        """Top-k items with scores expressed as decayed event counts at the latest event time."""
        if not len(self._index) or self._t_ref is None:
            return []
        scores = self._scores[: self._index.high]
        rows = top_k(scores, k, valid=scores > 0)
        scale = math.exp((self._t_ref - self._t_now) / self._tau)
        return list(zip(self._index.ids(rows), (self._scores[rows] * scale).tolist(), strict=True))


class Trending(GlobalRecommender):
    """Trending items overall and per category, weighted by event type.

    Parameters
    ----------
    half_life_s
        After this long an event counts half as much.
    max_items
        Items tracked overall; per category a tenth of it.
    max_categories
        Categories tracked (least recently active are dropped).
    event_weights
        Weight per event type; defaults to ``DEFAULT_EVENT_WEIGHTS``.

    Examples
    --------
    >>> from shopstream.models.events import Event
    >>> model = Trending(half_life_s=3600)
    >>> for i, item in enumerate(["a", "b", "b"]):
    ...     model.learn_one(Event(f"e{i}", 1e9 + i, "s", "view", item, category="toys"))
    >>> [item for item, _ in model.top(2)], [item for item, _ in model.top(1, category="toys")]
    (['b', 'a'], ['b'])
    """

    name = "trending"

    def __init__(
        self,
        half_life_s: float = 6 * 3600.0,
        max_items: int = 100_000,
        max_categories: int = 1_000,
        event_weights: Mapping[str, float] | None = None,
    ) -> None:
        self.half_life_s = half_life_s
        self.max_items = max_items
        self.max_categories = max_categories
        self.event_weights = event_weights
        self._weights = dict(DEFAULT_EVENT_WEIGHTS if event_weights is None else event_weights)
        self._global = DecayedScores(half_life_s, max_items)
        self._by_category: LRUDict[str, DecayedScores] = LRUDict(max_categories)

    def learn_one(self, event: Event) -> None:
        self.learn_many([event])

    def learn_many(self, events: Iterable[Event]) -> None:
        """Gather the batch per scope (overall, each category), then add each scope's part at once."""
        weights = self._weights
        scopes: dict[str | None, tuple[list[str], list[float], list[float]]] = {}
        for event in events:
            weight = weights.get(event.type, 0.0)
            if weight == 0.0:
                continue
            for scope in (None, event.category) if event.category is not None else (None,):
                items, ws, ts = scopes.get(scope) or scopes.setdefault(scope, ([], [], []))
                items.append(event.item_id)
                ws.append(weight)
                ts.append(event.ts)
        for scope, (items, ws, ts) in scopes.items():
            if scope is None:
                self._global.add_many(items, ws, ts)
                continue
            scores = self._by_category.get(scope)
            if scores is None:
                scores = self._by_category[scope] = DecayedScores(self.half_life_s, max(10, self.max_items // 10))
            scores.add_many(items, ws, ts)

    def top(self, k: int, category: str | None = None) -> list[Scored]:
        if category is None:
            return self._global.top(k)
        scores = self._by_category.peek(category)
        return [] if scores is None else scores.top(k)

    def categories(self) -> list[str]:
        return list(self._by_category)

    def size(self) -> dict[str, int]:
        return {"items": len(self._global), "categories": len(self._by_category)}

    def evictions(self) -> dict[str, int]:
        items = self._global.evictions + sum(scores.evictions for scores in self._by_category.values())
        return {"items": items, "categories": self._by_category.evictions}
