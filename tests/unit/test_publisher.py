"""EventPublisher: calls within the linger share records per partition; a failed send fails every caller."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from shopstream.producers.kafka_publisher import (
    MAX_RECORD_BYTES,
    EventPublisher,
    PublisherUnavailable,
    session_partition,
)


class FakeProducer:
    def __init__(self, fail: bool = False, start_error: Exception | None = None) -> None:
        self.records: list[tuple[int, list[dict[str, Any]]]] = []
        self.fail = fail
        self.start_error = start_error
        self.started = False

    async def start(self) -> None:
        if self.start_error is not None:
            raise self.start_error
        self.started = True

    async def stop(self) -> None:
        return None

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(8))

    async def send(self, topic: str, value: bytes, partition: int) -> asyncio.Future[None]:
        if self.fail:
            raise ConnectionError("broker down")
        self.records.append((partition, orjson.loads(value)))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def event(n: int, session: str) -> dict[str, Any]:
    return {"event_id": f"e{n}", "session_id": session, "type": "view", "item_id": "i", "ts": 1e9 + n}


def publisher(producer: FakeProducer) -> EventPublisher:
    pub = EventPublisher("unused:9092", "events", "dlq", max_events_per_record=200, linger_s=0.01)
    pub.producer = producer  # type: ignore[assignment]
    return pub


async def test_concurrent_calls_share_records_and_keep_each_sessions_order() -> None:
    producer = FakeProducer()
    pub = publisher(producer)
    calls = [[event(n, f"s{n % 3}")] for n in range(30)]
    results = await asyncio.gather(*(pub.publish(batch) for batch in calls))
    assert len(producer.records) == len({session_partition(f"s{k}", 8) for k in range(3)}) == results[0]
    for partition, events in producer.records:
        assert all(session_partition(e["session_id"], 8) == partition for e in events)
    by_session: dict[str, list[int]] = {}
    for _, events in producer.records:
        for e in events:
            by_session.setdefault(e["session_id"], []).append(int(e["event_id"][1:]))
    assert by_session == {f"s{k}": list(range(k, 30, 3)) for k in range(3)}


async def test_a_failed_send_fails_every_call_that_shared_it_and_replaces_the_producer() -> None:
    """After a broker restart aiokafka's producer can fail every send until replaced (aiokafka#1017)."""
    replacements = [FakeProducer(start_error=ConnectionError("broker still down")), FakeProducer()]
    pub = publisher(FakeProducer(fail=True))
    pub.restart_backoff_s = 0.05
    pub.make_producer = iter(replacements).__next__  # type: ignore[assignment]
    results = await asyncio.gather(pub.publish([event(1, "a")]), pub.publish([event(2, "b")]), return_exceptions=True)
    assert [type(r) for r in results] == [ConnectionError, ConnectionError]
    with pytest.raises(PublisherUnavailable):  # at once, while the producer is being replaced
        await pub.publish([event(3, "c")])
    while pub.producer is not replacements[1]:
        await asyncio.sleep(0.01)
    assert await pub.publish([event(4, "d")]) == 1 and replacements[1].started
    assert replacements[1].records == [(session_partition("d", 8), [event(4, "d")])]


async def test_records_stay_within_the_size_the_broker_takes() -> None:
    producer = FakeProducer()
    pub = publisher(producer)
    big = [{**event(n, "s"), "properties": {"blob": "x" * 8000}} for n in range(200)]  # ~1.6 MB in one partition
    assert await pub.publish(big) == len(producer.records) > 1
    assert max(len(orjson.dumps(events)) for _, events in producer.records) <= MAX_RECORD_BYTES
    assert [e for _, events in producer.records for e in events] == big


async def test_stop_waits_for_a_send_still_waiting_for_its_ack() -> None:
    class SlowAcks(FakeProducer):
        async def send(self, topic: str, value: bytes, partition: int) -> asyncio.Future[None]:
            self.records.append((partition, orjson.loads(value)))
            acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_later(0.05, acked.set_result, None)
            return acked

        async def stop(self) -> None:
            self.stopped_after_ack = published.done()

    producer = SlowAcks()
    pub = publisher(producer)
    published = asyncio.create_task(pub.publish([event(1, "s-1")]))
    await asyncio.sleep(0.02)  # past the 10 ms linger: sent, its ack still pending
    await pub.stop()
    assert producer.stopped_after_ack and await published == 1


class PartlyFailingProducer(FakeProducer):
    """Acknowledges records on some partitions and fails those on ``failing`` (a broker going away mid-linger)."""

    def __init__(self, failing: set[int]) -> None:
        super().__init__()
        self.failing = failing

    async def send(self, topic: str, value: bytes, partition: int) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if partition in self.failing:
            done.set_exception(ConnectionError("not acknowledged"))
        else:
            self.records.append((partition, orjson.loads(value)))
            done.set_result(None)
        return done


async def test_a_retry_after_a_partly_failed_linger_does_not_duplicate_what_was_acknowledged() -> None:
    events = [event(n, f"s{n}") for n in range(12)]
    partitions = {session_partition(e["session_id"], 8) for e in events}
    producer = PartlyFailingProducer(failing=set(sorted(partitions)[:2]))
    pub = publisher(producer)
    pub.make_producer = lambda: producer  # type: ignore[assignment,return-value]
    with pytest.raises(ConnectionError):
        await pub.publish(events)
    acknowledged = [e["event_id"] for _, chunk in producer.records for e in chunk]
    assert 0 < len(acknowledged) < len(events)
    while pub._restart is not None:  # the producer is replaced after a failed send
        await asyncio.sleep(0.01)
    producer.failing = set()
    await pub.publish(events)  # the tracker's retry of the whole body
    on_topic = [e["event_id"] for _, chunk in producer.records for e in chunk]
    assert sorted(on_topic) == sorted(e["event_id"] for e in events)  # each once


class HeldAcks(FakeProducer):
    """Acknowledges nothing until ``release`` (a broker away: the idempotent producer keeps retrying its sends)."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[asyncio.Future[None]] = []
        self.released = False

    async def send(self, topic: str, value: bytes, partition: int) -> asyncio.Future[None]:
        self.records.append((partition, orjson.loads(value)))
        acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.held.append(acked)
        if self.released:
            self.release()
        return acked

    def release(self) -> None:
        self.released = True
        for acked in self.held:
            if not acked.done():
                acked.set_result(None)


async def test_a_call_waits_a_bounded_time_and_its_retries_neither_hang_nor_publish_twice() -> None:
    producer = HeldAcks()
    pub = publisher(producer)
    pub.ack_timeout_s = 0.05
    events = [event(n, f"s{n}") for n in range(6)]
    with pytest.raises(TimeoutError):  # the collector answers 503
        await pub.publish(events)
    sent = len(producer.records)
    with pytest.raises(TimeoutError):  # a retry while the first send is still out waits for it, sends nothing
        await pub.publish(events[:3])
    assert len(producer.records) == sent
    producer.release()
    await asyncio.sleep(0.02)
    assert await pub.publish(events) == 0  # acknowledged after its caller gave up: on the topic once
    on_topic = sorted(e["event_id"] for _, chunk in producer.records for e in chunk)
    assert on_topic == sorted(e["event_id"] for e in events)
    assert await pub.publish([event(7, "s7")]) >= 1 and not pub._in_flight  # later events are sent as before
    await pub.stop()


async def test_a_retry_waiting_on_a_send_that_then_fails_fails_too() -> None:
    class FailLater(HeldAcks):
        def release(self) -> None:
            for acked in self.held:
                acked.set_exception(ConnectionError("not acknowledged"))

    producer = FailLater()
    pub = publisher(producer)
    pub.make_producer = lambda: producer  # type: ignore[assignment,return-value]
    pub.ack_timeout_s = 0.05
    events = [event(1, "s1")]
    with pytest.raises(TimeoutError):
        await pub.publish(events)
    retry = asyncio.create_task(pub.publish(events))
    await asyncio.sleep(0.01)
    producer.release()
    with pytest.raises(PublisherUnavailable):  # the first send failed: not on the topic, retry once more
        await retry


async def test_stop_is_bounded_when_sends_are_never_acknowledged() -> None:
    class NeverStops(HeldAcks):
        async def stop(self) -> None:
            await asyncio.Event().wait()  # aiokafka flushing to a broker that is away

    pub = publisher(NeverStops())
    pub.ack_timeout_s = 0.05
    with pytest.raises(TimeoutError):
        await pub.publish([event(1, "s1")])
    async with asyncio.timeout(5.0):  # without the bound, stop never returns
        await pub.stop()
    assert not pub._sending
