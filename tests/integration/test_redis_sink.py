"""The sink against a real Redis: every list lands whole with its kind's TTL, across script chunks."""

from __future__ import annotations

import asyncio

import orjson
import pytest
import redis
import redis.asyncio as aioredis

from shopstream.models.engine import RecList
from shopstream.streams.redis_sink import SCRIPT_KEYS, RedisSink

pytestmark = pytest.mark.integration


def test_a_batch_larger_than_one_script_call_is_written_whole(
    redis_url: str, redis_client: redis.Redis, key_prefix: str
) -> None:
    n = 2 * SCRIPT_KEYS + 7
    lists = [RecList("session", f"s{i}", "m", [f"i{i}"], [1.0], 0.0) for i in range(n)]
    lists.append(RecList("trending", "all", "m", ["t"], [2.0], 0.0))

    async def write() -> None:
        client = aioredis.from_url(redis_url)
        sink = RedisSink(client, key_prefix, {"session": 600, "trending": 30})
        await sink.write(lists[:10])
        await client.script_flush()  # a restarted Redis has lost the script: the sink loads it again
        await sink.write(lists)
        await client.aclose()

    asyncio.run(write())
    assert len(list(redis_client.scan_iter(match=f"{key_prefix}*", count=5000))) == n + 1
    last = orjson.loads(redis_client.get(f"{key_prefix}rec:session:s{n - 1}"))
    assert last["items"] == [f"i{n - 1}"] and last["model"] == "m"
    assert 590 < redis_client.ttl(f"{key_prefix}rec:session:s0") <= 600
    assert 0 < redis_client.ttl(f"{key_prefix}rec:trending") <= 30
