"""Publishes events to Kafka the way the worker expects them: one record per session batch.

Records are keyed by ``session_id``, so one session's events land on one partition in order;
each record's value is a JSON array of that session's events (docs/events.md). Every send is
awaited until the broker acknowledges it (``acks=all``), so a caller that returns has not lost
anything it was given.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from shopstream.models.events import encode_events
from shopstream.settings import CollectorSettings


def group_by_session(events: Iterable[dict[str, Any]], max_per_record: int) -> list[tuple[str, list[dict]]]:
    """Split events into per-session chunks, keeping each session's order.

    >>> evs = [{"session_id": s, "n": i} for i, s in enumerate("abab")]
    >>> [(key, [e["n"] for e in chunk]) for key, chunk in group_by_session(evs, 10)]
    [('a', [0, 2]), ('b', [1, 3])]
    >>> [len(chunk) for _, chunk in group_by_session(evs, 1)]
    [1, 1, 1, 1]
    """
    by_session: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_session.setdefault(event["session_id"], []).append(event)
    return [
        (session, chunk[i : i + max_per_record])
        for session, chunk in by_session.items()
        for i in range(0, len(chunk), max_per_record)
    ]


class EventPublisher:
    """An idempotent, acknowledged producer of event batches and dead letters."""

    def __init__(self, bootstrap: str, events_topic: str, dlq_topic: str, max_events_per_record: int = 200):
        self.events_topic = events_topic
        self.dlq_topic = dlq_topic
        self.max_events_per_record = max_events_per_record
        self.producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=512 * 1024,
            request_timeout_ms=10_000,
        )

    @classmethod
    def from_settings(cls, settings: CollectorSettings) -> EventPublisher:
        return cls(
            settings.kafka_bootstrap_servers, settings.events_topic, settings.dlq_topic,
            settings.max_events_per_record,
        )

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def publish(self, events: Iterable[dict[str, Any]]) -> int:
        """Send events grouped per session; returns the number of records once all are acked."""
        chunks = group_by_session(events, self.max_events_per_record)
        pending = [
            await self.producer.send(self.events_topic, encode_events(chunk), key=session.encode())
            for session, chunk in chunks
        ]
        await asyncio.gather(*pending)
        return len(chunks)

    async def publish_dead_letters(self, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        pending = [await self.producer.send(self.dlq_topic, value, key=key) for key, value in records]
        await asyncio.gather(*pending)

    async def ready(self) -> bool:
        """True when the broker answers a metadata request for the events topic."""
        try:
            return bool(await asyncio.wait_for(self.producer.partitions_for(self.events_topic), 2.0))
        except Exception:
            return False
