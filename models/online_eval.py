"""Prequential scoring of served lists: was the item a user acted on in the list they were shown?

The worker exports these counts, so ``rate(hits) / rate(predictions)`` in Prometheus is the live
hit-rate of what was really served, not an offline estimate.

>>> scores = OnlineScores(ks=(1, 3))
>>> scores.record("knn", ["a", "b", "c"], "b")
>>> scores.record("knn", ["a", "b", "c"], "z")
>>> [(s.model, s.k, s.hits, s.predictions, round(s.rr_sum, 2)) for s in scores.drain()]
[('knn', 1, 0, 2, 0.0), ('knn', 3, 1, 2, 0.5)]
>>> scores.drain()
[]
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class ScoreDelta:
    """Counts since the last drain for one (model, K); ``rr_sum`` adds 1/rank of hits within K."""

    model: str
    k: int
    hits: int
    predictions: int
    rr_sum: float


class OnlineScores:
    """Accumulates hits and reciprocal ranks at several K per model, drained by the exporter."""

    def __init__(self, ks: tuple[int, ...] = (10, 20)) -> None:
        self.ks = tuple(sorted(ks))
        self._counts: dict[str, list[float]] = {}  # a plain dict, so checkpoints can pickle it

    def record(self, model: str, served: list[str], item_id: str) -> None:
        counts = self._counts.get(model)
        if counts is None:
            counts = self._counts[model] = [0.0] * (2 * len(self.ks) + 1)
        counts[0] += 1
        try:
            rank = served.index(item_id, 0, self.ks[-1]) + 1
        except ValueError:
            return
        for i, k in enumerate(self.ks):
            if rank <= k:
                counts[1 + 2 * i] += 1
                counts[2 + 2 * i] += 1.0 / rank

    def drain(self) -> list[ScoreDelta]:
        deltas = [
            ScoreDelta(model, k, int(counts[1 + 2 * i]), int(counts[0]), counts[2 + 2 * i])
            for model, counts in sorted(self._counts.items())
            for i, k in enumerate(self.ks)
        ]
        self._counts.clear()
        return deltas
