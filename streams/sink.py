"""Where recommendation lists go, and the delivery policy the worker applies whatever the store.

A :class:`Sink` stores a batch of lists whole or raises :class:`SinkError`; it never retries. The retry
policy lives in :class:`RetryingWriter`, once for every store: the worker's offsets are committed only after
``write`` returns, so a batch is retried until it is stored (at-least-once), with capped exponential backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from shopstream.contracts.lists import RecList
from shopstream.streams import metrics

log = logging.getLogger(__name__)


class SinkError(Exception):
    """A batch was not (or not wholly) stored; writing it again may succeed."""


class Sink(Protocol):
    """A store of recommendation lists (docs/architecture.md: adding a sink)."""

    async def write(self, lists: Sequence[RecList], updated_at: float) -> None:
        """Store every list, stamped ``updated_at`` (Unix seconds), or raise :class:`SinkError`."""

    async def ping(self) -> bool:
        """Whether the store answers now (readiness)."""

    async def epoch(self) -> str:
        """An id of the store's contents that changes when it lost them (restarted empty, flushed), so the
        worker knows to publish its lists again; raises :class:`SinkError` if the store does not answer."""

    async def close(self) -> None:
        """Release connections."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff between attempts: ``initial_s``, doubling up to ``max_s``."""

    initial_s: float = 0.05
    max_s: float = 5.0


class RetryingWriter:
    """Writes each batch through a sink until it is stored, and measures it.

    >>> class Flaky:
    ...     calls = 0
    ...     async def write(self, lists, updated_at):
    ...         Flaky.calls += 1
    ...         if Flaky.calls < 3:
    ...             raise SinkError("not yet")
    >>> writer = RetryingWriter(Flaky(), RetryPolicy(initial_s=0.001))
    >>> _ = asyncio.run(writer.write([RecList("trending", "all", "m", ["a"], [1.0], 0.0)]))
    >>> Flaky.calls
    3
    """

    def __init__(self, sink: Sink, policy: RetryPolicy | None = None) -> None:
        self.sink = sink
        self.policy = policy or RetryPolicy()
        # (lists, monotonic time of its first failure) of the write being retried, if any
        self.failing: tuple[int, float] | None = None

    def describe(self) -> str:
        """What the writer is doing, for the log of an abandoned shutdown."""
        if self.failing is None:
            return "no write being retried"
        lists, since = self.failing
        return f"a write of {lists} lists failing for {time.monotonic() - since:.1f} s"

    async def write(self, lists: Sequence[RecList]) -> float:
        """Store every list and return the wall-clock time the store acknowledged them."""
        if not lists:
            return time.time()
        delay = self.policy.initial_s
        try:
            while True:
                started = time.perf_counter()
                try:
                    await self.sink.write(lists, time.time())
                except SinkError as exc:
                    metrics.REDIS_ERRORS.inc()
                    metrics.REDIS_RETRIES.inc()
                    self.failing = self.failing or (len(lists), time.monotonic())
                    log.warning("write of %d lists failed (%s); retrying in %.2fs", len(lists), exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.policy.max_s)
                    continue
                metrics.REDIS_WRITE.observe(time.perf_counter() - started)
                metrics.REDIS_PIPELINE.observe(len(lists))
                return time.time()
        finally:
            self.failing = None
