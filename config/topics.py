"""Kafka topic administration shared by the producers and the worker."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shopstream.config.settings import CommonSettings


async def ensure_topics(bootstrap: str, topics: Sequence[str], partitions: int, **options: Any) -> None:
    """Create the topics if missing, so partition counts are ours, not the broker's default; ``options`` are
    the admin client's connection options (CommonSettings.kafka_security_options)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **options)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(t, partitions, replication_factor=1) for t in topics if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
    finally:
        await admin.close()


async def ensure_pipeline_topics(settings: CommonSettings) -> None:
    """The events and dead-letter topics, with the configured partition count."""
    await ensure_topics(
        settings.kafka_bootstrap_servers, [settings.events_topic, settings.dlq_topic], settings.topic_partitions,
        **settings.kafka_security_options(),
    )
