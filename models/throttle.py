"""Rewrite slow-changing lists at most once per interval, without scanning every changed key each batch.

>>> throttle = RefreshThrottle({"item": 5.0}, capacity=100)
>>> throttle.mark(("item", "a"), origin=1.0, now=10.0)
>>> throttle.due(now=10.0)                  # never written: due at once
[(('item', 'a'), 1.0)]
>>> throttle.mark(("item", "a"), origin=2.0, now=11.0); throttle.mark(("item", "a"), origin=3.0, now=12.0)
>>> throttle.due(now=14.0)                  # written at 10: not before 15
[]
>>> throttle.due(now=15.0)                  # the oldest origin of the changes it waited for
[(('item', 'a'), 2.0)]
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping

from shopstream.models.bounded import LRUDict

Key = tuple[str, str]  # (kind, id)


class RefreshThrottle:
    """Changed keys wait until their kind's interval has passed since their last release (event time)."""

    def __init__(self, intervals: Mapping[str, float], capacity: int) -> None:
        self.intervals = dict(intervals)
        self._pending: dict[Key, float] = {}  # key -> oldest origin among its unreleased changes
        self._queue: list[tuple[float, Key]] = []  # (release time, key), one entry per pending key
        self._released: LRUDict[Key, float] = LRUDict(capacity)

    def __len__(self) -> int:
        return len(self._pending)

    def mark(self, key: Key, origin: float, now: float) -> None:
        """Note a change to ``key`` (at event time ``now``, from data that originated at ``origin``)."""
        pending = self._pending.get(key)
        if pending is not None:
            if origin < pending:
                self._pending[key] = origin
            return
        self._pending[key] = origin
        last = self._released.peek(key)
        heapq.heappush(self._queue, (now if last is None else last + self.intervals[key[0]], key))

    def due(self, now: float) -> list[tuple[Key, float]]:
        """Keys whose release time has come, with their oldest origin; they count as released at ``now``."""
        out = []
        while self._queue and self._queue[0][0] <= now:
            _, key = heapq.heappop(self._queue)
            out.append((key, self._pending.pop(key)))
            self._released[key] = now
        return out
