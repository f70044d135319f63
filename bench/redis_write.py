"""What one list written to Redis costs the worker: a pipeline of ``SET … EX`` against the sinks.

``python -m shopstream.bench.redis_write [--keys 1000] [--rounds 20]`` writes ``--keys`` lists of 20
items (the size of a served list) ``--rounds`` times each way under a throw-away prefix of the Redis of
``REDIS_URL`` and prints microseconds per key, three times (the machine is noisy). The script is what
``streams/redis_sink.py`` runs; the pipeline is its baseline. With ``REDIS_CLUSTER_URL`` set, the cluster
sink (``streams/redis_cluster_sink.py``, one ``SET`` per key in a cluster pipeline) is measured too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from shopstream.bench.servers import delete_keys
from shopstream.contracts.lists import RecList
from shopstream.streams.redis_cluster_sink import RedisClusterSink
from shopstream.streams.redis_sink import RedisSink, encode_list

TTL = {"session": 300}


async def run(redis_url: str, cluster_url: str | None, n_keys: int, rounds: int) -> None:
    client = aioredis.from_url(redis_url)
    prefix = f"bench-redis-{uuid.uuid4().hex[:8]}:"
    lists = [
        RecList("session", f"s{i}", "transitions", [f"item-{j}" for j in range(20)], [0.1 * j for j in range(20)], 0.0)
        for i in range(n_keys)
    ]
    sinks: list[tuple[str, RedisSink | RedisClusterSink]] = [("sink's Lua script", RedisSink(client, prefix, TTL))]
    if cluster_url:
        sinks.append(("cluster sink (3 masters)", RedisClusterSink(aioredis.RedisCluster.from_url(cluster_url), prefix,
                                                                   TTL)))

    async def per_key(write: Callable[[], Awaitable[None]]) -> float:
        started = time.perf_counter()
        for _ in range(rounds):
            await write()
        return (time.perf_counter() - started) / (rounds * n_keys) * 1e6

    async def pipelined() -> None:
        async with client.pipeline(transaction=False) as pipe:
            now = time.time()
            for rec in lists:
                pipe.execute_command("SET", rec.spec.key(prefix, rec.id), encode_list(rec, now), "EX", 300)
            await pipe.execute()

    try:
        for _ in range(3):
            figures = [f"pipeline of SET ... EX: {await per_key(pipelined):.1f} us/key"]
            for name, sink in sinks:
                figures.append(f"{name}: {await per_key(lambda sink=sink: sink.write(lists, time.time())):.1f} us/key")
            print("; ".join(figures))
    finally:
        for _, sink in sinks:
            await delete_keys(sink.client, prefix)
            await sink.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    asyncio.run(run(redis_url, os.environ.get("REDIS_CLUSTER_URL"), args.keys, args.rounds))


if __name__ == "__main__":
    main()
