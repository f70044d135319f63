"""Publishes events to Kafka the way the worker expects them: one record per partition batch.

A session belongs to the partition Kafka's default partitioner gives its ``session_id`` (murmur2),
so one session's events land on one partition in order; each record's value is a JSON array of the
events of a call whose sessions share that partition (docs/events.md). Faust pays ~100 µs per
record whatever it carries, so packing a call's events per partition rather than per session cuts
the records of live traffic by the number of concurrent sessions (docs/performance.md). Every send
is awaited until the broker acknowledges it (``acks=all``), so a caller that returns has not lost
anything it was given.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from shopstream.config.settings import CollectorSettings
from shopstream.models.events import encode_events


def session_partition(session_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a record keyed by ``session_id``.

    >>> session_partition("s-1", 8), session_partition("s-2", 8), session_partition("s-4", 8)
    (7, 3, 7)
    """
    return (murmur2(session_id.encode()) & 0x7FFFFFFF) % partitions


def group_by_partition(
    events: Iterable[dict[str, Any]], partitions: int, max_per_record: int
) -> list[tuple[int, list[dict]]]:
    """Split events into per-partition chunks of at most ``max_per_record``, keeping each session's order.

    >>> evs = [{"session_id": s, "n": i} for i, s in enumerate(["s-1", "s-2", "s-1", "s-4"])]
    >>> [(p, [e["n"] for e in chunk]) for p, chunk in group_by_partition(evs, 8, 10)]
    [(7, [0, 2, 3]), (3, [1])]
    >>> [len(chunk) for _, chunk in group_by_partition(evs, 1, 3)]
    [3, 1]
    """
    by_partition: dict[int, list[dict[str, Any]]] = {}
    for event in events:
        by_partition.setdefault(session_partition(event["session_id"], partitions), []).append(event)
    return [
        (partition, chunk[i : i + max_per_record])
        for partition, chunk in by_partition.items()
        for i in range(0, len(chunk), max_per_record)
    ]


class EventPublisher:
    """An idempotent, acknowledged producer of event batches and dead letters."""

    def __init__(
        self,
        bootstrap: str,
        events_topic: str,
        dlq_topic: str,
        max_events_per_record: int = 200,
        linger_s: float = 0.002,
    ) -> None:
        self.events_topic = events_topic
        self.dlq_topic = dlq_topic
        self.max_events_per_record = max_events_per_record
        # Calls within ``linger_s`` of each other share records: concurrent single-event requests to
        # the collector become one record per partition, not one record each.
        self.linger_s = linger_s
        self._pending: list[dict[str, Any]] = []
        self._waiters: list[asyncio.Future[int]] = []
        self._flush: asyncio.Task[None] | None = None  # the linger collecting calls now
        self._sending: set[asyncio.Task[None]] = set()  # every linger not yet acked, for ``stop``
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
            settings.max_events_per_record, settings.publish_linger_s,
        )

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await asyncio.gather(*self._sending, return_exceptions=True)
        await self.producer.stop()

    async def publish(self, events: Iterable[dict[str, Any]]) -> int:
        """Send events grouped per partition, with those of calls made within the linger; returns the
        number of records they went out in, once all of them are acked (raises if any send failed)."""
        batch = list(events)
        if not batch:
            return 0
        self._pending.extend(batch)
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiters.append(done)
        if self._flush is None:
            self._flush = asyncio.create_task(self._send_after_linger())
            self._sending.add(self._flush)
            self._flush.add_done_callback(self._sending.discard)
        return await done

    async def _send_after_linger(self) -> None:
        await asyncio.sleep(self.linger_s)
        events, waiters = self._pending, self._waiters
        self._pending, self._waiters, self._flush = [], [], None
        try:
            partitions = len(await self.producer.partitions_for(self.events_topic))
            chunks = group_by_partition(events, partitions, self.max_events_per_record)
            pending = [
                await self.producer.send(self.events_topic, encode_events(chunk), partition=partition)
                for partition, chunk in chunks
            ]
            await asyncio.gather(*pending)
        except asyncio.CancelledError:
            for waiter in waiters:
                waiter.cancel()
            raise
        except Exception as exc:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
            return
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(len(chunks))

    async def publish_dead_letters(self, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        pending = [await self.producer.send(self.dlq_topic, value, key=key) for key, value in records]
        await asyncio.gather(*pending)

    async def ready(self) -> bool:
        """True when the broker answers a metadata request for the events topic."""
        try:
            return bool(await asyncio.wait_for(self.producer.partitions_for(self.events_topic), 2.0))
        except Exception:
            return False
