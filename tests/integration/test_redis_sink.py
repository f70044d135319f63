"""The sinks against a real Redis node and a real Redis Cluster: every list lands whole with its kind's TTL,
across script chunks and hash slots; the worker's factory picks the sink from the settings."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from shopstream.config.settings import WorkerSettings
from shopstream.contracts.lists import LISTS, RecList
from shopstream.streams.redis_cluster_sink import RedisClusterSink
from shopstream.streams.redis_sink import SCRIPT_KEYS, RedisSink
from shopstream.streams.sink import RetryingWriter, Sink
from shopstream.streams.worker import build_sink
from tests.servers import RedisTarget

pytestmark = pytest.mark.integration


def settings(target: RedisTarget, prefix: str) -> WorkerSettings:
    return WorkerSettings(redis_url=target.url, redis_mode=target.mode, key_prefix=prefix, ttl_session_s=600,
                          ttl_trending_s=30)


def test_the_factory_picks_the_sink_of_the_mode(redis_target: RedisTarget, key_prefix: str) -> None:
    sink = build_sink(settings(redis_target, key_prefix))
    assert isinstance(sink, RedisSink if redis_target.mode == "single" else RedisClusterSink)
    assert asyncio.run(_ping_and_close(sink))


async def _ping_and_close(sink: Sink) -> bool:
    try:
        return await sink.ping()
    finally:
        await sink.close()


def test_a_batch_larger_than_one_script_call_is_written_whole(redis_target: RedisTarget, key_prefix: str) -> None:
    n = 2 * SCRIPT_KEYS + 7
    lists = [RecList("session", f"s{i}", "m", [f"i{i}"], [1.0], 0.0) for i in range(n)]
    lists.append(RecList("trending", "all", "m", ["t"], [2.0], 0.0))

    async def write() -> None:
        sink = build_sink(settings(redis_target, key_prefix))
        try:
            await sink.write(lists[:10], 1.0)
            redis_target.client.script_flush()  # a restarted Redis has lost the script: it is loaded again
            await RetryingWriter(sink).write(lists)
        finally:
            await sink.close()

    asyncio.run(write())
    client = redis_target.client
    assert len(list(client.scan_iter(match=f"{key_prefix}*", count=5000))) == n + 1
    last = orjson.loads(client.get(f"{key_prefix}rec:session:s{n - 1}"))
    assert last["items"] == [f"i{n - 1}"] and last["model"] == "m"
    assert 590 < client.ttl(f"{key_prefix}rec:session:s0") <= 600
    assert 0 < client.ttl(f"{key_prefix}rec:trending") <= 30


def test_every_kind_of_the_contract_lands_under_its_key(redis_target: RedisTarget, key_prefix: str) -> None:
    extras = {"window_s": 60.0, "forecast": [1.0, 2.0], "strategy": "m", "propensity": 1.0}
    lists = [RecList(spec.name, "x:1" if spec.per_entity else "all", "m", ["a", "b"] if spec.ranked else [],
                     [0.5, 0.25] if spec.ranked else [], 0.0,
                     {field: extras[field] for field in spec.payload if field in extras} or None) for spec in LISTS]
    config = settings(redis_target, key_prefix)

    async def write() -> None:
        sink = build_sink(config)
        try:
            await sink.write(lists, 1234.5)
        finally:
            await sink.close()

    asyncio.run(write())
    ttl = config.ttl_s()
    for spec in LISTS:
        name = spec.key(key_prefix, "x:1")
        value = orjson.loads(redis_target.client.get(name))
        assert (value["v"], value["model"], value["updated_at"]) == (spec.version, "m", 1234.5)
        assert set(value) == {"v", "model", "updated_at", *spec.payload}
        assert 0 < redis_target.client.ttl(name) <= ttl[spec.name]
