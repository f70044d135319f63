"""Builds the worker from its settings: the model stack, the sink, the writer and the batch handler.

The one place where configuration becomes objects, so ``streams/app.py`` keeps only the Faust declarations
and tests and benchmarks build the same worker without Faust.
"""

from __future__ import annotations

import faust
import redis.asyncio as aioredis

from shopstream.config.settings import WorkerSettings
from shopstream.models.engine import RecommenderStack
from shopstream.streams.batch import BatchHandler, DeadLetterSend, DeferredPolicy
from shopstream.streams.redis_cluster_sink import RedisClusterSink
from shopstream.streams.redis_sink import RedisSink
from shopstream.streams.sink import RetryingWriter, Sink


def broker_credentials(settings: WorkerSettings) -> faust.SASLCredentials | faust.SSLCredentials | None:
    """Faust's form of the Kafka protocol, TLS and SASL settings (None: plaintext)."""
    context = settings.kafka_ssl_context()
    if settings.kafka_security_protocol.startswith("SASL"):
        return faust.SASLCredentials(username=settings.kafka_sasl_username, ssl_context=context,
                                     password=settings.kafka_sasl_password.get_secret_value(),
                                     mechanism=settings.kafka_sasl_mechanism)
    return faust.SSLCredentials(context) if context is not None else None


def build_sink(settings: WorkerSettings) -> RedisSink | RedisClusterSink:
    """The sink ``SHOPSTREAM_REDIS_MODE`` selects, connected to ``REDIS_URL``."""
    if settings.redis_mode == "cluster":
        cluster = aioredis.RedisCluster.from_url(settings.redis_url)
        return RedisClusterSink(cluster, settings.key_prefix, settings.ttl_s())
    return RedisSink(aioredis.from_url(settings.redis_url), settings.key_prefix, settings.ttl_s())


def build_handler(settings: WorkerSettings, sink: Sink, send_dead_letters: DeadLetterSend) -> BatchHandler:
    """A batch handler over a fresh model stack, writing through ``sink`` with the retry policy."""
    stack = RecommenderStack(settings.stack_config())
    return BatchHandler(
        stack, RetryingWriter(sink), send_dead_letters, settings.batch_step_events, settings.event_limits(),
        DeferredPolicy(settings.deferred_max_events, settings.deferred_max_delay_s, budget_ratio=1.0),
    )
