"""Learn+serve throughput of each model, and of the whole served stack, on the Online Retail replay.

Every event is learned; serving happens once per invoice (a customer's events at one timestamp),
the way the worker recomputes a touched user's list once per batch: the user's top 20 (MF, blend),
the shop's next-day forecast and the session's purchase propensity. One core, CPU time.

    python -m shopstream.bench.models_throughput [--profile] [--only NAME ...] [--side-by-side]

``--side-by-side`` hands each invoice to every selected bench in turn, in one process, so that the
machine's load falls on them alike: a steadier ratio between two benches than separate runs give.
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import os
import pstats
import time
from collections.abc import Callable
from pathlib import Path

from shopstream.models.engine import RecommenderStack, StackConfig
from shopstream.models.evaluation.loaders import load_online_retail
from shopstream.models.events import Event
from shopstream.models.forecast import WindowedForecaster
from shopstream.models.mf import ImplicitMF
from shopstream.models.propensity import SessionPropensity
from shopstream.models.repeat_blend import RepeatBuyBlend
from shopstream.models.warmup import warm_kernels

SHARED_DATA = Path(os.environ.get("SHOPSTREAM_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

Step = Callable[[list[Event]], None]  # learns one invoice's events, then serves once


def mf_step() -> Step:
    model = ImplicitMF(seed=0)

    def step(invoice: list[Event]) -> None:
        for event in invoice:
            model.learn_one(event)
        model.recommend_user(invoice[0].user_id or "", 20)

    return step


def blend_step() -> Step:
    model = RepeatBuyBlend(seed=0)

    def step(invoice: list[Event]) -> None:
        for event in invoice:
            model.learn_one(event)
        model.recommend_user(invoice[0].user_id or "", 20)

    return step


def forecast_step() -> Step:
    model = WindowedForecaster()

    def step(invoice: list[Event]) -> None:
        for event in invoice:
            model.learn_one(event)
        model.forecast(("shop", None), 7)

    return step


def propensity_step() -> Step:
    model = SessionPropensity()

    def step(invoice: list[Event]) -> None:
        for event in invoice:
            model.learn_one(event)
        model.predict_session(invoice[0].session_id)

    return step


def stack_step() -> Step:
    """The in-process stack: the blend (which holds the MF), the forecaster and the propensity."""
    steps = [blend_step(), forecast_step(), propensity_step()]

    def step(invoice: list[Event]) -> None:
        for s in steps:
            s(invoice)

    return step


def served_step(config: StackConfig | None = None) -> Step:
    """Everything the worker runs (``RecommenderStack``): all models learn, every touched list is
    recomputed, each invoice as one batch. The kernels are compiled first, as a worker does before it is ready:
    a cold numba cache would otherwise charge tens of seconds of compiling to the first bench timed."""
    config = config or StackConfig()
    warm_kernels(config)
    stack = RecommenderStack(config)

    def step(invoice: list[Event]) -> None:
        stack.process([(event, event.ts) for event in invoice])

    return step


BENCHES = {
    "mf": mf_step,
    "blend": blend_step,
    "forecast": forecast_step,
    "propensity": propensity_step,
    "stack": stack_step,
    "served": served_step,
    "served_blend": lambda: served_step(StackConfig(session_model="session_blend")),
}


def side_by_side(invoices: list[list[Event]], names: list[str], n_events: int) -> None:
    """Every bench's step on each invoice in turn, CPU time of this thread per bench."""
    steps = {name: BENCHES[name]() for name in names}
    cpu = dict.fromkeys(steps, 0.0)
    for invoice in invoices:
        for name, step in steps.items():
            start = time.thread_time()
            step(invoice)
            cpu[name] += time.thread_time() - start
    for name, elapsed in cpu.items():
        print(f"{name:>10}: {n_events / elapsed:>9,.0f} events/s ({elapsed:.1f} s CPU, side by side)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SHARED_DATA / "online-retail" / "online_retail.csv.gz"))
    parser.add_argument("--profile", choices=list(BENCHES), help="print the top of a cProfile of one bench")
    parser.add_argument("--only", nargs="+", choices=list(BENCHES), help="run these benches only")
    parser.add_argument("--side-by-side", action="store_true", help="each invoice to every bench in turn")
    args = parser.parse_args()
    events = list(load_online_retail(args.data))
    invoices = [list(group) for _, group in itertools.groupby(events, key=lambda e: (e.ts, e.user_id))]
    print(f"{len(events):,} events, {len(invoices):,} invoices")
    if args.side_by_side:
        side_by_side(invoices, args.only or list(BENCHES), len(events))
        return
    for name, factory in BENCHES.items():
        if (args.profile and name != args.profile) or (args.only and name not in args.only):
            continue
        step = factory()
        profiler = cProfile.Profile() if args.profile else None
        start = time.process_time()
        if profiler:
            profiler.enable()
        for invoice in invoices:
            step(invoice)
        elapsed = time.process_time() - start
        if profiler:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
        print(f"{name:>10}: {len(events) / elapsed:>9,.0f} events/s ({elapsed:.1f} s CPU)")


if __name__ == "__main__":
    main()
