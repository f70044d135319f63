"""The Faust application: topics, agents, timers and web pages, declared in one place.

Every worker learns every event: :class:`EventsReader` reads all partitions of the events topic from the
offsets the model state covers and hands each fetch to the :class:`BatchHandler` (``streams/worker.py``),
which learns it and writes the lists of the keys this worker holds. Which keys those are comes from the
consumer group: the partitions of the members topic, which carries no data, are the key slots
(``models/ownership.py``), and Kafka's group protocol deals them out, so K workers write each key once.
Progress lives in the state's offsets, checkpointed to Kafka with the state (``streams/checkpoint.py``),
not in committed offsets (docs/design.md).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Coroutine

import faust
from aiokafka.errors import KafkaError
from mode import CrashingSupervisor
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shopstream.config.settings import WorkerSettings, load
from shopstream.config.topics import ensure_pipeline_topics, ensure_worker_topics, members_topic
from shopstream.models.ownership import KeyOwner
from shopstream.models.warmup import warm_kernels
from shopstream.streams import metrics, shutdown
from shopstream.streams.batch import release_free_memory, tune_process
from shopstream.streams.checkpoint import CheckpointFailed, KafkaCheckpointStore, checkpoint, restore, state_layout
from shopstream.streams.events_reader import EventsReader
from shopstream.streams.republish import RepublishOnLoss, write_replayed
from shopstream.streams.worker import broker_credentials, build_handler, build_sink

settings = load(WorkerSettings)


class WorkerApp(faust.App):
    """Faust's app, reading the events topic from the moment it starts: Faust starts its app tasks only once the
    group has dealt the slots (a dead predecessor's seat frees after its session timeout), and a restored worker
    replays meanwhile (learn_and_serve)."""

    async def on_first_start(self) -> None:
        await super().on_first_start()
        self.add_future(learn_and_serve())


app = WorkerApp(
    settings.app_id,
    broker=f"kafka://{settings.kafka_bootstrap_servers}",
    broker_credentials=broker_credentials(settings),
    store="memory://",
    key_serializer="raw",
    value_serializer="raw",
    topic_partitions=settings.topic_partitions,
    consumer_auto_offset_reset="earliest",
    web_host=settings.web_host,
    web_bind=settings.web_host,  # web_host only names the server in URLs; web_bind is the listen address
    web_port=settings.web_port,
    web_in_thread=False,
    datadir=settings.data_dir,
    # Failover: a dead worker's key slots move after the session timeout (docs/design.md). A static member
    # (group.instance.id) restarted within it gets its slots back at once; Faust's assignor then checks the
    # member's URL against the one it joined with, so that URL must not change with a restart's port.
    broker_session_timeout=settings.session_timeout_s,
    broker_heartbeat_interval=settings.heartbeat_interval_s(),
    consumer_group_instance_id=settings.worker_id if settings.static_membership else None,
    canonical_url=f"http://{settings.worker_id}" if settings.static_membership else None,
)

members = app.topic(members_topic(settings), partitions=settings.topic_partitions)
dlq_topic = app.topic(settings.dlq_topic, partitions=settings.topic_partitions)

sink = build_sink(settings)


async def send_dead_letters(records: list[tuple[bytes | None, bytes]]) -> None:
    """Publish rejects and wait for the broker's acknowledgements before the batch is done."""
    pending = [await dlq_topic.send(key=key, value=value) for key, value in records]
    await asyncio.gather(*pending)


handler = build_handler(settings, sink, send_dead_letters)
handler.stack.owner = KeyOwner(settings.topic_partitions, frozenset())  # no keys until the group deals slots
reader = EventsReader(
    settings.kafka_bootstrap_servers, settings.events_topic, handler, settings.batch_max_records,
    settings.batch_within_s, **settings.kafka_security_options(),
)
checkpoints = KafkaCheckpointStore(
    settings.kafka_bootstrap_servers, settings.checkpoint_topic, settings.app_id, settings.worker_id,
    layout=state_layout(settings.stack_config()), **settings.kafka_security_options(),
)
started_at = time.monotonic()
slots_dealt = asyncio.Event()  # set once the group has dealt this worker its key slots
background: set[asyncio.Task[object]] = set()  # tasks started on the side, referenced until done
restored: list[str] = []  # what the start-up (kernels, restore) did, logged once Faust has set up logging
republisher = RepublishOnLoss(sink, handler, settings.republish_rate)


# A crashed agent is not restarted (Faust's default OneForOneSupervisor would restart it on a stream that
# delivers nothing more): the crash stops the worker, which exits non-zero for its supervisor to restart it.
@app.agent(members, supervisor_strategy=CrashingSupervisor)
async def hold_slots(stream: faust.StreamT) -> None:
    """Membership only: nothing is published to this topic; its assigned partitions are this worker's slots."""
    async for _ in stream:
        pass


@app.on_partitions_assigned.connect
async def take_slots(sender: faust.App, assigned: set[faust.types.TP], **kwargs: object) -> None:
    """The group dealt this worker its key slots. The keys of a slot whose lists this worker has not all written
    may not have been written by their last holder (it may have died, or stopped writing them before this worker
    started): they are published again, rate-limited, in the background. A slot it has written all along, or
    held at its own checkpoint (its replay writes every list touched since), is not."""
    held = frozenset(tp.partition for tp in assigned if tp.topic == members_topic(settings))
    async with handler.lock:
        gained = held - handler.written_slots
        handler.stack.owner = KeyOwner(settings.topic_partitions, held)
        handler.written_slots &= held
    metrics.SLOTS_HELD.set(len(held))
    slots_dealt.set()
    if gained:
        in_background(republisher.write_slots(gained))


async def learn_and_serve() -> None:
    """Read the events topic for as long as the worker runs; if reading fails, the worker exits (non-zero)
    rather than stay up without learning: its replacement resumes from the last checkpoint.

    A worker restored from its own checkpoint replays at once, even before the group deals it slots (a dead
    predecessor's seat frees only after its session timeout), building no list until then; once dealt slots, it
    writes the lists the replay touched so far, and builds them as it goes from then on (finish_replay). Any
    other worker waits for its slots: the lists of what it read before would all have to be republished."""
    try:
        await reader.start()
        metrics.RESTORE_BACKLOG.set(reader.backlog)
        if handler.stack.holding_back:
            in_background(finish_replay())
        else:
            await slots_dealt.wait()
            in_background(note_caught_up())
        await reader.run()
    except Exception:
        app.log.exception("reading the events topic failed; exiting")
        os._exit(1)
    finally:
        await reader.stop()


async def finish_replay() -> None:
    """Once dealt slots, write the lists the replay held back (its later batches build theirs as they go)."""
    await slots_dealt.wait()
    began = time.monotonic()
    written = await write_replayed(handler)
    app.log.info("wrote the %d lists the replay touched in %.1f s", written, time.monotonic() - began)
    await note_caught_up()


@app.task
async def log_restore() -> None:
    """What the start-up did (kernels, restore), once Faust has set up logging (after the reader started)."""
    for note in restored:
        app.log.info(note)


def in_background(work: Coroutine[object, object, object]) -> None:
    """Run ``work`` beside the worker's loop, holding the task until it is done (the loop keeps only weak ones)."""
    background.add(task := asyncio.get_running_loop().create_task(work))
    task.add_done_callback(background.discard)


async def note_caught_up() -> None:
    await reader.caught_up.wait()
    metrics.RESTORE_DURATION.set(took := time.monotonic() - started_at)
    app.log.info("caught up %.1f s after start (%d records behind at start)", took, reader.backlog)


async def checkpoint_state() -> None:
    """Checkpoint the model state with the offsets it covers; a failed write is counted and retried next time."""
    try:
        await checkpoint(handler, checkpoints)
    except (KafkaError, CheckpointFailed):
        metrics.CHECKPOINT_FAILURES.inc()
        app.log.exception("checkpoint failed; the next one is due in %s s", settings.checkpoint_interval_s)


if settings.checkpoint_interval_s > 0:
    app.timer(interval=settings.checkpoint_interval_s)(checkpoint_state)


@app.task
async def bound_shutdown() -> None:
    """Once the worker starts stopping, it has ``SHOPSTREAM_SHUTDOWN_TIMEOUT_S`` to exit (streams/shutdown.py)."""
    await app.wait_until_stopped()
    shutdown.arm(settings.shutdown_timeout_s, handler.writer.describe)


IDLE_FLUSH_S = 1.0


@app.timer(interval=IDLE_FLUSH_S)
async def flush_throttled_lists() -> None:
    await handler.flush_idle(IDLE_FLUSH_S)


@app.timer(interval=5.0)
async def republish_lost_lists() -> None:
    """Redis came back empty: publish the held lists again (streams/republish.py)."""
    await republisher.check()


@app.timer(interval=2.0)
async def return_memory() -> None:
    release_free_memory()


@app.timer(interval=5.0)
async def export_gauges() -> None:
    """Model sizes and consumer lag, sampled rather than updated on the hot path."""
    async with handler.lock:  # a batch step may be changing the stack in its thread
        stack = handler.stack
        sizes, evictions, learned = stack.size(), stack.evictions(), stack.learned
        errors = {series: (e.absolute, e.actual, e.windows) for series, e in stack.forecaster.errors.items()}
    metrics.MODEL_LEARNED.set(learned)
    for kind, n in sizes.items():
        metrics.MODEL_ENTITIES.labels(kind).set(n)
    for kind, n in evictions.items():
        metrics.export_cumulative(metrics.MODEL_EVICTIONS, (kind,), n)
    for series, (absolute, actual, windows) in errors.items():
        metrics.export_cumulative(metrics.FORECAST_ABS_ERROR, (series,), absolute)
        metrics.export_cumulative(metrics.FORECAST_ACTUAL, (series,), actual)
        metrics.export_cumulative(metrics.FORECAST_WINDOWS, (series,), windows)
    metrics.export_lag(await reader.lag())


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
    """Ready when Redis answers, the events are being read and the group has dealt this worker its slots."""
    checks = {"agent": not hold_slots.crashed, "kafka": bool(reader.partitions) and bool(app.consumer.assignment()),
              "redis": await sink.ping()}
    status = 200 if all(checks.values()) else 503
    return web.json({"ready": status == 200, "checks": checks}, status=status)


def main() -> None:
    """Run the worker (what ``shopstream worker`` calls)."""
    asyncio.run(ensure_pipeline_topics(settings))
    asyncio.run(ensure_worker_topics(settings))
    warm_kernels(settings.stack_config())  # before /readyz can answer: no first batch waits for a compiler
    restored.append(f"kernels ready {time.monotonic() - started_at:.1f} s after start")
    if settings.checkpoint_interval_s > 0:
        note = asyncio.run(restore(handler, checkpoints))
        restored.append(f"{note}, {time.monotonic() - started_at:.1f} s after start")
    tune_process()
    sys.argv = [sys.argv[0], "worker", "-l", settings.log_level]
    app.main()
