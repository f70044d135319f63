"""Publishing an event stream at a chosen pace: a fixed rate, a speed-up of its own clock, or flat out.

Each event gets a due time (its index over the rate, or its timestamp offset over the speed-up);
every tick (20 ms), everything due is sent in one call, which the publisher groups per partition, so a
paced producer makes records of several events, as a batching tracker would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

Event = dict[str, Any]


class Publisher(Protocol):
    async def publish(self, events: Iterable[Event]) -> int: ...


def due_times(events: Iterable[Event], rate: float | None, speedup: float | None) -> Iterator[tuple[float, Event]]:
    """Seconds after the start at which each event should be sent.

    >>> [t for t, _ in due_times([{"ts": 10.0}, {"ts": 12.0}], rate=None, speedup=2.0)]
    [0.0, 1.0]
    >>> [t for t, _ in due_times([{"ts": 0}, {"ts": 0}, {"ts": 0}], rate=2.0, speedup=None)]
    [0.0, 0.5, 1.0]
    """
    if rate is not None and speedup is not None:
        raise ValueError("choose a rate or a speed-up, not both")
    first_ts: float | None = None
    for index, event in enumerate(events):
        if rate is not None:
            yield index / rate, event
        elif speedup is not None:
            first_ts = event["ts"] if first_ts is None else first_ts
            yield (event["ts"] - first_ts) / speedup, event
        else:
            yield 0.0, event


async def publish_paced(
    publisher: Publisher,
    events: Iterable[Event],
    rate: float | None = None,
    speedup: float | None = None,
    tick_s: float = 0.02,
    chunk: int = 5000,
) -> int:
    """Publish ``events`` on schedule; returns how many were sent (all acknowledged)."""
    schedule = due_times(events, rate, speedup)
    start = time.monotonic()
    sent = 0
    pending: tuple[float, Event] | None = None
    exhausted = False
    while True:
        elapsed = time.monotonic() - start
        batch: list[Event] = []
        while len(batch) < chunk:
            item, pending = pending or next(schedule, None), None
            if item is None:
                exhausted = True
                break
            if item[0] > elapsed:
                pending = item
                break
            batch.append(item[1])
        if batch:
            await publisher.publish(batch)
            sent += len(batch)
        if exhausted:
            return sent
        if pending is not None:
            # Until the next tick, or the next due event if that is later: a call carries a tick's events
            # (records of several events each), not the one or two due while the last call was acked.
            now = time.monotonic() - start
            next_tick = elapsed + tick_s
            await asyncio.sleep(max(0.0, max(next_tick, pending[0]) - now))
