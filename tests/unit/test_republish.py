"""Lists held by the worker are written again when the store says it lost its data; shutdown stays bounded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest
from prometheus_client import REGISTRY

from shopstream.contracts.lists import RecList
from shopstream.models.engine import RecommenderStack, StackConfig
from shopstream.models.events import Event
from shopstream.models.ownership import KeyOwner
from shopstream.streams import republish
from shopstream.streams.batch import BatchHandler
from shopstream.streams.checkpoint import dump_stack, load_stack
from shopstream.streams.republish import RepublishOnLoss, write_replayed
from shopstream.streams.sink import RetryingWriter, RetryPolicy, SinkError


class EpochSink:
    """A store that keeps what it is given and whose contents can be 'lost' (a new epoch) or unreachable."""

    def __init__(self) -> None:
        self.keys: dict[tuple[str, str], list[str]] = {}
        self.token = "first"
        self.down = False

    async def write(self, lists: Sequence[RecList], updated_at: float) -> None:
        if self.down:
            raise SinkError("down")
        self.keys.update({(rec.kind, rec.id): rec.items for rec in lists})

    async def ping(self) -> bool:
        return not self.down

    async def epoch(self) -> str:
        if self.down:
            raise SinkError("down")
        return self.token

    async def close(self) -> None:
        return None

    def lose_everything(self, token: str) -> None:
        self.keys.clear()
        self.token = token


def events(n_sessions: int, start: float = 1e9) -> list[tuple[Event, float]]:
    """Two views per session; the last batch is ten minutes of event time later, so throttled lists are due."""
    out = []
    for s in range(n_sessions):
        for i in range(2):
            out.append((Event(f"e{s}-{i}", start + s, f"s{s}", "view", f"i{(s + i) % 7}", user_id=f"u{s % 5}",
                              category=f"c{s % 3}"), 0.0))
    return out


async def handler_with_lists(sink: EpochSink) -> BatchHandler:
    async def no_letters(records: list[tuple[bytes | None, bytes]]) -> None:
        return None

    handler = BatchHandler(RecommenderStack(StackConfig(top_k=5)), RetryingWriter(sink), no_letters, 40_000)
    stack = handler.stack
    for batch in (events(30), [(Event("late", 1e9 + 600, "s-late", "view", "i1"), 0.0)]):
        await handler.writer.write(stack.process(batch).lists)
    return handler


def republished(kind: str) -> float:
    return REGISTRY.get_sample_value("shopstream_republished_keys_total", {"kind": kind}) or 0.0


async def test_the_held_lists_reappear_after_the_store_lost_them() -> None:
    sink = EpochSink()
    handler = await handler_with_lists(sink)
    before = dict(sink.keys)
    assert {kind for kind, _ in before} >= {"session", "user", "item", "trending", "category"}
    watch = RepublishOnLoss(sink, handler, rate=1e6)
    assert await watch.check() == 0  # the first epoch is only recorded
    assert await watch.check() == 0  # unchanged: nothing to do

    sink.lose_everything("second")
    sessions_before = republished("session")
    assert await watch.check() == len(before)
    assert sink.keys.keys() == before.keys()
    assert republished("session") - sessions_before == sum(kind == "session" for kind, _ in before)
    assert await watch.check() == 0


async def test_a_loss_voids_the_written_slots_until_the_held_ones_are_republished() -> None:
    sink = EpochSink()
    handler = await handler_with_lists(sink)
    handler.stack.owner = KeyOwner(4, frozenset({0, 1, 2, 3}))
    watch = RepublishOnLoss(sink, handler, rate=1e6)
    await watch.check()
    handler.written_slots = {0, 1}
    assert await watch.check() == 0 and handler.written_slots == {0, 1}
    sink.lose_everything("second")
    assert await watch.check() > 0
    assert handler.written_slots == {0, 1, 2, 3} and handler.written_epoch == "second" and watch.losses == 1


async def test_dealt_slots_are_republished_then_count_as_written() -> None:
    sink = EpochSink()
    handler = await handler_with_lists(sink)
    handler.stack.owner = KeyOwner(4, frozenset({0, 1, 2}))
    watch = RepublishOnLoss(sink, handler, rate=1e6)
    written = await watch.write_slots(frozenset({1, 3}))  # slot 3 was taken away meanwhile
    dealt = KeyOwner(4, frozenset({1, 3}))
    assert 0 < written <= sum(dealt(key) for _, ids in handler.stack.held_lists() for key in ids)
    assert handler.written_slots == {1}


def written(kind: str) -> float:
    return REGISTRY.get_sample_value("shopstream_redis_keys_written_total", {"kind": kind}) or 0.0


async def test_a_replay_held_back_writes_the_lists_it_touched_of_the_slots_held_once_released() -> None:
    """A restored worker replays holding its lists back until the group deals it slots: then the lists the replay
    touched of the slots it holds are written (as the replay's, not as a republish), each once."""
    sink = EpochSink()
    handler = await handler_with_lists(sink)
    stack = handler.stack
    stack.hold_back()
    replay = [(Event(f"r{i}", 1e9 + 700 + i, f"replayed-{i % 12}", "view", "i3"), 0.0) for i in range(24)]
    assert stack.process(replay[:12]).lists == []
    # A checkpoint taken meanwhile carries the keys held back, and its restore goes on holding them.
    stack = handler.stack = load_stack(dump_stack(stack))
    stack.hold_back()
    stack.owner = KeyOwner(4, frozenset({0, 1}))  # dealt two slots meanwhile
    assert stack.process(replay[12:]).lists == []
    sink.keys.clear()
    republished_before, written_before = republished("session"), written("session")
    count = await write_replayed(handler)

    held = KeyOwner(4, frozenset({0, 1}))
    sessions = {key for kind, key in sink.keys if kind == "session"}
    assert sessions == {f"replayed-{i}" for i in range(12) if held(f"replayed-{i}")} != set()
    assert {key for _, key in sink.keys if not held(key)} == set() and count == len(sink.keys)
    assert republished("session") == republished_before
    assert written("session") - written_before == len(sessions)
    assert await write_replayed(handler) == 0  # the hold has ended: lists are built as events come
    mine = min(sessions)
    out = stack.process([(Event("live", 1e9 + 800, mine, "view", "i4"), 0.0)])
    assert ("session", mine) in {(rec.kind, rec.id) for rec in out.lists}


def test_a_replay_that_touched_more_keys_than_the_session_cap_writes_every_held_list() -> None:
    """The keys held back are bounded: past the session cap, the deal writes every held list instead."""
    stack = RecommenderStack(StackConfig(top_k=5, max_sessions=5))
    stack.hold_back()
    stack.process([(Event(f"r{i}", 1e9 + 700 + i, f"replayed-{i}", "view", "i3"), 0.0) for i in range(12)])
    assert stack.release_held_back() == stack.held_lists()


async def test_a_restored_epoch_is_compared_at_the_first_check() -> None:
    sink = EpochSink()
    handler = await handler_with_lists(sink)
    handler.written_epoch = "before-the-restart"  # what the worker's own checkpoint said
    assert await RepublishOnLoss(sink, handler, rate=1e6).check() > 0


async def test_an_unreachable_store_is_checked_again_later() -> None:
    sink = EpochSink()
    handler = await handler_with_lists(sink)
    watch = RepublishOnLoss(sink, handler, rate=1e6)
    await watch.check()
    sink.down = True
    assert await watch.check() == 0
    sink.down = False
    sink.lose_everything("second")
    assert await watch.check() > 0


async def test_republishing_keeps_to_its_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    sink = EpochSink()
    handler = await handler_with_lists(sink)
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def record_sleep(seconds: float) -> None:
        slept.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(republish.asyncio, "sleep", record_sleep)
    written = await republish.republish(handler, rate=100.0, chunk=10)
    assert written == len(sink.keys)
    # Each chunk waits out the rest of its share of time (its own work took some of it).
    assert written / 100.0 - 0.5 <= sum(slept) <= written / 100.0


async def test_a_batch_is_not_overwritten_by_an_older_rebuild() -> None:
    """The stack's lock is held from a chunk's rebuild to its write."""
    sink = EpochSink()
    handler = await handler_with_lists(sink)
    entered = asyncio.Event()
    release = asyncio.Event()
    original = sink.write

    async def slow_write(lists: Sequence[RecList], updated_at: float) -> None:
        entered.set()
        await release.wait()
        await original(lists, updated_at)

    sink.write = slow_write  # type: ignore[method-assign]
    task = asyncio.create_task(republish.republish(handler, rate=1e6))
    await entered.wait()
    assert handler.lock.locked()
    release.set()
    await task


def test_the_writer_says_what_it_is_retrying() -> None:
    sink = EpochSink()
    sink.down = True
    writer = RetryingWriter(sink, RetryPolicy(initial_s=0.01, max_s=0.01))
    assert writer.describe() == "no write being retried"

    async def run() -> str:
        task = asyncio.create_task(writer.write([RecList("trending", "all", "m", ["a"], [1.0], time.time())]))
        await asyncio.sleep(0.05)
        described = writer.describe()
        sink.down = False
        await task
        return described

    assert asyncio.run(run()).startswith("a write of 1 lists failing for")
    assert writer.describe() == "no write being retried"
