"""A plain, batch reading of session-rec's V-SKNN (``VMContextKNN``) and V-STAN (``VSKNN_STAN``) definitions.

Written from the published algorithm definitions for checking ``SessionKNN`` against, not for speed:
it keeps every session, rebuilds nothing incrementally and computes each list from scratch.

- Candidates: every known session sharing an item with the current one, the ``sample_size`` most
  recent by their last click (ties: the later click in the log first).
- Position weight of the current session's item at its last position ``p`` of ``n`` clicks:
  ``p / n`` (div), ``(p / n) ** 2`` (quadratic), 1 (same) or ``exp((p - n) / lambda_spw)``.
- Similarity: ``vec`` = sum of the shared items' weights / distinct items of the current session;
  ``cosine`` = that sum / (sqrt(sum of squared weights) * sqrt(distinct items of the neighbour));
  times ``exp(-age / lambda_snh days)`` if set. The ``k`` most similar are the neighbours (ties:
  the more recent first).
- Vote of a neighbour for each of its distinct items: similarity, times the step decay of the most
  recent current click the neighbour holds (``1 / step``, ``1 / step**2``, 1, or
  ``exp((p - n) / lambda_ipw)``), times ``exp(-|pos - anchor| / lambda_inh)`` (positions of the
  item's and of any shared item's last click in the neighbour), times ``1 + idf_weighting * idf``
  with ``idf = log(sessions / clicks on the item)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RefSession:
    items: list[str] = field(default_factory=list)
    ts: float = 0.0
    seq: int = 0  # position of the session's last click in the log


def sessions_of(clicks: Iterable[tuple[str, str, float]]) -> dict[str, RefSession]:
    """Sessions of a click log ``(session, item, ts)`` in log order."""
    out: dict[str, RefSession] = {}
    for seq, (sid, item, ts) in enumerate(clicks):
        session = out.setdefault(sid, RefSession())
        session.items.append(item)
        session.ts = max(session.ts, ts)
        session.seq = seq
    return out


def _last_positions(items: list[str]) -> dict[str, int]:
    return {item: p for p, item in enumerate(items, 1)}


def reference_scores(
    known: Mapping[str, RefSession],
    current: list[str],
    now: float,
    params: Mapping[str, Any],
    exclude: str | None = None,
    idf_counts: tuple[int, Mapping[str, int]] | None = None,
) -> dict[str, float]:
    """Scores of the next item for a session whose clicks are ``current``, from the sessions ``known``.

    ``exclude`` is the current session's id if ``known`` holds it; ``idf_counts`` is
    ``(sessions, clicks per item)`` for the IDF (default: counted over ``known``).
    """
    p = {"k": 100, "sample_size": 500, "similarity": "cosine", "weighting": "div", "weighting_score": "div",
         "idf_weighting": 0.0, "lambda_spw": None, "lambda_ipw": None, "lambda_inh": None, "lambda_snh": None,
         "remind": True} | dict(params)
    n = len(current)
    mine = _last_positions(current)
    if p["lambda_spw"] is not None:
        weight = {item: math.exp((pos - n) / p["lambda_spw"]) for item, pos in mine.items()}
    else:
        weight = {item: {"div": pos / n, "quadratic": (pos / n) ** 2, "same": 1.0}[p["weighting"]]
                  for item, pos in mine.items()}

    candidates = [(sid, s) for sid, s in known.items() if sid != exclude and set(s.items) & mine.keys()]
    candidates.sort(key=lambda c: c[1].seq, reverse=True)
    candidates = candidates[: p["sample_size"]]

    similar = []
    for sid, s in candidates:
        theirs = set(s.items)
        dot = sum(w for item, w in weight.items() if item in theirs)
        if p["similarity"] == "vec":
            sim = dot / len(weight)
        else:
            sim = dot / (math.sqrt(sum(w * w for w in weight.values())) * math.sqrt(len(theirs)))
        if p["lambda_snh"] is not None:
            sim *= math.exp(-(now - s.ts) / (p["lambda_snh"] * 86_400.0))
        similar.append((sid, s, sim))
    similar.sort(key=lambda c: c[2], reverse=True)  # stable: equally similar stay most recent first
    neighbours = similar[: p["k"]]

    if idf_counts is None:
        clicks: dict[str, int] = {}
        for s in known.values():
            for item in s.items:
                clicks[item] = clicks.get(item, 0) + 1
        idf_counts = (len(known), clicks)
    n_sessions, clicks = idf_counts

    scores: dict[str, float] = {}
    for _, s, sim in neighbours:
        theirs = _last_positions(s.items)
        last_mine = max(pos for item, pos in mine.items() if item in theirs)
        anchor = max(pos for item, pos in theirs.items() if item in mine)
        step = n - last_mine + 1
        if p["lambda_ipw"] is not None:
            decay = math.exp((last_mine - n) / p["lambda_ipw"])
        else:
            decay = {"div": 1.0 / step, "quadratic": 1.0 / step**2, "same": 1.0}[p["weighting_score"]]
        for item, pos in theirs.items():
            if not p["remind"] and item in mine:
                continue
            vote = sim * decay
            if p["lambda_inh"] is not None:
                vote *= math.exp(-abs(pos - anchor) / p["lambda_inh"])
            if p["idf_weighting"]:
                vote *= 1.0 + p["idf_weighting"] * math.log(n_sessions / clicks[item])
            scores[item] = scores.get(item, 0.0) + vote
    return scores
