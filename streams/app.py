"""The Faust application: topics, the agent and the web pages, declared in one place.

Each Kafka record carries a JSON array of events of the sessions of its partition (docs/events.md).
The agent takes records in batches and hands them to the :class:`BatchHandler` that ``streams/worker.py`` builds
from the settings; ``take_events`` acknowledges a batch only after the loop body returns, i.e. after its sink
writes and dead letters were acknowledged, so committed offsets never run ahead of what the sink holds
(at-least-once).
"""

from __future__ import annotations

import asyncio
import sys

import faust
from mode import CrashingSupervisor
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shopstream.config.settings import WorkerSettings, load
from shopstream.config.topics import ensure_pipeline_topics
from shopstream.streams import metrics
from shopstream.streams.batch import Record, release_free_memory, tune_process
from shopstream.streams.worker import broker_credentials, build_handler, build_sink

settings = load(WorkerSettings)

app = faust.App(
    settings.app_id,
    broker=f"kafka://{settings.kafka_bootstrap_servers}",
    broker_credentials=broker_credentials(settings),
    store="memory://",
    key_serializer="raw",
    value_serializer="raw",
    topic_partitions=settings.topic_partitions,
    consumer_auto_offset_reset="earliest",
    # Records prefetched per stream: Faust's default 4,096 is ~100 MB of the bench's catch-up records
    # (~170 events each) held in memory; four batches keep the worker fed.
    stream_buffer_maxsize=4 * settings.batch_max_records,
    web_host=settings.web_host,
    web_bind=settings.web_host,  # web_host only names the server in URLs; web_bind is the listen address
    web_port=settings.web_port,
    web_in_thread=False,
    datadir=settings.data_dir,
)

events_topic = app.topic(settings.events_topic, partitions=settings.topic_partitions)
dlq_topic = app.topic(settings.dlq_topic, partitions=settings.topic_partitions)

sink = build_sink(settings)


async def send_dead_letters(records: list[tuple[bytes | None, bytes]]) -> None:
    """Publish rejects and wait for the broker's acknowledgements before the batch is acked."""
    pending = [await dlq_topic.send(key=key, value=value) for key, value in records]
    await asyncio.gather(*pending)


handler = build_handler(settings, sink, send_dead_letters)


# A crashed agent is not restarted (Faust's default OneForOneSupervisor would restart it on a stream that
# delivers nothing more): the crash stops the worker, which exits non-zero for its supervisor to restart it
# from the last committed offsets.
@app.agent(events_topic, supervisor_strategy=CrashingSupervisor)
async def learn_and_serve(stream: faust.StreamT) -> None:
    async for batch in stream.take_events(settings.batch_max_records, within=settings.batch_within_s):
        await handler.handle([Record(e.message.key, e.value, e.message.timestamp) for e in batch])


@app.timer(interval=1.0)
async def flush_throttled_lists() -> None:
    await handler.flush_idle()


@app.timer(interval=2.0)
async def return_memory() -> None:
    release_free_memory()


@app.timer(interval=5.0)
async def export_gauges() -> None:
    """Model sizes and consumer lag, sampled rather than updated on the hot path."""
    async with handler.lock:  # a batch step may be changing the stack in its thread
        stack = handler.stack
        sizes, evictions = stack.size(), stack.evictions()
        errors = {series: (e.absolute, e.actual, e.windows) for series, e in stack.forecaster.errors.items()}
    for kind, n in sizes.items():
        metrics.MODEL_ENTITIES.labels(kind).set(n)
    for kind, n in evictions.items():
        metrics.export_cumulative(metrics.MODEL_EVICTIONS, (kind,), n)
    for series, (absolute, actual, windows) in errors.items():
        metrics.export_cumulative(metrics.FORECAST_ABS_ERROR, (series,), absolute)
        metrics.export_cumulative(metrics.FORECAST_ACTUAL, (series,), actual)
        metrics.export_cumulative(metrics.FORECAST_WINDOWS, (series,), windows)
    consumer = app.consumer
    assigned = [tp for tp in consumer.assignment() if tp.topic == settings.events_topic]
    metrics.export_lag([(tp.partition, await consumer.position(tp), consumer.highwater(tp)) for tp in assigned])


@app.on_rebalance_complete.connect
async def count_rebalance(sender: faust.App, **kwargs: object) -> None:
    metrics.REBALANCES.inc()


@app.page("/metrics")
async def metrics_page(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
    return web.bytes(generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


@app.page("/healthz")
async def healthz(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
    return web.json({"status": "ok"})


@app.page("/readyz")
async def readyz(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
    """Ready when the agent runs, Redis answers and the consumer holds an assignment (Kafka reachable)."""
    checks = {"agent": not learn_and_serve.crashed, "kafka": bool(app.consumer.assignment()),
              "redis": await sink.ping()}
    status = 200 if all(checks.values()) else 503
    return web.json({"ready": status == 200, "checks": checks}, status=status)


def main() -> None:
    """Run the worker (what ``shopstream worker`` calls)."""
    asyncio.run(ensure_pipeline_topics(settings))
    tune_process()
    sys.argv = [sys.argv[0], "worker", "-l", settings.log_level]
    app.main()
