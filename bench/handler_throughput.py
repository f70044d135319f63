"""The worker's batch handler in-process, without Kafka or Faust: decode, validate, learn, serve, write.

``python -m shopstream.bench.handler_throughput [--events 100000] [--batch-records 200] [--step-events 40000]
[--window 5000] [--event-rate 100] [--gc-thresholds 700,10,10] [--profile]``
builds the bench's record format (events of the sessions of one partition per record) from the seeded
generator and hands it to ``BatchHandler`` in batches of ``--batch-records`` records (the worker's
``SHOPSTREAM_BATCH_MAX_RECORDS`` default: ~34,000 events in a catch-up), writing to the Redis of ``REDIS_URL``
under a throw-away prefix. It prints events/s overall, the seconds each quarter of the stream took
(state grows along the stream), and the RSS and model sizes half-way and at the end; ``--profile``
prints a pyinstrument tree of the handler.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
import uuid

import psutil

from shopstream.bench.servers import delete_keys
from shopstream.bench.topics import EVENT_RATE, synthetic
from shopstream.config.settings import WorkerSettings
from shopstream.config.settings import load as load_settings
from shopstream.models.events import encode_events
from shopstream.producers.kafka_publisher import group_by_partition
from shopstream.streams.batch import Record, tune_process
from shopstream.streams.worker import build_handler, build_sink

PARTITIONS = 8


def records(n: int, window: int, event_rate: float = EVENT_RATE) -> list[Record]:
    events = list(synthetic(0, n, event_rate))
    now = time.time()
    return [
        Record(None, encode_events(chunk), now)
        for i in range(0, n, window)
        for _, chunk in group_by_partition(events[i : i + window], PARTITIONS, 200)
    ]


async def run(batches: list[list[Record]], events: int, settings: WorkerSettings) -> None:
    """The worker's handler as ``shopstream worker`` builds it from ``settings``, without Faust."""
    sink = build_sink(settings)

    async def no_dead_letters(_: list[tuple[bytes | None, bytes]]) -> None:
        return None

    handler = build_handler(settings, sink, no_dead_letters)
    quarter, marks = max(1, len(batches) // 4), []
    cpu = time.process_time()
    started = last = time.perf_counter()
    state: dict[int, tuple[int, dict[str, int]]] = {}
    for i, batch in enumerate(batches, 1):
        handed = time.time()
        for record in batch:  # as if each batch had just arrived: the deferred tier's delay counts from here
            record.timestamp = handed
        await handler.handle(batch)
        if i % quarter == 0:
            marks.append(round(time.perf_counter() - last, 1))
            last = time.perf_counter()
        if i in (len(batches) // 2, len(batches)):  # does the state level off in the second half?
            state[i] = (round(psutil.Process().memory_info().rss / 2**20), handler.stack.size())
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"{events / elapsed:,.0f} events/s ({events / cpu:,.0f} per CPU second of this process); "
          f"seconds per quarter of the stream: {marks}")
    for (rss, sizes), when in zip(state.values(), ("half-way", "end"), strict=True):
        print(f"{when}: RSS {rss} MiB (the records of the whole stream included), {sizes}")
    await delete_keys(sink.client, settings.key_prefix)
    await sink.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch-records", type=int, default=200)
    parser.add_argument("--window", type=int, default=5000,
                        help="events grouped per partition at a time: 5000 as the bench's preload, "
                             "100 as a paced producer's 20 ms tick at 5,000 events/s")
    parser.add_argument("--event-rate", type=float, default=EVENT_RATE,
                        help="events per second of event time (the bench's live phase: its offered rate)")
    parser.add_argument("--gc-thresholds", default=None,
                        help="e.g. 700,10,10 (Python's default) instead of the worker's GC_THRESHOLDS")
    parser.add_argument("--step-events", type=int, default=40_000,
                        help="the worker's SHOPSTREAM_BATCH_STEP_EVENTS: lists are recomputed once per step")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    tune_process()  # as the worker does
    if args.gc_thresholds:
        gc.set_threshold(*(int(x) for x in args.gc_thresholds.split(",")))
    recs = records(args.events, args.window, args.event_rate)
    batches = [recs[i : i + args.batch_records] for i in range(0, len(recs), args.batch_records)]
    # The environment's worker settings (REDIS_URL, SHOPSTREAM_REDIS_MODE, ...) under a throw-away key prefix.
    settings = load_settings(WorkerSettings, key_prefix=f"bench-handler-{uuid.uuid4().hex[:8]}:",
                             batch_step_events=args.step_events)
    if not args.profile:
        asyncio.run(run(batches, args.events, settings))
        return
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001)
    with profiler:
        asyncio.run(run(batches, args.events, settings))
    print(profiler.output_text(color=False, unicode=False))


if __name__ == "__main__":
    main()
