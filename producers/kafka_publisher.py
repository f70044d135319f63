"""Publishes events to Kafka the way the worker expects them: one record per partition batch.

A session belongs to the partition Kafka's default partitioner gives its ``session_id`` (murmur2),
so one session's events land on one partition in order; each record's value is a JSON array of the
events of a call whose sessions share that partition (docs/events.md). Faust pays ~100 µs per
record whatever it carries, so packing a call's events per partition rather than per session cuts
the records of live traffic by the number of concurrent sessions (docs/performance.md). Every send
is awaited until the broker acknowledges it (``acks=all``), so a caller that returns has not lost
anything it was given.

When some records of a linger are acknowledged and others fail, every caller is failed (the collector answers
``503``) and the acknowledged events' ids are remembered: a retry of the same events (the tracker resends on
``503``) skips them, so what was already published is not duplicated by the retry. (A send whose answer was
lost, acknowledged by the broker but failed here, cannot be told apart and may still be duplicated; the
worker learns an event id once.)

A call waits at most ``ack_timeout_s`` for its acknowledgement, then fails (``503``, retry) while the send goes
on: aiokafka's idempotent producer retries a send to the broker it last knew for as long as that broker is
away, and a shopper's request must not hang with it. The events of such a send are *in flight*: a retry that
comes before the acknowledgement waits for that send instead of publishing them again, and once it is
acknowledged their ids are remembered as published, so the retry after it skips them.

A failed send replaces the producer: after a broker restart aiokafka's idempotent producer can keep failing
with ``OutOfOrderSequenceNumber`` until restarted (aio-libs/aiokafka#1017), and a new producer gets a new
producer id. Until the new one has started, calls fail at once with :class:`PublisherUnavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from shopstream.config.settings import CollectorSettings
from shopstream.models.events import encode_events
from shopstream.producers import collector_metrics as metrics

log = logging.getLogger(__name__)
#: A record's value at most: below the broker's default ``max.message.bytes`` (1 MiB) with room to spare, so
#: that events which are each within bounds can never make a record the broker refuses.
MAX_RECORD_BYTES = 512 * 1024
#: How long a send waits for the broker before it fails (and the collector answers 503: a retry can fix it).
REQUEST_TIMEOUT_S = 10.0


def session_partition(session_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a record keyed by ``session_id``.

    >>> session_partition("s-1", 8), session_partition("s-2", 8), session_partition("s-4", 8)
    (7, 3, 7)
    """
    return (murmur2(session_id.encode()) & 0x7FFFFFFF) % partitions


def encode_within(chunk: list[dict[str, Any]], max_bytes: int) -> list[tuple[list[dict[str, Any]], bytes]]:
    """The chunk's records as (events, value), halved until each value fits ``max_bytes`` (a single event
    always makes one).

    >>> [(len(events), len(value)) for events, value in encode_within([{"n": "x" * 10}] * 4, 40)]
    [(2, 39), (2, 39)]
    """
    value = encode_events(chunk)
    if len(value) <= max_bytes or len(chunk) == 1:
        return [(chunk, value)]
    half = len(chunk) // 2
    return encode_within(chunk[:half], max_bytes) + encode_within(chunk[half:], max_bytes)


class PublisherUnavailable(ConnectionError):
    """The producer is being replaced after a failed send; retry shortly."""


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
    """An idempotent, acknowledged producer of event batches and dead letters that replaces its producer
    after a failed send."""

    def __init__(
        self,
        bootstrap: str,
        events_topic: str,
        dlq_topic: str,
        max_events_per_record: int = 200,
        linger_s: float = 0.002,
        restart_backoff_s: float = 1.0,
        client_options: Mapping[str, Any] | None = None,
        ack_timeout_s: float = 5.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.client_options = dict(client_options or {})  # TLS and SASL (CommonSettings.kafka_security_options)
        self.events_topic = events_topic
        self.dlq_topic = dlq_topic
        self.max_events_per_record = max_events_per_record
        # Calls within ``linger_s`` of each other share records: concurrent single-event requests to
        # the collector become one record per partition, not one record each.
        self.linger_s = linger_s
        self.restart_backoff_s = restart_backoff_s
        self.ack_timeout_s = ack_timeout_s
        self._in_flight: dict[str, asyncio.Task[bool]] = {}  # event id -> the linger sending it
        self._pending: list[dict[str, Any]] = []
        self._waiters: list[asyncio.Future[int]] = []
        self._flush: asyncio.Task[bool] | None = None  # the linger collecting calls now
        self._sending: set[asyncio.Task[bool]] = set()  # every linger not yet acked, for ``stop``
        self._restart: asyncio.Task[None] | None = None  # replacing a failed producer
        # Ids of events acknowledged in a linger whose other records failed, or after their caller stopped
        # waiting: on the topic already, though their caller was told otherwise. Bounded: the oldest are
        # forgotten (a retry comes within seconds).
        self._published_unconfirmed: OrderedDict[str, None] = OrderedDict()  # an LRU of ids
        self.max_unconfirmed = 100_000
        self.make_producer: Callable[[], AIOKafkaProducer] = self._new_producer
        self.producer: AIOKafkaProducer | None = None

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=MAX_RECORD_BYTES,
            max_request_size=2 * MAX_RECORD_BYTES,
            request_timeout_ms=int(REQUEST_TIMEOUT_S * 1000),
            **self.client_options,
        )

    @classmethod
    def from_settings(cls, settings: CollectorSettings) -> EventPublisher:
        return cls(
            settings.kafka_bootstrap_servers, settings.events_topic, settings.dlq_topic,
            settings.max_events_per_record, settings.publish_linger_s,
            client_options=settings.kafka_security_options(), ack_timeout_s=settings.publish_timeout_s,
        )

    async def start(self) -> None:
        self.producer = self.make_producer()
        await self.producer.start()

    async def stop(self) -> None:
        """Wait for the sends still out, then stop the producer, each for at most ``ack_timeout_s``: a caller
        waits no longer than that for its answer, so a send still out after it was answered 503 and is
        retried by its caller, not owed (during a broker outage it would never end)."""
        if self._sending:
            _, abandoned = await asyncio.wait(self._sending, timeout=self.ack_timeout_s)
            for linger in abandoned:
                linger.cancel()
            await asyncio.gather(*abandoned, return_exceptions=True)
        if self._restart is not None:
            self._restart.cancel()
            await asyncio.gather(self._restart, return_exceptions=True)
        if self.producer is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.producer.stop(), self.ack_timeout_s)

    def _live(self) -> AIOKafkaProducer:
        if self.producer is None or self._restart is not None:
            raise PublisherUnavailable("the Kafka producer is restarting after a failed send")
        return self.producer

    def _failed(self, exc: BaseException) -> None:
        """A send failed: replace the producer, once, however many sends fail with it."""
        if self._restart is None and self.producer is not None:
            log.error("a Kafka send failed (%s: %s); replacing the producer", type(exc).__name__, exc)
            self._restart = asyncio.create_task(self._replace(self.producer))

    async def _replace(self, failed: AIOKafkaProducer) -> None:
        with contextlib.suppress(Exception):  # it failed already; its unsent batches fail their callers
            await asyncio.wait_for(failed.stop(), 5.0)
        attempts = 0
        while True:
            producer = self.make_producer()
            try:
                await producer.start()
            except Exception as exc:
                attempts += 1
                with contextlib.suppress(Exception):
                    await producer.stop()
                if attempts == 1:
                    log.error("Kafka producer cannot start (%s); retrying every %.1fs", exc, self.restart_backoff_s)
                await asyncio.sleep(self.restart_backoff_s)
                continue
            break
        self.producer, self._restart = producer, None
        metrics.PRODUCER_RESTARTS.inc()
        log.warning("Kafka producer replaced after %d failed start(s)", attempts)

    async def publish(self, events: Iterable[dict[str, Any]]) -> int:
        """Send events grouped per partition, with those of calls made within the linger; returns the
        number of records they went out in, once all of them are acked (raises if any send failed)."""
        batch = list(events)
        if not batch:
            return 0
        self._live()
        batch = [event for event in batch if event["event_id"] not in self._published_unconfirmed]
        if not batch:  # all of them on the topic already
            return 0
        earlier = list({self._in_flight[e["event_id"]] for e in batch if e["event_id"] in self._in_flight})
        fresh = [event for event in batch if event["event_id"] not in self._in_flight]
        waits: list[asyncio.Future[Any]] = [asyncio.shield(linger) for linger in earlier]
        if fresh:
            if self._flush is None:
                self._flush = asyncio.create_task(self._send_after_linger())
                self._sending.add(self._flush)
                self._flush.add_done_callback(self._sending.discard)
            self._pending.extend(fresh)
            for event in fresh:
                self._in_flight[event["event_id"]] = self._flush
            done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            self._waiters.append(done)
            waits.append(done)
        # On timeout the waits are cancelled, not the sends: a linger whose caller stopped waiting remembers
        # its ids as published once acknowledged.
        async with asyncio.timeout(self.ack_timeout_s):
            results = await asyncio.gather(*waits)
        if not all(results[: len(earlier)]):
            raise PublisherUnavailable("an earlier send of these events failed")
        return results[-1] if fresh else 0

    async def _send_after_linger(self) -> bool:
        """Send the calls gathered within the linger; True once every record is acknowledged."""
        await asyncio.sleep(self.linger_s)
        events, waiters = self._pending, self._waiters
        self._pending, self._waiters, self._flush = [], [], None
        try:
            return await self._send(events, waiters)
        finally:
            for event in events:
                if self._in_flight.get(event["event_id"]) is asyncio.current_task():
                    del self._in_flight[event["event_id"]]

    async def _send(self, events: list[dict[str, Any]], waiters: list[asyncio.Future[int]]) -> bool:
        try:
            producer = self._live()
            partitions = len(await producer.partitions_for(self.events_topic))
            records = [
                (partition, chunk_events, value)
                for partition, chunk in group_by_partition(events, partitions, self.max_events_per_record)
                for chunk_events, value in encode_within(chunk, MAX_RECORD_BYTES)
            ]
            pending: list[asyncio.Future[Any]] = []
            failures: list[BaseException] = []
            for partition, _, value in records:
                try:
                    pending.append(await producer.send(self.events_topic, value, partition=partition))
                except Exception as exc:  # the records queued before it may still be acknowledged
                    failures.append(exc)
                    break
            acks = await asyncio.gather(*pending, return_exceptions=True)
            failures = [ack for ack in acks if isinstance(ack, BaseException)] + failures
            if failures:
                self._remember_published([chunk for (_, chunk, _), ack in zip(records, acks, strict=False)
                                          if not isinstance(ack, BaseException)])
                raise failures[0]
        except asyncio.CancelledError:
            for waiter in waiters:
                waiter.cancel()
            raise
        except Exception as exc:
            if not isinstance(exc, PublisherUnavailable):
                self._failed(exc)
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
            return False
        if any(waiter.cancelled() for waiter in waiters):
            self._remember_published([events])
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(len(records))
        return True

    def _remember_published(self, chunks: list[list[dict[str, Any]]]) -> None:
        for chunk in chunks:
            for event in chunk:
                self._published_unconfirmed[event["event_id"]] = None
        while len(self._published_unconfirmed) > self.max_unconfirmed:
            self._published_unconfirmed.popitem(last=False)

    async def publish_dead_letters(self, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        if not records:
            return
        producer = self._live()
        try:
            pending = [await producer.send(self.dlq_topic, value, key=key) for key, value in records]
            async with asyncio.timeout(self.ack_timeout_s):
                await asyncio.gather(*pending)
        except Exception as exc:
            if not isinstance(exc, TimeoutError):  # a slow broker is no reason to replace the producer
                self._failed(exc)
            raise

    async def ready(self) -> bool:
        """True when the producer is not being replaced and a broker answers a metadata request now
        (``partitions_for`` would answer from its cache during an outage)."""
        try:
            producer = self._live()
            return bool(await asyncio.wait_for(producer.client.force_metadata_update(), 2.0))
        except Exception:
            return False
