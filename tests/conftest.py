"""Shared pytest fixtures. Server fixtures (Kafka, Redis, Redis Cluster, topics, keys) live in tests/servers.py."""

from tests.pipeline import pipeline
from tests.servers import (
    kafka_bootstrap,
    key_prefix,
    new_topic,
    private_kafka,
    redis_client,
    redis_cluster_url,
    redis_target,
    redis_url,
    topic_prefix,
    unique_topic,
)

__all__ = [
    "kafka_bootstrap",
    "key_prefix",
    "new_topic",
    "pipeline",
    "private_kafka",
    "redis_client",
    "redis_cluster_url",
    "redis_target",
    "redis_url",
    "topic_prefix",
    "unique_topic",
]
