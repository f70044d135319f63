"""Item-to-item transitions and co-visitation, learned online from session sequences.

One pass over each session event feeds two sparse graphs: ``a → b`` when b directly follows a
(first-order Markov, the strong signal for next-item), and ``a ↔ b`` when both occur within a few
steps of each other (co-visitation, the signal for "similar items"). Every structure is capped:
items (LRU), neighbours per item (pruned by weight), sessions (LRU plus expiry by event time).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from operator import itemgetter

from shopstream.models.base import ItemRecommender, Scored, SessionRecommender
from shopstream.models.bounded import LRUDict
from shopstream.models.events import Event

POSITIVE_TYPES = frozenset({"view", "add_to_cart", "purchase"})


@dataclass(slots=True)
class SessionState:
    items: list[str] = field(default_factory=list)
    last_ts: float = 0.0


@dataclass(slots=True)
class _Votes:
    items: dict[str, float]
    built_from: float  # edge weight (co-visits times their weight) the votes were computed from
    added: float = 0.0  # edge weight added since


class NeighbourGraph:
    """Weighted item → item edges with a cap per item and on items.

    An item keeps up to twice ``max_neighbours`` edges and is pruned back to the strongest
    ``max_neighbours`` when it passes that; readers see the strongest ``max_neighbours``, best first,
    without changing the graph.

    >>> g = NeighbourGraph(max_items=10, max_neighbours=1)
    >>> g.add("a", "b", 1.0); g.add("a", "c", 2.0)
    >>> g.neighbours("a")
    [('c', 2.0)]
    >>> g.add("a", "d", 0.5); g.neighbours("a"), g.neighbours("x")   # pruned back to one on the third
    ([('c', 2.0)], [])
    """

    def __init__(self, max_items: int, max_neighbours: int) -> None:
        self.max_neighbours = max_neighbours
        self._edges: LRUDict[str, dict[str, float]] = LRUDict(max_items)

    def __len__(self) -> int:
        return len(self._edges)

    @property
    def evictions(self) -> int:
        return self._edges.evictions

    def add(self, src: str, dst: str, weight: float) -> None:
        edges = self._edges.get(src)
        if edges is None:
            edges = self._edges[src] = {}
        edges[dst] = edges.get(dst, 0.0) + weight
        if len(edges) > 2 * self.max_neighbours:
            self._prune(src, edges)

    def _prune(self, src: str, edges: dict[str, float]) -> None:
        self._edges[src] = dict(heapq.nlargest(self.max_neighbours, edges.items(), key=itemgetter(1)))

    def neighbours(self, src: str) -> list[Scored]:
        edges = self._edges.peek(src)
        if not edges:
            return []
        return sorted(edges.items(), key=itemgetter(1), reverse=True)[: self.max_neighbours]  # C sort


class ItemTransitions(SessionRecommender, ItemRecommender):
    """Next items for a session from its recent items' transitions; similar items from co-visits.

    Parameters
    ----------
    window
        Recent items of a session that vote for the next item, and the co-visitation reach.
    max_items
        Items with neighbour lists held.
    max_neighbours
        Neighbours kept per item.
    max_sessions
        Sessions held; beyond it the least recently active is dropped.
    session_ttl_s
        A session idle this long (in event time) is forgotten.
    covisit_weight
        Weight of co-visitation against direct transitions when predicting the next item.
    recency
        Vote of the item ``p`` steps back from the session's last one: ``recency ** p``.
    vote_staleness
        An item's normalised vote is recomputed once the weight added to its edges exceeds this
        share of the weight it was computed from (0 recomputes on every change).

    Examples
    --------
    >>> from shopstream.models.events import Event
    >>> model = ItemTransitions()
    >>> for i, (sid, item) in enumerate([("s1", "a"), ("s1", "b"), ("s2", "a"), ("s2", "b"),
    ...                                  ("s3", "a"), ("s3", "c"), ("s4", "a")]):
    ...     model.learn_one(Event(f"e{i}", 1e9 + i, sid, "view", item))
    >>> [item for item, _ in model.recommend_session("s4", 2)]
    ['b', 'c']
    >>> model.recommend_session("unknown", 2)
    []
    """

    name = "transitions"

    def __init__(
        self,
        window: int = 3,
        max_items: int = 200_000,
        max_neighbours: int = 50,
        max_sessions: int = 200_000,
        session_ttl_s: float = 3600.0,
        covisit_weight: float = 0.1,
        recency: float = 0.2,
        vote_staleness: float = 0.05,
    ) -> None:
        self.window = window
        self.max_items = max_items
        self.max_neighbours = max_neighbours
        self.max_sessions = max_sessions
        self.session_ttl_s = session_ttl_s
        self.covisit_weight = covisit_weight
        self.recency = recency
        self.vote_staleness = vote_staleness
        self._next = NeighbourGraph(max_items, max_neighbours)
        self._covisit = NeighbourGraph(max_items, max_neighbours)
        self._sessions: LRUDict[str, SessionState] = LRUDict(max_sessions)
        # Each item's vote for the next item (its transitions and co-visits, normalised and merged),
        # kept until the weight added to its edges since exceeds ``vote_staleness`` of the weight it
        # was built from: a popular item is in many sessions at once and changes by little each event.
        self._votes: LRUDict[str, _Votes] = LRUDict(max_items)
        self.expired_sessions = 0

    def learn_one(self, event: Event) -> None:
        if event.type not in POSITIVE_TYPES:
            return
        self._expire(event.ts)
        state = self._sessions.get(event.session_id)
        if state is None:
            state = self._sessions[event.session_id] = SessionState()
        recent = state.items[-self.window:]
        if recent:  # repeats included: a re-click is a common next event
            self._next.add(recent[-1], event.item_id, 1.0)
            self._edges_grew(recent[-1], 1.0)
        for distance, other in enumerate(reversed(recent), start=1):
            if other != event.item_id:
                self._covisit.add(other, event.item_id, 1.0 / distance)
                self._covisit.add(event.item_id, other, 1.0 / distance)
                self._edges_grew(other, self.covisit_weight / distance)
                self._edges_grew(event.item_id, self.covisit_weight / distance)
        state.items.append(event.item_id)
        del state.items[: -self.window]
        state.last_ts = max(state.last_ts, event.ts)

    def _expire(self, now: float) -> None:
        horizon = now - self.session_ttl_s
        while (oldest := self._sessions.oldest()) is not None and oldest[1].last_ts < horizon:
            self._sessions.popitem(last=False)
            self.expired_sessions += 1

    def session_items(self, session_id: str) -> list[str]:
        state = self._sessions.peek(session_id)
        return [] if state is None else list(state.items)

    def recommend_session(self, session_id: str, k: int) -> list[Scored]:
        state = self._sessions.peek(session_id)
        if state is None or not state.items:
            return []
        items = state.items
        scores = dict(self._item_votes(items[-1]))  # the last item votes with weight 1: a C-level copy
        get = scores.get
        for position in range(1, len(items)):
            decay = self.recency**position
            for other, vote in self._item_votes(items[-1 - position]).items():
                scores[other] = get(other, 0.0) + vote * decay
        return sorted(scores.items(), key=itemgetter(1), reverse=True)[:k]  # C sort beats nlargest here

    def _edges_grew(self, item: str, weight: float) -> None:
        votes = self._votes.peek(item)
        if votes is not None:
            votes.added += weight
            if votes.added > self.vote_staleness * votes.built_from:
                del self._votes[item]

    def _item_votes(self, item: str) -> dict[str, float]:
        votes = self._votes.peek(item)
        if votes is None:
            merged: dict[str, float] = {}
            built_from = 0.0
            for edges, weight in ((self._next.neighbours(item), 1.0),
                                  (self._covisit.neighbours(item), self.covisit_weight)):
                total = sum(w for _, w in edges)
                if total > 0:
                    built_from += total * weight
                    scale = weight / total
                    for other, w in edges:
                        merged[other] = merged.get(other, 0.0) + w * scale
            votes = self._votes[item] = _Votes(merged, built_from)
        return votes.items

    def similar_items(self, item_id: str, k: int) -> list[Scored]:
        edges = self._covisit.neighbours(item_id)
        if not edges:
            return []
        norm = math.fsum(w for _, w in edges)
        return [(item, w / norm) for item, w in edges[:k]]

    def size(self) -> dict[str, int]:
        return {"items": len(self._covisit), "sessions": len(self._sessions)}

    def evictions(self) -> dict[str, int]:
        return {"items": self._covisit.evictions + self._next.evictions, "sessions": self._sessions.evictions}
