"""Item-to-item transitions and co-visitation on integer item ids, learned and served by compiled kernels.

The dict graphs of :class:`~shopstream.models.transitions.ItemTransitions` cost most of a live step: a session
list adds some 300 votes in a dict, and an item's vote was cached (and rebuilt whenever its edges grew by 5 %)
to keep that affordable. Here each item's edges are a row of NumPy arrays and one compiled call
(:mod:`~shopstream.models.transitions_kernel`) learns a batch's clicks or builds a session's list from fresh
votes, so serving is exact. The graphs, their caps and every float are the dict reference's served uncached
(``tests/unit/test_transitions_index.py``); an id is freed once no row or edge refers to it, so ids stay as
bounded as the graphs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from shopstream.models.base import Scored
from shopstream.models.item_index import padded
from shopstream.models.transitions import SessionTransitions
from shopstream.models.transitions_kernel import EVICTIONS, ROWS, learn_events, neighbours, session_lists

GRAPHS = 2  # transitions, co-visits
_START_ROWS, _START_IDS = 256, 1024


class IndexedTransitions(SessionTransitions):
    """Next items for a session from its recent items' transitions; similar items from co-visits.

    Parameters: :class:`~shopstream.models.transitions.SessionTransitions`'. Memory: each graph holds at most
    ``max_items`` rows of ``2 * max_neighbours + window`` edges (4 + 8 bytes each), grown as items arrive.

    Examples
    --------
    >>> from shopstream.models.events import Event
    >>> model = IndexedTransitions()
    >>> for i, (sid, item) in enumerate([("s1", "a"), ("s1", "b"), ("s2", "a"), ("s2", "b"),
    ...                                  ("s3", "a"), ("s3", "c"), ("s4", "a")]):
    ...     model.learn_one(Event(f"e{i}", 1e9 + i, sid, "view", item))
    >>> [item for item, _ in model.recommend_session("s4", 2)]
    ['b', 'c']
    >>> [item for item, _ in model.similar_items("a", 5)], model.recommend_session("unknown", 2)
    (['b', 'c'], [])
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._width = 2 * self.max_neighbours + self.window  # a row's edges before it is pruned
        self._decays = np.array([self.recency**position for position in range(self.window)])
        self._ids: dict[str, int] = {}
        self._names = np.empty(_START_IDS, dtype=object)
        self._free: list[int] = []
        self._high = 0  # ids below this have been handed out
        rows = min(self.max_items, _START_ROWS)
        self._row_of = np.full((GRAPHS, _START_IDS), -1, np.int32)
        self._refs = np.zeros(_START_IDS, np.int32)
        self._item_of = np.full((GRAPHS, rows), -1, np.int32)
        self._dst = np.zeros((GRAPHS, rows, self._width), np.int32)
        self._wt = np.zeros((GRAPHS, rows, self._width), np.float64)
        self._cnt = np.zeros((GRAPHS, rows), np.int32)
        self._prev = np.full((GRAPHS, rows), -1, np.int32)
        self._nxt = np.full((GRAPHS, rows), -1, np.int32)
        self._ends = np.full((GRAPHS, 2), -1, np.int64)  # head and tail row of each graph's recency list
        self._counters = np.zeros((GRAPHS, 2), np.int64)  # rows used and evictions of each graph
        self._clicks: list[int] = []
        self._windows: list[int] = []
        self._starts: list[int] = [0]
        self._scratch()

    def _scratch(self) -> None:
        ids = self._refs.shape[0]
        self._scores = np.zeros(ids, np.float64)
        self._seen = np.full(ids, -1, np.int64)
        self._slot = np.full(ids, -1, np.int64)
        self._memo = np.full(ids, -1, np.int64)

    @property
    def _state(self) -> tuple[np.ndarray, ...]:
        """The kernels' view of the graphs (their argument order)."""
        return (self._row_of, self._item_of, self._dst, self._wt, self._cnt, self._prev, self._nxt, self._ends,
                self._counters, self._refs)

    def _id(self, name: str) -> int:
        """The item's id, handed out if it has none (its count stays zero until a kernel links it)."""
        found = self._ids.get(name)
        if found is not None:
            return found
        if self._free:
            item = self._free.pop()
        else:
            item = self._high
            self._high += 1
            if item >= self._refs.shape[0]:
                self._grow_ids(2 * self._refs.shape[0])
        self._ids[name] = item
        self._names[item] = name
        return item

    def _grow_ids(self, size: int) -> None:
        self._names, self._refs = padded(self._names, size), padded(self._refs, size)
        self._row_of = padded(self._row_of, size, -1, axis=1)
        self._scratch()

    def _grow_rows(self, size: int) -> None:
        """One array at a time, each old one dropped before the next grows: the peak is the arrays plus the
        largest one's growth, not twice the arrays."""
        for name, fill in (("_wt", 0), ("_dst", 0), ("_cnt", 0), ("_item_of", -1), ("_prev", -1), ("_nxt", -1)):
            setattr(self, name, padded(getattr(self, name), size, fill, axis=1))

    def _learn_click(self, recent: list[str], item: str) -> None:
        item_id = self._id
        self._clicks.append(item_id(item))
        self._windows.extend([item_id(name) for name in recent])
        self._starts.append(len(self._windows))

    def _learned(self) -> None:
        if not self._clicks:
            return
        clicks, windows, starts = (np.array(a, np.int64) for a in (self._clicks, self._windows, self._starts))
        self._clicks, self._windows, self._starts = [], [], [0]
        zeroed, done = [], 0
        while True:
            done, dropped = learn_events(self._state, clicks, windows, starts, done, self.max_neighbours,
                                         self.max_items)
            zeroed.append(dropped)
            if done == len(clicks):
                break
            self._grow_rows(min(self.max_items, 2 * self._cnt.shape[1]))
        # Freed only now: a later click of the batch may have linked an id again after its count fell to zero.
        refs, names = self._refs, self._names
        for item in np.concatenate(zeroed).tolist():
            if refs[item] == 0 and names[item] is not None:
                del self._ids[names[item]]
                names[item] = None
                self._free.append(item)

    def recommend_session(self, session_id: str, k: int) -> list[Scored]:
        return self.recommend_sessions([session_id], k)[0]

    def recommend_sessions(self, session_ids: Sequence[str], k: int) -> list[list[Scored]]:
        """Every listed session's list from one kernel call."""
        out: list[list[Scored]] = [[] for _ in session_ids]
        if k < 1:
            return out
        get, peek = self._ids.get, self._sessions.peek
        listed: list[int] = []
        recents: list[int] = []
        starts = [0]
        for i, session_id in enumerate(session_ids):
            state = peek(session_id)
            if state is not None and state.items:
                listed.append(i)
                recents += [get(name, -1) for name in state.items]
                starts.append(len(recents))
        if not listed:
            return out
        items, scores, counts = session_lists(
            self._state, np.array(recents, np.int64), np.array(starts, np.int64), self._decays, k,
            self.max_neighbours, self.covisit_weight, self._scores, self._seen, self._slot, self._memo,
        )
        rows = zip(listed, self._names[items].tolist(), scores.tolist(), counts.tolist(), strict=True)
        for i, names, values, n in rows:
            out[i] = list(zip(names[:n], values[:n], strict=True))
        return out

    def similar_items(self, item_id: str, k: int) -> list[Scored]:
        item = self._ids.get(item_id)
        if item is None or k < 1:
            return []
        items, weights = neighbours(self._state, 1, item, self.max_neighbours)
        if not len(items):
            return []
        edges = weights.tolist()
        norm = math.fsum(edges)
        return [(name, w / norm) for name, w in zip(self._names[items[:k]].tolist(), edges[:k], strict=True)]

    def _graph_size(self) -> tuple[int, int]:
        return int(self._counters[1, ROWS]), int(self._counters[:, EVICTIONS].sum())

    def __getstate__(self) -> dict[str, object]:
        """The ids and rows in use, each row's edges only (rows are mostly shorter than their width): a
        checkpoint the size of what was learned; no scratch."""
        state = self.__dict__.copy()
        rows = int(self._counters[:, ROWS].max())
        state["_names"], state["_refs"] = self._names[: self._high], self._refs[: self._high]
        state["_row_of"] = self._row_of[:, : self._high]
        for name in ("_item_of", "_cnt", "_prev", "_nxt"):
            state[name] = state[name][:, :rows]
        used = np.arange(self._width) < self._cnt[:, :rows, None]
        state["_dst"], state["_wt"] = self._dst[:, :rows][used], self._wt[:, :rows][used]
        for name in ("_scores", "_seen", "_slot", "_memo"):
            del state[name]
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        rows = self._cnt.shape[1]
        used = np.arange(self._width) < self._cnt[:, :, None]
        self._dst, self._wt = (np.zeros((GRAPHS, rows, self._width), a.dtype) for a in (self._dst, self._wt))
        self._dst[used], self._wt[used] = state["_dst"], state["_wt"]
        self._grow_ids(max(_START_IDS, 2 * self._high))
        self._grow_rows(max(rows, min(self.max_items, _START_ROWS)))
