"""How the item-to-item model's settings were chosen: on YOOCHOOSE's train file only.

Sessions that start in the last day of the train file are the validation cases; the test file is
never read. ``python -m shopstream.bench.tune_transitions [--path ../shared/data/yoochoose-100k]``
prints every setting's HR@20 / MRR@20 and its events/s (CPU), best MRR first; ``--blend-scoring``
instead runs the session blend scoring one click in 50, 100 or 200 (the same decay in clicks).
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Callable

import msgspec

from shopstream.models.base import Model
from shopstream.models.evaluation.loaders import TEST, is_test, load_yoochoose
from shopstream.models.evaluation.session_protocol import evaluate_sessions
from shopstream.models.events import Event
from shopstream.models.session_blend import SessionBlend, default_knns
from shopstream.models.session_models import BLEND_KNN_WINDOW
from shopstream.models.transitions_index import IndexedTransitions

GRID = {
    "recency": (0.0, 0.2, 0.5),
    "covisit_weight": (0.0, 0.1, 0.3),
    "window": (3, 5),
}


def validation_split(train: list[Event], days: float = 1.0) -> list[Event]:
    """The train events, with sessions starting in their last ``days`` marked as the test part."""
    cut = max(e.ts for e in train) - days * 86400
    first: dict[str, float] = {}
    for event in train:
        first.setdefault(event.session_id, event.ts)
    return [msgspec.structs.replace(e, properties={"split": TEST}) if first[e.session_id] >= cut else e for e in train]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--path", default="../shared/data/yoochoose-100k")
    parser.add_argument("--blend-scoring", action="store_true", help="the session blend's scoring rate instead")
    args = parser.parse_args()
    train = [e for e in load_yoochoose(args.path) if not is_test(e)]
    grid = [dict(zip(GRID, values, strict=True)) for values in itertools.product(*GRID.values())]
    factories: dict[str, Callable[[], Model]] = {
        ", ".join(f"{k}={v}" for k, v in params.items()): (lambda p=params: IndexedTransitions(**p)) for params in grid
    }
    if args.blend_scoring:
        factories = {
            f"session_blend, score_every={every}, half_life={25_000 / every:g}": (
                lambda every=every: SessionBlend(
                    IndexedTransitions(), default_knns(BLEND_KNN_WINDOW), score_every=every, half_life=25_000 / every
                )
            )
            for every in (50, 100, 200)
        }
    results = evaluate_sessions(validation_split(train), factories)
    for name, metrics in sorted(results.items(), key=lambda kv: -kv[1]["mrr@20"]):
        print(f"{name:<65} cases {metrics['cases']}  HR@20 {metrics['hr@20']:.3f}  MRR@20 {metrics['mrr@20']:.3f}  "
              f"{metrics['events_per_s']:,.0f} events/s")


if __name__ == "__main__":
    main()
