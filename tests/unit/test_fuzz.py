"""Property-based fuzzing of the edge: the event parser, the collector and the worker's record path.

The invariant everywhere: every event is accepted or dead-lettered with a reason; bad input never gets a 5xx
or raises; nothing that is accepted can poison a shared list (no NaN or infinity, no absurd forecast, no event
time ahead of the wall clock). Inputs come from the generator ``shopstream fuzz_collector`` sends at a running
collector (bench/fuzz_collector.py), driven by Hypothesis, and from Hypothesis' own bytes and JSON. About
10^4 cases a run in total (the ``max_examples`` below).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopstream.bench.fuzz_collector import encode_lenient, fuzz_body, fuzz_event
from shopstream.config.settings import CollectorSettings
from shopstream.models import events
from shopstream.models.engine import RecommenderStack, StackConfig
from shopstream.models.events import DEFAULT_LIMITS, EARLIEST_TS, InvalidEvent, dead_letter, parse_event, parse_record
from shopstream.producers.collector import create_app, split_body
from shopstream.streams.batch import BatchHandler, Record
from shopstream.streams.sink import RetryingWriter
from tests.fakes import MemoryPublisher, MemorySink

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                      HealthCheck.filter_too_much])
#: Every reason a rejection may carry; ``internal_error`` (a check that raised) is deliberately not among them.
REASONS = {"not_an_object", "unknown_field", "bad_version", "missing_field", "wrong_type", "bad_id", "unknown_type",
           "bad_timestamp", "bad_value", "too_large", "invalid_json", "empty_record"}
KEY, SITE = "fuzz-site-key-0001", "https://shop.example"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def seeded() -> st.SearchStrategy[random.Random]:
    """A seeded generator for bench/fuzz_collector.py: its bodies draw thousands of numbers, which Hypothesis
    would otherwise record one by one (a failure names its seed instead of being shrunk)."""
    return st.integers(min_value=0, max_value=2**64).map(random.Random)


@st.composite
def records(draw: st.DrawFn) -> bytes | None:
    """A record value: fuzzed events as a JSON array or one object, any JSON, any bytes, or none at all."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.none() | st.binary(max_size=256))
    if kind == 1:
        return json.dumps(draw(json_values)).encode()  # big integers and NaN tokens included
    rng = draw(seeded())
    now = time.time()
    body = fuzz_body(rng, now)
    if kind < 5:
        return body.data
    return b"[" + b",".join(encode_lenient(fuzz_event(rng, now)) for _ in range(rng.randint(1, 8))) + b"]"


def assert_within_bounds(event: events.Event, now: float) -> None:
    limits = DEFAULT_LIMITS
    assert EARLIEST_TS <= event.ts <= now
    assert event.price is None or 0 <= event.price <= limits.max_price
    assert event.quantity is None or 1 <= event.quantity <= limits.max_quantity
    ids = [event.event_id, event.session_id, event.item_id, event.user_id or "x", event.category or "x"]
    assert all(0 < len(i) <= events.MAX_ID_LENGTH and i.isprintable() for i in ids)


def raw_count(payload: bytes | None) -> int:
    """How many events a record carries by the wire format: the verdicts must add up to it."""
    try:
        return len(events.decode_events(payload)) if payload is not None else 1
    except InvalidEvent:
        return 1


@settings(FUZZ, max_examples=5000)
@given(records())
def test_every_event_of_a_record_is_accepted_within_bounds_or_rejected_with_a_reason(payload: bytes | None) -> None:
    now = time.time()
    valid, rejects = parse_record(payload, now)
    assert len(valid) + len(rejects) == raw_count(payload)
    for event in valid:
        assert_within_bounds(event, now)
        assert parse_event(event.to_dict(), now).to_dict() == event.to_dict()  # the wire form parses the same
    for raw, error in rejects:
        assert error.reason in REASONS, error
        letter = dead_letter(raw, error, "worker", now)
        assert len(letter) <= events.MAX_DEAD_LETTER_BYTES
        assert orjson.loads(letter)["reason"] in REASONS | {"size_violation"}


# --- the collector, through its HTTP interface --------------------------------------------------------------


@pytest.fixture(scope="module")
def collector() -> Iterator[tuple[asyncio.AbstractEventLoop, TestClient, MemoryPublisher]]:
    """A collector with production limits on a loop of its own (Hypothesis drives it from a plain test)."""
    loop, publisher = asyncio.new_event_loop(), MemoryPublisher()
    config = CollectorSettings(write_keys=f"{KEY}={SITE}", rate_limit_per_key=0, rate_limit_per_address=0)
    client = TestClient(TestServer(create_app(config, publisher)), loop=loop)  # type: ignore[arg-type]
    loop.run_until_complete(client.start_server())
    try:
        yield loop, client, publisher
    finally:
        loop.run_until_complete(client.close())
        loop.close()


def expected_events(data: bytes, content_type: str) -> int:
    return len(split_body(data, content_type.split(";")[0]))


@settings(FUZZ, max_examples=3000)
@given(seeded(), st.binary(max_size=64), st.booleans())
def test_the_collector_answers_every_body_without_5xx_and_accounts_for_every_event(
    collector: tuple[asyncio.AbstractEventLoop, TestClient, MemoryPublisher], rng: random.Random, noise: bytes,
    use_noise: bool,
) -> None:
    loop, client, publisher = collector
    body = fuzz_body(rng, time.time())
    data, content_type = (noise, "application/json") if use_noise and rng.random() < 0.1 else (body.data,
                                                                                               body.content_type)
    seen_events, seen_letters = len(publisher.events), len(publisher.dead_letters)

    async def post() -> tuple[int, Any]:
        async with client.post("/v1/events", data=data, params={"key": KEY},
                               headers={"Content-Type": content_type}) as response:
            return response.status, await response.json()

    status, answer = loop.run_until_complete(post())
    assert status in (202, 413), (status, answer)
    if status == 413:
        assert answer["error"] in ("payload_too_large", "too_many_events")
        return
    assert answer["accepted"] + answer["rejected"] == expected_events(data, content_type)
    new_events, letters = publisher.events[seen_events:], publisher.dead_letters[seen_letters:]
    assert (len(new_events), len(letters)) == (answer["accepted"], answer["rejected"])
    now = time.time()
    for event in new_events:
        assert_within_bounds(parse_event(event, now), now)
    for _, letter in letters:
        assert len(letter) <= events.MAX_DEAD_LETTER_BYTES
        assert orjson.loads(letter)["reason"] in REASONS | {"size_violation"}


# --- the worker's record path ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def worker() -> Iterator[tuple[asyncio.AbstractEventLoop, BatchHandler, MemorySink, list[bytes]]]:
    """One handler over one stack for all examples: state builds up, as in a worker that has run a while."""
    loop, sink, letters = asyncio.new_event_loop(), MemorySink(), []

    async def send(records: list[tuple[bytes | None, bytes]]) -> None:
        letters.extend(value for _, value in records)

    stack = RecommenderStack(StackConfig(max_sessions=2000, max_items=2000, max_users=500))
    handler = BatchHandler(stack, RetryingWriter(sink), send, step_events=40_000)
    try:
        yield loop, handler, sink, letters
    finally:
        loop.close()


@settings(FUZZ, max_examples=2000)
@given(st.lists(records(), min_size=1, max_size=4))
def test_the_worker_learns_or_dead_letters_every_record_and_no_shared_list_is_poisoned(
    worker: tuple[asyncio.AbstractEventLoop, BatchHandler, MemorySink, list[bytes]], payloads: list[bytes | None],
) -> None:
    loop, handler, sink, letters = worker
    seen_batches, seen_letters = len(sink.batches), len(letters)
    batch = [Record(b"k", payload, time.time()) for payload in payloads]
    carried = loop.run_until_complete(handler.handle(batch))
    assert carried == sum(raw_count(p) for p in payloads)
    for letter in letters[seen_letters:]:
        assert len(letter) <= events.MAX_DEAD_LETTER_BYTES
        assert orjson.loads(letter)["reason"] in REASONS | {"size_violation"}
    assert handler.stack._now <= time.time()  # event time never runs ahead of the wall clock
    for rec in (rec for lists in sink.batches[seen_batches:] for rec in lists):
        assert all(math.isfinite(score) for score in rec.scores), rec
        if rec.kind.startswith("forecast"):
            assert all(0 <= v < 1e9 for v in rec.extra["forecast"]), rec
        propensity = (rec.extra or {}).get("purchase_propensity")
        assert propensity is None or 0.0 <= propensity <= 1.0, rec
