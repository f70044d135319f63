"""What checkpoints cost and how long a restore takes, for the state a worker builds from N events.

``python -m shopstream.bench.checkpoint_cost [--events 1000000] [--interval-s 30] [--live-rate 5000]``
learns the seeded stream in catch-up steps (the worker's 40,000 events), then takes a checkpoint as the
worker does (a forked child pickles and compresses; the worker pauses for the fork; the same dump done
in-process is timed beside it), writes it to Kafka (``KAFKA_BOOTSTRAP_SERVERS``,
a throw-away topic), loads it back as a restarting worker would, and unpickles it. It prints the figures
and two ratios: the share of a catch-up's time the checkpoint pauses take at ``--interval-s``, and the
restore time (load + unpickle + reading the events of one interval at ``--live-rate`` again at the
measured learning rate) for a worker killed just before its next checkpoint. With ``--saves N`` it also
saves the checkpoint N times (``--save-interval-s`` apart) to a topic with Kafka's default segments and to one
with the worker's checkpoint-topic settings, and times a load from each: what a restore reads after a run.
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
from shopstream.config.topics import CHECKPOINT_TOPIC_CONFIG, ensure_topics
from shopstream.models.engine import RecommenderStack
from shopstream.models.events import parse_event
from shopstream.models.stack_config import StackConfig
from shopstream.streams.batch import tune_process
from shopstream.streams.checkpoint import KafkaCheckpointStore, Manifest, Snapshot, dump_stack, load_stack

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
    save, load, loaded = await save_and_load(args.bootstrap, CHECKPOINT_TOPIC_CONFIG, payload, args.events, 1, 0.0)
    history: dict[str, float] = {}
    if args.saves > 1:  # the checkpoint topic after a worker's run of saves, with Kafka's default segments beside
        for name, config in (("default_segments", {"cleanup.policy": "compact"}), ("worker", CHECKPOINT_TOPIC_CONFIG)):
            _, history[f"load_after_saves_s_{name}"], _ = await save_and_load(
                args.bootstrap, config, payload, args.events, args.saves, args.save_interval_s)
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
        "restore_s": load + unpickle + replay, "replay_s": replay, **history,
    }


async def save_and_load(
    bootstrap: str, config: dict[str, str], payload: bytes, events: int, saves: int, interval_s: float
) -> tuple[float, float, tuple[str, Manifest, bytes] | None]:
    """Save ``payload`` ``saves`` times, ``interval_s`` apart, to a throw-away topic of ``config``, then load it as
    a restarting worker does: the last save's time, the load's, and what it loaded."""
    topic = f"bench-checkpoint-{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, [topic], 1, config)
    store = KafkaCheckpointStore(bootstrap, topic, "bench", "w0")
    try:
        for n in range(saves):
            if n:
                await asyncio.sleep(interval_s)
            started = time.perf_counter()
            await store.save(payload, {0: events})
            save = time.perf_counter() - started
        started = time.perf_counter()
        loaded = await KafkaCheckpointStore(bootstrap, topic, "bench", "w1").load()
        load = time.perf_counter() - started
    finally:
        await store.close()
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        await admin.delete_topics([topic])
        await admin.close()
    return save, load, loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--interval-s", type=float, default=30.0, help="SHOPSTREAM_CHECKPOINT_INTERVAL_S")
    parser.add_argument("--live-rate", type=float, default=5000.0, help="events/s between two checkpoints")
    parser.add_argument("--saves", type=int, default=1,
                        help="also save the checkpoint this many times before loading it, with Kafka's default "
                             "segments and with the worker's topic settings")
    parser.add_argument("--save-interval-s", type=float, default=2.0, help="between those saves")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    figures = asyncio.run(measure(parser.parse_args()))
    print("  ".join(f"{name}={value:,.3f}" if isinstance(value, float) else f"{name}={value:,}"
                    for name, value in figures.items()))


if __name__ == "__main__":
    main()
