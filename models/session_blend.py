"""Next items from transitions and session-kNN together, weighted by how well each has been predicting.

No single session model wins on every shop: item-to-item transitions are strong where the next click
follows the last one, session-kNN where whole sessions resemble each other, and which of them leads
(and by how much) changes from log to log. So the blend scores each component prequentially while it
learns — before learning a click of a known session it asks each component for that session's list
of 20 and keeps a decayed hit-rate (the click in the list or not) — and weighs the components by
those hit-rates. Each component's scores are normalised to sum to one over its list, so the weights, not the
components' scales, decide.

Scoring every click would double the cost of learning, so only every ``score_every``-th positive
click of a known session is scored (a deterministic count: runs repeat exactly). The blend holds no
state per session or item of its own; its memory is its components' (each capped) plus a few floats.

When the other components are kNNs on one index (the default), their lists come from one compiled pass
over the postings they share and the lists are added in a compiled kernel (``fused``); the plain path —
each component's own list, added in a dict — stays as the reference it is tested against.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from operator import itemgetter

import numpy as np

from shopstream.models.base import ItemRecommender, Scored, SessionRecommender
from shopstream.models.events import Event
from shopstream.models.session_index import IndexedSessionKNN, KnnGroup, SessionIndex
from shopstream.models.session_knn_kernel import blended
from shopstream.models.transitions import POSITIVE_TYPES, SessionTransitions
from shopstream.models.transitions_index import IndexedTransitions

#: The list length the components are scored at: the served list's length.
SCORED_K = 20


def default_knns(window: int = 50, max_sessions: int = 200_000) -> tuple[IndexedSessionKNN, IndexedSessionKNN]:
    """V-SKNN (session-rec's defaults, with IDF) and V-STAN (its shipped YOOCHOOSE weights), both with
    V-SKNN's neighbourhood (100 of the 500 most recent sessions), on one shared index (the first learns it):
    the pair was picked on the last day of YOOCHOOSE's train file, never its test file (docs/evaluation.md)."""
    index = SessionIndex(sample_size=500, window=window, max_sessions=max_sessions)
    return (
        IndexedSessionKNN(index, k=100, similarity="vec", weighting="div", idf_weighting=1.0),
        IndexedSessionKNN(index, k=100, similarity="cosine", lambda_spw=4, lambda_snh=5, lambda_inh=4, lambda_ipw=1e-5,
                          idf_weighting=1.0, learns=False),
    )


class SessionBlend(SessionRecommender, ItemRecommender):
    """Transitions and session-kNN scores added with weights learned online from their hit-rates.

    Parameters
    ----------
    transitions
        The item-to-item model; it also serves the similar-items lists (``similar_items``).
    others
        The other components: by default :func:`default_knns`, a V-SKNN and a V-STAN.
    depth
        Candidates taken from each component's list before blending.
    score_every
        One positive click of a known session in this many is scored for the weights.
    half_life
        Scored clicks after which a component's past hits weigh half.
    power
        Weights are the components' hit-rates to this power, normalised: 1 blends in proportion,
        large values pick the leader.
    fused
        Whether kNN components on one index list together in compiled kernels (same lists and weights;
        False serves each component's own list, added in Python: the reference).

    Examples
    --------
    >>> from shopstream.models.events import Event
    >>> model = SessionBlend(score_every=1)
    >>> clicks = [("s1", "a"), ("s1", "b"), ("s2", "a"), ("s2", "b"), ("s3", "a"), ("s3", "c"), ("s4", "a")]
    >>> for n, (session, item) in enumerate(clicks):
    ...     model.learn_one(Event(f"e{n}", 1e9 + n, session, "view", item))
    >>> [item for item, _ in model.recommend_session("s4", 2)]
    ['b', 'c']
    >>> [round(w, 2) for w in model.weights()]
    [0.33, 0.33, 0.33]
    >>> model.recommend_session("unknown", 2)
    []
    """

    name = "session_blend"
    def __init__(
        self,
        transitions: SessionTransitions | None = None,
        others: Sequence[SessionRecommender] | None = None,
        depth: int = 100,
        score_every: int = 100,
        half_life: float = 250.0,
        power: float = 2.0,
        fused: bool = True,
    ) -> None:
        if min(depth, score_every) < 1 or half_life <= 0 or power <= 0:
            raise ValueError("depth, score_every, half_life and power must be positive")
        self.transitions = transitions or IndexedTransitions()
        self.components: tuple[SessionRecommender, ...] = (self.transitions, *(others or default_knns()))
        self.depth = depth
        self.score_every = score_every
        self.power = power
        self._decay = 0.5 ** (1.0 / half_life)
        self._hits = [0.0] * len(self.components)  # decayed counts of hits
        self._scored = 0.0  # decayed count of scored clicks
        self._known_clicks = 0  # positive clicks of known sessions seen: every score_every-th is scored
        knns = self.components[1:]
        self._knns = (
            KnnGroup(knns)  # type: ignore[arg-type]
            if fused and knns and all(isinstance(c, IndexedSessionKNN) and c.index is knns[0].index for c in knns)
            else None
        )

    # -- learning -------------------------------------------------------------------------------

    def learn_one(self, event: Event) -> None:
        self.learn_many([event])

    def learn_many(self, events: Iterable[Event]) -> None:
        """Learn in order; the batch is handed to the components in runs that end before each scored click."""
        pending: list[Event] = []
        pending_sessions: set[str] = set()  # sessions with a positive click in ``pending``
        for event in events:
            if event.type in POSITIVE_TYPES:
                sid = event.session_id
                if sid in pending_sessions or self.transitions.session_items(sid):
                    self._known_clicks += 1
                    if self._known_clicks % self.score_every == 0:
                        self._learn_components(pending)
                        pending, pending_sessions = [], set()
                        self._score(event)
                pending_sessions.add(sid)
            pending.append(event)
        self._learn_components(pending)

    def _learn_components(self, events: list[Event]) -> None:
        if events:
            for component in self.components:
                component.learn_many(events)

    def _score(self, event: Event) -> None:
        """Uncached: the weights learned depend on the stream only, not on when the lists were served."""
        decay = self._decay
        self._scored = decay * self._scored + 1.0
        with self.uncached():
            hits = self._hits_of(event.session_id, event.item_id)
        self._hits = [decay * before + hit for before, hit in zip(self._hits, hits, strict=True)]

    def _hits_of(self, session_id: str, item: str) -> list[bool]:
        """Whether each component's list of ``SCORED_K`` for the session has ``item``."""
        if self._knns is None:
            return [any(c == item for c, _ in m.recommend_session(session_id, SCORED_K)) for m in self.components]
        hits = [any(c == item for c, _ in self.transitions.recommend_session(session_id, SCORED_K))]
        lists = self._knns.lists(session_id, SCORED_K)
        item_id = self._knns.index.item_ids((item,))[0]
        if lists is None or item_id is None:
            return hits + [False] * (len(self.components) - 1)
        ids, _, counts = lists
        return hits + [bool((ids[r, :n] == item_id).any()) for r, n in enumerate(counts.tolist())]

    def uncached(self) -> AbstractContextManager[None]:
        return self.transitions.uncached()

    @property
    def exact_serving(self) -> bool:  # type: ignore[override]
        """As exact as the transitions' serving (the kNNs' is)."""
        return self.transitions.exact_serving

    # -- serving --------------------------------------------------------------------------------

    def weights(self) -> list[float]:
        """Each component's current weight, in ``components`` order (equal until a scored click has a hit)."""
        strengths = [(h / self._scored) ** self.power if self._scored else 0.0 for h in self._hits]
        total = sum(strengths)
        return [w / total for w in strengths] if total else [1.0 / len(strengths)] * len(strengths)

    def recommend_session(self, session_id: str, k: int) -> list[Scored]:
        if k < 1:
            return []
        depth = max(k, self.depth)
        if self._knns is not None:
            return self._fused(session_id, k, depth)
        scores: dict[str, float] = {}
        get = scores.get
        for component, weight in zip(self.components, self.weights(), strict=True):
            ranked = component.recommend_session(session_id, depth)
            total = sum(score for _, score in ranked)
            if not ranked or total <= 0.0 or weight == 0.0:
                continue
            scale = weight / total
            for item, score in ranked:
                scores[item] = get(item, 0.0) + score * scale
        return heapq.nlargest(k, scores.items(), key=itemgetter(1))

    def _fused(self, session_id: str, k: int, depth: int) -> list[Scored]:
        """The plain path's list: the kNNs' lists from one kernel call, added to the transitions' in another,
        on the index's item ids (transitions' items the index does not hold get ids of their own, below 0)."""
        knns = self._knns
        assert knns is not None
        index = knns.index
        ranked = self.transitions.recommend_session(session_id, depth)
        lists = knns.lists(session_id, depth)
        rows = 1 if lists is None else 1 + len(lists[2])
        ids, scores = np.zeros((rows, depth), dtype=np.int64), np.zeros((rows, depth))
        counts = np.zeros(rows, dtype=np.int64)
        row = index.item_ids(item for item, _ in ranked)
        strangers: list[str] = []
        if None in row:
            for i, item_id in enumerate(row):
                if item_id is None:
                    strangers.append(ranked[i][0])
                    row[i] = -len(strangers)
        counts[0] = n = len(ranked)
        ids[0, :n], scores[0, :n] = row, [score for _, score in ranked]
        if lists is not None:
            ids[1:], scores[1:], counts[1:] = lists
        totals = [sum(row[:n]) for row, n in zip(scores.tolist(), counts.tolist(), strict=True)]
        scales = np.array([weight / total if n and total > 0.0 else 0.0
                           for weight, total, n in zip(self.weights(), totals, counts.tolist(), strict=False)])
        best, values = blended(ids, scores, counts, scales, k)
        names = index.names
        return [(names[item] if item >= 0 else strangers[-1 - item], value)  # type: ignore[misc]
                for item, value in zip(best.tolist(), values.tolist(), strict=True)]

    def similar_items(self, item_id: str, k: int) -> list[Scored]:
        return self.transitions.similar_items(item_id, k)

    def size(self) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for component in self.components:
            for kind, n in component.size().items():
                sizes[kind] = max(sizes.get(kind, 0), n)
        return sizes

    def evictions(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for component in self.components:
            for kind, n in component.evictions().items():
                totals[kind] = totals.get(kind, 0) + n
        return totals
