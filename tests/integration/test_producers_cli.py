"""``shopstream generate`` and ``shopstream replay`` as a user runs them, into real Kafka."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
from kafka import KafkaConsumer

from shopstream.producers.kafka_publisher import session_partition
from tests.shared_data import SHARED_DATA


def shopstream(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "shopstream.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def topic_events(bootstrap: str, topic: str, expected: int) -> list[tuple[tuple[int, int], dict]]:
    """Every event on the topic with its record's (partition, offset)."""
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             group_id=f"test-{uuid.uuid4().hex}", consumer_timeout_ms=3000)
    out: list[tuple[tuple[int, int], dict]] = []
    try:
        for _ in range(20):
            out.extend(((record.partition, record.offset), event)
                       for record in consumer for event in orjson.loads(record.value))
            if len(out) >= expected:
                break
    finally:
        consumer.close()
    return out


def env_for(kafka_bootstrap: str) -> tuple[dict[str, str], str]:
    topic = f"test-{uuid.uuid4().hex[:10]}-events"
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "SHOPSTREAM_EVENTS_TOPIC": topic,
           "SHOPSTREAM_DLQ_TOPIC": f"{topic}-dlq", "SHOPSTREAM_TOPIC_PARTITIONS": "4"}
    return env, topic


def test_generate_to_a_file_then_replay_it_at_a_rate(kafka_bootstrap: str, tmp_path: Path) -> None:
    env, topic = env_for(kafka_bootstrap)
    log = tmp_path / "traffic.jsonl"
    shopstream("generate", "--events", "600", "--seed", "5", "--out", str(log), env=env)
    written = [orjson.loads(line) for line in log.read_bytes().splitlines()]
    assert len(written) == 600
    shopstream("replay", str(log), "--format", "jsonl", "--rate", "3000", env=env)
    on_topic = topic_events(kafka_bootstrap, topic, 600)
    assert sorted(e["event_id"] for _, e in on_topic) == sorted(e["event_id"] for e in written)
    assert all(partition == session_partition(event["session_id"], 4) for (partition, _), event in on_topic)
    assert len({record for record, _ in on_topic}) < 600  # several events share a record


def test_replay_of_the_real_retailrocket_sample(kafka_bootstrap: str) -> None:
    env, topic = env_for(kafka_bootstrap)
    sample = SHARED_DATA / "retailrocket-sample" / "sample_retailrocket.csv"
    out = shopstream("replay", str(sample), "--format", "retailrocket", "--speedup", "1000000", env=env)
    assert "replayed 10080 events" in out
    on_topic = topic_events(kafka_bootstrap, topic, 10_080)
    assert len(on_topic) == 10_080
    assert {e["type"] for _, e in on_topic} == {"view"}


def test_generate_live_publishes_current_timestamps(kafka_bootstrap: str) -> None:
    env, topic = env_for(kafka_bootstrap)
    assert "published 300 events" in shopstream("generate", "--events", "300", "--rate", "1000", env=env)
    on_topic = topic_events(kafka_bootstrap, topic, 300)
    assert len(on_topic) == 300
    assert all(abs(e["ts"] - time.time()) < 120 for _, e in on_topic)
