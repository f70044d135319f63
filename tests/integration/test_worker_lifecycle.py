"""The worker stopped, killed and restarted, and its Redis lost: what an orchestrator and an outage do to it.

Each test runs its own Redis (tests/private_redis.py), so stopping or flushing it never touches the shared one.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import time
import uuid
from pathlib import Path

import orjson

from shopstream.bench import failover
from shopstream.bench.scrape import samples
from shopstream.config.settings import WorkerSettings
from shopstream.streams.redis_sink import EPOCH_KEY
from shopstream.streams.shutdown import EXIT_ABANDONED
from shopstream.streams.worker import build_sink
from tests.pipeline import Pipeline, start_pipeline, start_process, stop_pipeline, wait_for
from tests.private_redis import PrivateRedis, private_redis
from tests.servers import RedisTarget

__all__ = ["private_redis"]

SHUTDOWN_TIMEOUT_S = 3.0
#: Time a stopping worker may take beyond its bound: the interpreter's exit, on a machine shared with others.
EXIT_SLACK_S = 30.0


def session_events(session: str, items: list[str]) -> list[dict[str, object]]:
    now = time.time()
    return [{"event_id": f"{session}-{i}", "ts": now + i * 0.01, "session_id": session, "type": "view",
             "item_id": item, "category": "c1"} for i, item in enumerate(items)]


def redis_errors(pipeline: Pipeline) -> float:
    return samples(pipeline.metrics(), "shopstream_redis_errors_total").get((), 0.0)


def test_sigterm_during_a_redis_outage_exits_within_the_bound_and_the_batch_is_written_after_restart(
    kafka_bootstrap: str, private_redis: PrivateRedis, tmp_path: Path
) -> None:
    pipeline = start_pipeline(kafka_bootstrap, private_redis.url, tmp_path,
                              SHOPSTREAM_SHUTDOWN_TIMEOUT_S=str(SHUTDOWN_TIMEOUT_S))
    try:
        before = f"sess-{uuid.uuid4().hex[:8]}"
        assert pipeline.post(orjson.dumps(session_events(before, ["a", "b"]))).status_code == 202
        pipeline.wait_for_key(f"rec:session:{before}", timeout_s=60)

        private_redis.stop()
        during = f"sess-{uuid.uuid4().hex[:8]}"
        assert pipeline.post(orjson.dumps(session_events(during, ["a", "b", "c"]))).status_code == 202
        wait_for(lambda: redis_errors(pipeline) > 0, 60, "the worker to retry its write", pipeline)

        worker = pipeline.processes["worker"]
        worker.send_signal(signal.SIGTERM)
        try:
            code = worker.wait(timeout=SHUTDOWN_TIMEOUT_S + EXIT_SLACK_S)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"the worker did not exit after SIGTERM\n{pipeline.tail()}") from exc
        # Stopping cancels the reader, and with it the write being retried (exit 0); if anything held the worker
        # past its bound, the shutdown timer ends it (75). Either way the batch is in no checkpoint.
        assert code in (0, EXIT_ABANDONED), pipeline.tail()

        private_redis.start()  # empty: no persistence
        start_process(pipeline, "worker", tmp_path)
        # The abandoned batch is past the offsets the worker restarts from: it reads it again and writes its session.
        assert orjson.loads(pipeline.wait_for_key(f"rec:session:{during}", timeout_s=90))["items"]
    finally:
        stop_pipeline(pipeline)


def test_a_flushed_redis_gets_the_held_lists_back_without_new_events(
    kafka_bootstrap: str, private_redis: PrivateRedis, tmp_path: Path
) -> None:
    pipeline = start_pipeline(kafka_bootstrap, private_redis.url, tmp_path)
    try:
        sessions = [f"sess-{uuid.uuid4().hex[:8]}" for _ in range(3)]
        for session in sessions:
            body = [{**event, "user_id": f"user-{session}"} for event in session_events(session, ["a", "b", "c"])]
            assert pipeline.post(orjson.dumps(body)).status_code == 202
        for session in sessions:
            pipeline.wait_for_key(f"rec:session:{session}", timeout_s=60)
            pipeline.wait_for_key(f"rec:user:user-{session}", timeout_s=30)
        pipeline.wait_for_key("rec:trending")
        # The worker has seen the store's epoch (its first check), so losing it now is noticed.
        wait_for(lambda: pipeline.redis.exists(pipeline.key_prefix + EPOCH_KEY), 30, "the epoch key", pipeline)
        held = {key for key in pipeline.redis.scan_iter(match=f"{pipeline.key_prefix}*")} - {
            (pipeline.key_prefix + EPOCH_KEY).encode()}
        learned = samples(pipeline.metrics(), "shopstream_events_total")

        pipeline.redis.flushall()  # the test's own Redis

        wait_for(lambda: all(pipeline.redis.exists(key) for key in held), 60, "the held lists to reappear", pipeline)
        assert samples(pipeline.metrics(), "shopstream_events_total") == learned  # no event was learned since
        republished = samples(pipeline.metrics(), "shopstream_republished_keys_total")
        assert sum(republished.values()) >= len(held)
        assert republished[(("kind", "session"),)] >= len(sessions)
    finally:
        stop_pipeline(pipeline)


async def test_the_epoch_changes_only_when_the_store_lost_its_marker(
    redis_target: RedisTarget, key_prefix: str
) -> None:
    settings = WorkerSettings(redis_url=redis_target.url, redis_mode=redis_target.mode, key_prefix=key_prefix)
    sink = build_sink(settings)
    try:
        first = await sink.epoch()
        assert await sink.epoch() == first
        redis_target.client.delete(key_prefix + EPOCH_KEY)  # what a restart without persistence or FLUSHALL does
        second = await sink.epoch()
        assert second != first
        assert await sink.epoch() == second
    finally:
        await sink.close()


def test_after_kill_9_of_one_of_two_workers_the_other_serves_every_partition(
    kafka_bootstrap: str, redis_url: str
) -> None:
    """bench/failover.py's run: it raises unless every partition's new events are served after the kill."""
    args = argparse.Namespace(session_timeout_s=6.0, restart=False, static=False, partitions=4, timeout_s=120.0)
    figures = failover.run(kafka_bootstrap, redis_url, args)
    assert figures["takeover_s"] >= figures["unaffected_s"] > 0
