"""Popularity baselines that serve sessions and users alike, as the protocols' lower bars.

They serve the same list to every session and user, known or not: popularity is the fallback of
the other models, so it never has nothing to say.

>>> from shopstream.models.events import Event
>>> pop = RecentPopularity(window_s=10)
>>> for n, item in enumerate(["a", "a", "b"]):
...     pop.learn_one(Event(f"e{n}", 100 + n, "s", "view", item))
>>> pop.top(2)
[('a', 2.0), ('b', 1.0)]
>>> pop.learn_one(Event("e3", 110, "s", "view", "b"))  # the first "a" expires
>>> pop.recommend_user("anyone", 2)
[('b', 2.0), ('a', 1.0)]
"""

from __future__ import annotations

import heapq
from collections import deque
from operator import itemgetter

from shopstream.models.base import GlobalRecommender, Scored, SessionRecommender, UserRecommender
from shopstream.models.events import Event
from shopstream.models.session_knn import POSITIVE_TYPES


class Popularity(SessionRecommender, UserRecommender, GlobalRecommender):
    """Items ranked by their count of positive interactions so far."""

    name = "popularity"

    def __init__(self) -> None:
        self._counts: dict[str, float] = {}
        self._ranked: list[Scored] | None = None  # cached full ranking, dropped on change

    def learn_one(self, event: Event) -> None:
        if event.type in POSITIVE_TYPES:
            self._add(event.item_id, 1.0)

    def _add(self, item: str, delta: float) -> None:
        count = self._counts.get(item, 0.0) + delta
        if count > 0:
            self._counts[item] = count
        else:
            del self._counts[item]
        self._ranked = None

    def top(self, k: int, category: str | None = None) -> list[Scored]:
        """The k most counted items; categories are not tracked, so ``category`` is ignored."""
        if self._ranked is None or len(self._ranked) < min(k, len(self._counts)):
            self._ranked = heapq.nlargest(max(k, 100), self._counts.items(), key=itemgetter(1))
        return self._ranked[:k]

    def recommend_session(self, session_id: str, k: int) -> list[Scored]:
        return self.top(k)

    def recommend_user(self, user_id: str, k: int) -> list[Scored]:
        return self.top(k)

    def size(self) -> dict[str, int]:
        return {"items": len(self._counts)}


class RecentPopularity(Popularity):
    """Popularity over the last ``window_s`` seconds of event time (30 days by default)."""

    name = "recent_popularity"

    def __init__(self, window_s: float = 30 * 86_400.0) -> None:
        super().__init__()
        self.window_s = window_s
        self._events: deque[tuple[float, str]] = deque()

    def learn_one(self, event: Event) -> None:
        if event.type not in POSITIVE_TYPES:
            return
        events = self._events
        while events and events[0][0] <= event.ts - self.window_s:
            self._add(events.popleft()[1], -1.0)
        events.append((event.ts, event.item_id))
        self._add(event.item_id, 1.0)
