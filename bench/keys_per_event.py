"""Lists rewritten per event, by kind: the Redis writes a worker makes on batches of a given size.

``python -m shopstream.bench.keys_per_event [--batch-events 40] [--trending-refresh-s 1]`` warms the
stack on 40,000 synthetic events in large batches, then counts what 20,000 more events in batches of
``--batch-events`` rewrite.
Deterministic (seeded), so it compares serving policies without the machine's noise.
"""

from __future__ import annotations

import argparse
from collections import Counter

from shopstream.models.engine import RecommenderStack, StackConfig
from shopstream.models.events import parse_event
from shopstream.producers.synthetic import SyntheticTraffic

WARM, MEASURED = 40_000, 20_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-events", type=int, default=40)
    parser.add_argument("--trending-refresh-s", type=float, default=StackConfig.trending_refresh_s,
                        help="0 rewrites trending and category lists in every batch that touches them")
    args = parser.parse_args()
    events = [parse_event(e, now=2e9) for e in SyntheticTraffic(seed=1, start_ts=1.7e9).take(WARM + MEASURED)]
    stack = RecommenderStack(StackConfig(trending_refresh_s=args.trending_refresh_s))
    for i in range(0, WARM, 2000):
        stack.process([(e, e.ts) for e in events[i : i + 2000]])
    kinds: Counter[str] = Counter()
    for i in range(WARM, WARM + MEASURED, args.batch_events):
        kinds.update(lst.kind for lst in stack.process([(e, e.ts) for e in events[i : i + args.batch_events]]).lists)
    print(f"{sum(kinds.values()) / MEASURED:.2f} lists per event; by kind per event:",
          {kind: round(n / MEASURED, 3) for kind, n in kinds.most_common()})


if __name__ == "__main__":
    main()
