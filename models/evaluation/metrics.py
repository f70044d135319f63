"""Ranking metrics of the protocols: HR@K, MRR@K, Recall@K and catalogue coverage.

A case is one served list and the set of items the user then acted on. HR counts a case once if any
target is in the top K, MRR adds 1/rank of the first target within K, Recall adds the share of the
distinct targets within K.

>>> scores = RankingScores(ks=(1, 3))
>>> scores.add(["a", "b", "c"], {"b"})
>>> scores.add(["a", "b", "c"], {"a", "z"})
>>> scores.summary(catalogue_size=6)
{'cases': 2, 'hr@1': 0.5, 'mrr@1': 0.5, 'recall@1': 0.25, 'hr@3': 1.0, 'mrr@3': 0.75, 'recall@3': 0.75, 'coverage': 0.5}
"""

from __future__ import annotations

from collections.abc import Sequence, Set


class RankingScores:
    """Sums of the per-case metrics at each K, and the items ever served within the largest K."""

    def __init__(self, ks: Sequence[int] = (10, 20)) -> None:
        if not ks or min(ks) < 1:
            raise ValueError("ks must be positive")
        self.ks = tuple(sorted(set(ks)))
        self.cases = 0
        self._hits = dict.fromkeys(self.ks, 0)
        self._rr = dict.fromkeys(self.ks, 0.0)
        self._recall = dict.fromkeys(self.ks, 0.0)
        self.served: set[str] = set()

    def add(self, ranked: Sequence[str], targets: Set[str]) -> None:
        """Score one served list against the distinct items acted on next."""
        if not targets:
            raise ValueError("a case needs at least one target item")
        self.cases += 1
        top = ranked[: self.ks[-1]]
        self.served.update(top)
        first = next((rank for rank, item in enumerate(top, 1) if item in targets), None)
        for k in self.ks:
            if first is not None and first <= k:
                self._hits[k] += 1
                self._rr[k] += 1.0 / first
                self._recall[k] += len(targets & set(top[:k])) / len(targets)

    def summary(self, catalogue_size: int) -> dict[str, float | int]:
        """Means over the cases, and the share of a catalogue of ``catalogue_size`` items served."""
        out: dict[str, float | int] = {"cases": self.cases}
        n = max(self.cases, 1)
        for k in self.ks:
            out[f"hr@{k}"] = self._hits[k] / n
            out[f"mrr@{k}"] = self._rr[k] / n
            out[f"recall@{k}"] = self._recall[k] / n
        out["coverage"] = len(self.served) / catalogue_size if catalogue_size else 0.0
        return out
