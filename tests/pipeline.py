"""The pipeline as a user runs it: ``shopstream collector`` and ``shopstream worker`` as processes.

Each test module gets its own topics, consumer group, Redis key prefix and ports, so modules never
see each other's events, and the logs of both processes are printed when a test fails.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
import requests
from kafka import KafkaConsumer

from shopstream.bench import processes

READY_TIMEOUT_S = 90.0


@dataclass
class Pipeline:
    collector_url: str
    worker_url: str
    events_topic: str
    dlq_topic: str
    key_prefix: str
    env: dict[str, str]
    redis: redis.Redis
    write_key: str
    logs: dict[str, Path] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return self.env["KAFKA_BOOTSTRAP_SERVERS"]

    def post(self, body: bytes, content_type: str = "application/json", key: str | None = None) -> requests.Response:
        """POST to the collector with the pipeline's write key, or ``key`` ("" for none)."""
        key = self.write_key if key is None else key
        return requests.post(f"{self.collector_url}/v1/events", data=body, timeout=10,
                             headers={"Content-Type": content_type}, params={"key": key} if key else None)

    def metrics(self, which: str = "worker") -> str:
        url = self.worker_url if which == "worker" else self.collector_url
        return requests.get(f"{url}/metrics", timeout=5).text

    def wait_for_key(self, key: str, timeout_s: float = 20.0) -> bytes:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = self.redis.get(self.key_prefix + key)
            if value is not None:
                return value
            time.sleep(0.1)
        raise AssertionError(f"{self.key_prefix}{key} did not appear in Redis within {timeout_s}s\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        out = []
        for name, path in self.logs.items():
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {name} log ---\n" + "\n".join(text))
        return "\n".join(out)


def _wait_ready(pipeline: Pipeline, name: str, url: str) -> None:
    try:
        processes.wait_ready(pipeline.processes[name], url, READY_TIMEOUT_S)
    except (RuntimeError, TimeoutError) as exc:
        pytest.fail(f"{name}: {exc}\n{pipeline.tail()}")


def start_pipeline(
    kafka_bootstrap: str, redis_url: str, tmp: Path, sites: tuple[str, ...] = (), **extra_env: str
) -> Pipeline:
    """Start collector and worker on fresh topics, the collector with a write key for ``sites`` (default: its
    own origin); the caller stops them with :func:`stop_pipeline`."""
    run = uuid.uuid4().hex[:10]
    collector_port, worker_port = processes.free_port(), processes.free_port()
    collector_env, write_key = processes.local_collector_env(collector_port, *sites)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "REDIS_URL": redis_url,
        "SHOPSTREAM_EVENTS_TOPIC": f"test-{run}-events",
        "SHOPSTREAM_DLQ_TOPIC": f"test-{run}-dlq",
        "SHOPSTREAM_TOPIC_PARTITIONS": "4",
        "SHOPSTREAM_KEY_PREFIX": f"test-{run}:",
        "SHOPSTREAM_APP_ID": f"test-{run}-worker",
        "SHOPSTREAM_DATA_DIR": str(tmp / "worker-data"),
        **collector_env,
        "SHOPSTREAM_WEB_PORT": str(worker_port),
        "SHOPSTREAM_WEB_HOST": "127.0.0.1",
        # Short windows so a Holt-Winters season of them closes within a test's traffic.
        "SHOPSTREAM_FORECAST_WINDOW_S": "20",
        "SHOPSTREAM_FORECAST_LATENESS_S": "120",
        "SHOPSTREAM_HIT_RATE_SAMPLE": "1",  # a test's few thousand events: every session scored
        **extra_env,
    }
    pipeline = Pipeline(
        collector_url=f"http://127.0.0.1:{collector_port}",
        worker_url=f"http://127.0.0.1:{worker_port}",
        events_topic=env["SHOPSTREAM_EVENTS_TOPIC"],
        dlq_topic=env["SHOPSTREAM_DLQ_TOPIC"],
        key_prefix=env["SHOPSTREAM_KEY_PREFIX"],
        env=env,
        redis=redis.Redis.from_url(redis_url),
        write_key=write_key,
    )
    for name in ("collector", "worker"):
        start_process(pipeline, name, tmp)
    _wait_ready(pipeline, "collector", pipeline.collector_url)
    _wait_ready(pipeline, "worker", pipeline.worker_url)
    return pipeline


def start_process(pipeline: Pipeline, name: str, tmp: Path) -> None:
    """(Re)start one component, appending to its log."""
    log = pipeline.logs.setdefault(name, tmp / f"{name}.log")
    pipeline.processes[name] = processes.start_component(name, pipeline.env, log)


def stop_pipeline(pipeline: Pipeline) -> None:
    for process in pipeline.processes.values():
        processes.stop(process)
    stale = list(pipeline.redis.scan_iter(match=f"{pipeline.key_prefix}*", count=1000))
    if stale:
        pipeline.redis.delete(*stale)
    pipeline.redis.close()


@pytest.fixture(scope="module")
def pipeline(kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """A running collector and worker for the tests of one module."""
    running = start_pipeline(kafka_bootstrap, redis_url, tmp_path_factory.mktemp("pipeline"))
    try:
        yield running
    finally:
        stop_pipeline(running)


def consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 20.0) -> list:
    """The topic's records from the start, until ``expected`` of them or ``timeout_s``."""
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
        group_id=f"test-reader-{uuid.uuid4().hex}", enable_auto_commit=False, consumer_timeout_ms=1000,
    )
    records: list = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and len(records) < expected:
            records.extend(consumer)
    finally:
        consumer.close()
    return records


def wait_for(predicate, timeout_s: float = 20.0, what: str = "condition",  # type: ignore[no-untyped-def]
             pipeline: Pipeline | None = None):
    """The first truthy value of ``predicate()``, polled every 0.2 s; AssertionError after ``timeout_s``, with the
    pipeline's log tails if one is given."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}" + (f"\n{pipeline.tail()}" if pipeline else ""))
