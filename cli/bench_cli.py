"""``shopstream bench``: the throughput, freshness, memory and ingest figures of issue 6, in one run."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any, get_args

from shopstream.models.stack_config import SessionModelName


def _bench(args: argparse.Namespace) -> int:
    import logging

    import orjson

    from shopstream.bench.report import table
    from shopstream.bench.runner import BenchConfig, run

    cfg = BenchConfig(
        bootstrap=args.bootstrap,
        redis_url=args.redis_url,
        events=args.events,
        **({"event_rate": args.event_rate} if args.event_rate else {}),
        naive_events=args.naive_events,
        seed=args.seed,
        workers=args.workers,
        rate=args.rate,
        seconds=args.seconds,
        collector_batch_events=args.collector_events,
        collector_single_events=max(1, args.collector_events // 10),
        collector_seconds=args.collector_seconds,
        session_model=args.session_model,
        workdir=args.workdir,
    )

    # aiokafka logs each retry of a send to a topic whose leaders are still being elected.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)

    def progress(message: str) -> None:
        print(f"bench: {message}", file=sys.stderr, flush=True)

    result = asyncio.run(run(cfg, progress))
    print(orjson.dumps(result).decode() if args.json else table(result))
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``bench`` on the CLI's subparsers."""
    bench = subparsers.add_parser(
        "bench", help="measure ceilings, pipeline throughput, freshness, memory and collector ingest"
    )
    bench.add_argument("--events", type=int, default=1_000_000, help="events preloaded for the catch-up")
    bench.add_argument(
        "--event-rate", type=float, default=None,
        help="events per second of event time in the preload (default 100: 10^6 events span 2.8 h, beyond "
             "the 30 min session TTL, so session state expires as on an endless stream)",
    )
    bench.add_argument(
        "--naive-events", type=int, default=200_000, help="events for the Faust no-op ceiling, one per record"
    )
    bench.add_argument("--workers", type=int, default=1, help="worker processes in one consumer group (<= 8)")
    bench.add_argument("--rate", type=float, default=5000.0, help="events/s offered in the freshness phase")
    bench.add_argument("--seconds", type=float, default=60.0, help="length of the freshness phase")
    bench.add_argument(
        "--collector-events", type=int, default=200_000, help="events posted in NDJSON batches (a tenth of it singly)"
    )
    bench.add_argument("--collector-seconds", type=float, default=20.0, help="time limit of each ingest phase")
    bench.add_argument(
        "--session-model",
        choices=get_args(SessionModelName),
        default="transitions",
        help="the worker's session model (default: the worker's own default, what a shop runs)",
    )
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    bench.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    bench.add_argument("--workdir", type=Path, default=None, help="logs of the child processes (default: a temp dir)")
    bench.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    bench.set_defaults(func=_bench)
    return bench
