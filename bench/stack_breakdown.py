"""Where the model stack's time goes at a given step size: CPU microseconds an event per part.

``python -m shopstream.bench.stack_breakdown [--events 60000] [--step 100] [--event-rate 5000]
[--deferred-delay-s 0.5] [--gc-thresholds 700,10,10]`` learns the first half of a seeded synthetic stream in
catch-up steps (state to serve from), then the second half in steps of ``--step`` events through both tiers,
as a live worker does at ``--event-rate`` events/s with the deferred policy's delay (0: the deferred tier after
every step), and prints each model's learning, each list kind's building and the user scoring in CPU µs per
event (and per call), with what is left to the engine's own loop. One thread, CPU time (``time.thread_time``):
the machine's other load counts little. The process settings are the worker's (one BLAS thread, its collector
thresholds; ``--gc-thresholds`` to compare): at Python's default thresholds the collector scans the model state
every few hundred allocations, and a table measured so is the collector's as much as the models'. The
catch-up was profiled with py-spy (docs/performance.md); this is the live path's table.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from shopstream.bench.topics import synthetic
from shopstream.models.engine import RecommenderStack
from shopstream.models.events import Event, parse_event
from shopstream.models.stack_config import StackConfig
from shopstream.streams.batch import tune_process

DEFERRED_EVENTS = 5000  # the worker's SHOPSTREAM_DEFERRED_MAX_EVENTS: at live rates its 0.5 s delay comes first


class Timings:
    """CPU time and calls per named part, from wrappers put around the stack's methods."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.thread_time() - started
                self.calls[name] += 1

        return timed


def instrument(stack: RecommenderStack, timings: Timings) -> None:
    for kind, build in list(stack._builders.items()):
        stack._builders[kind] = timings.wrap(f"build {kind} lists", build)
    for model in stack.models:
        model.learn_many = timings.wrap(f"learn {type(model).__name__}", model.learn_many)  # type: ignore[method-assign]
    stack.user_model.recommend_users = timings.wrap(  # type: ignore[method-assign]
        "score users (user lists)", stack.user_model.recommend_users
    )
    stack._sessions_ranked = timings.wrap(  # type: ignore[method-assign]
        "score sessions (session lists)", stack._sessions_ranked
    )


def run(events: list[Event], step: int, event_rate: float, deferred_delay_s: float) -> None:
    stack = RecommenderStack(StackConfig())
    half = len(events) // 2
    for start in range(0, half, 5000):
        stack.process([(event, 0.0) for event in events[start : start + 5000]])
    timings = Timings()
    instrument(stack, timings)
    live = events[half:]
    deferred_every = max(1, min(DEFERRED_EVENTS, int(event_rate * deferred_delay_s)) // step)
    started = time.thread_time()
    for n, start in enumerate(range(0, len(live), step), 1):
        stack.process_sessions([(event, 0.0) for event in live[start : start + step]])
        if n % deferred_every == 0:
            stack.process_deferred()
    stack.process_deferred()
    total = time.thread_time() - started
    per_event = 1e6 / len(live)
    print(f"steps of {step} events, {event_rate:,.0f} events/s of event time: {len(live) / total:,.0f} events "
          f"per CPU second, {total * per_event:.0f} µs an event")
    for name, seconds in timings.seconds.most_common():
        print(f"  {name:34s} {seconds * per_event:7.1f} µs/event  {timings.calls[name] / len(live):6.3f} calls/event"
              f"  {seconds / timings.calls[name] * 1e6:8.1f} µs/call")
    print(f"  {'the engine (dedupe, keys, throttle)':34s} {(total - sum(timings.seconds.values())) * per_event:7.1f}"
          " µs/event")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--step", type=int, default=100, help="events a step: 100 is 20 ms at 5,000 events/s")
    parser.add_argument("--event-rate", type=float, default=5000.0)
    parser.add_argument("--deferred-delay-s", type=float, default=0.5, help="SHOPSTREAM_DEFERRED_MAX_DELAY_S")
    parser.add_argument("--gc-thresholds", default=None,
                        help="e.g. 700,10,10 (Python's default) instead of the worker's GC_THRESHOLDS")
    args = parser.parse_args()
    tune_process()  # as the worker: one BLAS thread (after numpy and scipy are loaded), its collector thresholds
    if args.gc_thresholds:
        gc.set_threshold(*(int(x) for x in args.gc_thresholds.split(",")))
    events = [parse_event(raw, now=raw["ts"]) for raw in synthetic(0, args.events, args.event_rate)]
    run(events, args.step, args.event_rate, args.deferred_delay_s)


if __name__ == "__main__":
    main()
