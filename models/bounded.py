"""Capped containers, so that every per-user, per-session and per-item structure stays bounded.

>>> cache = LRUDict(2)
>>> cache["a"], cache["b"] = 1, 2
>>> _ = cache["a"]          # touching "a" makes "b" the oldest
>>> cache["c"] = 3
>>> sorted(cache), cache.evictions
(['a', 'c'], 1)
>>> recent = ExpiringDict(capacity=10, ttl_s=60.0)
>>> recent.set("s1", "toys", now=0.0); recent.set("s2", "books", now=50.0)
>>> recent.peek_fresh("s1", now=70.0), recent.peek("s1")
(None, 'toys')
>>> recent.expire(now=70.0); recent.peek("s1"), recent.peek("s2"), len(recent)
(None, 'books', 1)
>>> seen = SeenIds(2)
>>> [seen.first_time(x) for x in ["a", "b", "a", "c", "a"]]
[True, True, False, True, True]
>>> import pickle; restored = pickle.loads(pickle.dumps(seen))   # remembers "c", "a", forgets "c" first
>>> [restored.first_time(x) for x in ["a", "c", "b", "c"]], len(restored)
([False, False, True, True], 2)
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

_MISSING = object()
K = TypeVar("K")
V = TypeVar("V")
_ToEnd = Callable[[Any, Any], None]


class LRUDict(OrderedDict[K, V]):
    """A dict that forgets its least recently used key beyond ``capacity``."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        super().__init__()
        self.capacity = capacity
        self.evictions = 0

    # OrderedDict's C methods bound at definition: every model touches these several times an event, and
    # ``super()`` and attribute lookups were a third of their cost (~0.55 against ~0.35 µs a set).
    def __getitem__(
        self, key: K, _get: Callable[..., V] = OrderedDict.__getitem__, _to_end: _ToEnd = OrderedDict.move_to_end
    ) -> V:
        value = _get(self, key)
        _to_end(self, key)
        return value

    def __setitem__(
        self, key: K, value: V, _set: Callable[..., None] = OrderedDict.__setitem__,
        _to_end: _ToEnd = OrderedDict.move_to_end,
    ) -> None:
        _set(self, key, value)
        _to_end(self, key)
        if len(self) > self.capacity:
            self.popitem(last=False)
            self.evictions += 1

    def __reduce__(self):  # type: ignore[no-untyped-def]
        """Pickle with the capacity (OrderedDict's default would call ``__init__`` without it)."""
        state = {"evictions": self.evictions}
        return (self.__class__, (self.capacity,), state, None, iter(self.items()))

    #: Read without refreshing recency (serving must not keep entries alive); the C ``dict.get``.
    peek = OrderedDict.get

    def get(  # type: ignore[override]
        self, key: K, default: V | None = None, _to_end: _ToEnd = OrderedDict.move_to_end
    ) -> V | None:
        value = OrderedDict.get(self, key, _MISSING)
        if value is _MISSING:
            return default
        _to_end(self, key)
        return value  # type: ignore[return-value]

    def oldest(self) -> tuple[K, V] | None:
        """The entry next in line for eviction, for expiry by time."""
        return next(iter(self.items()), None) if self else None


class ExpiringDict(Generic[K, V]):
    """An :class:`LRUDict` whose entries also go ``ttl_s`` (event time) after they were last set, for
    per-session state that must not outlive the session however large the cap."""

    def __init__(self, capacity: int, ttl_s: float) -> None:
        self._entries: LRUDict[K, tuple[float, V]] = LRUDict(capacity)
        self.ttl_s = ttl_s

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def evictions(self) -> int:
        return self._entries.evictions

    def set(self, key: K, value: V, now: float) -> None:
        self._entries[key] = (now, value)

    def peek(self, key: K) -> V | None:
        entry = self._entries.peek(key)
        return None if entry is None else entry[1]

    def peek_fresh(self, key: K, now: float) -> V | None:
        """The value unless it is older than ``ttl_s`` at ``now``, whether or not ``expire`` dropped it yet: what
        the dict holds at ``now`` however rarely it is expired."""
        entry = self._entries.peek(key)
        return None if entry is None or entry[0] < now - self.ttl_s else entry[1]

    def newest_first(self) -> list[K]:
        """The keys, the last set first."""
        return list(reversed(self._entries))

    def expire(self, now: float) -> None:
        """Drop the entries last set before ``now - ttl_s``; they are at the front (set order)."""
        horizon = now - self.ttl_s
        while (oldest := self._entries.oldest()) is not None and oldest[1][0] < horizon:
            self._entries.popitem(last=False)


class SeenIds:
    """Remembers the last ``capacity`` ids, first in first out, to drop redelivered events.

    A set plus a queue, not a dict used as a queue: a dict keeps deleted slots at its front until it
    resizes, so finding its oldest key slows down with every deletion (9 µs a call at 500,000 ids).
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._ids: set[str] = set()
        self._order: deque[str] = deque()

    def __len__(self) -> int:
        return len(self._ids)

    def __getstate__(self) -> tuple[int, list[str]]:
        """The ids in arrival order only: the set is rebuilt from them, so a checkpoint pickles each id once."""
        return self.capacity, list(self._order)

    def __setstate__(self, state: tuple[int, list[str]]) -> None:
        self.capacity, order = state
        self._order = deque(order)
        self._ids = set(order)

    def first_time(self, event_id: str) -> bool:
        """True if the id is new (and remember it); False for a duplicate."""
        if event_id in self._ids:
            return False
        self._ids.add(event_id)
        self._order.append(event_id)
        if len(self._order) > self.capacity:
            self._ids.discard(self._order.popleft())
        return True
