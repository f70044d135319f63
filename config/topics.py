"""Kafka topic administration shared by the producers and the worker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shopstream.config.settings import CommonSettings, WorkerSettings


async def ensure_topics(
    bootstrap: str, topics: Sequence[str], partitions: int, config: Mapping[str, str] | None = None, **options: Any
) -> None:
    """Create the topics if missing, so partition counts (and ``config``) are ours, not the broker's default;
    ``options`` are the admin client's connection options (CommonSettings.kafka_security_options)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **options)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(t, partitions, replication_factor=1, topic_configs=dict(config or {}))
                   for t in topics if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
    finally:
        await admin.close()


#: Kafka error codes of a topic whose creation has not yet reached every broker's metadata:
#: UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE.
_NOT_YET_VISIBLE = frozenset({3, 5})


async def topic_partitions(bootstrap: str, topic: str, settle_s: float = 10.0, **options: Any) -> list[int]:
    """The topic's partition numbers, from the broker; raises if the topic cannot be described. A topic just
    created (by this process or a worker starting beside it) is asked for again for up to ``settle_s``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **options)
    await admin.start()
    deadline = asyncio.get_running_loop().time() + settle_s
    try:
        while True:
            (described,) = await admin.describe_topics([topic])
            numbers = sorted(p["partition"] for p in described["partitions"])
            error = described["error_code"]
            if not error and numbers:
                return numbers
            if error not in _NOT_YET_VISIBLE | {0} or asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"the topic {topic} cannot be read (error {error})")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def ensure_pipeline_topics(settings: CommonSettings) -> None:
    """The events and dead-letter topics, with the configured partition count."""
    await ensure_topics(
        settings.kafka_bootstrap_servers, [settings.events_topic, settings.dlq_topic], settings.topic_partitions,
        **settings.kafka_security_options(),
    )


def members_topic(settings: WorkerSettings) -> str:
    """The topic whose partitions the group deals out as list-key slots (it never carries a record)."""
    return f"{settings.app_id}.members"


#: The checkpoint topic's settings. Compaction never touches the active segment, and Kafka's default segment is
#: 1 GiB: every checkpoint written until a segment rolled (hundreds at 10 s intervals) stayed in the log, and a
#: restore reads the whole partition. With 32 MiB segments the log stays within about twice the live checkpoints
#: plus one segment (docs/design.md).
CHECKPOINT_TOPIC_CONFIG = {"cleanup.policy": "compact", "segment.bytes": str(32 * 2**20)}


async def ensure_worker_topics(settings: WorkerSettings) -> None:
    """The members topic (one partition per key slot) and the checkpoint topic (one partition, compacted:
    only each key's latest value is needed)."""
    # A members topic of another partition count would leave slots no worker holds (their keys never written).
    await _ensure_partitions(settings, members_topic(settings), settings.topic_partitions, None,
                             f"SHOPSTREAM_TOPIC_PARTITIONS is {settings.topic_partitions}: every worker of a group "
                             f"must use the topic's count (docs/operations.md)")
    # A restore reads partition 0 only: checkpoints keyed onto other partitions would make every restart cold.
    await _ensure_partitions(settings, settings.checkpoint_topic, 1, CHECKPOINT_TOPIC_CONFIG,
                             "it must have one, compacted (SHOPSTREAM_CHECKPOINT_TOPIC; docs/configuration.md)")


async def _ensure_partitions(
    settings: WorkerSettings, topic: str, partitions: int, config: Mapping[str, str] | None, requirement: str
) -> None:
    """Create ``topic`` if missing; a topic made earlier with another partition count: the worker refuses to start."""
    options = settings.kafka_security_options()
    await ensure_topics(settings.kafka_bootstrap_servers, [topic], partitions, config, **options)
    found = len(await topic_partitions(settings.kafka_bootstrap_servers, topic, **options))
    if found != partitions:
        raise SystemExit(f"the topic {topic} has {found} partitions but {requirement}")
