"""Bench topics: created fresh per run, preloaded fast in the collector's record format, counted, deleted.

Preloading is not what is measured, so it skips the per-call acknowledgement wait of
:class:`EventPublisher` and keeps many large batches in flight; the records are the same: a JSON
array of events whose sessions share the record's partition, grouped over windows of ``window`` events
(as ``publish_paced`` groups a flat-out ``shopstream generate``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shopstream.config.topics import ensure_topics
from shopstream.models.events import encode_events
from shopstream.producers.kafka_publisher import group_by_partition
from shopstream.producers.synthetic import SyntheticTraffic

WINDOW_EVENTS = 5000
#: Events per second of event time: 10^6 events span 2.8 h, beyond the 30-minute session TTL, so
#: session state expires during a run as it does on an endless stream (a mid-size shop's rate).
EVENT_RATE = 100.0


@dataclass(frozen=True, slots=True)
class Preloaded:
    topic: str
    events: int
    records: int
    seconds: float


def synthetic(seed: int, n: int, rate: float = EVENT_RATE) -> Iterator[dict[str, Any]]:
    """The first ``n`` events of the seeded generator at ``rate`` events per second of event time: a
    backlog whose event time ends now, so the live traffic that follows it continues the same clock
    (no jump that would expire all state at once)."""
    return itertools.islice(iter(SyntheticTraffic(seed=seed, start_ts=time.time() - n / rate, rate=rate)), n)


def fast_producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks=1,
        linger_ms=20,
        max_batch_size=1024 * 1024,
        request_timeout_ms=30_000,
    )


async def preload(
    bootstrap: str,
    topic: str,
    partitions: int,
    seed: int,
    n: int,
    max_per_record: int,
    event_rate: float,
    window: int = WINDOW_EVENTS,
) -> Preloaded:
    """Publish ``n`` synthetic events, ``max_per_record`` at most per record (1 = the naive design)."""
    await ensure_topics(bootstrap, [topic], partitions)
    producer = fast_producer(bootstrap)
    await producer.start()
    started = time.perf_counter()
    records = 0
    try:
        events = synthetic(seed, n, event_rate)
        in_flight: list[asyncio.Future[Any]] = []
        while chunk := list(itertools.islice(events, window)):
            for partition, group in group_by_partition(chunk, partitions, max_per_record):
                in_flight.append(await producer.send(topic, encode_events(group), partition=partition))
            records += len(in_flight)
            await asyncio.gather(*in_flight)
            in_flight.clear()
    finally:
        await producer.stop()
    return Preloaded(topic, n, records, time.perf_counter() - started)


async def count_events(bootstrap: str, topic: str, partitions: int, idle_s: float = 2.0) -> tuple[int, int, int]:
    """Read a topic to its end: (records, events, distinct event ids) — the loss check."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        end = await consumer.end_offsets(parts)
        records = events = 0
        ids: set[str] = set()
        deadline = time.monotonic() + idle_s
        while [tp for tp in parts if await consumer.position(tp) < end[tp]] and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                deadline = time.monotonic() + idle_s
                for msg in batch:
                    decoded = orjson.loads(msg.value)
                    raws = decoded if isinstance(decoded, list) else [decoded]
                    records += 1
                    events += len(raws)
                    ids.update(raw["event_id"] for raw in raws)
        return records, events, len(ids)
    finally:
        await consumer.stop()


async def delete_topics(bootstrap: str, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        with contextlib.suppress(Exception):  # best effort: a missing topic must not fail the report
            await admin.delete_topics(topics)
    finally:
        await admin.close()
