"""Model state survives a worker's death through Kafka: checkpoints in a compacted topic, the tail replayed.

Real Kafka and Redis; the worker runs as ``shopstream worker`` and is killed with SIGKILL (what a lost
machine or an OOM kill does), then started again with an empty data directory.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shopstream.bench import processes
from shopstream.bench.scrape import samples
from shopstream.config.settings import WorkerSettings
from shopstream.config.topics import ensure_topics, ensure_worker_topics, topic_partitions
from shopstream.models.engine import RecommenderStack
from shopstream.models.events import parse_record
from shopstream.models.stack_config import StackConfig
from shopstream.producers.synthetic import SyntheticTraffic
from shopstream.streams.batch import BatchHandler
from shopstream.streams.checkpoint import KafkaCheckpointStore, dump_stack, restore, state_layout
from shopstream.streams.redis_sink import EPOCH_KEY
from shopstream.streams.sink import RetryingWriter
from tests.fakes import MemorySink
from tests.pipeline import Pipeline, _wait_ready, start_pipeline, start_process, stop_pipeline, wait_for


async def test_store_keeps_the_last_whole_checkpoint(kafka_bootstrap: str) -> None:
    topic = f"test-ckpt-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, [topic], 1, {"cleanup.policy": "compact"})
    first, second = bytes(range(256)) * 40, b"second" * 300
    store = KafkaCheckpointStore(kafka_bootstrap, topic, "app", "w1", chunk_bytes=1000)
    try:
        assert await store.load() is None
        await store.save(first, {0: 5})
        await store.save(second, {0: 9, 2: 4})
    finally:
        await store.close()
    fresh = KafkaCheckpointStore(kafka_bootstrap, topic, "app", "w1", chunk_bytes=1000)
    loaded = await fresh.load()
    assert loaded is not None and loaded[0] == "w1" and loaded[2] == second and loaded[1].offsets == {0: 9, 2: 4}
    # A save cut short before its manifest (the worker died mid-write) leaves the last checkpoint whole.
    def no_manifest(suffix: str, worker: str | None = None) -> bytes:
        return b"" if suffix == "manifest" else f"app/w1/{suffix}".encode()

    with mock.patch.object(fresh, "_key", side_effect=no_manifest):
        await fresh.save(b"torn" * 900, {0: 20})
    await fresh.close()
    again = await KafkaCheckpointStore(kafka_bootstrap, topic, "app", "w1").load()
    assert again is not None and again[2] == second
    # A worker without a checkpoint of its own starts from its app's freshest one (every state is whole)...
    peer = await KafkaCheckpointStore(kafka_bootstrap, topic, "app", "w2").load()
    assert peer is not None and peer[0] == "w1" and peer[2] == second
    # ...and never from another app's.
    assert await KafkaCheckpointStore(kafka_bootstrap, topic, "other-app", "w1").load() is None


async def test_a_checkpoint_of_other_model_code_or_an_unloadable_one_starts_the_worker_cold(
    kafka_bootstrap: str,
) -> None:
    """A pickle of other code may load and then fail at the first batch, on every restart: the worker
    restores only checkpoints of its own layout, and starts cold (saying why) from one that does not load."""
    topic = f"test-ckpt-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, [topic], 1, {"cleanup.policy": "compact"})

    async def no_letters(_: list[tuple[bytes | None, bytes]]) -> None:
        return None

    def fresh_handler() -> BatchHandler:
        return BatchHandler(RecommenderStack(StackConfig(top_k=5)), RetryingWriter(MemorySink()), no_letters, 100)

    learned = RecommenderStack(StackConfig(top_k=5))
    learned.learned = 7
    old, new = (KafkaCheckpointStore(kafka_bootstrap, topic, "app", "w1", layout=layout) for layout in ("old", "new"))
    try:
        await old.save(dump_stack(learned), {0: 7})
        handler = fresh_handler()
        said = await restore(handler, new)
        assert said.startswith("starting cold") and "other model code" in said and handler.stack.learned == 0
        assert handler.offsets == {}
        await new.save(b"not a pickle", {0: 9})  # whole and of its layout, but not a stack
        handler = fresh_handler()
        said = await restore(handler, new)
        assert said.startswith("starting cold") and "does not load" in said and handler.offsets == {}
        await new.save(dump_stack(learned), {0: 11})
        handler = fresh_handler()
        assert (await restore(handler, new)).startswith("restored")
        assert handler.stack.learned == 7 and handler.offsets == {0: 11}
    finally:
        await old.close()
        await new.close()


@pytest.fixture
def checkpointing(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Pipeline]:
    """A pipeline checkpointing every 2 s, or every ``request.param`` seconds (indirect parametrisation)."""
    interval = getattr(request, "param", "2")
    running = start_pipeline(kafka_bootstrap, redis_url, tmp_path, SHOPSTREAM_CHECKPOINT_INTERVAL_S=interval,
                             SHOPSTREAM_WORKER_ID="w1", SHOPSTREAM_CHECKPOINT_TOPIC=f"test-ckpt-{uuid.uuid4().hex[:8]}")
    try:
        yield running
    finally:
        stop_pipeline(running)


def gauge(pipeline: Pipeline, name: str, labels: tuple = ()) -> float:
    return samples(pipeline.metrics(), name).get(labels, 0.0)


def send(pipeline: Pipeline, events: list[dict]) -> None:
    for i in range(0, len(events), 500):
        response = pipeline.post(b"\n".join(orjson.dumps(e) for e in events[i : i + 500]), "application/x-ndjson")
        assert response.status_code == 202, response.text


def learned(pipeline: Pipeline) -> float:
    return gauge(pipeline, "shopstream_model_learned_events")


def learn_and_checkpoint(pipeline: Pipeline, events: list[dict]) -> None:
    """Send the events and wait until the worker learned them and took a checkpoint."""
    send(pipeline, events)
    wait_for(lambda: learned(pipeline) == len(events), 60, f"{len(events)} events learned", pipeline)
    wait_for(lambda: gauge(pipeline, "shopstream_checkpoint_last_success_timestamp_seconds") > 0, 30,
             "a checkpoint", pipeline)


def test_killed_worker_comes_back_warm_and_learns_every_event_once(checkpointing: Pipeline, tmp_path: Path) -> None:
    pipeline = checkpointing
    traffic = SyntheticTraffic(seed=11, start_ts=time.time() - 900, rate=5).take(4500)
    learn_and_checkpoint(pipeline, traffic[:2000])
    send(pipeline, traffic[2000:3000])
    wait_for(lambda: learned(pipeline) == 3000, 60, "3000 events learned", pipeline)
    items_before = gauge(pipeline, "shopstream_model_entities", (("kind", "items"),))

    pipeline.processes["worker"].send_signal(signal.SIGKILL)
    pipeline.processes["worker"].wait(timeout=10)
    shutil.rmtree(pipeline.env["SHOPSTREAM_DATA_DIR"], ignore_errors=True)  # a new machine: nothing on disk
    start_process(pipeline, "worker", tmp_path)
    _wait_ready(pipeline, "worker", pipeline.worker_url)
    # Warm before any new event: the restored stack knows what the killed one knew.
    wait_for(lambda: learned(pipeline) == 3000, 30, "the restored state", pipeline)
    assert gauge(pipeline, "shopstream_model_entities", (("kind", "items"),)) == items_before
    wait_for(lambda: gauge(pipeline, "shopstream_restore_duration_seconds") > 0, 30, "the catch-up", pipeline)

    send(pipeline, traffic[3000:])
    wait_for(lambda: learned(pipeline) >= 4500, 60, "4500 events learned", pipeline)
    time.sleep(6)  # a redelivered tail learned twice would show on the next export of the gauge
    assert learned(pipeline) == 4500


def sessions_written(pipeline: Pipeline, events: list[dict]) -> bool:
    keys = [f"{pipeline.key_prefix}rec:session:{s}" for s in {e["session_id"] for e in events}]
    return all(pipeline.redis.mget(keys))


async def sessions_after_checkpoint(pipeline: Pipeline) -> set[str]:
    """The sessions of the events after the offsets of the worker's last checkpoint: what its replay touches."""
    with mock.patch.dict("os.environ", pipeline.env, clear=True):
        settings = WorkerSettings()
    store = KafkaCheckpointStore(pipeline.bootstrap, settings.checkpoint_topic, settings.app_id, settings.worker_id,
                                 layout=state_layout(settings.stack_config()))
    found = await store.load()
    assert found is not None
    offsets = found[1].offsets
    consumer = AIOKafkaConsumer(bootstrap_servers=pipeline.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        numbers = await topic_partitions(pipeline.bootstrap, pipeline.events_topic)
        partitions = [TopicPartition(pipeline.events_topic, p) for p in numbers]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, offsets.get(tp.partition, 0))
        ends = await consumer.end_offsets(partitions)
        sessions: set[str] = set()
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    sessions.update(event.session_id for event in parse_record(record.value, time.time())[0])
        return sessions
    finally:
        await consumer.stop()


def kill(pipeline: Pipeline) -> None:
    pipeline.processes["worker"].send_signal(signal.SIGKILL)
    pipeline.processes["worker"].wait(timeout=10)


def restart(pipeline: Pipeline, tmp_path: Path) -> None:
    start_process(pipeline, "worker", tmp_path)
    _wait_ready(pipeline, "worker", pipeline.worker_url)
    wait_for(lambda: gauge(pipeline, "shopstream_restore_duration_seconds") > 0, 60, "the catch-up", pipeline)


@pytest.mark.parametrize("checkpointing", ["6"], indirect=True)  # no checkpoint between the last send and the kill
def test_a_restarted_worker_republishes_only_what_its_checkpoint_cannot_vouch_for(
    checkpointing: Pipeline, tmp_path: Path
) -> None:
    """Dealt the slots it held at its own checkpoint, a worker writes the lists its replay touched (read before the
    deal) and republishes nothing (every deploy would otherwise rewrite every held list); if the store lost its
    data meanwhile, it does."""
    pipeline = checkpointing
    traffic = SyntheticTraffic(seed=13, start_ts=time.time() - 900, rate=5).take(3000)
    learn_and_checkpoint(pipeline, traffic[:2000])
    epoch_key = pipeline.key_prefix + EPOCH_KEY
    wait_for(lambda: pipeline.redis.exists(epoch_key), 30, "the store's epoch seen", pipeline)
    seen_at = time.time()
    wait_for(lambda: gauge(pipeline, "shopstream_checkpoint_last_success_timestamp_seconds") > seen_at + 0.1, 30,
             "a checkpoint naming the epoch", pipeline)
    send(pipeline, traffic[2000:])  # after the checkpoint: the replay writes their lists again
    wait_for(lambda: learned(pipeline) == 3000, 60, "3000 events learned", pipeline)

    kill(pipeline)
    replayed = asyncio.run(sessions_after_checkpoint(pipeline))
    assert replayed, "the last checkpoint covered every event: nothing to replay"
    pipeline.redis.delete(*(f"{pipeline.key_prefix}rec:session:{s}" for s in replayed))  # only the replay has them
    restart(pipeline, tmp_path)
    wait_for(lambda: learned(pipeline) == 3000, 30, "the restored state", pipeline)
    restarted_at = time.time()
    wait_for(lambda: gauge(pipeline, "shopstream_restore_duration_seconds") > 0, 30, "the replay written", pipeline)
    time.sleep(6)  # past the worker's first epoch check
    assert sum(samples(pipeline.metrics(), "shopstream_republished_keys_total").values()) == 0, pipeline.tail()
    assert sessions_written(pipeline, traffic), pipeline.tail()

    # The restarted worker's own checkpoint vouches for the slots again; the store loses this app's data meanwhile.
    wait_for(lambda: gauge(pipeline, "shopstream_checkpoint_last_success_timestamp_seconds") > restarted_at, 30,
             "a checkpoint of the restarted worker", pipeline)
    kill(pipeline)
    for key in pipeline.redis.scan_iter(match=f"{pipeline.key_prefix}*"):
        pipeline.redis.delete(key)
    restart(pipeline, tmp_path)
    wait_for(lambda: sessions_written(pipeline, traffic), 60, "the lists republished", pipeline)
    assert learned(pipeline) == 3000  # no event was learned since
    assert gauge(pipeline, "shopstream_republished_keys_total", (("kind", "session"),)) > 0


def test_a_worker_joins_warm_and_leaves_without_losing_anything(checkpointing: Pipeline, tmp_path: Path) -> None:
    pipeline = checkpointing
    traffic = SyntheticTraffic(seed=12, start_ts=time.time() - 900, rate=5).take(4000)
    learn_and_checkpoint(pipeline, traffic[:2000])

    port = processes.free_port()
    joiner = Pipeline(**{**pipeline.__dict__, "worker_url": f"http://127.0.0.1:{port}", "logs": {}, "processes": {},
                         "env": {**pipeline.env, "SHOPSTREAM_WORKER_ID": "w2", "SHOPSTREAM_WEB_PORT": str(port),
                                 "SHOPSTREAM_DATA_DIR": str(tmp_path / "w2")}})
    (tmp_path / "w2").mkdir()
    start_process(joiner, "worker", tmp_path / "w2")
    try:
        _wait_ready(joiner, "worker", joiner.worker_url)
        # Warm from the first worker's checkpoint: it knows the first 2000 events without reading them all again.
        wait_for(lambda: learned(joiner) == 2000, 60, "the joiner's restored state", joiner)
        assert "restored the checkpoint of" in joiner.logs["worker"].read_text()
        assert gauge(joiner, "shopstream_restore_backlog_records") == 0  # nothing read again: the checkpoint had it
        slots = "shopstream_key_slots_held"
        wait_for(lambda: gauge(pipeline, slots) >= 1 and gauge(joiner, slots) >= 1, 60, "slots dealt", pipeline)
        assert gauge(pipeline, slots) + gauge(joiner, slots) == 4
        send(pipeline, traffic[2000:3000])
        wait_for(lambda: learned(pipeline) == learned(joiner) == 3000, 60, "both learned 3000", pipeline)
        wait_for(lambda: sessions_written(pipeline, traffic[2000:3000]), 30, "the new sessions' lists", pipeline)
    finally:
        processes.stop(joiner.processes["worker"])
    # The first worker takes every slot back and writes every new session's list.
    wait_for(lambda: gauge(pipeline, "shopstream_key_slots_held") == 4, 60, "the slots back", pipeline)
    send(pipeline, traffic[3000:])
    wait_for(lambda: sessions_written(pipeline, traffic[3000:]), 30, "the last sessions' lists", pipeline)
    wait_for(lambda: learned(pipeline) == 4000, 30, "4000 events learned", pipeline)


async def test_a_worker_refuses_a_members_topic_of_another_slot_count(kafka_bootstrap: str) -> None:
    app_id = f"test-slots-{uuid.uuid4().hex[:8]}"
    settings = WorkerSettings(kafka_bootstrap_servers=kafka_bootstrap, app_id=app_id, topic_partitions=4)
    await ensure_worker_topics(settings)
    with pytest.raises(SystemExit, match="has 4 partitions but SHOPSTREAM_TOPIC_PARTITIONS is 6"):
        await ensure_worker_topics(WorkerSettings(kafka_bootstrap_servers=kafka_bootstrap, app_id=app_id,
                                                  topic_partitions=6))


async def test_a_worker_refuses_a_checkpoint_topic_of_several_partitions(kafka_bootstrap: str) -> None:
    """A restore reads partition 0 only: checkpoints keyed onto other partitions would make every restart cold."""
    topic = f"test-ckpt-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, [topic], 8)
    with pytest.raises(SystemExit, match=f"the topic {topic} has 8 partitions but it must have one"):
        await ensure_worker_topics(WorkerSettings(kafka_bootstrap_servers=kafka_bootstrap, checkpoint_topic=topic,
                                                  app_id=f"test-ckpt-{uuid.uuid4().hex[:8]}", topic_partitions=4))


async def test_the_checkpoint_topic_is_made_with_segments_compaction_can_clean(kafka_bootstrap: str) -> None:
    """Compaction never cleans the active segment: with Kafka's 1 GiB default every checkpoint since the last roll
    stays in the log a restore reads."""
    topic = f"test-ckpt-{uuid.uuid4().hex[:8]}"
    await ensure_worker_topics(WorkerSettings(kafka_bootstrap_servers=kafka_bootstrap, checkpoint_topic=topic,
                                              app_id=f"test-seg-{uuid.uuid4().hex[:8]}", topic_partitions=4))
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    (resource,) = response.resources
    configs = {entry[0]: entry[1] for entry in resource[4]}
    assert configs["cleanup.policy"] == "compact" and configs["segment.bytes"] == str(32 * 2**20)


def test_a_static_member_restarted_on_another_port_takes_its_slots_back(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path
) -> None:
    """With ``SHOPSTREAM_STATIC_MEMBERSHIP`` a worker killed and started again under its id is dealt its slots back
    without waiting out its old session. Faust's assignor checks the member's URL against the one it joined with,
    and an orchestrator may give the new process another port: the coordinator must not fail on it."""
    topic = f"test-ckpt-{uuid.uuid4().hex[:8]}"
    pipeline = start_pipeline(kafka_bootstrap, redis_url, tmp_path, SHOPSTREAM_STATIC_MEMBERSHIP="true",
                              SHOPSTREAM_WORKER_ID="w1", SHOPSTREAM_CHECKPOINT_TOPIC=topic)
    try:
        traffic = SyntheticTraffic(seed=14, start_ts=time.time() - 900, rate=5).take(1000)
        send(pipeline, traffic[:500])
        wait_for(lambda: learned(pipeline) == 500, 60, "500 events learned", pipeline)
        kill(pipeline)
        port = processes.free_port()
        moved = Pipeline(**{**pipeline.__dict__, "worker_url": f"http://127.0.0.1:{port}",
                            "env": {**pipeline.env, "SHOPSTREAM_WEB_PORT": str(port)}})
        restart(moved, tmp_path)
        send(moved, traffic[500:])
        wait_for(lambda: sessions_written(moved, traffic[500:]), 60, "the new sessions' lists", moved)
        assert gauge(moved, "shopstream_key_slots_held") == 4
        assert "Unexpected error in coordinator routine" not in moved.logs["worker"].read_text(errors="replace")
    finally:
        stop_pipeline(pipeline)
