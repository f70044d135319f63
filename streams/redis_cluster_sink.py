"""Writes recommendation lists to a Redis Cluster (or a managed service speaking its protocol).

The keys of one batch belong to many hash slots, and a script or ``MSET`` may only touch one, so every list
is its own ``SET key value EX ttl``: one command per key, all of a batch in one cluster pipeline that
redis-py splits by node and sends to the nodes concurrently. Each key is still replaced whole; keys of one
batch appear a few milliseconds apart, as the contract allows (docs/redis-keys.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from shopstream.contracts.lists import RecList
from shopstream.streams.redis_sink import encode_list, epoch, ping
from shopstream.streams.sink import SinkError


class RedisClusterSink:
    """The :class:`~shopstream.streams.sink.Sink` for Redis Cluster."""

    def __init__(self, client: aioredis.RedisCluster, prefix: str, ttl_s: Mapping[str, int]) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_s = ttl_s

    async def write(self, lists: Sequence[RecList], updated_at: float) -> None:
        try:
            async with self.client.pipeline() as pipe:
                for rec in lists:
                    pipe.set(rec.spec.key(self.prefix, rec.id), encode_list(rec, updated_at), ex=self.ttl_s[rec.kind])
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise SinkError(str(exc)) from exc

    async def ping(self) -> bool:
        return await ping(self.client)

    async def epoch(self) -> str:
        return await epoch(self.client, self.prefix)

    async def close(self) -> None:
        await self.client.aclose()
