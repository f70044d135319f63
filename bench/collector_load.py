"""Collector ingest: events/s accepted over HTTP on loopback, and a check that none was lost.

An async aiohttp client keeps ``concurrency`` requests in flight against a real
``python -m shopstream.cli collector``, first with NDJSON bodies of ``batch`` events, then with single
events, each phase bounded by an event count and a time limit. Afterwards the collector's topic
is read back: every accepted event id must be there.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import numpy as np
import orjson

from shopstream.bench import processes
from shopstream.bench.topics import count_events, synthetic


@dataclass(frozen=True, slots=True)
class Ingest:
    mode: str
    requests: int
    accepted: int
    failed_requests: int
    seconds: float
    eps: float
    p50_s: float
    p99_s: float


@dataclass(frozen=True, slots=True)
class CollectorResult:
    ndjson: Ingest
    single: Ingest
    accepted: int
    on_topic_events: int
    on_topic_distinct: int

    @property
    def lost(self) -> int:
        return max(0, self.accepted - self.on_topic_distinct)


def bodies(events: Iterator[dict], per_body: int) -> Iterator[tuple[bytes, str]]:
    """Request bodies: NDJSON when several events per body, a JSON object for one."""
    while chunk := list(itertools.islice(events, per_body)):
        if per_body == 1:
            yield orjson.dumps(chunk[0]), "application/json"
        else:
            yield b"\n".join(orjson.dumps(e) for e in chunk), "application/x-ndjson"


async def load(
    http: aiohttp.ClientSession,
    url: str,
    mode: str,
    payloads: list[tuple[bytes, str]],
    concurrency: int,
    max_seconds: float,
) -> Ingest:
    """Post the payloads with ``concurrency`` requests in flight until done or ``max_seconds``."""
    queue = iter(payloads)
    latencies: list[float] = []
    accepted = failed = 0
    started = time.perf_counter()
    deadline = started + max_seconds

    async def client() -> None:
        nonlocal accepted, failed
        for body, content_type in queue:
            if time.perf_counter() > deadline:
                return
            sent = time.perf_counter()
            async with http.post(url, data=body, headers={"Content-Type": content_type}) as resp:
                answer = await resp.read()
            latencies.append(time.perf_counter() - sent)
            if resp.status == 202:
                accepted += int(orjson.loads(answer)["accepted"])
            else:
                failed += 1

    await asyncio.gather(*(client() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    lat = np.array(latencies) if latencies else np.array([np.nan])
    return Ingest(
        mode,
        len(latencies),
        accepted,
        failed,
        seconds,
        accepted / seconds,
        float(np.quantile(lat, 0.5)),
        float(np.quantile(lat, 0.99)),
    )


async def measure(
    http: aiohttp.ClientSession,
    env: dict[str, str],
    topic: str,
    workdir: Path,
    seed: int,
    batch: int,
    batch_events: int,
    single_events: int,
    concurrency: int,
    max_seconds: float,
) -> CollectorResult:
    port = processes.free_port()
    log = workdir / "collector.log"
    collector_env, key = processes.local_collector_env(port)
    proc = processes.start_component("collector", {**os.environ, **env, **collector_env}, log)
    try:
        base = f"http://127.0.0.1:{port}"
        await asyncio.to_thread(processes.wait_ready, proc, base, 120.0, log)
        events = synthetic(seed, batch_events + single_events)
        batched = list(bodies(itertools.islice(events, batch_events), batch))
        singles = list(bodies(events, 1))
        url = f"{base}/v1/events?key={key}"
        ndjson = await load(http, url, f"ndjson x{batch}", batched, concurrency, max_seconds)
        single = await load(http, url, "single", singles, concurrency, max_seconds)
    finally:
        await asyncio.to_thread(processes.stop, proc)
    partitions = int(env["SHOPSTREAM_TOPIC_PARTITIONS"])
    _, on_topic, distinct = await count_events(env["KAFKA_BOOTSTRAP_SERVERS"], topic, partitions)
    return CollectorResult(ndjson, single, ndjson.accepted + single.accepted, on_topic, distinct)
