"""A batch through the handler without Faust: validation, dead letters, writes, metrics, retries."""

from __future__ import annotations

import asyncio
import platform
import time
from collections.abc import Sequence

import numpy as np
import orjson
import psutil
import pytest
from prometheus_client import REGISTRY
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from shopstream.contracts.lists import RecList
from shopstream.models import events
from shopstream.models.engine import RecommenderStack, StackConfig
from shopstream.producers.synthetic import SyntheticTraffic
from shopstream.streams import batch, metrics
from shopstream.streams.batch import BatchHandler, DeadLetterSend, Record
from shopstream.streams.redis_sink import RedisSink
from shopstream.streams.sink import RetryingWriter, Sink
from tests.fakes import MemorySink

STEP = 40_000  # the worker's default SHOPSTREAM_BATCH_STEP_EVENTS


def handler_for(stack: RecommenderStack, sink: Sink, send: DeadLetterSend, step_events: int = STEP) -> BatchHandler:
    return BatchHandler(stack, RetryingWriter(sink), send, step_events)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def record(*events: object, raw: bytes | None = None, age_s: float = 0.5) -> Record:
    return Record(b"s1", raw if raw is not None else orjson.dumps(list(events)), time.time() - age_s)


async def test_valid_events_are_learned_and_rejects_dead_lettered() -> None:
    sink, letters = MemorySink(), []

    async def send(records: list[tuple[bytes | None, bytes]]) -> None:
        letters.extend(records)

    handler = handler_for(RecommenderStack(StackConfig(session_model="transitions")), sink, send)
    now = time.time()
    good = {"event_id": "h1", "ts": now, "session_id": "s1", "type": "view", "item_id": "i1"}
    before = (metric("shopstream_events_total", type="view", outcome="processed"),
              metric("shopstream_dlq_events_total", reason="unknown_type"),
              metric("shopstream_dlq_events_total", reason="invalid_json"),
              metric("shopstream_freshness_seconds_count", kind="session"))
    carried = await handler.handle([record(good, {**good, "event_id": "h2", "type": "teleport"}),
                                    record(raw=b"not json")])
    assert carried == 3
    assert [orjson.loads(v)["reason"] for _, v in letters] == ["unknown_type", "invalid_json"]
    assert [key for key, _ in letters] == [b"s1", b"s1"]
    assert orjson.loads(letters[0][1])["raw"] == {**good, "event_id": "h2", "type": "teleport"}
    # the session tier's write, then the deferred tier's (the default policy runs it after every step)
    assert [{(r.kind, r.id) for r in batch} & {("session", "s1"), ("trending", "all")} for batch in sink.batches] == [
        {("session", "s1")}, {("trending", "all")}]
    after = (metric("shopstream_events_total", type="view", outcome="processed"),
             metric("shopstream_dlq_events_total", reason="unknown_type"),
             metric("shopstream_dlq_events_total", reason="invalid_json"),
             metric("shopstream_freshness_seconds_count", kind="session"))
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1, 1]
    freshness_sum = metric("shopstream_freshness_seconds_sum", kind="session")
    assert freshness_sum >= 0.5  # the record was 0.5 s old when its key was written


async def test_records_of_valid_events_skip_the_per_event_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The generator's traffic is what the worker sees when all is well: it must not fall back per event."""
    sink = MemorySink()

    async def send(records: list[tuple[bytes | None, bytes]]) -> None:
        raise AssertionError("no dead letters expected")

    def slow(*_: object) -> None:
        raise AssertionError("took the per-event path")

    monkeypatch.setattr(events, "decode_events", slow)
    monkeypatch.setattr(events, "parse_event", slow)
    handler = handler_for(RecommenderStack(), sink, send)
    generated = SyntheticTraffic(seed=3, start_ts=time.time() - 600, rate=1.0).take(600)
    assert await handler.handle([record(*generated[i : i + 200]) for i in range(0, 600, 200)]) == 600
    assert sink.batches


async def test_a_failing_sink_fails_the_batch_so_it_is_not_acknowledged() -> None:
    class BrokenSink(MemorySink):
        async def write(self, lists: Sequence[RecList], updated_at: float) -> None:
            raise RuntimeError("disk on fire")

    async def send(records: list[tuple[bytes | None, bytes]]) -> None:
        raise AssertionError("dead letters must wait for the Redis write")

    handler = handler_for(RecommenderStack(), BrokenSink(), send)
    good = {"event_id": "b1", "ts": time.time(), "session_id": "s1", "type": "view", "item_id": "i1"}
    with pytest.raises(RuntimeError):
        await handler.handle([record(good), record(raw=b"{")])


async def test_a_large_batch_is_learned_and_written_in_steps() -> None:
    sink = MemorySink()

    async def send(records: list[tuple[bytes | None, bytes]]) -> None:
        return None

    handler = handler_for(RecommenderStack(), sink, send, 2)
    now = time.time()
    events = [{"event_id": f"st{i}", "ts": now, "session_id": f"s{i}", "type": "view", "item_id": "i1"}
              for i in range(5)]
    assert await handler.handle([record(*events)]) == 5
    sessions = [sorted(r.id for r in batch if r.kind == "session") for batch in sink.batches]
    assert [ids for ids in sessions if ids] == [["s0", "s1"], ["s2", "s3"], ["s4"]]
    assert len(sessions) > 3  # each step writes its session lists, then the deferred tier's


class FlakyRedis:
    """A redis-py client stand-in whose first script call fails with ``first_error``."""

    def __init__(self, first_error: Exception) -> None:
        self.calls, self.written, self.first_error = 0, [], first_error

    def register_script(self, lua: str) -> object:
        assert "'SET', KEYS[i], ARGV[2 * i - 1], 'EX', ARGV[2 * i]" in lua

        async def call(keys: list[str], args: list[object]) -> None:
            """What the script does: KEYS[i] gets ARGV[2i-1] with ARGV[2i] seconds to live."""
            self.calls += 1
            if self.calls == 1:
                raise self.first_error
            self.written.extend(zip(keys, args[0::2], args[1::2], strict=True))

        return call


@pytest.mark.parametrize("first_error", [RedisConnectionError("reset by peer"),
                                         ResponseError("OOM command not allowed when used memory > 'maxmemory'")])
async def test_the_sink_retries_until_redis_answers_and_writes_every_key_with_a_ttl(first_error: Exception) -> None:
    client = FlakyRedis(first_error)
    writer = RetryingWriter(RedisSink(client, "p:", {"session": 60, "trending": 30}))  # type: ignore[arg-type]
    retries = metric("shopstream_redis_retries_total")
    await writer.write([RecList("session", "s1", "m", ["a"], [1.0], 0.0), RecList("trending", "all", "m", [], [], 0.0)])
    assert client.calls == 2 and metric("shopstream_redis_retries_total") == retries + 1
    assert [(key, ex) for key, _, ex in client.written] == [("p:rec:session:s1", 60), ("p:rec:trending", 30)]
    assert orjson.loads(client.written[0][1])["items"] == ["a"]


async def test_an_idle_stream_still_gets_its_throttled_lists() -> None:
    sink = MemorySink()

    async def send(records: list[tuple[bytes | None, bytes]]) -> None:
        return None

    handler = handler_for(RecommenderStack(StackConfig(trending_refresh_s=0.2)), sink, send)
    now = time.time()
    first = {"event_id": "f1", "ts": now, "session_id": "s1", "type": "view", "item_id": "i1"}
    await handler.handle([record(first)])
    await handler.handle([record({**first, "event_id": "f2", "item_id": "i2"})])
    assert "trending" not in {r.kind for r in sink.batches[-1]}
    time.sleep(0.25)
    await handler.flush_idle(1.0)  # not idle for a second yet: the batches' own deferred policy has it
    assert "trending" not in {r.kind for r in sink.batches[-1]}
    await handler.flush_idle(0.2)
    assert "trending" in {r.kind for r in sink.batches[-1]}


async def test_the_event_loop_answers_while_a_step_runs_and_the_stack_is_locked() -> None:
    """A long step (a catch-up's) runs in a thread: the loop keeps serving, and waits for the stack."""

    class SlowStack(RecommenderStack):
        def process_sessions(self, batch):  # type: ignore[no-untyped-def]
            time.sleep(0.4)  # holds the GIL only in bytecode slices, as model code does
            return super().process_sessions(batch)

    async def send(_: list[tuple[bytes | None, bytes]]) -> None:
        return None

    handler = handler_for(SlowStack(), MemorySink(), send)
    now = time.time()
    batch = [record({"event_id": "t1", "ts": now, "session_id": "s1", "type": "view", "item_id": "i1"})]
    ticks: list[float] = []

    async def tick() -> None:
        while True:
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    started = time.perf_counter()
    handling = asyncio.create_task(handler.handle(batch))
    await asyncio.sleep(0.1)
    assert handler.lock.locked()  # the step holds the stack
    await handling
    ticker.cancel()
    assert len([t for t in ticks if started < t < started + 0.4]) >= 10


def test_freed_heap_pages_go_back_to_the_os() -> None:
    """glibc's malloc_trim is found wherever glibc is (CI, the Docker image); elsewhere it is a no-op."""
    glibc = platform.libc_ver()[0] == "glibc"
    assert (batch._MALLOC_TRIM is not None) == glibc
    rss = psutil.Process().memory_info
    chunks = [bytearray(4000) for _ in range(50_000)]  # ~200 MB on the heap, under glibc's mmap threshold
    survivors = chunks[::100]  # a few live chunks pin the heap: free() alone hands nothing back
    del chunks
    before = rss().rss
    batch.release_free_memory()
    assert not glibc or before - rss().rss > 100 * 2**20
    assert len(survivors) == 500


def test_lag_skips_partitions_not_fetched_yet_and_forgets_lost_ones() -> None:
    metrics.export_lag([(0, 5, 9), (1, 3, 3)])
    metrics.export_lag([(0, 5, None), (2, None, 9), (3, 3, 10)])  # a rebalance: 0 and 2 not fetched yet
    assert [metric("shopstream_kafka_consumer_lag", partition=p) for p in "0123"] == [0.0, 0.0, 0.0, 7.0]
    assert REGISTRY.get_sample_value("shopstream_kafka_consumer_lag", {"partition": "0"}) is None


async def test_a_cancelled_batch_keeps_the_stack_locked_until_its_step_ends() -> None:
    finished: list[bool] = []

    class SlowStack(RecommenderStack):
        def process_sessions(self, batch):  # type: ignore[no-untyped-def]
            time.sleep(0.3)
            out = super().process_sessions(batch)
            finished.append(True)
            return out

    async def send(_: list[tuple[bytes | None, bytes]]) -> None:
        return None

    handler = handler_for(SlowStack(), MemorySink(), send)
    event = {"event_id": "c1", "ts": time.time(), "session_id": "s1", "type": "view", "item_id": "i1"}
    handling = asyncio.create_task(handler.handle([record(event)]))
    await asyncio.sleep(0.1)
    handling.cancel()
    with pytest.raises(asyncio.CancelledError):
        await handling
    assert finished and not handler.lock.locked()  # the lock was held until the thread let go of the stack


async def test_poisoning_events_are_rejected_or_clamped_and_shared_lists_stay_finite() -> None:
    """The events that poisoned shared keys before value bounds: a 1e308 price, a 2**64 - 1 quantity, a clock
    an hour fast. A clock a few minutes fast is within the skew: learned at the worker's clock, not ahead of it."""
    sink, letters = MemorySink(), []

    async def send(records: list[tuple[bytes | None, bytes]]) -> None:
        letters.extend(orjson.loads(value) for _, value in records)

    handler = handler_for(RecommenderStack(StackConfig(forecast_window_s=1.0, forecast_lateness_s=0.0)), sink, send)
    now = time.time()

    def ev(n: str, **fields: object) -> dict:
        return {"event_id": n, "ts": now - 30, "session_id": "p", "type": "view", "item_id": "i1", **fields}

    history = [ev(f"h{i}{kind}", ts=now - 100 + i, session_id=f"h{i}", type=kind, quantity=2)
               for i in range(60) for kind in ("view", "purchase")]
    await handler.handle([record(*history)])
    poison = [ev("x1", type="add_to_cart", price=1e308, quantity=10), ev("x2", type="purchase"),
              ev("x3", type="purchase", quantity=2**64 - 1), ev("x4", ts=now + 3540, item_id="future"),
              ev("x5", ts=now + 200, item_id="soon")]
    await handler.handle([record(*poison)])
    await handler.handle([record(ev("a1", session_id="after"), ev("a2", session_id="after", item_id="i2"))])
    assert [(letter["reason"], letter["field"]) for letter in letters] == [
        ("bad_value", "price"), ("bad_value", "quantity"), ("bad_timestamp", "ts")]
    assert handler.stack._now <= time.time()
    lists = [rec for batch in sink.batches for rec in batch]
    assert all(np.isfinite(rec.scores).all() for rec in lists)
    forecasts = [value for rec in lists if rec.kind == "forecast_shop" for value in rec.extra["forecast"]]
    assert forecasts and max(forecasts) < 100  # two units a second in history
    after = [rec for rec in lists if (rec.kind, rec.id) == ("session", "after")]
    assert 0 <= after[0].extra["purchase_propensity"] <= 1


async def test_tombstones_and_huge_garbage_are_dead_lettered_and_the_next_events_learned() -> None:
    sink, letters = MemorySink(), []

    async def send(records: list[tuple[bytes | None, bytes]]) -> None:
        letters.extend(value for _, value in records)

    handler = handler_for(RecommenderStack(), sink, send)
    good = {"event_id": "t1", "ts": time.time(), "session_id": "s1", "type": "view", "item_id": "i1"}
    hostile = [Record(None, None, time.time()), record(raw=b""), record(raw=b"\x00\xff" * 1_048_576),
               record(raw=orjson.dumps({"x": "\x00" * 1_000_000}))]
    assert await handler.handle([*hostile, record(good)]) == 5
    # The binary's first 64 KiB escape to more than the letter may hold: a size violation, like the last.
    assert [orjson.loads(v)["reason"] for v in letters] == ["empty_record", "invalid_json", "size_violation",
                                                            "size_violation"]
    assert max(len(v) for v in letters) <= events.MAX_DEAD_LETTER_BYTES
    assert ("session", "s1") in {(r.kind, r.id) for r in sink.batches[0]}


async def test_live_steps_write_session_lists_and_the_deferred_tier_waits_for_its_policy() -> None:
    sink = MemorySink()

    async def send(_: list[tuple[bytes | None, bytes]]) -> None:
        return None

    handler = BatchHandler(RecommenderStack(StackConfig(session_model="transitions")), RetryingWriter(sink), send,
                           STEP, deferred=batch.DeferredPolicy(max_events=3, max_delay_s=60.0))
    now = time.time()
    view = {"event_id": "d1", "ts": now, "session_id": "s1", "type": "view", "item_id": "i1", "user_id": "u1"}
    await handler.handle([record(view, age_s=0.0)])
    await handler.handle([record({**view, "event_id": "d2", "item_id": "i2"}, age_s=0.0)])
    assert [{r.kind for r in lists} for lists in sink.batches] == [{"session"}, {"session"}]
    await handler.handle([record({**view, "event_id": "d3", "item_id": "i3"}, age_s=0.0)])  # the third is due
    assert {r.kind for r in sink.batches[-1]} >= {"user", "item", "trending"}
    await handler.handle([record({**view, "event_id": "d4", "item_id": "i4"}, age_s=0.0)])
    assert {r.kind for r in sink.batches[-1]} == {"session"}
    await handler.flush_idle(0.0)  # the idle timer runs what is pending
    assert handler.stack.deferred_backlog()[0] == 0
