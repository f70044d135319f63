"""Writes recommendation lists to Redis, one round trip per batch (the key contract: docs/redis-keys.md).

Each key is replaced whole by one ``SET … EX`` so a reader never sees half a list, and every key
expires, so Redis holds only what is still being refreshed. The SETs of a batch run inside a Lua
script, up to ``SCRIPT_KEYS`` keys a call, all calls in one pipeline: redis-py packs and parses one
command per key in a pipeline (27 to 29 µs a key here, encoding included), against 13 to 14 µs a key
as script arguments (``python -m shopstream.bench.redis_write``). A script's keys must share a node:
one Redis, not a cluster.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from shopstream.models.engine import RecList
from shopstream.streams import metrics

log = logging.getLogger(__name__)

KEY_VERSION = 1
#: Keys per script call: a script holds Redis while it runs, so one call is kept short for readers.
SCRIPT_KEYS = 1000
#: KEYS[i] gets ARGV[2i-1] with ARGV[2i] seconds to live.
SET_WITH_TTL = """
for i = 1, #KEYS do
    redis.call('SET', KEYS[i], ARGV[2 * i - 1], 'EX', ARGV[2 * i])
end
return #KEYS
"""


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
        self.set_with_ttl = client.register_script(SET_WITH_TTL)

    def _script_args(self, lists: Sequence[RecList], updated_at: float) -> tuple[list[str], list[bytes | int]]:
        keys = [redis_key(self.prefix, rec.kind, rec.id) for rec in lists]
        return keys, [arg for rec in lists for arg in (encode_list(rec, updated_at), self.ttl_s[rec.kind])]

    async def write(self, lists: Sequence[RecList]) -> float:
        """Write every list and return the wall-clock time the pipeline completed."""
        if not lists:
            return time.time()
        delay = 0.05
        while True:
            started = time.perf_counter()
            updated_at = time.time()
            try:
                chunks = [self._script_args(lists[i : i + SCRIPT_KEYS], updated_at)
                          for i in range(0, len(lists), SCRIPT_KEYS)]
                if len(chunks) == 1:  # live batches: one call, without a pipeline's bookkeeping
                    await self.set_with_ttl(*chunks[0])
                else:
                    async with self.client.pipeline(transaction=False) as pipe:
                        for keys, args in chunks:
                            await self.set_with_ttl(keys, args, client=pipe)
                        await pipe.execute()
            except (RedisError, OSError) as exc:
                # Every Redis failure is retried, errors it answers with (OOM, READONLY) included: a batch that
                # left the agent by an exception was acked by Faust's take_events and its offsets committed
                # unwritten (seen with a stand-in Redis answering errors).
                metrics.REDIS_ERRORS.inc()
                metrics.REDIS_RETRIES.inc()
                log.warning("Redis write of %d keys failed (%s); retrying in %.2fs", len(lists), exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            metrics.REDIS_WRITE.observe(time.perf_counter() - started)
            metrics.REDIS_PIPELINE.observe(len(lists))
            return time.time()
