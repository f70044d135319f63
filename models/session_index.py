"""Session-kNN on NumPy arrays: one index of sessions and item postings, shared by V-SKNN and V-STAN scorers.

The pure-Python :class:`~shopstream.models.session_knn.SessionKNN` pays a dict operation per candidate
session and per neighbour item, thousands per list, and re-links a session into every one of its items'
postings on each click. Here a session is a row of item ids (its last ``window`` clicks), recency is
one global click counter per session (so a click touches only the clicked item's postings), and a list
is a few vectorised passes: gather the postings of the session's items, keep the ``sample_size`` most
recent candidates, weigh their overlap, take the ``k`` most similar and add up their votes. The scores
are those of ``SessionKNN`` with the same settings (a unit test checks them click by click on random
streams); only the order of equal scores may differ.

Both kNNs of the session blend have the same candidates (same postings, same ``sample_size``): they
share one :class:`SessionIndex`, which learns each click once and keeps the candidates of the last
session asked for until the next click is learned.

Memory: at most ``max_sessions`` sessions of ``window`` items (int32 rows), each item's postings at
most ``sample_size + 1`` sessions, an item's id freed when no held session has it; arrays grow by
doubling up to those caps.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

from shopstream.models.base import Model, Scored, SessionRecommender
from shopstream.models.events import Event
from shopstream.models.session_knn import POSITIVE_TYPES

_EMPTY = np.zeros(0, dtype=np.int32)


def _grown(array: np.ndarray, size: int, fill: int = 0) -> np.ndarray:
    """``array`` with at least ``size`` rows: doubled, the new rows ``fill``."""
    if len(array) >= size:
        return array
    out = np.full((max(size, 2 * len(array)), *array.shape[1:]), fill, dtype=array.dtype)
    out[: len(array)] = array
    return out


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
        self._slot_mark = np.full(rows, -1, dtype=np.int32)  # scratch of ``candidates``, -1 between calls

        self._id_of: dict[str, int] = {}
        self.names: list[str | None] = []
        self._free_ids: list[int] = []
        self.clicks = np.zeros(16, dtype=np.int64)  # clicks on the item within held sessions' windows
        self._postings: list[np.ndarray] = []
        self._posting_n = np.zeros(16, dtype=np.int32)
        # Scratch arrays over item ids for the scorers, zero (``item_pos``) and -1 (``item_mark``) between calls.
        self.item_pos = np.zeros(16, dtype=np.int64)
        self.item_mark = np.full(16, -1, dtype=np.int64)
        self._candidates: tuple[int, int, np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def sessions(self) -> int:
        return len(self._slot_of)

    def slot(self, session_id: str) -> int | None:
        """The session's row, or None if it is not held (serving does not refresh it)."""
        return self._slot_of.get(session_id)

    # -- learning -------------------------------------------------------------------------------

    def learn_one(self, event: Event) -> None:
        if event.type not in POSITIVE_TYPES:
            return
        self._candidates = None
        slot = self._slot_of.get(event.session_id)
        if slot is None:
            self._expire(event.ts)
            slot = self._new_slot(event.session_id, event.ts)
        else:
            self._slot_of.move_to_end(event.session_id)
            if event.ts > self.ts[slot]:
                self.ts[slot] = event.ts
        self._clock += 1
        self.seq[slot] = self._clock
        item = self._item_id(event.item_id)
        self.clicks[item] += 1
        n = int(self.n[slot])
        if n == self.window:
            self._drop_first(slot)
            n -= 1
        row, last, posted = self.items[slot], self.last[slot], self._posted[slot]
        before = np.flatnonzero(row[:n] == item)
        if len(before):  # a repeat: the last click moves here, with its place in the postings
            j = before[-1]
            last[j] = False
            posted[n] = posted[j]
            posted[j] = False
        else:
            self.distinct[slot] += 1
            posted[n] = True
            self._post(item, slot)
        row[n] = item
        last[n] = True
        self.n[slot] = n + 1
        if self._unposted[slot]:  # the session is now the most recent of all its items: back in their postings
            for j in np.flatnonzero(last[: n + 1] & ~posted[: n + 1]):
                posted[j] = True
                self._unposted[slot] -= 1
                self._post(int(row[j]), slot)

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
            self._slot_mark = _grown(self._slot_mark, size, -1)
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
            self._postings.append(_EMPTY)
            self.clicks = _grown(self.clicks, item + 1)
            self._posting_n = _grown(self._posting_n, item + 1)
            self.item_pos = _grown(self.item_pos, item + 1)
            self.item_mark = _grown(self.item_mark, item + 1, -1)
        self._id_of[name] = item
        return item

    def _post(self, item: int, slot: int) -> None:
        """Add the session to the item's postings; past the cap the least recent session leaves them."""
        members, count = self._postings[item], int(self._posting_n[item])
        if count == len(members):
            if count > self.sample_size:  # full: the newcomer (the most recent) replaces the least recent
                j = int(np.argmin(self.seq[members]))
                self._unpost_entry(int(members[j]), item)
                members[j] = slot
                return
            grown = np.empty(min(max(4, 2 * count), self.sample_size + 1), dtype=np.int32)
            grown[:count] = members
            members = self._postings[item] = grown
        members[count] = slot
        self._posting_n[item] = count + 1

    def _unpost_entry(self, slot: int, item: int) -> None:
        n = int(self.n[slot])
        j = np.flatnonzero((self.items[slot, :n] == item) & self.last[slot, :n])[0]
        self._posted[slot, j] = False
        self._unposted[slot] += 1

    def _unpost(self, item: int, slot: int) -> None:
        members, count = self._postings[item], int(self._posting_n[item])
        j = int(np.flatnonzero(members[:count] == slot)[0])
        members[j] = members[count - 1]
        self._posting_n[item] = count - 1

    def _unclick(self, item: int) -> None:
        self.clicks[item] -= 1
        if not self.clicks[item]:  # in no held session: the id is free (its postings are empty)
            name = self.names[item]
            del self._id_of[name]  # type: ignore[arg-type]
            self.names[item] = None
            self._postings[item] = _EMPTY
            self._free_ids.append(item)

    def _drop_first(self, slot: int) -> None:
        row, last, posted = self.items[slot], self.last[slot], self._posted[slot]
        gone, was_last, was_posted = int(row[0]), bool(last[0]), bool(posted[0])
        for array in (row, last, posted):
            array[:-1] = array[1:]
        last[-1] = posted[-1] = False
        self.n[slot] -= 1
        if was_last:
            self.distinct[slot] -= 1
            if was_posted:
                self._unpost(gone, slot)
            else:
                self._unposted[slot] -= 1
        self._unclick(gone)

    def _expire(self, now: float) -> None:
        """Forget the oldest sessions while over capacity or idle past the TTL."""
        horizon = -math.inf if self.session_ttl_s is None else now - self.session_ttl_s
        slot_of = self._slot_of
        while slot_of and (len(slot_of) >= self.max_sessions or self.ts[slot_of[next(iter(slot_of))]] < horizon):
            _, slot = slot_of.popitem(last=False)
            if self.ts[slot] >= horizon:
                self._evicted_sessions += 1
            n = int(self.n[slot])
            row = self.items[slot, :n].tolist()
            for item in np.flatnonzero(self.last[slot, :n] & self._posted[slot, :n]).tolist():
                self._unpost(row[item], slot)
            for item in row:
                self._unclick(item)
            self.last[slot] = self._posted[slot] = False
            self.n[slot] = self.distinct[slot] = self._unposted[slot] = 0
            self._free_slots.append(slot)

    # -- serving --------------------------------------------------------------------------------

    def candidates(self, slot: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ``sample_size`` most recent other sessions sharing an item with the session, and their overlap.

        Returns the candidates' rows, and the (candidate, item) pairs they share as two arrays:
        the candidate's index in the first array and the entry of the session's row (its last click
        of the item), in the session's item order (so sums over them add in a fixed order).
        """
        cached = self._candidates
        if cached is not None and cached[0] == slot and cached[1] == self._clock:
            return cached[2], cached[3], cached[4]
        n = int(self.n[slot])
        entries = np.flatnonzero(self.last[slot, :n])
        items = self.items[slot, entries]
        counts = self._posting_n[items]
        postings = self._postings
        sessions = np.concatenate([postings[item][:count] for item, count in zip(items.tolist(), counts.tolist())])
        owner = np.repeat(entries, counts)
        mark = self._slot_mark
        order = np.arange(len(sessions), dtype=np.int32)
        mark[sessions[::-1]] = order[::-1]  # each session's first pair
        unique = sessions[(mark[sessions] == order) & (sessions != slot)]
        mark[sessions] = -1
        if len(unique) > self.sample_size:
            unique = unique[np.argpartition(-self.seq[unique], self.sample_size - 1)[: self.sample_size]]
        mark[unique] = np.arange(len(unique), dtype=np.int32)
        pair_candidate = mark[sessions]
        mark[unique] = -1
        kept = pair_candidate >= 0
        result = (unique, pair_candidate[kept], owner[kept])
        self._candidates = (slot, self._clock, *result)
        return result

    def size(self) -> dict[str, int]:
        return {"sessions": len(self._slot_of), "items": len(self._id_of)}

    def evictions(self) -> dict[str, int]:
        return {"sessions": self._evicted_sessions}


class IndexedSessionKNN(SessionRecommender):
    """V-SKNN / V-STAN scores over a :class:`SessionIndex`: ``SessionKNN``'s lists, vectorised.

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
        if similarity not in ("cosine", "vec"):
            raise ValueError(f"similarity must be 'cosine' or 'vec', got {similarity!r}")
        if weighting not in ("div", "quadratic", "same") or weighting_score not in ("div", "quadratic", "same"):
            raise ValueError("weighting and weighting_score must be one of ['div', 'quadratic', 'same']")
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
        self._positions = np.arange(1, index.window + 1, dtype=np.int64)
        self._inh = np.exp(-np.arange(index.window) / lambda_inh) if lambda_inh is not None else None

    def learn_one(self, event: Event) -> None:
        if self.learns:
            self.index.learn_one(event)

    def recommend_session(self, session_id: str, k: int) -> list[Scored]:
        index = self.index
        slot = index.slot(session_id)
        if slot is None or k < 1:
            return []
        candidates, pair_candidate, pair_entry = index.candidates(slot)
        if not len(candidates):
            return []
        n = int(index.n[slot])
        entries = np.flatnonzero(index.last[slot, :n])
        weights = np.zeros(index.window)
        weights[entries] = self._position_weights(entries + 1, n)
        dots = np.bincount(pair_candidate, weights=weights[pair_entry], minlength=len(candidates))
        if self.similarity == "cosine":
            norm = math.sqrt(sum(w * w for w in weights[entries].tolist()))
            sims = dots / (norm * np.sqrt(index.distinct[candidates]))
        else:
            sims = dots / len(entries)
        if self.lambda_snh is not None:
            sims = sims * np.exp((index.ts[candidates] - index.ts[slot]) / (self.lambda_snh * 86_400.0))
        recency = index.seq[candidates]
        top = np.lexsort((-recency, -sims))[: self.k]  # the most similar, the more recent first among equals
        return self._votes(slot, n, entries, candidates[top], sims[top], k)

    def _position_weights(self, positions: np.ndarray, n: int) -> np.ndarray:
        if self.lambda_spw is not None:
            return np.exp((positions - n) / self.lambda_spw)
        if self.weighting == "div":
            return positions / n
        if self.weighting == "quadratic":
            return (positions / n) ** 2
        return np.ones(len(positions))

    def _votes(
        self, slot: int, n: int, entries: np.ndarray, neighbours: np.ndarray, sims: np.ndarray, k: int
    ) -> list[Scored]:
        index = self.index
        rows, held = index.items[neighbours], index.last[neighbours]
        mine, my_items = index.item_pos, index.items[slot, entries]
        mine[my_items] = entries + 1  # the session's last position of each of its items
        in_mine = mine[rows]
        mine[my_items] = 0
        my_pos = np.where(held, in_mine, 0)
        shared = my_pos > 0
        last_mine = my_pos.max(axis=1)
        anchor = np.where(shared, self._positions, 0).max(axis=1)
        step = n - last_mine + 1
        if self.lambda_ipw is not None:
            vote = sims * np.exp((1 - step) / self.lambda_ipw)
        elif self.weighting_score == "div":
            vote = sims / step
        elif self.weighting_score == "quadratic":
            vote = sims / (step * step)
        else:
            vote = sims
        values = np.broadcast_to(vote[:, None], rows.shape)
        if self._inh is not None:
            values = values * self._inh[np.abs(self._positions - anchor[:, None])]
        keep = held if self.remind else held & (in_mine == 0)
        items, values = rows[keep], values[keep]
        if self.idf_weighting:
            values = values * (1.0 + self.idf_weighting * (math.log(index.sessions) - np.log(index.clicks[items])))
        # One score per item, summed in neighbour order; items keep their first appearance's order.
        order, mark = np.arange(len(items)), index.item_mark
        mark[items[::-1]] = order[::-1]
        unique = items[mark[items] == order]
        mark[unique] = np.arange(len(unique))
        scores = np.bincount(mark[items], weights=values, minlength=len(unique))
        mark[unique] = -1
        best = np.argsort(-scores, kind="stable")[:k]
        names = index.names
        return [(names[item], score) for item, score in zip(unique[best].tolist(), scores[best].tolist())]  # type: ignore[misc]

    def size(self) -> dict[str, int]:
        return self.index.size() if self.learns else {}

    def evictions(self) -> dict[str, int]:
        return self.index.evictions() if self.learns else {}
