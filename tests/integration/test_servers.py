"""The test servers work end to end: Kafka topics, produce/consume in a consumer group, Redis SET/GET.

If these fail, every other integration test would fail too, for the same reason.
"""

from __future__ import annotations

import asyncio

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.servers import TopicFactory

pytestmark = pytest.mark.integration

PARTITIONS = 4


async def partitions_with_leader(admin: AIOKafkaAdminClient, topic: str, timeout_s: float = 30) -> int:
    """Wait until ``topic``'s partitions all have a leader and return their number.

    CreateTopics returns once the controller has the topic; the broker's metadata can lag behind (it does on a
    freshly started broker), and describing or producing in that gap sees no or leaderless partitions.
    """
    async with asyncio.timeout(timeout_s):
        while True:
            (described,) = await admin.describe_topics([topic])
            partitions = described["partitions"]
            if described["error_code"] == 0 and partitions and all(p["leader"] >= 0 for p in partitions):
                return len(partitions)
            await asyncio.sleep(0.1)


async def test_kafka_roundtrip(kafka_bootstrap: str, unique_topic: str) -> None:
    """Records keyed over all partitions come back complete and in order per partition, through a group."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(unique_topic, num_partitions=PARTITIONS, replication_factor=1)])
        assert await partitions_with_leader(admin, unique_topic) == PARTITIONS

        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            sent = [(f"key-{i % 8}".encode(), f"value-{i}".encode()) for i in range(40)]
            for key, value in sent:
                await producer.send(unique_topic, value=value, key=key)
            await producer.flush()
        finally:
            await producer.stop()

        consumer = AIOKafkaConsumer(
            unique_topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=f"{unique_topic}-group",
            auto_offset_reset="earliest",
        )
        await consumer.start()
        received: list[tuple[int, bytes, bytes]] = []
        try:
            async with asyncio.timeout(60):  # the first group join on a fresh broker creates __consumer_offsets
                while len(received) < len(sent):
                    batches = await consumer.getmany(timeout_ms=1000)
                    for tp, records in batches.items():
                        received += [(tp.partition, r.key, r.value) for r in records if r.key and r.value]
            await consumer.commit()
        finally:
            await consumer.stop()
    finally:
        await admin.delete_topics([unique_topic])
        await admin.close()

    assert sorted((k, v) for _, k, v in received) == sorted(sent)
    assert len({partition for partition, _, _ in received}) > 1, "keys should spread over partitions"
    for key in {k for k, _ in sent}:
        # Same key -> same partition, in send order.
        assert len({p for p, k, _ in received if k == key}) == 1
        assert [v for _, k, v in received if k == key] == [v for k, v in sent if k == key]


def test_new_topic_fixture(kafka_bootstrap: str, new_topic: TopicFactory) -> None:
    """``new_topic`` gives a ready topic with the requested partition count."""
    from kafka import KafkaConsumer

    topic = new_topic(partitions=PARTITIONS)
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap)
    try:
        assert consumer.partitions_for_topic(topic) == set(range(PARTITIONS))
    finally:
        consumer.close()


def test_redis_roundtrip(redis_client: redis.Redis, key_prefix: str) -> None:
    """SET/GET/TTL work and keys stay under the test's prefix."""
    key = f"{key_prefix}greeting"
    assert redis_client.set(key, "hello", ex=60)
    assert redis_client.get(key) == b"hello"
    assert 0 < redis_client.ttl(key) <= 60
    assert list(redis_client.scan_iter(match=f"{key_prefix}*")) == [key.encode()]
