"""Hostile request bodies for the collector, and a command that sends many of them at a running one.

The bodies start from valid schema-v1 events and break them the ways clients and attackers do: fields
dropped, added or of the wrong type, values at and past the bounds (prices of 1e308, quantities of 2**64 - 1,
timestamps an hour ahead), deep or huge properties, invalid UTF-8, broken NDJSON lines, truncated JSON, bodies
over the size and event-count limits, and plain random bytes. The Hypothesis suite (tests/unit/test_fuzz.py)
draws from the same generator; this command runs it at scale against a collector (and its worker) and
counts the outcomes::

    python -m shopstream.bench.fuzz_collector --cases 100000 --url http://127.0.0.1:8080 --key KEY \
        [--worker-url http://127.0.0.1:6066]

The invariant it reports on: every event is accepted or dead-lettered with a reason, no request is answered
5xx, and the collector is still alive at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import string
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from shopstream.bench.scrape import samples

_TYPES = ("view", "add_to_cart", "remove_from_cart", "purchase", "impression")
_FIELDS = ("event_id", "ts", "session_id", "type", "item_id", "user_id", "price", "quantity", "category",
           "properties", "v")


def _deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"d": value}
    return value


#: Values that have broken something somewhere: bounds, types, encodings (the clock's own in hostile_value).
_HOSTILE: tuple[Any, ...] = (
    None, True, False, 0, -1, 1, 2**31, 2**63 - 1, 2**63, 2**64 - 1, 10**30, -(10**30), 0.0, -0.0, 1e-320,
    1e308, -1e308, 1.7976931348623157e308, 1e6, 1e6 + 1, 10_000, 10_001, "", " ", "\x00", "\u202e", "\ud7ff",
    "x" * 129, "x" * 128, "é" * 64, "1e308", "NaN", "Infinity", [], [1, 2], {}, {"a": None}, _deep(9),
    _deep(300), 946_684_799, "2026-01-01T00:00:00", "2026-01-01T00:00:00+00:00", "9999-12-31T23:59:59+00:00",
    "0001-01-01T00:00:00Z", "not a date", {"nested": ["x" * 1000] * 5},
)


def hostile_value(rng: random.Random, now: float) -> Any:
    """One of the values above, or a timestamp around the clock: now, a little and an hour ahead, long ago."""
    if rng.random() < 0.15:
        return now + rng.choice((0, 200, 299, 301, 3540, -86400 * 365 * 30))
    return rng.choice(_HOSTILE)


def valid_event(rng: random.Random, now: float) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": f"fz-{rng.getrandbits(64):016x}", "ts": now - rng.random() * 600,
        "session_id": f"fs-{rng.randrange(500)}", "type": rng.choice(_TYPES), "item_id": f"fi-{rng.randrange(2000)}",
    }
    if rng.random() < 0.5:
        event["user_id"] = f"fu-{rng.randrange(300)}"
    if rng.random() < 0.5:
        event["category"] = f"fc-{rng.randrange(20)}"
    if event["type"] in ("add_to_cart", "purchase") and rng.random() < 0.8:
        event["price"] = round(rng.uniform(0.5, 500.0), 2)
        event["quantity"] = rng.randint(1, 5)
    return event


def fuzz_event(rng: random.Random, now: float) -> Any:
    """A valid event with up to three mutations (a fifth stay valid), or now and then no object at all."""
    if rng.random() < 0.03:
        return hostile_value(rng, now)
    event = valid_event(rng, now)
    for _ in range(rng.choice((0, 1, 1, 2, 3))):
        mutation = rng.randrange(6)
        name = rng.choice(_FIELDS)
        if mutation == 0:
            event.pop(name, None)
        elif mutation in (1, 2):
            event[name] = hostile_value(rng, now)
        elif mutation == 3:
            event["".join(rng.choices(string.printable, k=rng.randint(1, 12)))] = hostile_value(rng, now)
        elif mutation == 4:
            event["properties"] = {f"k{i}": hostile_value(rng, now) for i in range(rng.choice((1, 5, 33)))}
        else:
            event[rng.choice(("event_id", "session_id", "item_id", "category", "user_id"))] = "".join(
                chr(rng.randrange(0x110000) if rng.random() < 0.5 else rng.randrange(32)) for _ in range(8)
            ).encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return event


def encode_lenient(value: Any) -> bytes:
    """JSON where orjson can, else the value's Python text (itself a hostile body)."""
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):  # too deep or an integer beyond 64 bits: the text form
        return repr(value).encode()


@dataclass(frozen=True, slots=True)
class Body:
    data: bytes
    content_type: str


def fuzz_body(rng: random.Random, now: float, max_events: int = 500) -> Body:
    """One request body: an array, an NDJSON stream or a single event of fuzzed events, or raw damage."""
    kind = rng.random()
    if kind < 0.04:
        return Body(rng.randbytes(rng.choice((0, 1, 64, 4096))), rng.choice(("application/json", "text/plain")))
    if kind < 0.06:  # over the event-count limit
        return Body(orjson.dumps([valid_event(rng, now) for _ in range(max_events + 1)]), "application/json")
    if kind < 0.08:  # nested deeper than JSON decoders go
        depth = rng.choice((9, 250, 254, 255, 600, 5000))
        deep = b'{"d":' * depth + b"1" + b"}" * depth
        event = encode_lenient(valid_event(rng, now))
        return Body(event[:-1] + b',"properties":' + deep + b"}" if rng.random() < 0.7 else deep, "application/json")
    events = [fuzz_event(rng, now) for _ in range(rng.choice((1, 1, 2, 5, 20)))]
    if kind < 0.45:
        data, content_type = b"[" + b",".join(map(encode_lenient, events)) + b"]", "application/json"
    elif kind < 0.8:
        lines = [encode_lenient(e) for e in events]
        if rng.random() < 0.3:
            lines.insert(rng.randrange(len(lines) + 1), rng.choice((b"{broken", b"\xff\xfe", b"NaN", b"[1,")))
        data, content_type = b"\n".join(lines), "application/x-ndjson"
    else:
        data, content_type = encode_lenient(events[0]), rng.choice(("application/json", "text/plain;charset=UTF-8"))
    if rng.random() < 0.05:  # cut short, or a byte flipped
        data = data[: rng.randrange(len(data) + 1)] if rng.random() < 0.5 else _flip(rng, data)
    return Body(data, content_type)


def _flip(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return data
    at = rng.randrange(len(data))
    return data[:at] + bytes([rng.randrange(256)]) + data[at + 1 :]


@dataclass
class Tally:
    payloads: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    accepted: int = 0
    rejected: int = 0
    transport_errors: Counter[str] = field(default_factory=Counter)


async def _send(url: str, key: str, cases: int, concurrency: int, seed: int) -> Tally:
    import aiohttp

    tally = Tally()
    rng = random.Random(seed)
    queue: asyncio.Queue[Body | None] = asyncio.Queue(maxsize=concurrency * 4)

    async def produce() -> None:
        for _ in range(cases):
            await queue.put(fuzz_body(rng, time.time()))
        for _ in range(concurrency):
            await queue.put(None)

    async def post(session: aiohttp.ClientSession) -> None:
        while (body := await queue.get()) is not None:
            tally.payloads += 1
            try:
                async with session.post(f"{url}/v1/events", data=body.data, params={"key": key},
                                        headers={"Content-Type": body.content_type}) as response:
                    tally.statuses[response.status] += 1
                    if response.status == 202:
                        answer = await response.json()
                        tally.accepted += answer["accepted"]
                        tally.rejected += answer["rejected"]
                    else:
                        await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                tally.transport_errors[type(exc).__name__] += 1

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        await asyncio.gather(produce(), *(post(session) for _ in range(concurrency)))
    return tally


def _scrape(url: str, name: str) -> dict[str, float]:
    import urllib.request

    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {dict(labels).get("reason", ""): value for labels, value in samples(text, name).items()}


def _alive(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def _delta(after: dict[str, float], before: dict[str, float]) -> dict[str, int]:
    return {k: int(v - before.get(k, 0.0)) for k, v in sorted(after.items()) if v - before.get(k, 0.0) > 0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000, help="request bodies to send")
    parser.add_argument("--url", required=True, help="the collector, e.g. http://127.0.0.1:8080")
    parser.add_argument("--key", required=True, help="a write key the collector accepts")
    parser.add_argument("--worker-url", help="the worker's web server, to count its dead letters too")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    collector_metric, worker_metric = "shopstream_collector_validation_failures_total", "shopstream_dlq_events_total"
    before = _scrape(args.url, collector_metric)
    worker_before = _scrape(args.worker_url, worker_metric) if args.worker_url else {}
    started = time.perf_counter()
    tally = asyncio.run(_send(args.url, args.key, args.cases, args.concurrency, args.seed))
    seconds = time.perf_counter() - started
    alive = _alive(args.url)
    server_errors = sum(n for status, n in tally.statuses.items() if status >= 500)
    lines = [
        f"payloads {tally.payloads} in {seconds:.0f} s; statuses {dict(sorted(tally.statuses.items()))}",
        f"events accepted {tally.accepted}, rejected {tally.rejected} (in 202 answers)",
        f"collector dead letters by reason {_delta(_scrape(args.url, collector_metric), before) if alive else '?'}",
        f"5xx {server_errors}; transport errors {dict(tally.transport_errors)}; collector alive after: {alive}",
    ]
    if args.worker_url:
        time.sleep(5.0)  # the worker's last batches
        lines.append(f"worker dead letters by reason {_delta(_scrape(args.worker_url, worker_metric), worker_before)}")
    print("\n".join(lines))
    return 0 if alive and not server_errors and not tally.transport_errors else 1


if __name__ == "__main__":
    sys.exit(main())
