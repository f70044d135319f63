"""Time-decayed trending items, global and per category.

Forward decay (Cormode et al., 2009): an event at time t adds ``w * exp((t - t_ref) / tau)``, so
old scores never need touching; the landmark ``t_ref`` moves forward before the exponent can
overflow. Scores sit in one NumPy array per scope, so top-k never loops over the catalogue.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from shopstream.models.base import DEFAULT_EVENT_WEIGHTS, GlobalRecommender, Scored
from shopstream.models.bounded import LRUDict
from shopstream.models.events import Event
from shopstream.models.item_index import ItemIndex, PicklesUsedRows, top_k

_MAX_EXPONENT = 50.0


class DecayedScores(PicklesUsedRows):
    """Exponentially decayed item scores in a capped array; the weakest items make room.

    >>> s = DecayedScores(half_life_s=3600.0, capacity=10)
    >>> s.add("old", 1.0, ts=0.0); s.add("new", 1.0, ts=7200.0)
    >>> [(item, round(score, 2)) for item, score in s.top(2)]
    [('new', 1.0), ('old', 0.25)]
    """

    _row_arrays = (("_scores", "_index"),)

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
        if self._t_ref is None:
            self._t_ref = ts
        if (ts - self._t_ref) / self._tau > _MAX_EXPONENT:
            self._scores *= math.exp((self._t_ref - ts) / self._tau)
            self._t_ref = ts
        self._t_now = max(self._t_now, ts)
        row = self._index.get(item_id)
        if row is None:
            if weight <= 0:
                return
            if self._index.full:
                self._evict()
            row = self._index.add(item_id)
            self._scores[row] = 0.0
        self._scores[row] = max(0.0, self._scores[row] + weight * math.exp((ts - self._t_ref) / self._tau))

    def _evict(self) -> None:
        """Drop the weakest tenth in one vectorised pass, so eviction is rare and cheap."""
        rows = self._index.rows_in_use()
        n = max(1, len(rows) // 10)  # full, so every row below ``high`` is in use
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
        rows = top_k(scores, k, valid=np.isfinite(scores) & (scores > 0))
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
        weight = self._weights.get(event.type, 0.0)
        if weight == 0.0:
            return
        self._global.add(event.item_id, weight, event.ts)
        if event.category is not None:
            scores = self._by_category.get(event.category)
            if scores is None:
                scores = DecayedScores(self.half_life_s, max(10, self.max_items // 10))
                self._by_category[event.category] = scores
            scores.add(event.item_id, weight, event.ts)

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
