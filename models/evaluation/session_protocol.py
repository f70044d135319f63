"""Prequential next-item protocol for sessions: predict every next click before learning it.

With a predefined test part (YOOCHOOSE) it is session-rec's protocol: models learn the training
part, test events of items never seen in training are dropped, test sessions left with one event are
dropped, and every later event of a test session is a case scored against the list served from the
prefix before it; repeats count. Unlike the batch runs, models go on learning each test event after
it was scored, as the worker does. Without a test part, the whole stream is test and no item is
dropped.

>>> from shopstream.models.events import Event
>>> from shopstream.models.evaluation.baselines import Popularity
>>> clicks = [("s1", "a"), ("s1", "b"), ("s2", "b"), ("s2", "b"), ("s3", "c")]
>>> stream = [Event(f"e{n}", n, session, "view", item) for n, (session, item) in enumerate(clicks)]
>>> result = evaluate_sessions(stream, {"pop": Popularity}, ks=(1,))
>>> result["pop"]["cases"], result["pop"]["hr@1"]
(2, 0.5)
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from shopstream.models.base import SessionRecommender
from shopstream.models.evaluation.loaders import is_test
from shopstream.models.evaluation.metrics import RankingScores
from shopstream.models.events import Event
from shopstream.models.session_knn import POSITIVE_TYPES


def prepare(events: Iterable[Event]) -> tuple[list[Event], list[Event], set[str]]:
    """Split into (train, test) as the protocol filters them; return the catalogue too."""
    train: list[Event] = []
    test: list[Event] = []
    for event in events:
        (test if is_test(event) else train).append(event)
    if not test:  # no predefined split: the whole stream is scored
        train, test = [], train
        return train, test, {e.item_id for e in test if e.type in POSITIVE_TYPES}
    catalogue = {e.item_id for e in train if e.type in POSITIVE_TYPES}
    test = [e for e in test if e.item_id in catalogue]
    lengths = Counter(e.session_id for e in test if e.type in POSITIVE_TYPES)
    return train, [e for e in test if lengths[e.session_id] > 1], catalogue


def evaluate_sessions(
    events: Iterable[Event],
    models: Mapping[str, Callable[[], SessionRecommender]],
    ks: Sequence[int] = (10, 20),
) -> dict[str, dict[str, Any]]:
    """Score each model built by its factory on the same filtered stream; one entry per model."""
    train, test, catalogue = prepare(events)
    top = max(ks)
    results = {}
    for name, factory in models.items():
        model = factory()
        scores = RankingScores(ks)
        started = set()
        start = time.process_time()
        for event in train:
            model.learn_one(event)
        for event in test:
            if event.type in POSITIVE_TYPES:
                if event.session_id in started:
                    served = [item for item, _ in model.recommend_session(event.session_id, top)]
                    scores.add(served, {event.item_id})
                else:
                    started.add(event.session_id)
            model.learn_one(event)
        elapsed = time.process_time() - start
        results[name] = scores.summary(len(catalogue)) | {
            "events": len(train) + len(test),
            "events_per_s": (len(train) + len(test)) / elapsed if elapsed else float("inf"),
        }
    return results
