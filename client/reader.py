"""Reading the worker's recommendation keys from a shop back-end (the contract: docs/redis-keys.md).

A serving back-end wants one answer per page view, fast, and never an empty carousel while any list
exists, so :meth:`RecommendationReader.recommend` fetches every candidate key of the fallback chain
(user → session → category trending → global trending) in one ``MGET`` and fills up to ``k`` items
from the first non-empty list onwards, without repeats. Keys, decoding and merging are pure
functions shared by the sync and asyncio readers, which differ only in how they await the ``MGET``.

The module deliberately imports no model or worker code (numpy, River, Faust): back-ends only need ``redis``,
``orjson`` and the list contract (:mod:`shopstream.contracts.lists`), which names the keys for the writer too.
On Redis Cluster (a ``RedisCluster`` client) the chain's keys live in different hash slots, so they are read
with ``mget_nonatomic`` (one ``MGET`` per slot, sent together) instead of one ``MGET``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis

from shopstream.contracts.lists import BY_NAME, CATEGORY, ITEM, SESSION, TRENDING, USER, ListSpec

Candidate = tuple[str, str]
"""``(kind, redis key)`` of one list the chain may read."""


@dataclass(frozen=True, slots=True)
class StoredList:
    """One decoded value of a ranked kind; ``strategy`` and ``propensity`` when the list carries them (the
    session, user and item kinds)."""

    model: str
    updated_at: float
    items: list[str]
    scores: list[float]
    strategy: str | None = None
    propensity: float | None = None


@dataclass(frozen=True, slots=True)
class Recommendations:
    """What to show, and where it came from.

    ``sources`` are the key kinds that contributed items, in chain order (e.g. ``["session",
    "trending"]``); ``model`` and ``updated_at`` are those of the first one; ``age_s`` is the age of
    the *oldest* contributing list, so staleness alerts see the worst case. Empty when no key exists.
    ``list_refs`` holds, per item, the ``list`` field (docs/events.md) to send with the item's impression and
    with the click that opens it: the list it came from (surface, strategy, propensity) and its position.
    """

    items: list[str]
    sources: list[str]
    model: str | None
    updated_at: float | None
    age_s: float | None
    list_refs: list[dict[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.items)


EMPTY = Recommendations([], [], None, None, None)


def recommend_chain(
    prefix: str, user_id: str | None = None, session_id: str | None = None, category: str | None = None
) -> list[Candidate]:
    """The keys to read for ``recommend``, best first; ids that are not given are left out.

    >>> [kind for kind, _ in recommend_chain("", user_id="u1", category="toys")]
    ['user', 'category', 'trending']
    """
    wanted = [(USER, user_id), (SESSION, session_id), (CATEGORY, category), (TRENDING, "all")]
    return [(spec.name, spec.key(prefix, entity_id)) for spec, entity_id in wanted if entity_id]


def similar_chain(prefix: str, item_id: str, category: str | None = None) -> list[Candidate]:
    """The keys to read for ``similar``: the item's neighbours, then (category) trending."""
    wanted = [(ITEM, item_id), (CATEGORY, category), (TRENDING, "all")]
    return [(spec.name, spec.key(prefix, entity_id)) for spec, entity_id in wanted if entity_id]


def decode(raw: bytes | str | None, spec: ListSpec = TRENDING) -> StoredList | None:
    """A value of a ranked kind, or ``None`` if absent, not JSON, or of another version than ``spec``'s.

    Unreadable values are treated as missing rather than raised: the chain then serves the next
    list, which is what a shop page wants from a cache. Non-string item ids are stringified.

    >>> decode(b'{"v":1,"model":"trending","updated_at":1.5,"items":["a"],"scores":[0.9]}').items
    ['a']
    >>> decode(b'{"v":2,"items":["a"]}') is None, decode(b"oops") is None, decode(None) is None
    (True, True, True)
    """
    if raw is None:
        return None
    try:
        value: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict) or value.get("v") != spec.version:
        return None
    items, scores = value.get("items"), value.get("scores")
    if not isinstance(items, list):
        return None
    updated_at, strategy, propensity = value.get("updated_at"), value.get("strategy"), value.get("propensity")
    return StoredList(
        model=str(value.get("model", "")),
        updated_at=float(updated_at) if isinstance(updated_at, int | float) else 0.0,
        items=[str(item) for item in items],
        scores=[float(s) for s in scores] if isinstance(scores, list) else [],
        strategy=str(strategy) if isinstance(strategy, str) else None,
        propensity=float(propensity) if isinstance(propensity, int | float) and 0 < propensity <= 1 else None,
    )


def merge(
    lists: Sequence[tuple[str, StoredList | None]], k: int, now: float, exclude: Collection[str] = ()
) -> Recommendations:
    """Fill up to ``k`` items from the lists in order, skipping repeats and ``exclude``.

    Lists after the first are only read while items are missing, and a list counts as a source only
    if it contributed an item.

    >>> a = StoredList("knn", 100.0, ["x", "y"], [], strategy="vsknn", propensity=0.8)
    >>> t = StoredList("trending", 90.0, ["y", "z", "w"], [])
    >>> recs = merge([("session", a), ("category", None), ("trending", t)], k=3, now=110.0)
    >>> recs.items, recs.sources, recs.model, recs.updated_at, recs.age_s
    (['x', 'y', 'z'], ['session', 'trending'], 'knn', 100.0, 20.0)
    >>> recs.list_refs[1]
    {'surface': 'session', 'strategy': 'vsknn', 'position': 1, 'propensity': 0.8}
    >>> recs.list_refs[2]
    {'surface': 'trending', 'strategy': 'trending', 'position': 2}
    """
    items: list[str] = []
    refs: list[dict[str, Any]] = []
    seen = set(exclude)
    used: list[tuple[str, StoredList]] = []
    for kind, stored in lists:
        if len(items) >= k:
            break
        if stored is None:
            continue
        before = len(items)
        ref: dict[str, Any] = {"surface": kind, "strategy": stored.strategy or stored.model}
        for item in stored.items:
            if item not in seen:
                seen.add(item)
                refs.append({**ref, "position": len(items)})
                if stored.propensity is not None:
                    refs[-1]["propensity"] = stored.propensity
                items.append(item)
                if len(items) >= k:
                    break
        if len(items) > before:
            used.append((kind, stored))
    if not used:
        return EMPTY
    oldest = min(stored.updated_at for _, stored in used)
    first = used[0][1]
    return Recommendations(
        items=items,
        sources=[kind for kind, _ in used],
        model=first.model,
        updated_at=first.updated_at,
        age_s=round(max(0.0, now - oldest), 3),
        list_refs=refs,
    )


def _resolve(chain: list[Candidate], values: Sequence[bytes | None], k: int, now: float,
             exclude: Collection[str]) -> Recommendations:
    decoded = [(kind, decode(raw, BY_NAME[kind])) for (kind, _), raw in zip(chain, values, strict=True)]
    return merge(decoded, k, now, exclude)


class _Reader:
    """What both readers share: the client, the key prefix and the clock (injectable for tests)."""

    def __init__(self, client: Any, prefix: str = "", clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.prefix = prefix
        self.clock = clock
        cluster = isinstance(client, redis.RedisCluster | aioredis.RedisCluster)
        self._mget = client.mget_nonatomic if cluster else client.mget

    def _keys(self, chain: list[Candidate]) -> list[str]:
        return [name for _, name in chain]


class RecommendationReader(_Reader):
    """Reads lists with a sync ``redis.Redis`` (one ``MGET`` round trip per call).

    ``RecommendationReader(redis.Redis.from_url(url), prefix="shop1:").recommend(session_id=sid, k=8)``
    """

    client: redis.Redis | redis.RedisCluster

    def recommend(
        self,
        user_id: str | None = None,
        session_id: str | None = None,
        k: int = 10,
        category: str | None = None,
        exclude: Collection[str] = (),
    ) -> Recommendations:
        """Up to ``k`` items for a visitor: user → session → category trending → global trending."""
        chain = recommend_chain(self.prefix, user_id, session_id, category)
        return _resolve(chain, self._mget(self._keys(chain)), k, self.clock(), exclude)

    def similar(self, item_id: str, k: int = 10, category: str | None = None) -> Recommendations:
        """Up to ``k`` items like ``item_id`` (never itself), topped up from (category) trending."""
        chain = similar_chain(self.prefix, item_id, category)
        return _resolve(chain, self._mget(self._keys(chain)), k, self.clock(), {item_id})


class AsyncRecommendationReader(_Reader):
    """The same with ``redis.asyncio.Redis``, for aiohttp/FastAPI back-ends."""

    client: aioredis.Redis | aioredis.RedisCluster

    async def recommend(
        self,
        user_id: str | None = None,
        session_id: str | None = None,
        k: int = 10,
        category: str | None = None,
        exclude: Collection[str] = (),
    ) -> Recommendations:
        """See :meth:`RecommendationReader.recommend`."""
        chain = recommend_chain(self.prefix, user_id, session_id, category)
        return _resolve(chain, await self._mget(self._keys(chain)), k, self.clock(), exclude)

    async def similar(self, item_id: str, k: int = 10, category: str | None = None) -> Recommendations:
        """See :meth:`RecommendationReader.similar`."""
        chain = similar_chain(self.prefix, item_id, category)
        return _resolve(chain, await self._mget(self._keys(chain)), k, self.clock(), {item_id})
