"""Redis is a cache of the workers' state: when it comes back empty, the lists the worker holds are written again.

A session that gets no new event would otherwise never get its list back (nor would a quiet item, user or
category) until the worker restarts. The store's :meth:`~shopstream.streams.sink.Sink.epoch` changes when it
lost its data; :class:`RepublishOnLoss` checks it on a timer and then rebuilds the stack's held lists from the
models (not from a copy of what was written: the models may have learned since) and writes them through the
worker's writer, in chunks, at most ``rate`` lists a second so the repair does not crowd out live batches.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence

from prometheus_client import Counter

from shopstream.models.ownership import KeyOwner
from shopstream.streams import metrics
from shopstream.streams.batch import BatchHandler
from shopstream.streams.sink import Sink, SinkError

log = logging.getLogger(__name__)

#: Lists rebuilt and written at once; the stack's lock is held meanwhile, so live batches wait at most one chunk.
CHUNK = 500


async def republish(
    handler: BatchHandler, rate: float, chunk: int = CHUNK, owner: Callable[[str], bool] | None = None,
    held: Sequence[tuple[str, Sequence[str]]] | None = None, counter: Counter = metrics.REPUBLISHED,
) -> int:
    """Write again the lists ``held`` names per kind (default: every list the handler's stack holds) of the keys
    ``owner`` says (default: those the stack writes), at most ``rate`` lists a second, counted by kind in
    ``counter``; returns how many.

    Each chunk is rebuilt and written under the stack's lock, so a batch's fresher list of the same key is
    never overwritten by an older rebuild."""
    owns = owner or handler.stack.owner
    if held is None:
        async with handler.lock:
            held = handler.stack.held_lists()
    written = 0
    for kind, all_ids in held:
        ids = [key for key in all_ids if owns(key)]
        for start in range(0, len(ids), chunk):
            began = time.monotonic()
            async with handler.lock:
                lists = handler.stack.rebuild(kind, ids[start : start + chunk])
                await handler.writer.write(lists)
            counter.labels(kind).inc(len(lists))
            written += len(lists)
            await asyncio.sleep(max(0.0, len(lists) / rate - (time.monotonic() - began)))
    return written


async def write_replayed(handler: BatchHandler) -> int:
    """End a restored worker's hold-back (``RecommenderStack.hold_back``): write the lists its replay touched, of
    the slots it holds now, at once and counted as written keys (they are the replay's, not a repair). The batch
    lock is held throughout, so no checkpoint falls between the end of the hold-back and those writes: one
    taken before carries the held-back keys, one taken after follows the writes."""
    async with handler.batch_lock:
        async with handler.lock:
            replayed = handler.stack.release_held_back()
        if replayed is None:
            return 0
        return await republish(handler, math.inf, held=replayed, counter=metrics.KEYS_WRITTEN)


class RepublishOnLoss:
    """Republishes the held lists when the store's epoch changes from the one the handler's lists were written to
    (the first epoch a fresh worker sees is only recorded; a restored one starts from its checkpoint's), and the
    lists of key slots dealt to the worker; either way the slots then count as written (``written_slots``)."""

    def __init__(self, sink: Sink, handler: BatchHandler, rate: float) -> None:
        self.sink = sink
        self.handler = handler
        self.rate = rate
        self.losses = 0  # store data losses seen: a republish begun before one vouches for nothing

    async def write_slots(self, slots: frozenset[int]) -> int:
        """Republish every held list of ``slots``; then, unless the store lost its data meanwhile, the handler
        has written every list of those it still holds. Returns the lists republished."""
        handler, losses = self.handler, self.losses
        written = await republish(handler, self.rate, owner=KeyOwner(handler.stack.owner.slots, slots))
        if self.losses == losses:
            handler.written_slots |= slots & handler.stack.owner.held
        return written

    async def check(self) -> int:
        """Compare the store's epoch with the handler's; returns the lists republished."""
        try:
            current = await self.sink.epoch()
        except SinkError:
            return 0  # the store is down: the writer's retries report it; check again on the next tick
        handler = self.handler
        previous, handler.written_epoch = handler.written_epoch, current
        if previous is None or previous == current:
            return 0
        handler.written_slots.clear()  # what they vouched for is gone with the store's data
        self.losses += 1
        log.warning("Redis lost its data (epoch %s -> %s): publishing the held lists again", previous, current)
        started = time.monotonic()
        written = await self.write_slots(handler.stack.owner.held)
        log.warning("republished %d lists in %.1f s", written, time.monotonic() - started)
        return written
