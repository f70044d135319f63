"""shopstream: real-time recommendations for online shops. ``shopstream --help`` lists the commands."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Iterator
from typing import Any

REPLAY_FORMATS = ("retailrocket", "jsonl")


def _publish(
    events: Iterator[dict[str, Any]], rate: float | None, speedup: float | None, collector: str | None = None,
    write_key: str = "",
) -> int:
    """Publish to the events topic configured in the environment, or through the collector at ``collector``
    with ``write_key``; returns events sent."""
    from shopstream.config.settings import CollectorSettings, load
    from shopstream.config.topics import ensure_pipeline_topics
    from shopstream.producers.collector_client import CollectorClient
    from shopstream.producers.kafka_publisher import EventPublisher
    from shopstream.producers.pacing import publish_paced

    settings = load(CollectorSettings)

    async def run() -> int:
        publisher: EventPublisher | CollectorClient
        if collector:
            publisher = CollectorClient(collector, write_key, settings.max_events_per_request)
        else:
            await ensure_pipeline_topics(settings)
            publisher = EventPublisher.from_settings(settings)
        await publisher.start()
        try:
            return await publish_paced(publisher, events, rate=rate, speedup=speedup)
        finally:
            await publisher.stop()

    return asyncio.run(run())


def _generate(args: argparse.Namespace) -> int:
    import itertools
    import time

    import orjson

    from shopstream.producers.synthetic import SyntheticTraffic

    live = args.rate is not None and args.out is None
    traffic = SyntheticTraffic(
        seed=args.seed,
        start_ts=time.time() if live else args.start_ts,
        rate=args.rate or 1000.0,
    )
    events = itertools.islice(iter(traffic), args.events)
    if args.out:
        with open(args.out, "wb") as out:
            for event in events:
                out.write(orjson.dumps(event) + b"\n")
        print(f"wrote {args.events} events to {args.out}")
        return 0
    if args.collector and not args.write_key:
        sys.exit("generate --collector needs --write-key (or SHOPSTREAM_WRITE_KEY)")
    from shopstream.producers.collector_client import CollectorError

    try:
        sent = _publish(events, rate=args.rate, speedup=None, collector=args.collector, write_key=args.write_key)
    except CollectorError as exc:
        sys.exit(f"generate: {exc}")
    print(f"published {sent} events")
    return 0


def _replay(args: argparse.Namespace) -> int:
    from shopstream.models.evaluation.loaders import load_jsonl, load_retailrocket

    loader = {"retailrocket": load_retailrocket, "jsonl": load_jsonl}[args.format]
    events = (event.to_dict() for event in loader(args.path))
    sent = _publish(events, rate=args.rate, speedup=args.speedup)
    print(f"replayed {sent} events from {args.path}")
    return 0


def _worker(args: argparse.Namespace) -> int:
    from shopstream.streams.app import main as worker_main

    worker_main()
    return 0


def _collector(args: argparse.Namespace) -> int:
    from shopstream.producers.collector import main as collector_main

    collector_main()
    return 0


def build_parser() -> argparse.ArgumentParser:
    from shopstream.cli import bench_cli, demo, evaluate


    parser = argparse.ArgumentParser(prog="shopstream", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("worker", help="run the stream worker (Kafka → models → Redis)").set_defaults(func=_worker)
    sub.add_parser("collector", help="run the HTTP collector trackers post to").set_defaults(func=_collector)

    gen = sub.add_parser("generate", help="publish (or write) seeded synthetic traffic")
    gen.add_argument("--events", type=int, default=100_000)
    gen.add_argument("--rate", type=float, default=None, help="events/s (default: as fast as possible)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--start-ts", type=float, default=1.7e9, help="first timestamp when not live")
    gen.add_argument("--out", help="write JSONL here instead of publishing to Kafka")
    gen.add_argument("--collector", help="post to the collector at this URL (as a tracker) instead of to Kafka")
    gen.add_argument("--write-key", default=os.environ.get("SHOPSTREAM_WRITE_KEY", ""),
                     help="the write key to post with (default: $SHOPSTREAM_WRITE_KEY)")
    gen.set_defaults(func=_generate)

    rep = sub.add_parser("replay", help="stream a recorded clickstream file into Kafka")
    rep.add_argument("path")
    rep.add_argument("--format", choices=REPLAY_FORMATS, default="jsonl")
    pace = rep.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=float, help="events/s")
    pace.add_argument("--speedup", type=float, help="multiple of the recorded timestamps' pace")
    rep.set_defaults(func=_replay)

    demo.add_parser(sub)
    evaluate.add_parser(sub)
    bench_cli.add_parser(sub)

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
