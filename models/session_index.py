"""Session-kNN on arrays: one index of sessions and item postings, shared by V-SKNN and V-STAN scorers.

The pure-Python :class:`~shopstream.models.session_knn.SessionKNN` pays a dict operation per candidate
session and per neighbour item, thousands per list, and re-links a session into every one of its items'
postings on each click. Here a session is a row of item ids (its last ``window`` clicks), recency is
one global click counter per session (so a click touches only the clicked item's postings), and both a
run of clicks and a list are one call of a compiled kernel (models/session_knn_kernel.py): gather the postings
of the session's items, keep the ``sample_size`` most recent candidates, weigh their overlap, take the
``k`` most similar and add up their votes. The scores are those of ``SessionKNN`` with the same settings
(tests/unit/test_session_index.py checks them click by click on random streams); only the order of
equal scores may differ. Python keeps what needs a hash: session and item ids to rows, LRU order, expiry.

Both kNNs of the session blend have the same candidates (same postings, same ``sample_size``): they
share one :class:`SessionIndex`, which learns each click once and keeps the postings pairs of the last
session asked for until the next click is learned, and a :class:`KnnGroup` lists both in one kernel call.

Memory: at most ``max_sessions`` sessions of ``window`` items (int32 rows), each item's postings at
most ``sample_size + 1`` sessions in blocks of one pool (compacted when full, so within about twice the
live postings), an item's id freed when no held session has it; arrays grow by doubling up to those caps.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable, Sequence

import numpy as np

from shopstream.models.base import Model, Scored, SessionRecommender
from shopstream.models.events import Event
from shopstream.models.item_index import padded
from shopstream.models.session_knn import POSITIVE_TYPES, check_scoring
from shopstream.models.session_knn_kernel import (
    WEIGHTINGS,
    compacted,
    forget_session,
    knn_lists,
    learn_clicks,
    session_pairs,
)


def _grown(array: np.ndarray, size: int, fill: int = 0) -> np.ndarray:
    """``array`` with at least ``size`` rows: doubled, the new rows ``fill``."""
    return array if len(array) >= size else padded(array, max(size, 2 * len(array)), fill)


class SessionIndex(Model):
    """Held sessions' recent items and, per item, its ``sample_size + 1`` most recent sessions.

    Parameters
    ----------
    sample_size
        Most recent sessions a list's candidates are drawn from (and kept per item, plus the session itself).
    window
        Most recent items kept per session.
    max_sessions
        Sessions held; the least recently active is forgotten first.
    session_ttl_s
        If set, sessions idle longer than this, in event time, are forgotten.

    Examples
    --------
    >>> from shopstream.models.events import Event
    >>> index = SessionIndex(sample_size=10, window=3, max_sessions=2)
    >>> for n, (session, item) in enumerate([("s1", "a"), ("s1", "b"), ("s2", "a"), ("s3", "c")]):
    ...     index.learn_one(Event(f"e{n}", 1e9 + n, session, "view", item))
    >>> index.size(), index.evictions()
    ({'sessions': 2, 'items': 2}, {'sessions': 1})
    """

    name = "session_index"

    def __init__(
        self, sample_size: int = 500, window: int = 50, max_sessions: int = 200_000, session_ttl_s: float | None = None
    ) -> None:
        if min(sample_size, window, max_sessions) < 1 or (session_ttl_s is not None and session_ttl_s <= 0):
            raise ValueError("sample_size, window, max_sessions and session_ttl_s must be positive")
        self.sample_size = sample_size
        self.window = window
        self.max_sessions = max_sessions
        self.session_ttl_s = session_ttl_s

        self._slot_of: OrderedDict[str, int] = OrderedDict()  # least recently active first
        self._free_slots: list[int] = []
        self._evicted_sessions = 0
        self._clock = 0  # clicks learned: a session's ``seq`` is the clock at its last click
        rows = 16
        self.items = np.zeros((rows, window), dtype=np.int32)  # item ids, oldest first, ``n`` of them
        self.last = np.zeros((rows, window), dtype=bool)  # the entry is its item's last click in the session
        self._posted = np.zeros((rows, window), dtype=bool)  # that last click's session is in the item's postings
        self.n = np.zeros(rows, dtype=np.int32)
        self.distinct = np.zeros(rows, dtype=np.int32)
        self.seq = np.zeros(rows, dtype=np.int64)
        self.ts = np.zeros(rows, dtype=np.float64)
        self._unposted = np.zeros(rows, dtype=np.int32)  # last clicks left out of their item's postings
        self.slot_mark = np.full(rows, -1, dtype=np.int64)  # the kernel's scratch, -1 between calls

        self._id_of: dict[str, int] = {}
        self.names: list[str | None] = []
        self._free_ids: list[int] = []
        self.clicks = np.zeros(16, dtype=np.int64)  # clicks on the item within held sessions' windows
        # Each item's postings: a block of ``pool`` (``start``, ``cap``), its first ``count`` used. A full
        # block moves to the pool's top at twice the size (up to ``sample_size + 1``); the pool is compacted
        # (or grown) when its top nears the end, so it stays within about twice the live blocks.
        self._reserve = (window + 1) * (sample_size + 1)  # room one click may take
        self.pool = np.zeros(self._reserve, dtype=np.int32)
        self._top = np.zeros(1, dtype=np.int64)
        self.start = np.zeros(16, dtype=np.int64)
        self.cap = np.zeros(16, dtype=np.int64)
        self.count = np.zeros(16, dtype=np.int64)
        # The kernel's scratch over item ids: -1 (``item_mark``) or zero (the others) between calls.
        self.item_pos = np.zeros(16, dtype=np.int64)
        self.item_mark = np.full(16, -1, dtype=np.int64)
        self.item_score = np.zeros(16, dtype=np.float64)
        self._pairs: tuple[int, int, np.ndarray, np.ndarray] | None = None  # the last session's, until a click

    @property
    def sessions(self) -> int:
        return len(self._slot_of)

    def slot(self, session_id: str) -> int | None:
        """The session's row, or None if it is not held (serving does not refresh it)."""
        return self._slot_of.get(session_id)

    # -- learning -------------------------------------------------------------------------------

    def learn_one(self, event: Event) -> None:
        self.learn_many((event,))

    def learn_many(self, events: Iterable[Event]) -> None:
        """Ids, rows and LRU order here, the clicks themselves in one kernel call per run of them: a run ends
        only where a new session forgets the oldest (forgetting must see the postings up to date)."""
        slots: list[int] = []
        items: list[int] = []
        slot_of, ts = self._slot_of, self.ts
        for event in events:
            if event.type not in POSITIVE_TYPES:
                continue
            slot = slot_of.get(event.session_id)
            if slot is None:
                if self._expiring(event.ts):
                    self._learn_clicks(slots, items)
                    slots, items = [], []
                    self._expire(event.ts)
                slot = self._new_slot(event.session_id, event.ts)
            else:
                slot_of.move_to_end(event.session_id)
                if event.ts > ts[slot]:
                    ts[slot] = event.ts
            slots.append(slot)
            items.append(self._item_id(event.item_id))
            ts = self.ts  # a new row may have grown it
        self._learn_clicks(slots, items)

    def _learn_clicks(self, slots: list[int], items: list[int]) -> None:
        if not slots:
            return
        self._pairs = None
        clocks = np.arange(self._clock + 1, self._clock + 1 + len(slots), dtype=np.int64)
        self._clock += len(slots)
        slot_array, item_array = np.array(slots, dtype=np.int64), np.array(items, dtype=np.int64)
        freed = np.empty(len(slots), dtype=np.int64)
        done = n_freed = 0
        while done < len(slots):  # the kernel stops where the pool's top nears its end
            if len(self.pool) - self._top[0] < self._reserve:
                self._compact()
            done, n_freed = learn_clicks(
                done, n_freed, slot_array, item_array, clocks, freed, self.sample_size, self._reserve,
                self.items, self.last, self._posted, self.n, self.distinct, self.seq, self._unposted, self.clicks,
                self.pool, self.start, self.cap, self.count, self._top,
            )
        # Freed once the run is learned: a later click of the run may have taken the item back.
        for item in freed[:n_freed].tolist():
            if self.clicks[item] == 0 and self.names[item] is not None:
                self._free(item)

    def _new_slot(self, session_id: str, ts: float) -> int:
        if self._free_slots:
            slot = self._free_slots.pop()
        else:
            slot = len(self._slot_of)
            size = slot + 1
            self.items, self.last, self._posted = (_grown(a, size) for a in (self.items, self.last, self._posted))
            self.n, self.distinct, self.seq, self.ts, self._unposted = (
                _grown(a, size) for a in (self.n, self.distinct, self.seq, self.ts, self._unposted)
            )
            self.slot_mark = _grown(self.slot_mark, size, -1)
        self._slot_of[session_id] = slot
        self.ts[slot] = ts
        return slot

    def _item_id(self, name: str) -> int:
        item = self._id_of.get(name)
        if item is not None:
            return item
        if self._free_ids:
            item = self._free_ids.pop()
            self.names[item] = name
        else:
            item = len(self.names)
            self.names.append(name)
            size = item + 1
            self.clicks, self.start, self.cap, self.count, self.item_pos, self.item_score = (
                _grown(a, size) for a in (self.clicks, self.start, self.cap, self.count, self.item_pos, self.item_score)
            )
            self.item_mark = _grown(self.item_mark, size, -1)
        self._id_of[name] = item
        return item

    def _free(self, item: int) -> None:
        """The item is in no held session: its id and its postings block are free."""
        del self._id_of[self.names[item]]  # type: ignore[arg-type]
        self.names[item] = None
        self.start[item] = self.cap[item] = self.count[item] = 0
        self._free_ids.append(item)

    def _compact(self) -> None:
        live = int(self.cap.sum())
        self.pool, top = compacted(self.pool, self.start, self.cap, self.count, 2 * live + self._reserve)
        self._top[0] = top

    def _expiring(self, now: float) -> bool:
        """Whether a new session arriving ``now`` makes the index forget its oldest."""
        slot_of = self._slot_of
        return bool(slot_of) and (
            len(slot_of) >= self.max_sessions
            or (self.session_ttl_s is not None and self.ts[slot_of[next(iter(slot_of))]] < now - self.session_ttl_s)
        )

    def _expire(self, now: float) -> None:
        """Forget the oldest sessions while over capacity or idle past the TTL."""
        horizon = -math.inf if self.session_ttl_s is None else now - self.session_ttl_s
        slot_of = self._slot_of
        while slot_of and (len(slot_of) >= self.max_sessions or self.ts[slot_of[next(iter(slot_of))]] < horizon):
            _, slot = slot_of.popitem(last=False)
            if self.ts[slot] >= horizon:
                self._evicted_sessions += 1
            freed = forget_session(
                slot, self.items, self.last, self._posted, self.n, self.distinct, self._unposted, self.clicks,
                self.pool, self.start, self.count,
            )
            for item in freed.tolist():
                self._free(item)
            self._free_slots.append(slot)

    # -- serving --------------------------------------------------------------------------------

    def pairs(self, slot: int) -> tuple[np.ndarray, np.ndarray]:
        """Every (session, entry) pair of the postings of the session's items, in the session's item order:
        the sessions sharing the entry's item, for the kernel to pick candidates from."""
        cached = self._pairs
        if cached is not None and cached[0] == slot and cached[1] == self._clock:
            return cached[2], cached[3]
        sessions, owners = session_pairs(slot, self.items, self.last, self.n, self.pool, self.start, self.count)
        self._pairs = (slot, self._clock, sessions, owners)
        return sessions, owners

    def item_ids(self, names: Iterable[str]) -> list[int | None]:
        """The items' ids, None for those no held session has."""
        get = self._id_of.get
        return [get(name) for name in names]

    def size(self) -> dict[str, int]:
        return {"sessions": len(self._slot_of), "items": len(self._id_of)}

    def evictions(self) -> dict[str, int]:
        return {"sessions": self._evicted_sessions}


def _unset(value: float | None) -> float:
    """The kernel's encoding of an unset lambda."""
    return -1.0 if value is None else float(value)


class IndexedSessionKNN(SessionRecommender):
    """V-SKNN / V-STAN scores over a :class:`SessionIndex`: ``SessionKNN``'s lists, compiled.

    Parameters
    ----------
    index
        The sessions and postings; several kNNs may share one.
    learns
        Whether this kNN's ``learn_one`` feeds the index: exactly one of the kNNs sharing an index learns.
    k, similarity, weighting, weighting_score, idf_weighting, lambda_spw, lambda_ipw, lambda_inh, lambda_snh, remind
        As :class:`~shopstream.models.session_knn.SessionKNN`.

    Examples
    --------
    >>> from shopstream.models.events import Event
    >>> index = SessionIndex(sample_size=10)
    >>> vsknn = IndexedSessionKNN(index, k=10, similarity="vec")
    >>> vstan = IndexedSessionKNN(index, k=10, lambda_spw=4, lambda_inh=4, learns=False)
    >>> clicks = [("s1", "a"), ("s1", "b"), ("s2", "a"), ("s2", "c"), ("s3", "a"), ("s3", "b"), ("s4", "a")]
    >>> for n, (session, item) in enumerate(clicks):
    ...     for model in (vsknn, vstan):
    ...         model.learn_one(Event(f"e{n}", 1_700_000_000 + n, session, "view", item))
    >>> [item for item, _ in vsknn.recommend_session("s4", 2)], index.sessions
    (['a', 'b'], 4)
    >>> vstan.recommend_session("unknown", 2)
    []
    """

    name = "session_knn"

    def __init__(
        self,
        index: SessionIndex,
        k: int = 100,
        similarity: str = "cosine",
        weighting: str = "div",
        weighting_score: str = "div",
        idf_weighting: float = 0.0,
        lambda_spw: float | None = None,
        lambda_ipw: float | None = None,
        lambda_inh: float | None = None,
        lambda_snh: float | None = None,
        remind: bool = True,
        learns: bool = True,
    ) -> None:
        check_scoring(similarity, weighting, weighting_score)
        if k < 1:
            raise ValueError("k must be positive")
        self.index = index
        self.k = k
        self.similarity = similarity
        self.weighting = weighting
        self.weighting_score = weighting_score
        self.idf_weighting = idf_weighting
        self.lambda_spw = lambda_spw
        self.lambda_ipw = lambda_ipw
        self.lambda_inh = lambda_inh
        self.lambda_snh = lambda_snh
        self.remind = remind
        self.learns = learns
        self.window = index.window
        # STAN's item-neighbourhood weight by distance, precomputed: distances are below the window.
        self._inh = np.exp(-np.arange(index.window) / lambda_inh) if lambda_inh is not None else np.zeros(0)
        self._alone = KnnGroup([self])

    def learn_one(self, event: Event) -> None:
        if self.learns:
            self.index.learn_one(event)

    def learn_many(self, events: Iterable[Event]) -> None:
        if self.learns:
            self.index.learn_many(events)

    def settings(self) -> tuple[np.ndarray, np.ndarray]:
        """The kernel's row of settings (columns ``K``..``INH_LEN`` of session_knn_kernel) and of ``inh`` weights."""
        row = [self.k, self.similarity == "cosine", WEIGHTINGS[self.weighting], WEIGHTINGS[self.weighting_score],
               self.idf_weighting, _unset(self.lambda_spw), _unset(self.lambda_ipw), _unset(self.lambda_snh),
               self.remind, len(self._inh)]
        inh = np.zeros(self.window)
        inh[: len(self._inh)] = self._inh
        return np.array(row, dtype=np.float64), inh

    def recommend_session(self, session_id: str, k: int) -> list[Scored]:
        lists = self._alone.lists(session_id, k)
        if lists is None:
            return []
        ids, scores, counts = lists
        names, n = self.index.names, counts[0]
        return [(names[item], score) for item, score in zip(ids[0, :n].tolist(), scores[0, :n].tolist(), strict=True)]  # type: ignore[misc]

    def size(self) -> dict[str, int]:
        return self.index.size() if self.learns else {}

    def evictions(self) -> dict[str, int]:
        return self.index.evictions() if self.learns else {}


class KnnGroup:
    """Kinds of kNNs on one index whose lists are asked for together (the session blend's V-SKNN and V-STAN):
    one kernel call walks the postings of the session's items once for all of them, since their candidate
    sessions are the same; each then ranks its own neighbours. Each list equals its kNN's own."""

    def __init__(self, scorers: Sequence[IndexedSessionKNN]) -> None:
        if not scorers or any(scorer.index is not scorers[0].index for scorer in scorers):
            raise ValueError("the scorers of a group share one index")
        self.index = scorers[0].index
        rows = [scorer.settings() for scorer in scorers]
        self._params = np.stack([params for params, _ in rows])
        self._inh = np.stack([inh for _, inh in rows])

    def lists(self, session_id: str, depth: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Each scorer's ids and scores, best first, as rows of at most ``depth`` (``counts`` of them); None if
        the session is not held."""
        index = self.index
        slot = index.slot(session_id)
        if slot is None or depth < 1:
            return None
        sessions, entries = index.pairs(slot)
        return knn_lists(  # type: ignore[no-any-return]
            slot, index.sample_size, depth,
            index.items, index.last, index.n, index.distinct, index.seq, index.ts, index.clicks, index.sessions,
            sessions, entries, self._params, self._inh,
            index.slot_mark, index.item_pos, index.item_mark, index.item_score,
        )
