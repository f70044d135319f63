"""Decoding + validating the worker's records: the per-event path against ``parse_record``, on the same records.

``python -m shopstream.bench.parse_throughput [--events 100000] [--window 5000] [--repeat 5]`` builds the
records of ``handler_throughput`` (the bench's record format, from the seeded generator) and prints the µs
per event of ``decode_events`` + ``parse_event`` per event, of ``parse_record``, and their ratio: the best of
``--repeat`` passes over all records each, with the worker's collector thresholds.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from shopstream.bench.handler_throughput import records
from shopstream.models.events import Event, decode_events, parse_event, parse_record
from shopstream.streams.batch import tune_process

Parse = Callable[[bytes, float], list[Event]]


def per_event(payload: bytes, now: float) -> list[Event]:
    """The worker's path before parse_record (all events of these records are valid)."""
    return [parse_event(raw, now) for raw in decode_events(payload)]


def whole_record(payload: bytes, now: float) -> list[Event]:
    events, rejects = parse_record(payload, now)
    assert not rejects
    return events


def best_seconds(parse: Parse, payloads: list[bytes], now: float, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for payload in payloads:
            parse(payload, now)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    tune_process()  # as the worker does
    payloads = [record.value for record in records(args.events, args.window)]
    now = time.time()
    if [whole_record(p, now) for p in payloads] != [per_event(p, now) for p in payloads]:
        raise SystemExit("parse_record and parse_event disagree on these records")
    old, new = (best_seconds(parse, payloads, now, args.repeat) / args.events * 1e6
                for parse in (per_event, whole_record))
    print(f"{args.events:,} events in {len(payloads):,} records: decode_events + parse_event {old:.2f} µs/event, "
          f"parse_record {new:.2f} µs/event ({old / new:.1f}x faster)")


if __name__ == "__main__":
    main()
