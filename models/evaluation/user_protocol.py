"""Next-invoice protocol for known customers (Online Retail): rank items for a customer just before
each of their test invoices, against the distinct items the invoice then holds.

An invoice is the set of one customer's events at one timestamp. Invoices dated on or after
``test_start`` are cases when the customer had an invoice before it. Every model learns each
invoice right after it was scored, so it knows every earlier invoice, same-day ones included, but
never the one it is predicting.

>>> from shopstream.models.events import Event
>>> from shopstream.models.evaluation.baselines import Popularity
>>> buys = [(1, "u1", "a"), (1, "u1", "b"), (2, "u2", "a"), (5, "u1", "a"), (6, "u3", "b")]
>>> stream = [Event(f"e{n}", ts, f"{u}@{ts}", "purchase", i, user_id=u) for n, (ts, u, i) in enumerate(buys)]
>>> result = evaluate_users(stream, {"pop": Popularity}, test_start=5, ks=(1,))
>>> result["pop"]["cases"], result["pop"]["hr@1"], result["pop"]["recall@1"]
(1, 1.0, 1.0)
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from shopstream.models.base import UserRecommender
from shopstream.models.evaluation.metrics import RankingScores
from shopstream.models.events import Event


def invoices(events: Iterable[Event]) -> Iterator[tuple[str, float, list[Event]]]:
    """``(user, ts, events)`` per invoice, in time order; events without a user are left out."""
    for ts, same_time in itertools.groupby(events, key=lambda e: e.ts):
        by_user: dict[str, list[Event]] = {}
        for event in same_time:
            if event.user_id is not None:
                by_user.setdefault(event.user_id, []).append(event)
        for user, group in by_user.items():
            yield user, ts, group


def evaluate_users(
    events: Iterable[Event],
    models: Mapping[str, Callable[[], UserRecommender]],
    test_start: float,
    ks: Sequence[int] = (10, 20),
) -> dict[str, dict[str, Any]]:
    """Score each model built by its factory on the same invoices; one entry per model."""
    stream = list(invoices(events))
    known = {user for user, ts, _ in stream if ts < test_start}
    catalogue = {e.item_id for _, ts, group in stream if ts < test_start for e in group}
    n_events = sum(len(group) for _, _, group in stream)
    top = max(ks)
    results = {}
    for name, factory in models.items():
        model = factory()
        scores = RankingScores(ks)
        start = time.process_time()
        for user, ts, group in stream:
            if ts >= test_start and user in known:
                served = [item for item, _ in model.recommend_user(user, top)]
                scores.add(served, {e.item_id for e in group})
            model.learn_many(group)  # an invoice is learned as one batch, as the worker learns a batch
        elapsed = time.process_time() - start
        results[name] = scores.summary(len(catalogue)) | {
            "events": n_events,
            "events_per_s": n_events / elapsed if elapsed else float("inf"),
        }
    return results
