"""One, two and three workers on the same seeded stream write the same lists (real Kafka and Redis).

Each run is its own app (consumer group, key prefix) over one shared events topic, so the runs read the
very same records. Every worker learns every event; the group deals the key slots out, so each key is
written by one worker. The runs are compared key by key with the one-worker run.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis
import requests

from shopstream.bench import processes
from shopstream.bench.scrape import samples
from shopstream.config.topics import ensure_topics
from shopstream.producers.kafka_publisher import EventPublisher
from shopstream.producers.synthetic import SyntheticTraffic

EVENTS = 6000
PARTITIONS = 4


@pytest.fixture(scope="module")
def events_topic(kafka_bootstrap: str) -> str:
    """A topic holding the seeded stream, published once for every run."""
    topic = f"test-scale-{uuid.uuid4().hex[:8]}"

    async def publish() -> None:
        await ensure_topics(kafka_bootstrap, [topic, f"{topic}-dlq"], PARTITIONS)
        publisher = EventPublisher(kafka_bootstrap, topic, f"{topic}-dlq", 200)
        await publisher.start()
        try:
            await publisher.publish(SyntheticTraffic(seed=21, start_ts=time.time() - EVENTS / 5, rate=5).take(EVENTS))
        finally:
            await publisher.stop()

    asyncio.run(publish())
    return topic


def run_workers(
    n: int, kafka_bootstrap: str, redis_url: str, topic: str, tmp: Path
) -> tuple[dict[str, bytes], list[float]]:
    """Start ``n`` workers of one app on ``topic``, wait until each learned the stream and the throttled
    lists were released; returns every key they wrote (prefix removed) and the key slots each worker held."""
    run = f"test-scale-{n}-{uuid.uuid4().hex[:6]}"
    prefix = f"{run}:"
    ports = [processes.free_port() for _ in range(n)]
    workers = []
    for i, port in enumerate(ports):
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "REDIS_URL": redis_url,
               "SHOPSTREAM_EVENTS_TOPIC": topic, "SHOPSTREAM_DLQ_TOPIC": f"{topic}-dlq",
               "SHOPSTREAM_TOPIC_PARTITIONS": str(PARTITIONS), "SHOPSTREAM_KEY_PREFIX": prefix,
               "SHOPSTREAM_APP_ID": run, "SHOPSTREAM_WORKER_ID": f"w{i}", "SHOPSTREAM_WEB_PORT": str(port),
               "SHOPSTREAM_WEB_HOST": "127.0.0.1", "SHOPSTREAM_DATA_DIR": str(tmp / f"{run}-{i}"),
               "SHOPSTREAM_CHECKPOINT_TOPIC": f"{run}-checkpoints"}
        workers.append(processes.start_component("worker", env, tmp / f"{run}-{i}.log"))
    client = redis.Redis.from_url(redis_url)
    try:
        for worker, port in zip(workers, ports, strict=True):
            processes.wait_ready(worker, f"http://127.0.0.1:{port}", 120)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            learned = [samples(requests.get(f"http://127.0.0.1:{p}/metrics", timeout=5).text,
                               "shopstream_model_learned_events").get((), 0) for p in ports]
            if all(x == EVENTS for x in learned):
                break
            time.sleep(1)
        else:
            raise AssertionError(f"workers learned {learned} of {EVENTS}")
        time.sleep(8)  # item lists wait up to 5 s of (idle) event time before they are released
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        values = client.mget(keys) if keys else []
        slots = [samples(requests.get(f"http://127.0.0.1:{p}/metrics", timeout=5).text,
                         "shopstream_key_slots_held")[()] for p in ports]
        return {k.decode()[len(prefix):]: v for k, v in zip(keys, values, strict=True) if v is not None}, slots
    finally:
        for worker in workers:
            processes.stop(worker)
        stale = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if stale:
            client.delete(*stale)
        client.close()


@pytest.fixture(scope="module")
def runs(kafka_bootstrap: str, redis_url: str, events_topic: str,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, tuple[dict[str, bytes], list[float]]]]:
    tmp = tmp_path_factory.mktemp("scale")
    yield {n: run_workers(n, kafka_bootstrap, redis_url, events_topic, tmp) for n in (1, 2, 3)}


def overlap(one: dict[str, bytes], other: dict[str, bytes], prefix: str) -> float:
    """Mean overlap@20 of the ranked lists of the keys with ``prefix``, over the one-worker run's keys."""
    keys = [k for k in one if k.startswith(prefix)]
    assert keys, f"the one-worker run wrote no {prefix} keys"
    total = 0.0
    for key in keys:
        mine = orjson.loads(one[key])["items"]
        theirs = orjson.loads(other[key])["items"] if key in other else []
        total += len(set(mine) & set(theirs)) / max(1, len(mine))
    return total / len(keys)


@pytest.mark.parametrize("workers", [2, 3])
def test_k_workers_write_the_lists_one_worker_writes(
    runs: dict[int, tuple[dict[str, bytes], list[float]]], workers: int
) -> None:
    (one, _), (many, slots) = runs[1], runs[workers]
    # The group dealt every key slot to exactly one worker, and each worker got some.
    assert sum(slots) == PARTITIONS and min(slots) >= 1, slots
    assert set(one) == set(many), "every key one worker writes is written by K workers"
    floors = {"rec:trending": 0.95, "rec:item:": 0.9, "rec:user:": 0.9, "rec:session:": 0.9}
    figures = {prefix: overlap(one, many, prefix) for prefix in floors}
    print(f"{workers} workers (slots {slots}): overlap@20 with one worker {figures}")
    for prefix, floor in floors.items():
        assert figures[prefix] >= floor, prefix
    for key in [k for k in one if k.startswith("forecast:")]:
        expected, got = orjson.loads(one[key])["forecast"], orjson.loads(many[key])["forecast"]
        assert got == pytest.approx(expected, rel=0.02), key
