"""Compiled parts of the stack against their references, alternating in one process, on the seeded synthetic stream.

``python -m shopstream.bench.compiled_parts [--events 200000] [--event-rate 100] [--rounds 3]`` prints, per round:

- the purchase propensity learning the stream in batches of 100 and of 20,000 events, the default pipeline
  (compiled learning) against the same pipeline given explicitly (River's own ``learn_one``): µs an event;
- the item graphs' session lists, learned from all but the last 10 % of the stream, for the sessions of that
  last part: one ``recommend_sessions`` call (each item's vote shared) against ``recommend_session`` one by one:
  µs a session, and whether the lists are equal.

Wall time of this process: rounds alternate so that the machine's load falls on both sides alike.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from river import compose, linear_model, optim, preprocessing

from shopstream.bench.topics import synthetic
from shopstream.models.events import Event, parse_event
from shopstream.models.propensity import SessionPropensity
from shopstream.models.transitions_index import IndexedTransitions


def _timed(work: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def propensity_us(events: list[Event], batch: int, through_river: bool) -> float:
    classifier = (
        compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression(optim.SGD(0.05)))
        if through_river else None
    )
    model = SessionPropensity(classifier=classifier)
    seconds, _ = _timed(lambda: [model.learn_many(events[i : i + batch]) for i in range(0, len(events), batch)])
    return seconds / len(events) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--event-rate", type=float, default=100.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    events = [parse_event(raw) for raw in synthetic(0, args.events, args.event_rate)]
    cut = len(events) * 9 // 10
    graphs = IndexedTransitions()
    for start in range(0, cut, 20_000):
        graphs.learn_many(events[start : min(cut, start + 20_000)])
    sessions = [s for s in dict.fromkeys(e.session_id for e in events[cut:]) if graphs.session_items(s)]
    print(f"{len(events):,} events at {args.event_rate:g}/s of event time; {len(sessions):,} sessions listed")
    for round_ in range(1, args.rounds + 1):
        for batch in (100, 20_000):
            compiled, river = (propensity_us(events, batch, through) for through in (False, True))
            print(f"round {round_} propensity, batches of {batch:>6,}: compiled {compiled:.2f} µs an event, "
                  f"River {river:.2f}")
        together, batched = _timed(lambda: graphs.recommend_sessions(sessions, 20))
        alone, single = _timed(lambda: [graphs.recommend_session(s, 20) for s in sessions])
        print(f"round {round_} session lists: one call {together / len(sessions) * 1e6:.2f} µs a session, "
              f"one by one {alone / len(sessions) * 1e6:.2f} (same lists: {batched == single})")


if __name__ == "__main__":
    main()
