"""Incremental session-kNN (V-SKNN, with V-STAN's options) for next-item prediction.

Ludewig & Jannach's session-kNN family still matches or beats neural models on e-commerce clicks,
and it is naturally incremental: "training" is only the item -> recent-sessions index, so every
learned click is a candidate neighbour at once. The formulas follow session-rec's ``VMContextKNN``
(``vsknn.py``) and ``VSKNN_STAN`` (``vstan.py``):

- a session is weighted by position: its item at position ``p`` of ``n`` weighs ``p / n``
  (``weighting="div"``), ``(p / n) ** 2`` (``"quadratic"``), 1 (``"same"``) or, if ``lambda_spw``
  is set, ``exp((p - n) / lambda_spw)``;
- candidates are the ``sample_size`` most recent sessions sharing an item with the session, found
  from per-item lists capped at ``sample_size`` (exact: a session among the most recent of the
  union is among the most recent of each of its items);
- similarity ``vec`` is the weighted overlap over the session's distinct items, ``cosine`` divides
  it by both norms; ``lambda_snh`` (days) decays neighbours by their age;
- the ``k`` most similar neighbours vote for their items with their similarity, decayed by how far
  back the last shared item of the session is (``weighting_score`` ``"div"``: ``1 / step``, or
  ``exp(-(step - 1) / lambda_ipw)``), by the distance in the neighbour from its last shared item
  (``lambda_inh``, STAN's item neighbourhood) and boosted by rarity (``idf_weighting``).

Serving never refreshes a session; it reads the prefix learned so far. Memory is bounded by
``max_sessions`` (LRU by last event, which in time order is also the oldest session), by
``session_ttl_s`` of event time, by ``window`` items per session and by ``sample_size`` sessions
per item, and evicted sessions leave the index immediately.
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from collections.abc import Callable
from operator import itemgetter

from shopstream.models.base import ItemRecommender, Scored, SessionRecommender
from shopstream.models.bounded import LRUDict
from shopstream.models.events import Event

_peek = OrderedDict.get  # reads an LRUDict without refreshing it, and without a Python call
POSITIVE_TYPES = frozenset({"view", "add_to_cart", "purchase"})

_POSITION_WEIGHTS: dict[str, Callable[[int, int], float]] = {
    "div": lambda p, n: p / n,
    "quadratic": lambda p, n: (p / n) ** 2,
    "same": lambda p, n: 1.0,
}
_STEP_WEIGHTS: dict[str, Callable[[int], float]] = {
    "div": lambda step: 1.0 / step,
    "quadratic": lambda step: 1.0 / (step * step),
    "same": lambda step: 1.0,
}


class _Session:
    """A session's recent items in order, each distinct item's last position, its last event time and
    the learned-click count at its last click (``seq``: recency without ties, however coarse the clock)."""

    __slots__ = ("items", "last_pos", "seq", "ts")

    def __init__(self, ts: float) -> None:
        self.items: list[str] = []
        self.last_pos: dict[str, int] = {}
        self.ts = ts
        self.seq = 0


def _recency(pair: tuple[_Session, float]) -> int:
    return pair[0].seq


def check_scoring(similarity: str, weighting: str, weighting_score: str) -> None:
    """The kNN scoring options both implementations accept (this one and the compiled index's)."""
    if similarity not in ("cosine", "vec"):
        raise ValueError(f"similarity must be 'cosine' or 'vec', got {similarity!r}")
    if weighting not in _POSITION_WEIGHTS or weighting_score not in _STEP_WEIGHTS:
        raise ValueError(f"weighting and weighting_score must be one of {sorted(_STEP_WEIGHTS)}")


class SessionKNN(SessionRecommender, ItemRecommender):
    """V-SKNN / V-STAN session-kNN, learned one click at a time; its similar items are what the neighbours of
    a session of that one item would recommend.

    Parameters
    ----------
    k
        Neighbour sessions that vote for the next items.
    sample_size
        Most recent sessions considered as candidates, and sessions remembered per item.
    similarity
        ``"cosine"`` or ``"vec"`` (weighted overlap divided by the session's distinct items).
    weighting
        Position weight of the session's items: ``"div"``, ``"quadratic"`` or ``"same"``.
    weighting_score
        Decay of a neighbour's vote by how many clicks back its last shared item is: ``"div"``,
        ``"quadratic"`` or ``"same"``.
    idf_weighting
        Vote boost ``1 + idf_weighting * idf(item)``; 0 turns it off.
    lambda_spw
        If set, STAN's position weight ``exp((p - n) / lambda_spw)`` replaces ``weighting``.
    lambda_ipw
        If set, ``exp(-(step - 1) / lambda_ipw)`` replaces ``weighting_score``.
    lambda_inh
        If set, a neighbour's item ``d`` positions away from its last shared item votes
        ``exp(-d / lambda_inh)`` (STAN's item neighbourhood); ``None`` turns it off.
    lambda_snh
        If set, neighbours ``t`` days older than the session weigh ``exp(-t / lambda_snh)``.
    remind
        Whether items already in the session may be recommended (repeats are common).
    window
        Most recent items kept per session.
    max_sessions
        Sessions held; the least recently active is forgotten first.
    session_ttl_s
        If set, sessions idle longer than this, in event time, are forgotten; by default only
        ``max_sessions`` bounds them (an idle session is still a neighbour: on a shop with a few
        sessions an hour, months of them are what the rarer items have).

    Examples
    --------
    >>> from shopstream.models.events import Event
    >>> model = SessionKNN(k=10, sample_size=10)
    >>> clicks = [("s1", "a"), ("s1", "b"), ("s2", "a"), ("s2", "c"), ("s3", "a"), ("s3", "b")]
    >>> for n, (session, item) in enumerate(clicks):
    ...     model.learn_one(Event(f"e{n}", 1_700_000_000 + n, session, "view", item))
    >>> model.learn_one(Event("e9", 1_700_000_010, "s4", "view", "a"))
    >>> [item for item, _ in model.recommend_session("s4", 2)]
    ['a', 'b']
    >>> model.recommend_session("unknown", 2)
    []
    >>> [(item, round(score, 3)) for item, score in model.similar_items("a", 2)]
    [('b', 1.414), ('c', 0.707)]
    """

    name = "session_knn"

    def __init__(
        self,
        k: int = 100,
        sample_size: int = 500,
        similarity: str = "cosine",
        weighting: str = "div",
        weighting_score: str = "div",
        idf_weighting: float = 0.0,
        lambda_spw: float | None = None,
        lambda_ipw: float | None = None,
        lambda_inh: float | None = None,
        lambda_snh: float | None = None,
        remind: bool = True,
        window: int = 50,
        max_sessions: int = 200_000,
        session_ttl_s: float | None = None,
    ) -> None:
        check_scoring(similarity, weighting, weighting_score)
        if min(k, sample_size, window, max_sessions) < 1 or (session_ttl_s is not None and session_ttl_s <= 0):
            raise ValueError("k, sample_size, window, max_sessions and session_ttl_s must be positive")
        self.k = k
        self.sample_size = sample_size
        self.similarity = similarity
        self.weighting = weighting
        self.weighting_score = weighting_score
        self.idf_weighting = idf_weighting
        self.lambda_spw = lambda_spw
        self.lambda_ipw = lambda_ipw
        self.lambda_inh = lambda_inh
        self.lambda_snh = lambda_snh
        self.remind = remind
        self.window = window
        self.max_sessions = max_sessions
        self.session_ttl_s = session_ttl_s

        self._sessions: LRUDict[str, _Session] = LRUDict(max_sessions)
        self._evicted_sessions = 0  # dropped for capacity, not for idling past the TTL
        self._seq = 0  # clicks learned
        # item -> {session_id: None}, oldest activity first; a dict is an ordered set.
        self._index: dict[str, dict[str, None]] = {}
        # item -> clicks on it within held sessions: IDF is log(sessions held / clicks).
        self._clicks: dict[str, int] = {}
        # STAN's item-neighbourhood weight by distance, precomputed: distances are below the window.
        self._inh_weights = [math.exp(-d / lambda_inh) for d in range(window)] if lambda_inh is not None else []

    # -- learning -------------------------------------------------------------------------------

    def learn_one(self, event: Event) -> None:
        if event.type not in POSITIVE_TYPES:
            return
        sid, item = event.session_id, event.item_id
        session = self._sessions.get(sid)  # refreshes recency
        if session is None:
            self._expire(event.ts)
            session = self._sessions[sid] = _Session(event.ts)
        session.ts = max(session.ts, event.ts)
        self._seq += 1
        session.seq = self._seq
        session.items.append(item)
        session.last_pos[item] = len(session.items)
        self._clicks[item] = self._clicks.get(item, 0) + 1
        if len(session.items) > self.window:
            self._drop_first(sid, session)
        cap = self.sample_size + 1  # the session itself takes a place but is never its own neighbour
        index = self._index
        for other in session.last_pos:  # the session moved to the recent end of each item's list
            members = index.get(other)
            if members is None:
                members = index[other] = {}
            else:
                members.pop(sid, None)
            members[sid] = None
            if len(members) > cap:
                del members[next(iter(members))]

    def _drop_first(self, sid: str, session: _Session) -> None:
        gone = session.items.pop(0)
        self._unclick(gone)
        session.last_pos = {it: p for p, it in enumerate(session.items, 1)}
        if gone not in session.last_pos:
            self._unindex(gone, sid)

    def _expire(self, now: float) -> None:
        """Forget the oldest sessions while over capacity or idle past the TTL."""
        horizon = -math.inf if self.session_ttl_s is None else now - self.session_ttl_s
        while (oldest := self._sessions.oldest()) is not None and (
            len(self._sessions) >= self.max_sessions or oldest[1].ts < horizon
        ):
            sid, session = oldest
            if session.ts >= horizon:
                self._evicted_sessions += 1
            del self._sessions[sid]
            for item in session.items:
                self._unclick(item)
            for item in session.last_pos:
                self._unindex(item, sid)

    def _unclick(self, item: str) -> None:
        left = self._clicks[item] - 1
        if left:
            self._clicks[item] = left
        else:
            del self._clicks[item]

    def _unindex(self, item: str, sid: str) -> None:
        members = self._index.get(item)
        if members is not None:
            members.pop(sid, None)
            if not members:
                del self._index[item]

    # -- serving --------------------------------------------------------------------------------

    def recommend_session(self, session_id: str, k: int) -> list[Scored]:
        current = self._sessions.peek(session_id)
        if current is None or k < 1:
            return []
        neighbours = self._neighbours(session_id, current)
        scores = self._score(current, neighbours, k)
        return heapq.nlargest(k, scores.items(), key=itemgetter(1))

    def similar_items(self, item_id: str, k: int) -> list[Scored]:
        """Items of the ``k`` most recent sessions holding ``item_id`` (among ``sample_size``), each voted for
        by every such session that holds it: V-SKNN's list for a session that viewed only this item."""
        members = self._index.get(item_id)
        if not members or k < 1:
            return []
        probe = _Session(max(_peek(self._sessions, sid).ts for sid in members))
        probe.items, probe.last_pos = [item_id], {item_id: 1}
        scores = self._score(probe, self._neighbours("", probe), k + 1)
        scores.pop(item_id, None)
        return heapq.nlargest(k, scores.items(), key=itemgetter(1))

    def _position_weights(self, current: _Session) -> dict[str, float]:
        n = len(current.items)
        if self.lambda_spw is not None:
            lam = self.lambda_spw
            return {item: math.exp((p - n) / lam) for item, p in current.last_pos.items()}
        weight = _POSITION_WEIGHTS[self.weighting]
        return {item: weight(p, n) for item, p in current.last_pos.items()}

    def _neighbours(self, session_id: str, current: _Session) -> list[tuple[_Session, float]]:
        weights = self._position_weights(current)
        overlap: dict[str, float] = {}
        get = overlap.get
        for item, w in weights.items():
            for sid in self._index.get(item, ()):
                overlap[sid] = get(sid, 0.0) + w
        overlap.pop(session_id, None)
        held = self._sessions
        found = [(_peek(held, sid), dot) for sid, dot in overlap.items()]  # indexed sessions are held
        # Most recent first, so that equally similar candidates rank the more recent first below.
        if len(found) > self.sample_size:
            found = heapq.nlargest(self.sample_size, found, key=_recency)
        elif len(found) > self.k:
            found.sort(key=_recency, reverse=True)
        if self.similarity == "cosine":
            norm = math.sqrt(sum(w * w for w in weights.values()))
            sims = [(s, dot / (norm * math.sqrt(len(s.last_pos)))) for s, dot in found]
        else:
            size = len(weights)
            sims = [(s, dot / size) for s, dot in found]
        if self.lambda_snh is not None:
            scale, now = self.lambda_snh * 86_400.0, current.ts
            sims = [(s, sim * math.exp((s.ts - now) / scale)) for s, sim in sims]
        return heapq.nlargest(self.k, sims, key=itemgetter(1))

    def _score(self, current: _Session, neighbours: list[tuple[_Session, float]], k: int) -> dict[str, float]:
        n = len(current.items)
        mine = current.last_pos
        step_weight = _STEP_WEIGHTS[self.weighting_score]
        lam_ipw, idf_w, skip_mine = self.lambda_ipw, self.idf_weighting, not self.remind
        inh = self._inh_weights
        log_sessions = math.log(len(self._sessions))
        clicks = self._clicks
        idf_boost: dict[str, float] = {}
        scores: dict[str, float] = {}
        get = scores.get
        silent = []
        for neighbour, sim in neighbours:
            theirs = neighbour.last_pos
            last_mine = anchor = 0
            for item in mine.keys() & theirs.keys():
                last_mine = max(last_mine, mine[item])
                anchor = max(anchor, theirs[item])
            step = n - last_mine + 1
            vote = sim * (math.exp((1 - step) / lam_ipw) if lam_ipw is not None else step_weight(step))
            if vote == 0.0:  # underflow: a steep lambda_ipw silences neighbours without the last click
                silent.append(theirs)
                continue
            for item, pos in theirs.items():
                if skip_mine and item in mine:
                    continue
                value = vote * inh[abs(pos - anchor)] if inh else vote
                if idf_w:
                    boost = idf_boost.get(item)
                    if boost is None:
                        boost = idf_boost[item] = 1.0 + idf_w * (log_sessions - math.log(clicks[item]))
                    value *= boost
                scores[item] = get(item, 0.0) + value
        # Silenced neighbours still rank above the rest of the catalogue: they fill a short list
        # with zero scores, in similarity order (a stable top-k keeps that order among ties).
        for theirs in silent:
            if len(scores) >= k:
                break
            for item in theirs:
                if not (skip_mine and item in mine):
                    scores.setdefault(item, 0.0)
        return scores

    def size(self) -> dict[str, int]:
        return {"sessions": len(self._sessions), "items": len(self._index)}

    def evictions(self) -> dict[str, int]:
        return {"sessions": self._evicted_sessions}
