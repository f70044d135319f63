"""Ceiling (a): aiokafka batch fetch plus orjson decode and nothing else, counted in events.

This is the fastest a Python consumer on this machine can take the topic in; the worker's rate is
read against it.
"""

from __future__ import annotations

import time

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition


async def fetch_and_decode(
    bootstrap: str, topic: str, partitions: int, expected_events: int, max_records: int = 5000
) -> float:
    """Events/s from the first fetch request (connection already up) until all are decoded."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        await consumer.end_offsets(parts)  # connects to the partitions' leader before the clock starts
        events = 0
        started = time.perf_counter()
        while events < expected_events:
            fetched = await consumer.getmany(timeout_ms=1000, max_records=max_records)
            for batch in fetched.values():
                for msg in batch:
                    decoded = orjson.loads(msg.value)
                    events += len(decoded) if isinstance(decoded, list) else 1
        return events / (time.perf_counter() - started)
    finally:
        await consumer.stop()
