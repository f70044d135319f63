"""One batch of Kafka records through the stack: decode, validate, learn, serve, write, count.

Kept apart from the Faust agent so it can be driven by tests and the benchmark without Faust, and
so the agent stays a loop that hands batches here and acknowledges them after this returns.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from threadpoolctl import threadpool_limits

from shopstream.models.engine import BatchOutput, RecommenderStack
from shopstream.models.events import DEFAULT_LIMITS, Event, EventLimits, dead_letter, parse_record
from shopstream.streams import metrics
from shopstream.streams.sink import RetryingWriter


@dataclass(slots=True)
class Record:
    """What the worker needs of a Kafka record; ``timestamp`` is in seconds; ``value`` is None for a tombstone.
    ``partition`` and ``offset`` say which input a checkpoint covers (records built outside Kafka have none)."""

    key: bytes | None
    value: bytes | None
    timestamp: float
    partition: int | None = None
    offset: int | None = None


Rejects = list[tuple[bytes | None, bytes]]
P = ParamSpec("P")
T = TypeVar("T")
#: The least a deferred run may spend building lists, however short the session step before it.
MIN_DEFERRED_BUDGET_S = 0.02


def parse_records(
    records: Sequence[Record], now: float, limits: EventLimits
) -> tuple[list[tuple[Event, float]], Rejects, Counter[str]]:
    """The records' valid events with their record time, and the rejects as dead letters with their reasons."""
    valid: list[tuple[Event, float]] = []
    rejects: Rejects = []
    reasons: Counter[str] = Counter()
    for record in records:
        events, rejected = parse_record(record.value, now, limits)
        valid += [(event, record.timestamp) for event in events]
        for raw, error in rejected:
            rejects.append((record.key, dead_letter(raw, error, "worker", now)))
            reasons[error.reason] += 1
    return valid, rejects, reasons


#: The worker's collector thresholds: collections are rarer than with the default (700, 10, 10), which
#: scan the model state the worker holds (``handler_throughput --gc-thresholds``; docs/performance.md).
GC_THRESHOLDS = (50_000, 20, 100)


def tune_process() -> None:
    """The worker's process settings: one BLAS thread (a worker is one core's work; the matrix products of
    a batch are small and the other core runs the broker, Redis or another worker), and the collector
    thresholds, with every collection timed into ``shopstream_gc_pause_seconds``."""
    threadpool_limits(1)
    gc.set_threshold(*GC_THRESHOLDS)
    started: list[float] = []

    def observe(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            metrics.GC_PAUSE.labels(str(info["generation"])).observe(time.perf_counter() - started.pop())

    gc.callbacks.append(observe)


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to call
        return None


_MALLOC_TRIM = _malloc_trim()


def release_free_memory() -> None:
    """Hand the heap pages freed since the last call back to the OS (glibc's ``malloc_trim``, as Dask's
    workers do). A catch-up batch's records, events and lists are freed after its Redis write, but glibc
    keeps the pages, so without this the RSS ratchets up to the largest batch's high-water mark."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


DeadLetterSend = Callable[[Rejects], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DeferredPolicy:
    """When the stack's deferred tier (every list but the session lists) runs: once it has
    ``max_events`` events pending, or its oldest pending event arrived ``max_delay_s`` ago (wall clock,
    from the records' timestamps). The default runs it after every step.

    >>> policy = DeferredPolicy(max_events=1000, max_delay_s=0.5)
    >>> policy.due(10, now=100.0, origin=99.8), policy.due(10, now=100.0, origin=99.4), policy.due(1000, 100.0, 100.0)
    (False, True, True)
    >>> DeferredPolicy().due(0, origin=float("inf"), now=100.0)
    False
    """

    max_events: int = 1
    max_delay_s: float = 0.0
    #: A run builds lists for up to this many times the session step's time before it (at least
    #: ``MIN_DEFERRED_BUDGET_S``), leaving the rest to the next run: a burst of due lists is spread over
    #: several batches and still gets as much of the worker as the session lists do. None: no bound.
    budget_ratio: float | None = None

    def due(self, pending: int, origin: float, now: float) -> bool:
        return pending >= self.max_events or now - origin >= self.max_delay_s

    def budget(self, step_s: float) -> float:
        """Seconds a run may spend building lists after a session step that took ``step_s``.

        >>> DeferredPolicy(budget_ratio=1.0).budget(0.001), DeferredPolicy(budget_ratio=1.0).budget(2.0)
        (0.02, 2.0)
        >>> DeferredPolicy().budget(0.0)
        inf
        """
        if self.budget_ratio is None:
            return math.inf
        return max(MIN_DEFERRED_BUDGET_S, self.budget_ratio * step_s)


class BatchHandler:
    """Processes batches for the agent; returns only when the sink and the DLQ have acknowledged."""

    def __init__(
        self, stack: RecommenderStack, writer: RetryingWriter, send_dead_letters: DeadLetterSend, step_events: int,
        limits: EventLimits = DEFAULT_LIMITS, deferred: DeferredPolicy | None = None,
    ) -> None:
        self.stack = stack
        self.limits = limits
        self.writer = writer
        self.send_dead_letters = send_dead_letters
        # A batch is learned and written in steps of at most this many events; each touched list is
        # recomputed once per step, so larger steps do less work per event when the worker catches up.
        self.step_events = step_events
        self.deferred = deferred or DeferredPolicy()
        # Steps run in a thread, so the event loop answers Kafka heartbeats, /metrics and health during a
        # long step and keeps fetching the next records while a step computes: with live steps on the loop,
        # the bench's worker carried a ~1.8 s backlog at 5,000 events/s; with them in the thread, p50 0.2 s.
        # Whoever reads or changes the stack from the loop holds this lock. One thread, always the same:
        # the stack is never touched by two at once, and C allocations come from one more arena.
        self.lock = asyncio.Lock()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shopstream-step")
        self._clock: tuple[float, float] | None = None  # (newest event time, wall time when it was processed)
        # Held for a whole batch, so a checkpoint never holds events whose lists are not written yet (a
        # restore would skip them as duplicates and their keys would stay unwritten).
        self.batch_lock = asyncio.Lock()
        # Next offset per input partition of the events the stack has learned and written: what a
        # checkpoint of the stack covers.
        self.offsets: dict[int, int] = {}
        # Key slots held whose every list this worker has written (since it was dealt them, or republished
        # them), and the store epoch they went to: what a checkpoint vouches for, so that this worker,
        # restarted and dealt them again, need not republish them (streams/app.py).
        self.written_slots: set[int] = set()
        self.written_epoch: str | None = None

    async def handle(self, records: Sequence[Record]) -> int:
        """Process the records' events; returns how many events they carried."""
        async with self.batch_lock:
            return await self._handle(records)

    async def _handle(self, records: Sequence[Record]) -> int:
        started = time.perf_counter()
        valid, rejects, reasons = parse_records(records, time.time(), self.limits)
        for start in range(0, len(valid), self.step_events):
            step = valid[start : start + self.step_events]
            async with self.lock:
                began = time.perf_counter()
                out = await self.in_step_thread(self.stack.process_sessions, step)
                step_s = time.perf_counter() - began
            self._clock = (max(event.ts for event, _ in step), time.time())
            self._count(out, await self.writer.write(out.lists))
            if self.deferred.due(*self.stack.deferred_backlog(), time.time()):
                async with self.lock:
                    out = await self.in_step_thread(self.stack.process_deferred, self.deferred.budget(step_s))
                self._count(out, await self.writer.write(out.lists))
        if rejects:
            await self.send_dead_letters(rejects)
        self.covered(records)
        self._count_rejects(reasons)
        metrics.BATCH_EVENTS.observe(len(valid) + len(rejects))
        metrics.BATCH_RECORDS.observe(len(records))
        if records:
            metrics.LAST_EVENT.set(max(r.timestamp for r in records))
        metrics.BATCH_DURATION.observe(time.perf_counter() - started)
        return len(valid) + len(rejects)

    def covered(self, records: Sequence[Record]) -> None:
        """The stack now holds these records' events: advance the offsets a checkpoint covers."""
        for record in records:
            if record.partition is not None and record.offset is not None:
                self.offsets[record.partition] = max(self.offsets.get(record.partition, 0), record.offset + 1)

    async def in_step_thread(self, fn: Callable[P, T], *args: P.args) -> T:
        """``fn(*args)`` in the step thread (the caller holds the lock); a cancelled caller still waits for
        it, so the lock is never released while the thread is using the stack."""
        done = asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            await asyncio.wait([done])
            raise

    async def flush_idle(self, idle_s: float) -> None:
        """Write the throttled lists that became due while no events came for ``idle_s``, letting event time run
        on with the wall clock since the last batch (an idle stream would otherwise hold them back forever).
        While batches come, :class:`DeferredPolicy` runs the deferred tier with them: a flush in between took
        the lock from the next batch's session step (~0.1 s a flush at 5,000 events/s; docs/performance.md)."""
        async with self.lock:
            if self._clock is None or time.time() - self._clock[1] < idle_s:
                return
            newest, seen_at = self._clock
            out = await self.in_step_thread(self.stack.flush, newest + time.time() - seen_at)
        if out.lists:
            self._count(out, await self.writer.write(out.lists))

    @staticmethod
    def _count_rejects(reasons: Counter[str]) -> None:
        for reason, n in reasons.items():
            metrics.DLQ.labels(reason).inc(n)
            metrics.EVENTS.labels("invalid", "rejected").inc(n)

    def _count(self, out: BatchOutput, written_at: float) -> None:
        for outcome, by_type in (("processed", out.learned), ("duplicate", out.duplicates)):
            for etype, n in by_type.items():
                metrics.EVENTS.labels(etype, outcome).inc(n)
        ages: dict[str, list[float]] = {}
        for rec in out.lists:
            ages.setdefault(rec.kind, []).append(written_at - rec.origin)
        for kind, kind_ages in ages.items():
            metrics.KEYS_WRITTEN.labels(kind).inc(len(kind_ages))
            observe = metrics.FRESHNESS.labels(kind).observe
            for age in kind_ages:
                observe(max(0.0, age))
        metrics.export_outcomes(out.outcomes, out.allocation)
        for delta in out.scores:
            labels = (delta.model, str(delta.k))
            metrics.HITS.labels(*labels).inc(delta.hits)
            metrics.PREDICTIONS.labels(*labels).inc(delta.predictions)
            metrics.RECIPROCAL_RANK.labels(*labels).inc(delta.rr_sum)
