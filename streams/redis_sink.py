"""Writes recommendation lists to one Redis node, one round trip per batch (the key contract: docs/redis-keys.md).

Each key is replaced whole by one ``SET … EX`` so a reader never sees half a list, and every key
expires, so Redis holds only what is still being refreshed. The SETs of a batch run inside a Lua
script, up to ``SCRIPT_KEYS`` keys a call, all calls in one pipeline: redis-py packs and parses one
command per key in a pipeline (27 to 29 µs a key here, encoding included), against 13 to 14 µs a key
as script arguments (``python -m shopstream.bench.redis_write``). A script's keys must share a hash slot,
so on Redis Cluster :mod:`shopstream.streams.redis_cluster_sink` writes instead.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from shopstream.contracts.lists import RecList
from shopstream.streams.sink import SinkError

#: The worker's marker key (beside the prefix): see :func:`epoch`.
EPOCH_KEY = "meta:epoch"
#: Keys per script call: a script holds Redis while it runs, so one call is kept short for readers.
SCRIPT_KEYS = 1000
#: KEYS[i] gets ARGV[2i-1] with ARGV[2i] seconds to live.
SET_WITH_TTL = """
for i = 1, #KEYS do
    redis.call('SET', KEYS[i], ARGV[2 * i - 1], 'EX', ARGV[2 * i])
end
return #KEYS
"""


def encode_list(rec: RecList, updated_at: float) -> bytes:
    """The stored value (its fields are the kind's payload in the contract): items best first with their
    scores (or a forecast), which model, and when."""
    spec = rec.spec
    value: dict[str, object] = {"v": spec.version, "model": rec.model, "updated_at": round(updated_at, 3)}
    if spec.ranked:
        value["items"] = rec.items
        value["scores"] = rec.scores
    if rec.extra:
        value.update(rec.extra)
    return orjson.dumps(value)


class RedisSink:
    """Writes a batch of lists to one Redis node in one round trip (the single-node :class:`Sink`)."""

    def __init__(self, client: aioredis.Redis, prefix: str, ttl_s: Mapping[str, int]) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.set_with_ttl = client.register_script(SET_WITH_TTL)

    def _script_args(self, lists: Sequence[RecList], updated_at: float) -> tuple[list[str], list[bytes | int]]:
        keys = [rec.spec.key(self.prefix, rec.id) for rec in lists]
        return keys, [arg for rec in lists for arg in (encode_list(rec, updated_at), self.ttl_s[rec.kind])]

    async def write(self, lists: Sequence[RecList], updated_at: float) -> None:
        chunks = [self._script_args(lists[i : i + SCRIPT_KEYS], updated_at) for i in range(0, len(lists), SCRIPT_KEYS)]
        try:
            if len(chunks) == 1:  # live batches: one call, without a pipeline's bookkeeping
                await self.set_with_ttl(*chunks[0])
            else:
                async with self.client.pipeline(transaction=False) as pipe:
                    for keys, args in chunks:
                        await self.set_with_ttl(keys, args, client=pipe)
                    await pipe.execute()
        except (RedisError, OSError) as exc:
            # Errors Redis answers with (OOM, READONLY) too: the batch is not stored, whatever the reason.
            raise SinkError(str(exc)) from exc

    async def ping(self) -> bool:
        return await ping(self.client)

    async def epoch(self) -> str:
        return await epoch(self.client, self.prefix)

    async def close(self) -> None:
        await self.client.aclose()


async def epoch(client: aioredis.Redis | aioredis.RedisCluster, prefix: str) -> str:
    """The token in the epoch key (docs/redis-keys.md), set to a new one if the key is missing: a Redis that lost
    its data lost this key too, so a changed token means the lists are gone. A marker rather than INFO's
    ``run_id``: ``FLUSHALL`` keeps the ``run_id``, and a restart that reloads its data changes it needlessly."""
    key = prefix + EPOCH_KEY
    try:
        async with client.pipeline(transaction=False) as pipe:
            pipe.set(key, uuid.uuid4().hex, nx=True)
            pipe.get(key)
            _, token = await pipe.execute()
    except (RedisError, OSError) as exc:
        raise SinkError(str(exc)) from exc
    return token.decode() if isinstance(token, bytes) else str(token)


async def ping(client: aioredis.Redis | aioredis.RedisCluster, timeout_s: float = 1.0) -> bool:
    """Whether Redis answers within ``timeout_s``."""
    try:
        return bool(await asyncio.wait_for(client.ping(), timeout=timeout_s))
    except (RedisError, OSError, TimeoutError):
        return False
