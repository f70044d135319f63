"""How long a crashed worker's key slots go unwritten: two workers on a topic, ``kill -9`` one, time the takeover.

Every 0.25 s after the kill a probe event goes out for each key slot, with a session of its own whose key
falls in that slot (``models/ownership.py``); a slot is served again when a probe sent for it after the
kill has its session list in Redis. The takeover time is the time from the kill to the last slot served
again, so it includes the worker's batching and write (tens of ms), not only the group's rebalance. Last,
the surviving worker is stopped with SIGTERM (Redis up) and the time it takes to exit is printed too. With
``--restart`` the killed worker is started again at once with the same settings, as an orchestrator does::

    python -m shopstream.bench.failover --session-timeout-s 10
    python -m shopstream.bench.failover --session-timeout-s 10 --restart
    python -m shopstream.bench.failover --session-timeout-s 10 --restart --static

The Kafka and Redis used are ``KAFKA_BOOTSTRAP_SERVERS`` and ``REDIS_URL`` (default: the local ones);
the topics, consumer group and key prefix are fresh, and the keys are deleted afterwards.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import orjson
import redis
from kafka import KafkaAdminClient, KafkaProducer

from shopstream.bench import processes
from shopstream.models.ownership import key_slot

PROBE_EVERY_S = 0.25


def probe(producer: KafkaProducer, topic: str, partition: int, session: str) -> None:
    event = {"event_id": session, "ts": time.time(), "session_id": session, "type": "view", "item_id": "probe"}
    producer.send(topic, value=orjson.dumps([event]), partition=partition)


def start_worker(env: dict[str, str], name: str, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = processes.free_port()
    worker_env = {**env, "SHOPSTREAM_WEB_PORT": str(port), "SHOPSTREAM_DATA_DIR": str(workdir / name),
                  "SHOPSTREAM_WORKER_ID": name}
    return processes.start_component("worker", worker_env, workdir / f"{name}.log"), f"http://127.0.0.1:{port}"


def wait_served(client: redis.Redis, prefix: str, sent: dict[int, list[tuple[str, float]]], since: float,
                timeout_s: float) -> dict[int, float]:
    """Seconds from ``since`` until each slot's first probe sent after ``since`` was written."""
    served: dict[int, float] = {}
    deadline = time.monotonic() + timeout_s
    while len(served) < len(sent) and time.monotonic() < deadline:
        for slot, probes in sent.items():
            if slot not in served and any(
                client.exists(f"{prefix}rec:session:{session}") for session, at in probes if at >= since
            ):
                served[slot] = time.monotonic() - since
        time.sleep(0.05)
    return served


def run(bootstrap: str, redis_url: str, args: argparse.Namespace) -> dict[str, float]:
    """Seconds from the kill until every key slot was served again (``takeover_s``), and until the first was."""
    run_id = uuid.uuid4().hex[:8]
    prefix = f"bench-failover-{run_id}:"
    env = {
        **os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "REDIS_URL": redis_url,
        "SHOPSTREAM_EVENTS_TOPIC": f"bench-failover-{run_id}-events",
        "SHOPSTREAM_DLQ_TOPIC": f"bench-failover-{run_id}-dlq",
        "SHOPSTREAM_CHECKPOINT_TOPIC": f"bench-failover-{run_id}-checkpoints",
        "SHOPSTREAM_TOPIC_PARTITIONS": str(args.partitions), "SHOPSTREAM_KEY_PREFIX": prefix,
        "SHOPSTREAM_APP_ID": f"bench-failover-{run_id}", "SHOPSTREAM_WEB_HOST": "127.0.0.1",
        "SHOPSTREAM_SESSION_TIMEOUT_S": str(args.session_timeout_s), "SHOPSTREAM_LOG_LEVEL": "warn",
        "SHOPSTREAM_STATIC_MEMBERSHIP": str(args.static).lower(),
    }
    workdir = Path(tempfile.mkdtemp(prefix="shopstream-failover-"))
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    client = redis.Redis.from_url(redis_url)
    workers: list[subprocess.Popen[bytes]] = []
    sent: dict[int, list[tuple[str, float]]] = {p: [] for p in range(args.partitions)}
    n = 0

    def send_round() -> None:
        nonlocal n
        now = time.monotonic()
        for slot in range(args.partitions):
            session = next(s for i in itertools.count() if key_slot(s := f"probe-{n}-{i}", args.partitions) == slot)
            probe(producer, env["SHOPSTREAM_EVENTS_TOPIC"], slot, session)
            sent[slot].append((session, now))
        producer.flush()
        n += 1

    try:
        for name in ("a", "b"):
            proc, url = start_worker(env, name, workdir)
            workers.append(proc)
            processes.wait_ready(proc, url, 120, workdir / f"{name}.log")
        # Both members hold slots once the group has settled with both in it.
        time.sleep(2 * float(args.session_timeout_s) / 3)
        started = time.monotonic()
        send_round()
        steady = wait_served(client, prefix, sent, started, 60)
        if len(steady) < args.partitions:
            raise RuntimeError(f"slots served before the kill: {steady}\n{processes.tail(workdir / 'a.log')}")
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        killed = time.monotonic()
        if args.restart:
            workers[0], _ = start_worker(env, "a", workdir)
        served: dict[int, float] = {}
        deadline = killed + args.timeout_s
        while len(served) < args.partitions and time.monotonic() < deadline:
            send_round()
            served.update({p: s for p, s in wait_served(client, prefix, sent, killed, PROBE_EVERY_S).items()
                           if p not in served})
        if len(served) < args.partitions:
            raise RuntimeError(f"slots not served {args.timeout_s} s after the kill: "
                               f"{sorted(set(sent) - set(served))}\n{processes.tail(workdir / 'b.log')}")
        stopping = time.monotonic()
        processes.stop(workers[1], timeout_s=60)  # SIGTERM with Redis up: how long a clean stop takes
        return {"takeover_s": max(served.values()), "unaffected_s": min(served.values()),
                "sigterm_exit_s": time.monotonic() - stopping, "sigterm_exit_code": float(workers[1].returncode)}
    finally:
        for proc in workers:
            processes.stop(proc, timeout_s=20)
        producer.close()
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="shopstream-bench")
        admin.delete_topics([env["SHOPSTREAM_EVENTS_TOPIC"], env["SHOPSTREAM_DLQ_TOPIC"],
                             env["SHOPSTREAM_CHECKPOINT_TOPIC"], f"{env['SHOPSTREAM_APP_ID']}.members"])
        admin.close()
        stale = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if stale:
            client.delete(*stale)
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--session-timeout-s", type=float, default=10.0)
    parser.add_argument("--restart", action="store_true", help="start the killed worker again at once")
    parser.add_argument("--static", action="store_true", help="static members (SHOPSTREAM_STATIC_MEMBERSHIP)")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--timeout-s", type=float, default=180.0)
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    for _ in range(args.repeat):
        figures = run(bootstrap, redis_url, args)
        print(f"session_timeout_s={args.session_timeout_s:g} restart={args.restart} static={args.static} "
              f"takeover_s={figures['takeover_s']:.1f} unaffected_slots_s={figures['unaffected_s']:.1f} "
              f"sigterm_exit_s={figures['sigterm_exit_s']:.1f} (exit {figures['sigterm_exit_code']:.0f})",
              flush=True)


if __name__ == "__main__":
    main()
