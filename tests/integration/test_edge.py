"""The pipeline at its edges, on real Kafka and Redis: a broker restart under load, hostile records, poisoning
values, requests without a valid write key, and a client over its rate (docs/security.md).

The broker restart uses a private broker (tests/servers.py ``private_kafka``); the shared one is never stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
import orjson
import psutil
import pytest
import requests
from kafka import KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

from shopstream.bench import processes
from shopstream.bench.scrape import samples
from shopstream.producers.kafka_publisher import REQUEST_TIMEOUT_S
from shopstream.producers.synthetic import SyntheticTraffic
from tests.pipeline import Pipeline, consume_all, start_pipeline, stop_pipeline, wait_for
from tests.servers import PrivateKafka

pytestmark = pytest.mark.integration

#: The issue's bound: after the broker is back, no request sent later than this is answered 503.
RECOVERY_BOUND_S = 10.0
#: The broker's outage: longer than the collector's publish timeout and the producer's request timeout.
OUTAGE_S = REQUEST_TIMEOUT_S + 4.0


@dataclass
class Collector:
    url: str
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes]

    def post(self, body: bytes, key: str | None, headers: dict[str, str] | None = None) -> requests.Response:
        return requests.post(f"{self.url}/v1/events", data=body, timeout=30, params={"key": key} if key else None,
                             headers={"Content-Type": "application/json", **(headers or {})})


@contextlib.contextmanager
def collector(bootstrap: str, tmp: Path, **extra_env: str) -> Iterator[Collector]:
    """``shopstream collector`` as a process on fresh topics; ``extra_env`` overrides its settings."""
    run = uuid.uuid4().hex[:10]
    port = processes.free_port()
    local_env, key = processes.local_collector_env(port)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "SHOPSTREAM_EVENTS_TOPIC": f"test-{run}-events",
           "SHOPSTREAM_DLQ_TOPIC": f"test-{run}-dlq", "SHOPSTREAM_TOPIC_PARTITIONS": "4", **local_env,
           "SHOPSTREAM_LOCAL_KEY": key, **extra_env}
    log = tmp / f"collector-{run}.log"
    process = processes.start_component("collector", env, log)
    try:
        processes.wait_ready(process, f"http://127.0.0.1:{port}", 90, log)
        yield Collector(f"http://127.0.0.1:{port}", env, log, process)
    finally:
        processes.stop(process)


def event(event_id: str, session: str, **change: object) -> dict[str, object]:
    return {"event_id": event_id, "ts": time.time(), "session_id": session, "type": "view", "item_id": "i1",
            **change}


# --- (a) broker stopped and restarted under load ----------------------------------------------------------------


@dataclass
class Answer:
    sent_at: float
    status: int
    ids: list[str]
    answered_at: float


@dataclass
class Load:
    """Trackers posting small bodies; a body answered 503 is posted again after ``Retry-After`` until it is
    accepted, as tracker.js does."""

    url: str
    key: str
    answers: list[Answer] = field(default_factory=list)
    first_status: dict[str, int] = field(default_factory=dict)
    accepted: set[str] = field(default_factory=set)
    running: bool = True

    async def tracker(self, session: aiohttp.ClientSession, n: int) -> None:
        sent = 0
        while self.running:
            ids = [f"t{n}-{sent + i}-{uuid.uuid4().hex[:6]}" for i in range(5)]
            sent += 5
            body = orjson.dumps([event(i, f"s{n}-{sent % 7}") for i in ids])
            status = 0
            while status != 202:
                started = time.time()
                async with session.post(f"{self.url}/v1/events", data=body, params={"key": self.key}) as response:
                    status = response.status
                    retry_after = float(response.headers.get("Retry-After", "1"))
                self.answers.append(Answer(started, status, ids, time.time()))
                for i in ids:
                    self.first_status.setdefault(i, status)
                assert status in (202, 503), status
                if status == 503:
                    await asyncio.sleep(retry_after)
            self.accepted.update(ids)
            await asyncio.sleep(0.05)


async def ready(session: aiohttp.ClientSession, url: str) -> bool:
    async with session.get(f"{url}/readyz") as response:
        return response.status == 200


async def test_a_broker_restart_under_load_recovers_and_loses_or_duplicates_nothing(
    private_kafka: PrivateKafka, tmp_path: Path
) -> None:
    with collector(private_kafka.bootstrap, tmp_path) as running:
        load = Load(running.url, running.env["SHOPSTREAM_LOCAL_KEY"])
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            trackers = [asyncio.create_task(load.tracker(session, n)) for n in range(4)]
            await asyncio.sleep(3.0)
            await asyncio.to_thread(private_kafka.stop)
            stopped_at = time.time()
            outage_readiness = []
            outage_until = time.monotonic() + OUTAGE_S
            while time.monotonic() < outage_until:
                outage_readiness.append(await ready(session, running.url))
                await asyncio.sleep(0.5)
            restarting_at = time.time()
            await asyncio.to_thread(private_kafka.start)
            broker_ready_at = time.time()
            await asyncio.sleep(RECOVERY_BOUND_S + 6.0)
            load.running = False
            await asyncio.gather(*trackers)
            assert await ready(session, running.url)
        log_lines = running.log.read_text(errors="replace").splitlines()

    after = [a for a in load.answers if a.sent_at >= broker_ready_at]
    late_503 = [a for a in after if a.status == 503]
    last_503 = max((a.sent_at for a in late_503), default=broker_ready_at) - broker_ready_at
    outage_503 = sum(a.status == 503 for a in load.answers if a.sent_at < broker_ready_at)
    # Sent while the broker was down: answered 503 within the publish timeout, never accepted.
    during = [a for a in load.answers if stopped_at <= a.sent_at < broker_ready_at]
    accepted_while_down = [a for a in during if a.status == 202 and a.answered_at < restarting_at]
    on_topic = Counter(
        e["event_id"]
        for record in consume_all(private_kafka.bootstrap, running.env["SHOPSTREAM_EVENTS_TOPIC"], expected=10**9,
                                  timeout_s=10)
        for e in orjson.loads(record.value)
    )
    answered_503 = {i for i, status in load.first_status.items() if status == 503}
    duplicated = {i for i in answered_503 if on_topic[i] > 1}
    print(f"\nrequests {len(load.answers)}, 503 during the outage {outage_503} (sent in it {len(during)}), after "
          f"the broker was ready {len(late_503)} of {len(after)} (last one sent {last_503:.1f}s after); "
          f"events accepted {len(load.accepted)}, first answered 503 {len(answered_503)}, on the topic more than once "
          f"{len(duplicated)}; collector log lines {len(log_lines)}")
    assert outage_503 > 0 and during and not accepted_while_down and outage_readiness and not any(outage_readiness)
    assert last_503 <= RECOVERY_BOUND_S
    assert sum(a.sent_at >= broker_ready_at + RECOVERY_BOUND_S for a in after) > 20
    assert load.accepted - on_topic.keys() == set(), "acknowledged events lost"
    assert answered_503 and not duplicated
    assert len(log_lines) < 200


# --- (b)-(d) on a running collector and worker ------------------------------------------------------------------


def worker_letters(pipeline: Pipeline) -> list[dict]:
    """The dead letters the worker (not the collector) wrote so far."""
    records = consume_all(pipeline.bootstrap, pipeline.dlq_topic, expected=10**9, timeout_s=4)
    return [letter for letter in map(orjson.loads, (r.value for r in records)) if letter["source"] == "worker"]


def test_tombstones_and_2mb_garbage_on_the_topic_are_dead_lettered_and_the_next_events_learned(
    pipeline: Pipeline,
) -> None:
    admin = KafkaAdminClient(bootstrap_servers=pipeline.bootstrap, client_id="shopstream-tests")
    try:  # the broker's default record limit is 1 MiB: this topic takes 4 MiB, so a 2 MB record can be written
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, pipeline.events_topic,
                                            configs={"max.message.bytes": str(4 * 2**20)})])
    finally:
        admin.close()
    session = f"after-garbage-{uuid.uuid4().hex[:8]}"
    producer = KafkaProducer(bootstrap_servers=pipeline.bootstrap, max_request_size=5 * 2**20, acks="all")
    try:
        for value in (None, b"", b"\x00\xff" * 1_048_576, orjson.dumps({"x": "\x00" * 350_000})):
            producer.send(pipeline.events_topic, value=value, key=session.encode(), partition=0).get(timeout=30)
        producer.send(pipeline.events_topic, orjson.dumps([event("g1", session), event("g2", session, item_id="i2")]),
                      key=session.encode(), partition=0).get(timeout=30)
    finally:
        producer.close()
    assert orjson.loads(pipeline.wait_for_key(f"rec:session:{session}", timeout_s=30))["items"]
    wait_for(lambda: len(worker_letters(pipeline)) >= 4, timeout_s=30, what="the worker's four dead letters")
    letters = worker_letters(pipeline)
    assert sorted(letter["reason"] for letter in letters) == ["empty_record", "invalid_json", "size_violation",
                                                              "size_violation"]
    assert samples(pipeline.metrics(), "shopstream_dlq_events_total")[(("reason", "empty_record"),)] >= 1


def shared_keys(pipeline: Pipeline, session: str) -> tuple[dict, dict, dict]:
    return tuple(orjson.loads(pipeline.wait_for_key(key, timeout_s=60))  # type: ignore[return-value]
                 for key in ("rec:trending", "forecast:shop", f"rec:session:{session}"))


@pytest.fixture
def own_pipeline(kafka_bootstrap: str, redis_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    """A collector and worker of the test's own: its warm-up traffic is older than other tests' events, which
    would have moved the event-time watermark past it."""
    running = start_pipeline(kafka_bootstrap, redis_url, tmp_path)
    try:
        yield running
    finally:
        stop_pipeline(running)


def test_poisoning_values_are_rejected_or_clamped_and_shared_keys_stay_intact(own_pipeline: Pipeline) -> None:
    pipeline = own_pipeline
    now = time.time()
    warmup = SyntheticTraffic(seed=13, start_ts=now - 600, rate=10).take(3000)
    for i in range(0, len(warmup), 500):
        assert pipeline.post(b"\n".join(map(orjson.dumps, warmup[i : i + 500])), "application/x-ndjson").ok
    run = uuid.uuid4().hex[:8]
    poison = [event(f"p1-{run}", f"poison-{run}", type="add_to_cart", price=1e308, quantity=10),
              event(f"p2-{run}", f"poison-{run}", type="purchase"),
              event(f"p3-{run}", f"poison-{run}", type="purchase", quantity=2**64 - 1),
              event(f"p4-{run}", f"poison-{run}", ts=time.time() + 59 * 60, item_id="from-the-future"),
              event(f"p5-{run}", f"poison-{run}", ts=time.time() + 200, item_id="a-bit-ahead")]
    answer = pipeline.post(orjson.dumps(poison)).json()
    assert [(e["index"], e["reason"], e["field"]) for e in answer["errors"]] == [
        (0, "bad_value", "price"), (2, "bad_value", "quantity"), (3, "bad_timestamp", "ts")]
    producer = KafkaProducer(bootstrap_servers=pipeline.bootstrap, acks="all")
    try:  # past the collector, straight onto the topic: the worker holds the same bounds
        producer.send(pipeline.events_topic, orjson.dumps(poison), key=f"poison-{run}".encode()).get(timeout=30)
    finally:
        producer.close()
    wait_for(lambda: len([x for x in worker_letters(pipeline) if str(x["raw"]).count(run)]) >= 3, timeout_s=30,
             what="the worker's dead letters of the poison")

    # Afterwards: a new hot item, a new session with a purchase; every shared key moves on and stays sane.
    session, hot = f"after-{run}", f"hot-{run}"
    trending_before = shared_keys(pipeline, f"poison-{run}")[0]
    fresh = [event(f"h{i}-{run}", f"hot-sessions-{run}-{i % 40}", item_id=hot) for i in range(400)]
    fresh += [event(f"a{i}-{run}", session, type=kind, price=20.0, quantity=1, item_id=hot)
              for i, kind in enumerate(("view", "add_to_cart"))]  # open: a purchase would close it
    assert pipeline.post(orjson.dumps(fresh[:250])).json()["accepted"] == 250
    assert pipeline.post(orjson.dumps(fresh[250:])).json()["accepted"] == len(fresh) - 250
    trending = wait_for(lambda: (value := orjson.loads(pipeline.wait_for_key("rec:trending"))) and hot in
                        value["items"] and value, timeout_s=30, what="the hot item in rec:trending")
    trending, forecast, after = shared_keys(pipeline, session)
    assert trending["updated_at"] > trending_before["updated_at"] and "from-the-future" not in trending["items"]
    assert all(np.isfinite(trending["scores"])) and all(np.isfinite(after["scores"]))
    values = forecast["forecast"]
    assert all(np.isfinite(values)) and min(values) >= 0 and max(values) < 10_000, values
    assert 0.0 <= after["purchase_propensity"] <= 1.0
    clamped = [e for r in consume_all(pipeline.bootstrap, pipeline.events_topic, expected=10**9, timeout_s=4)
               for e in orjson.loads(r.value) if e["event_id"] == f"p5-{run}"]
    # The collector's copy (the first; the second is the one written past it) has the collector's clock as ts.
    assert len(clamped) == 2 and clamped[0]["ts"] <= poison[4]["ts"] - 150


def test_a_request_without_a_valid_write_key_is_refused(pipeline: Pipeline) -> None:
    body = orjson.dumps(event(f"k-{uuid.uuid4().hex}", "s-keys"))
    answers = [pipeline.post(body, key=""), pipeline.post(body, key="not-a-key-of-this-site")]
    answers.append(requests.post(f"{pipeline.collector_url}/v1/events", data=body, timeout=10,
                                 params={"key": pipeline.write_key}, headers={"Origin": "https://evil.example"}))
    assert [(r.status_code, r.json()["error"]) for r in answers] == [
        (401, "missing_write_key"), (403, "unknown_write_key"), (403, "origin_not_allowed")]
    assert pipeline.post(body).status_code == 202


# --- (e) one client over its rate ----------------------------------------------------------------------------------


async def paced(session: aiohttp.ClientSession, url: str, key: str, seconds: float, interval_s: float,
                ) -> list[tuple[int, float]]:
    """Requests of one event every ``interval_s`` (0: back to back) for ``seconds``: (status, latency) each."""
    out: list[tuple[int, float]] = []
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        started = time.perf_counter()
        body = orjson.dumps(event(uuid.uuid4().hex, f"s-{key[:6]}"))
        async with session.post(f"{url}/v1/events", data=body, params={"key": key}) as response:
            await response.read()
            out.append((response.status, time.perf_counter() - started))
        await asyncio.sleep(interval_s)
    return out


def p99(latencies: list[float]) -> float:
    return float(np.percentile(latencies, 99))


async def test_a_client_over_its_rate_gets_429_while_another_keeps_getting_202(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    keys = {"flooder": "flooding-site-key-01", "shop": "steady-site-key-0001"}
    env = {"SHOPSTREAM_WRITE_KEYS": f"{keys['flooder']}=https://a.example,{keys['shop']}=https://b.example",
           "SHOPSTREAM_RATE_LIMIT_PER_KEY": "50", "SHOPSTREAM_RATE_LIMIT_PER_ADDRESS": "0"}
    with collector(kafka_bootstrap, tmp_path, **env) as running:
        async with aiohttp.ClientSession() as session:
            alone = await paced(session, running.url, keys["shop"], 4.0, 0.05)
            flood = [paced(session, running.url, keys["flooder"], 5.0, 0.0) for _ in range(8)]
            steady, *flooded = await asyncio.gather(paced(session, running.url, keys["shop"], 4.0, 0.05), *flood)
    flooder = [status for answers in flooded for status, _ in answers]
    print(f"\nsteady client alone: {len(alone)} requests, p50 {statistics.median(t for _, t in alone) * 1e3:.1f} ms, "
          f"p99 {p99([t for _, t in alone]) * 1e3:.1f} ms; beside the flood: {len(steady)} requests, p50 "
          f"{statistics.median(t for _, t in steady) * 1e3:.1f} ms, p99 {p99([t for _, t in steady]) * 1e3:.1f} ms; "
          f"flooder {len(flooder)} requests, {Counter(flooder)}")
    assert {status for status, _ in alone + steady} == {202}
    assert Counter(flooder)[429] > Counter(flooder)[202] > 0
    assert p99([t for _, t in steady]) < 2.0  # a sanity bound only; the figures are printed above


# --- a worker whose agent dies --------------------------------------------------------------------------------------


def test_a_worker_whose_reader_dies_exits_non_zero(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path
) -> None:
    """A dead-letter topic that refuses every letter (records of at most 64 bytes) fails the batch that has a
    reject: the events reader dies with it, and the worker must exit rather than sit idle with a ready answer."""
    dlq = f"test-{uuid.uuid4().hex[:10]}-tiny-dlq"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="shopstream-tests")
    try:
        admin.create_topics([NewTopic(dlq, 4, 1, topic_configs={"max.message.bytes": "64"})])
    finally:
        admin.close()
    running = start_pipeline(kafka_bootstrap, redis_url, tmp_path, SHOPSTREAM_DLQ_TOPIC=dlq)
    try:
        worker = running.processes["worker"]
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        try:  # past the collector, which would answer 503 for a dead-letter topic it cannot write to
            producer.send(running.events_topic, b"not json at all").get(timeout=30)
        finally:
            producer.close()
        readiness: list[int] = []
        deadline = time.monotonic() + 60
        while worker.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                readiness.append(requests.get(f"{running.worker_url}/readyz", timeout=2).status_code)
            time.sleep(0.1)
        assert worker.returncode not in (None, 0), running.tail()
        assert "reading the events topic failed; exiting" in running.logs["worker"].read_text(errors="replace")
        print(f"\nworker exited with {worker.returncode}; /readyz answers while it stopped: {Counter(readiness)}")
        # It exits at once: no ready answer after a failed one (there may be none at all before the exit).
        assert 200 not in readiness[readiness.index(503):] if 503 in readiness else True
    finally:
        stop_pipeline(running)


# --- listen addresses -------------------------------------------------------------------------------------------


def listening(pid: int) -> set[tuple[str, int]]:
    return {(c.laddr.ip, c.laddr.port) for c in psutil.Process(pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN}


def test_listen_addresses_are_honoured_and_metrics_can_have_a_port_of_their_own(
    pipeline: Pipeline, kafka_bootstrap: str, tmp_path: Path
) -> None:
    worker_port = int(pipeline.worker_url.rsplit(":", 1)[1])
    assert listening(pipeline.processes["worker"].pid) == {("127.0.0.1", worker_port)}
    metrics_port = processes.free_port()
    with collector(kafka_bootstrap, tmp_path, SHOPSTREAM_METRICS_PORT=str(metrics_port)) as running:
        port = int(running.url.rsplit(":", 1)[1])
        assert listening(running.process.pid) == {("127.0.0.1", port), ("127.0.0.1", metrics_port)}
        assert requests.get(f"{running.url}/metrics", timeout=5).status_code == 404
        metrics = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
        assert metrics.status_code == 200 and "shopstream_collector_requests_total" in metrics.text


def test_the_generator_posts_through_the_collector_with_its_write_key(pipeline: Pipeline) -> None:
    """What the compose demo runs: ``shopstream generate --collector URL --write-key KEY``."""

    def accepted() -> float:
        return samples(pipeline.metrics("collector"), "shopstream_collector_events_total")[(("outcome", "accepted"),)]

    before = accepted()
    args = ["generate", "--events", "1200", "--seed", "5", "--collector", pipeline.collector_url]
    done = subprocess.run([sys.executable, "-m", "shopstream.cli", *args, "--write-key", pipeline.write_key],
                          env=pipeline.env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and "published 1200 events" in done.stdout, done.stderr[-2000:]
    assert accepted() - before == 1200
    refused = subprocess.run([sys.executable, "-m", "shopstream.cli", *args, "--write-key", "not-a-key-of-ours"],
                             env=pipeline.env, capture_output=True, text=True, timeout=120, check=False)
    assert refused.returncode != 0 and "403" in refused.stderr
