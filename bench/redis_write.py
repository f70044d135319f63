"""What one list written to Redis costs the worker: a pipeline of ``SET … EX`` against the sink's Lua script.

``python -m shopstream.bench.redis_write [--keys 1000] [--rounds 20]`` writes ``--keys`` lists of 20
items (the size of a served list) ``--rounds`` times each way under a throw-away prefix of the Redis of
``REDIS_URL`` and prints microseconds per key, three times (the machine is noisy). The script is what
``streams/redis_sink.py`` runs; the pipeline is what it ran before.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

import redis.asyncio as aioredis

from shopstream.bench.servers import delete_keys
from shopstream.models.engine import RecList
from shopstream.streams.redis_sink import RedisSink, encode_list, redis_key


async def run(redis_url: str, n_keys: int, rounds: int) -> None:
    client = aioredis.from_url(redis_url)
    prefix = f"bench-redis-{uuid.uuid4().hex[:8]}:"
    lists = [
        RecList("session", f"s{i}", "transitions", [f"item-{j}" for j in range(20)], [0.1 * j for j in range(20)], 0.0)
        for i in range(n_keys)
    ]
    sink = RedisSink(client, prefix, {"session": 300})
    try:
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(rounds):
                async with client.pipeline(transaction=False) as pipe:
                    now = time.time()
                    for rec in lists:
                        key = redis_key(prefix, rec.kind, rec.id)
                        pipe.execute_command("SET", key, encode_list(rec, now), "EX", 300)
                    await pipe.execute()
            pipelined = (time.perf_counter() - started) / (rounds * n_keys)
            started = time.perf_counter()
            for _ in range(rounds):
                await sink.write(lists)
            scripted = (time.perf_counter() - started) / (rounds * n_keys)
            print(f"pipeline of SET ... EX: {pipelined * 1e6:.1f} us/key; "
                  f"sink's Lua script: {scripted * 1e6:.1f} us/key")
    finally:
        await delete_keys(client, prefix)
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(run(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), args.keys, args.rounds))


if __name__ == "__main__":
    main()
