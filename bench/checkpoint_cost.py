"""What checkpoints cost and how long a restore takes, for the state a worker builds from N events.

``python -m shopstream.bench.checkpoint_cost [--events 1000000] [--interval-s 30] [--live-rate 5000]``
learns the seeded stream in catch-up steps (the worker's 40,000 events), then takes a checkpoint as the
worker does (a forked child pickles and compresses; the worker pauses for the fork; the same dump done
in-process is timed beside it), writes it to Kafka (``KAFKA_BOOTSTRAP_SERVERS``,
a throw-away topic), loads it back as a restarting worker would, and unpickles it. It prints the figures
and two ratios: the share of a catch-up's time the checkpoint pauses take at ``--interval-s``, and the
restore time (load + unpickle + reading the events of one interval at ``--live-rate`` again at the
measured learning rate) for a worker killed just before its next checkpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import time
import uuid

import psutil
from aiokafka.admin import AIOKafkaAdminClient

from shopstream.bench.topics import synthetic
from shopstream.config.topics import ensure_topics
from shopstream.models.engine import RecommenderStack
from shopstream.models.events import parse_event
from shopstream.models.stack_config import StackConfig
from shopstream.streams.batch import tune_process
from shopstream.streams.checkpoint import KafkaCheckpointStore, Snapshot, dump_stack, load_stack

STEP = 40_000


async def measure(args: argparse.Namespace) -> dict[str, float]:
    tune_process()
    stack = RecommenderStack(StackConfig())
    learning = 0.0
    stream = synthetic(args.seed, args.events)
    while step := [(parse_event(raw), 0.0) for raw in itertools.islice(stream, STEP)]:
        started = time.perf_counter()
        stack.process(step)
        learning += time.perf_counter() - started
    started = time.perf_counter()
    snapshot = Snapshot(stack)
    pause = time.perf_counter() - started
    payload = snapshot.payload()
    dumped = time.perf_counter() - started
    started = time.perf_counter()
    assert dump_stack(stack) == payload  # the forked child dumped what the worker holds
    in_process = time.perf_counter() - started
    topic = f"bench-checkpoint-{uuid.uuid4().hex[:8]}"
    await ensure_topics(args.bootstrap, [topic], 1, {"cleanup.policy": "compact"})
    store = KafkaCheckpointStore(args.bootstrap, topic, "bench", "w0")
    try:
        started = time.perf_counter()
        await store.save(payload, {0: args.events})
        save = time.perf_counter() - started
        started = time.perf_counter()
        loaded = await KafkaCheckpointStore(args.bootstrap, topic, "bench", "w1").load()
        load = time.perf_counter() - started
    finally:
        await store.close()
        admin = AIOKafkaAdminClient(bootstrap_servers=args.bootstrap)
        await admin.start()
        await admin.delete_topics([topic])
        await admin.close()
    assert loaded is not None and loaded[2] == payload
    started = time.perf_counter()
    restored = load_stack(loaded[2])
    unpickle = time.perf_counter() - started
    assert restored.learned == stack.learned == args.events
    eps = args.events / learning
    replay = args.interval_s * args.live_rate / eps
    return {
        "events": args.events, "learn_eps": eps, "rss_mib": psutil.Process().memory_info().rss / 2**20,
        "checkpoint_mib": len(payload) / 2**20, "pause_s": pause, "snapshot_s": dumped,
        "in_process_dump_s": in_process, "save_s": save, "load_s": load,
        "unpickle_s": unpickle, "pause_share_catch_up": pause / (args.interval_s + pause),
        "restore_s": load + unpickle + replay, "replay_s": replay,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--interval-s", type=float, default=30.0, help="SHOPSTREAM_CHECKPOINT_INTERVAL_S")
    parser.add_argument("--live-rate", type=float, default=5000.0, help="events/s between two checkpoints")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    figures = asyncio.run(measure(parser.parse_args()))
    print("  ".join(f"{name}={value:,.3f}" if isinstance(value, float) else f"{name}={value:,}"
                    for name, value in figures.items()))


if __name__ == "__main__":
    main()
