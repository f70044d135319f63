"""Item-to-item transitions and co-visitation, learned online from session sequences.

One pass over each session event feeds two sparse graphs: ``a → b`` when b directly follows a
(first-order Markov, the strong signal for next-item), and ``a ↔ b`` when both occur within a few
steps of each other (co-visitation, the signal for "similar items"). Every structure is capped:
items (LRU), neighbours per item (pruned by weight), sessions (LRU plus expiry by event time).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import reduce
from operator import add, itemgetter
from typing import Any

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
        """One edge's weight (``add_many`` of one edge, without building its dicts)."""
        edges = self._edges.peek(src)
        if edges is None:
            self._edges[src] = {dst: weight}
            return
        self._edges.move_to_end(src)
        edges[dst] = edges.get(dst, 0.0) + weight
        if len(edges) > 2 * self.max_neighbours:
            self._prune(src, edges)

    def add_many(self, increments: dict[str, dict[str, float]]) -> None:
        """Add a batch's edge weights, grouped by source: one lookup and at most one prune per source."""
        edges_of = self._edges
        limit = 2 * self.max_neighbours
        for src, added in increments.items():
            edges = edges_of.peek(src)
            if edges is None:
                edges = edges_of[src] = added
            else:
                edges_of.move_to_end(src)
                get = edges.get
                for dst, weight in added.items():
                    edges[dst] = get(dst, 0.0) + weight
            if len(edges) > limit:
                self._prune(src, edges)

    def _prune(self, src: str, edges: dict[str, float]) -> None:
        self._edges[src] = dict(heapq.nlargest(self.max_neighbours, edges.items(), key=itemgetter(1)))

    def neighbours(self, src: str) -> list[Scored]:
        edges = self._edges.peek(src)
        if not edges:
            return []
        return sorted(edges.items(), key=itemgetter(1), reverse=True)[: self.max_neighbours]  # C sort

    def strongest(self, src: str) -> dict[str, float]:
        """The edges :meth:`neighbours` returns, unordered: what a reader that sums them needs, without the
        sort when the item has no more than ``max_neighbours`` (a read-only view; callers must not change it)."""
        edges = self._edges.peek(src)
        if not edges or len(edges) <= self.max_neighbours:
            return edges or {}
        return dict(heapq.nlargest(self.max_neighbours, edges.items(), key=itemgetter(1)))


class SessionTransitions(SessionRecommender, ItemRecommender):
    """What both item graphs share: sessions' recent items (capped, expiring by event time) and the order in which
    clicks reach the graphs. Subclasses hold the graphs: :meth:`_learn_click` gets each click after the first of a
    session, with the session's recent items, and :meth:`_learned` ends a batch.

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
    ) -> None:
        if min(window, max_items, max_neighbours, max_sessions) < 1:
            raise ValueError("window, max_items, max_neighbours and max_sessions must be at least 1")
        self.window = window
        self.max_items = max_items
        self.max_neighbours = max_neighbours
        self.max_sessions = max_sessions
        self.session_ttl_s = session_ttl_s
        self.covisit_weight = covisit_weight
        self.recency = recency
        self._sessions: LRUDict[str, SessionState] = LRUDict(max_sessions)
        self.expired_sessions = 0
        # When the least recently active session (``_front``) times out: no session is checked before then,
        # unless the front itself moves (touched, evicted), which is when the old per-event check would
        # have seen another front.
        self._next_expiry = -math.inf
        self._front: str | None = None

    def learn_one(self, event: Event) -> None:
        self.learn_many([event])

    def learn_many(self, events: Iterable[Event]) -> None:
        """Learn in order, each event's edge weights added before the next event's: learning a batch equals
        learning its events one by one, exactly (which items are pruned over their neighbour cap, which the
        item cap evicts, every float sum), so the model is the same however a stream was cut into batches."""
        window, learn_click = self.window, self._learn_click
        for event in events:
            if event.type not in POSITIVE_TYPES:
                continue
            if event.ts >= self._next_expiry:
                self._expire(event.ts)
            state = self._sessions.get(event.session_id)  # moves it to the back
            if state is None:
                if len(self._sessions) >= self.max_sessions:
                    self._next_expiry = -math.inf  # the cap evicts the front: the next front decides
                state = self._sessions[event.session_id] = SessionState()
            elif event.session_id == self._front:
                self._next_expiry = -math.inf
            item, recent = event.item_id, state.items
            if recent:  # repeats included: a re-click is a common next event
                learn_click(recent, item)
            recent.append(item)
            if len(recent) > window:
                del recent[0]
            state.last_ts = max(state.last_ts, event.ts)
        self._learned()

    def _learn_click(self, recent: list[str], item: str) -> None:
        """``item`` clicked after ``recent`` (oldest first): the last of them gains a transition to it; it and
        each other recent item ``d`` steps back co-visit with weight ``1/d``."""
        raise NotImplementedError

    def _learned(self) -> None:
        """The batch's clicks have all been given to :meth:`_learn_click`."""

    def _expire(self, now: float) -> None:
        horizon = now - self.session_ttl_s
        while (oldest := self._sessions.oldest()) is not None and oldest[1].last_ts < horizon:
            self._sessions.popitem(last=False)
            self.expired_sessions += 1
        self._front = None if oldest is None else oldest[0]
        self._next_expiry = -math.inf if oldest is None else oldest[1].last_ts + self.session_ttl_s

    def session_items(self, session_id: str) -> list[str]:
        state = self._sessions.peek(session_id)
        return [] if state is None else list(state.items)

    def _graph_size(self) -> tuple[int, int]:
        """Items held and item evictions so far."""
        raise NotImplementedError

    def size(self) -> dict[str, int]:
        return {"items": self._graph_size()[0], "sessions": len(self._sessions)}

    def evictions(self) -> dict[str, int]:
        return {"items": self._graph_size()[1], "sessions": self._sessions.evictions}


class ItemTransitions(SessionTransitions):
    """Next items for a session from its recent items' transitions; similar items from co-visits: in dicts, with
    each item's vote cached (the reference that :class:`~shopstream.models.transitions_index.IndexedTransitions`,
    which the stack serves, is checked against).

    Parameters: :class:`SessionTransitions`', and

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

    exact_serving = False  # an item's votes are cached when served, until its edges grew by vote_staleness
    _cache_votes = True  # False inside ``uncached``

    def __init__(self, *args: Any, vote_staleness: float = 0.05, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.vote_staleness = vote_staleness
        self._next = NeighbourGraph(self.max_items, self.max_neighbours)
        self._covisit = NeighbourGraph(self.max_items, self.max_neighbours)
        # Each item's vote for the next item (its transitions and co-visits, normalised and merged),
        # kept until the weight added to its edges since exceeds ``vote_staleness`` of the weight it
        # was built from: a popular item is in many sessions at once and changes by little each event.
        self._votes: LRUDict[str, _Votes] = LRUDict(self.max_items)
        self._grew: dict[str, float] = {}  # weight added to each item's vote in this batch

    def _learn_click(self, recent: list[str], item: str) -> None:
        covisit_weight, grew = self.covisit_weight, self._grew
        last = recent[-1]
        self._next.add(last, item, 1.0)
        grew[last] = grew.get(last, 0.0) + 1.0
        covisits: dict[str, dict[str, float]] = {}
        for distance, other in enumerate(reversed(recent), start=1):
            if other != item:
                weight = 1.0 / distance
                added = covisits.setdefault(other, {})
                added[item] = added.get(item, 0.0) + weight
                added = covisits.setdefault(item, {})
                added[other] = added.get(other, 0.0) + weight
                grew[other] = grew.get(other, 0.0) + covisit_weight * weight
                grew[item] = grew.get(item, 0.0) + covisit_weight * weight
        if covisits:
            self._covisit.add_many(covisits)

    def _learned(self) -> None:
        for item, weight in self._grew.items():
            self._edges_grew(item, weight)
        self._grew.clear()

    def recommend_session(self, session_id: str, k: int) -> list[Scored]:
        state = self._sessions.peek(session_id)
        if state is None or not state.items or k < 1:
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

    @contextmanager
    def uncached(self) -> Iterator[None]:
        """Votes computed afresh from the graphs, neither read from the vote cache nor left in it (nested: the
        outermost context restores the cache)."""
        if not self._cache_votes:
            yield
            return
        self._cache_votes = False
        try:
            yield
        finally:
            del self._cache_votes

    def _item_votes(self, item: str) -> dict[str, float]:
        votes = self._votes.peek(item) if self._cache_votes else None
        if votes is None:
            merged: dict[str, float] = {}
            built_from = 0.0
            graphs = ((self._next.strongest(item), 1.0), (self._covisit.strongest(item), self.covisit_weight))
            for edges, weight in graphs:
                total = reduce(add, edges.values(), 0.0)  # left to right (``sum`` compensates from 3.12)
                if total > 0:
                    built_from += total * weight
                    scale = weight / total
                    if not merged:
                        merged = {other: w * scale for other, w in edges.items()}
                        continue
                    get = merged.get
                    for other, w in edges.items():
                        merged[other] = get(other, 0.0) + w * scale
            if not self._cache_votes:
                return merged
            votes = self._votes[item] = _Votes(merged, built_from)
        return votes.items

    def similar_items(self, item_id: str, k: int) -> list[Scored]:
        edges = self._covisit.neighbours(item_id)
        if not edges or k < 1:
            return []
        norm = math.fsum(w for _, w in edges)
        return [(item, w / norm) for item, w in edges[:k]]

    def _graph_size(self) -> tuple[int, int]:
        return len(self._covisit), self._covisit.evictions + self._next.evictions
