"""Writes recommendation lists to Redis, one pipeline per batch (the key contract: docs/redis-keys.md).

Each key is replaced whole by one ``SET … EX`` so a reader never sees half a list, and every key
expires, so Redis holds only what is still being refreshed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shopstream.models.engine import RecList
from shopstream.streams import metrics

log = logging.getLogger(__name__)

KEY_VERSION = 1


def redis_key(prefix: str, kind: str, key_id: str) -> str:
    """The Redis key of a list; ``trending`` is global, the others are per id.

    >>> redis_key("shop1:", "session", "s42"), redis_key("", "trending", "all")
    ('shop1:rec:session:s42', 'rec:trending')
    >>> redis_key("", "category", "toys"), redis_key("", "forecast_item", "42")
    ('rec:trending:category:toys', 'forecast:item:42')
    >>> redis_key("", "forecast_shop", "all")
    'forecast:shop'
    """
    if kind == "forecast_shop":
        return f"{prefix}forecast:shop"
    if kind.startswith("forecast_"):
        return f"{prefix}forecast:{kind.removeprefix('forecast_')}:{key_id}"
    if kind == "trending":
        return f"{prefix}rec:trending"
    if kind == "category":
        return f"{prefix}rec:trending:category:{key_id}"
    return f"{prefix}rec:{kind}:{key_id}"


def encode_list(rec: RecList, updated_at: float) -> bytes:
    """The stored value: items best first with their scores (or a forecast), which model, and when."""
    value: dict[str, object] = {"v": KEY_VERSION, "model": rec.model, "updated_at": round(updated_at, 3)}
    if not rec.kind.startswith("forecast_"):
        value["items"] = rec.items
        value["scores"] = rec.scores
    if rec.extra:
        value.update(rec.extra)
    return orjson.dumps(value)


class RedisSink:
    """Writes a batch of lists in one round trip; retries until Redis answers (never drops a batch)."""

    def __init__(self, client: aioredis.Redis, prefix: str, ttl_s: Mapping[str, int]) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_s = ttl_s

    async def write(self, lists: Sequence[RecList]) -> float:
        """Write every list and return the wall-clock time the pipeline completed."""
        if not lists:
            return time.time()
        delay = 0.05
        while True:
            started = time.perf_counter()
            updated_at = time.time()
            try:
                async with self.client.pipeline(transaction=False) as pipe:
                    for rec in lists:
                        # execute_command, not set(): set()'s argument checks cost more than packing.
                        pipe.execute_command(
                            "SET", redis_key(self.prefix, rec.kind, rec.id), encode_list(rec, updated_at),
                            "EX", self.ttl_s[rec.kind],
                        )
                    await pipe.execute()
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                metrics.REDIS_ERRORS.inc()
                metrics.REDIS_RETRIES.inc()
                log.warning("Redis write of %d keys failed (%s); retrying in %.2fs", len(lists), exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            metrics.REDIS_WRITE.observe(time.perf_counter() - started)
            metrics.REDIS_PIPELINE.observe(len(lists))
            return time.time()
