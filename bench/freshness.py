"""Freshness at a fixed offered rate: Redis write time minus the event's Kafka timestamp.

Two measures. The worker's own ``shopstream_freshness_seconds`` histogram (deltas over the phase,
interpolated within buckets, all key kinds: coarse, and per key rather than per event). And the
exact one the bench reports as ``freshness_*``: every publish call of the paced producer carries
one probe event in a session of its own, so its ``rec:session:<probe>`` key is written exactly once,
by the batch that learned it; a Redis keyspace notification stamps that write. The latency is the
notification's arrival minus the time just before the probe's record was sent (the Kafka
CreateTime is taken when the record is appended, within a millisecond after): slightly pessimistic.
A probe not written within the grace period counts with the time waited so far, a lower bound
(``freshness_probes_seen`` < ``freshness_probes`` says so), never as if it did not exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np
import redis.asyncio as aioredis

from shopstream.bench.scrape import histogram_quantile
from shopstream.bench.worker_metrics import scrape
from shopstream.producers.kafka_publisher import EventPublisher
from shopstream.producers.pacing import publish_paced
from shopstream.producers.synthetic import SyntheticTraffic

GRACE_S = 15.0
QUANTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}


class ProbingPublisher:
    """Adds one probe event (a fresh session) to each publish call and remembers when it was sent."""

    def __init__(self, inner: EventPublisher, run_id: str) -> None:
        self.inner = inner
        self.run_id = run_id
        self.sent_at: dict[str, float] = {}
        self.events = 0

    async def publish(self, events: Iterable[dict[str, Any]]) -> int:
        batch = list(events)
        if batch:
            probe = f"probe-{self.run_id}-{len(self.sent_at)}"
            model = batch[0]
            batch.append(
                {
                    "event_id": probe,
                    "ts": time.time(),
                    "session_id": probe,
                    "type": "view",
                    "item_id": model["item_id"],
                    "category": model["category"],
                }
            )
            self.events += len(batch) - 1
            self.sent_at[probe] = time.time()
        return await self.inner.publish(batch)


@dataclass(frozen=True, slots=True)
class Freshness:
    offered_eps: float
    sent_events: int
    seconds: float
    probes: int
    probes_seen: int
    exact: dict[str, float]  # p50, p95, p99, max, from probes
    slowest_by_second: list[float]  # the slowest probe sent in each second of the phase: when stalls happened
    histogram: dict[str, float]  # p50, p95, p99, from the worker's histogram


async def _watch(client: aioredis.Redis, pattern: str, seen: dict[str, float], ready: asyncio.Event) -> None:
    async with client.pubsub() as pubsub:
        await pubsub.psubscribe(pattern)
        ready.set()
        prefix_len = len(pattern) - len("probe-*")
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None and message["data"] == b"set":
                seen.setdefault(message["channel"].decode()[prefix_len:], time.time())


@contextlib.asynccontextmanager
async def keyspace_events(client: aioredis.Redis) -> AsyncIterator[None]:
    """Enable string-command keyspace notifications for the phase, then restore the server's setting."""
    previous = (await client.config_get("notify-keyspace-events"))["notify-keyspace-events"]
    wanted = "".join(sorted(set(previous) | {"K", "$"}))
    await client.config_set("notify-keyspace-events", wanted)
    try:
        yield
    finally:
        await client.config_set("notify-keyspace-events", previous)


async def measure(
    http: aiohttp.ClientSession,
    metrics_urls: list[str],
    publisher: EventPublisher,
    redis_url: str,
    key_prefix: str,
    run_id: str,
    seed: int,
    rate: float,
    seconds: float,
) -> Freshness:
    """Offer ``rate`` events/s for ``seconds`` to caught-up workers and measure how fresh Redis is."""
    client = aioredis.from_url(redis_url)
    db = client.connection_pool.connection_kwargs.get("db", 0)
    seen: dict[str, float] = {}
    probing = ProbingPublisher(publisher, run_id)
    try:
        async with keyspace_events(client):
            ready = asyncio.Event()
            pattern = f"__keyspace@{db}__:{key_prefix}rec:session:probe-*"
            watcher = asyncio.create_task(_watch(client, pattern, seen, ready))
            await ready.wait()
            before = await scrape(http, metrics_urls)
            # Another seed: the preload's event ids must not come back as duplicates.
            traffic = SyntheticTraffic(seed=seed + 1, start_ts=time.time(), rate=rate)
            started = time.perf_counter()
            await publish_paced(probing, itertools.islice(iter(traffic), int(rate * seconds)), rate=rate)
            elapsed = time.perf_counter() - started
            deadline = time.monotonic() + GRACE_S
            while len(seen) < len(probing.sent_at) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            given_up = time.time()
            await asyncio.sleep(0.5)  # the last batch's other keys and the histogram export
            after = await scrape(http, metrics_urls)
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    finally:
        await client.aclose()
    latencies = np.array([seen.get(p, given_up) - t for p, t in probing.sent_at.items()])
    phase_start = min(probing.sent_at.values(), default=0.0)
    slowest: dict[int, float] = {}
    for sent, latency in zip(probing.sent_at.values(), latencies.tolist(), strict=True):
        second = int(sent - phase_start)
        slowest[second] = max(slowest.get(second, 0.0), latency)
    exact = {name: float(np.quantile(latencies, q)) for name, q in QUANTILES.items()} if len(latencies) else {}
    if len(latencies):
        exact["max"] = float(latencies.max())
    histogram = {name: histogram_quantile(before.freshness, after.freshness, q) for name, q in QUANTILES.items()}
    return Freshness(
        offered_eps=probing.events / elapsed,
        sent_events=probing.events,
        seconds=elapsed,
        probes=len(probing.sent_at),
        probes_seen=sum(p in seen for p in probing.sent_at),
        exact=exact,
        slowest_by_second=[round(slowest.get(second, 0.0), 3) for second in range(max(slowest, default=-1) + 1)],
        histogram=histogram,
    )
