"""The compiled item graphs of :class:`~shopstream.models.transitions_index.IndexedTransitions`: learning a batch's
edges and building a session's list, on integer item ids.

Two graphs (``g`` 0: transitions, 1: co-visits) share one layout: a row per source item holds its edges in
insertion order (``dst``, ``wt``, ``cnt``), ``row_of[g, item]`` finds it, and rows form a doubly linked list
from least to most recently written (``prev``, ``nxt``, ``ends[g] = head, tail``) so that the capped graph
evicts as :class:`~shopstream.models.bounded.LRUDict` does. ``refs[item]`` counts the rows an item heads and
the edges pointing to it; ids whose count fell to zero are handed back for the caller to free. Every step is
the pure-Python :class:`~shopstream.models.transitions.ItemTransitions`' own, in its order (its dicts' insertion
orders, stable sorts, float sums), so both learn the same graphs and serve the same lists
(``tests/unit/test_transitions_index.py``). numba's cache (``cache=True``) is ``NUMBA_CACHE_DIR`` if set, else
``__pycache__`` beside this file.
"""

from __future__ import annotations

import numba
import numpy as np

HEAD, TAIL = 0, 1  # columns of ``ends``
ROWS, EVICTIONS = 0, 1  # columns of ``counters``


@numba.njit(cache=True, nogil=True)
def _unlink(prev, nxt, ends, g, row):  # type: ignore[no-untyped-def]
    before, after = prev[g, row], nxt[g, row]
    if before >= 0:
        nxt[g, before] = after
    else:
        ends[g, HEAD] = after
    if after >= 0:
        prev[g, after] = before
    else:
        ends[g, TAIL] = before


@numba.njit(cache=True, nogil=True)
def _append(prev, nxt, ends, g, row):  # type: ignore[no-untyped-def]
    tail = ends[g, TAIL]
    prev[g, row] = tail
    nxt[g, row] = -1
    if tail >= 0:
        nxt[g, tail] = row
    else:
        ends[g, HEAD] = row
    ends[g, TAIL] = row


@numba.njit(cache=True, nogil=True)
def _release(refs, zeroed, item):  # type: ignore[no-untyped-def]
    refs[item] -= 1
    if refs[item] == 0:
        zeroed.append(np.int64(item))


@numba.njit(cache=True, nogil=True)
def _stable_desc(weights):  # type: ignore[no-untyped-def]
    """Positions by weight, largest first, equal weights in their order (``sorted(..., reverse=True)``'s,
    and ``heapq.nlargest``'s)."""
    return np.argsort(-weights, kind="mergesort")


@numba.njit(cache=True, nogil=True)
def _row_for(state, g, src, max_rows, zeroed):  # type: ignore[no-untyped-def]
    """``src``'s row, moved to the tail (written now); a new one if it has none: a fresh row below ``max_rows``,
    else the least recently written one's, whose edges go with it (LRUDict inserts, then evicts the oldest)."""
    row_of, item_of, dst, _, cnt, prev, nxt, ends, counters, refs = state
    row = row_of[g, src]
    if row >= 0:
        _unlink(prev, nxt, ends, g, row)
        _append(prev, nxt, ends, g, row)
        return row
    if counters[g, ROWS] < max_rows:
        row = counters[g, ROWS]
        counters[g, ROWS] += 1
    else:
        row = ends[g, HEAD]
        _unlink(prev, nxt, ends, g, row)
        old = item_of[g, row]
        row_of[g, old] = -1
        counters[g, EVICTIONS] += 1
        for j in range(cnt[g, row]):
            _release(refs, zeroed, dst[g, row, j])
        _release(refs, zeroed, old)
    row_of[g, src] = row
    item_of[g, row] = src
    cnt[g, row] = 0
    refs[src] += 1
    _append(prev, nxt, ends, g, row)
    return row


@numba.njit(cache=True, nogil=True)
def _add(state, g, row, other, weight):  # type: ignore[no-untyped-def]
    """``edges[other] = edges.get(other, 0.0) + weight``: in place, or appended (insertion order)."""
    dst, wt, cnt, refs = state[2], state[3], state[4], state[9]
    n = cnt[g, row]
    for j in range(n):
        if dst[g, row, j] == other:
            wt[g, row, j] = wt[g, row, j] + weight
            return
    dst[g, row, n] = other
    wt[g, row, n] = 0.0 + weight
    cnt[g, row] = n + 1
    refs[other] += 1


@numba.njit(cache=True, nogil=True)
def _prune(state, g, row, max_neighbours, zeroed):  # type: ignore[no-untyped-def]
    """Over twice ``max_neighbours`` edges: back to the strongest ``max_neighbours``, in ``nlargest`` order."""
    dst, wt, cnt, refs = state[2], state[3], state[4], state[9]
    n = cnt[g, row]
    if n <= 2 * max_neighbours:
        return
    order = _stable_desc(wt[g, row, :n])
    kept_dst = dst[g, row, :n][order]
    kept_wt = wt[g, row, :n][order]
    for j in range(max_neighbours, n):
        _release(refs, zeroed, kept_dst[j])
    dst[g, row, :max_neighbours] = kept_dst[:max_neighbours]
    wt[g, row, :max_neighbours] = kept_wt[:max_neighbours]
    cnt[g, row] = max_neighbours


@numba.njit(cache=True, nogil=True)
def learn_events(state, items, windows, starts, first_event, max_neighbours, max_rows):  # type: ignore[no-untyped-def]
    """Each event ``e`` from ``first_event`` on: ``items[e]`` clicked after ``windows[starts[e]:starts[e + 1]]``
    (its session's recent items, oldest first; at least one). The last of them gains a transition to the item;
    the item and each other recent one ``d`` steps back co-visit with weight ``1/d``, added per source in
    first-seen order, each source's new weights together (``ItemTransitions.learn_many``). Stops before an
    event that might need more rows than the arrays have while they are shorter than ``max_rows`` (the caller
    grows them and calls again from there). Returns the event it stopped at and the ids whose count fell to
    zero at some point (some may have come back since)."""
    zeroed = [np.int64(0) for _ in range(0)]
    counters, capacity = state[8], state[4].shape[1]
    width = 1
    for e in range(items.shape[0]):
        width = max(width, starts[e + 1] - starts[e] + 1)
    sources = np.empty(width, np.int64)
    group_dst = np.empty((width, width), np.int64)
    group_wt = np.empty((width, width), np.float64)
    group_n = np.zeros(width, np.int64)
    for e in range(first_event, items.shape[0]):
        item, first, last = items[e], starts[e], starts[e + 1]
        for g in range(2):  # new rows this event may take: one transition source, its recent items and itself
            if capacity < max_rows and capacity - counters[g, ROWS] < last - first + 1:
                return e, np.array(zeroed, dtype=np.int64)
        row = _row_for(state, 0, windows[last - 1], max_rows, zeroed)
        _add(state, 0, row, item, 1.0)
        _prune(state, 0, row, max_neighbours, zeroed)
        n_sources = 0
        for distance in range(1, last - first + 1):
            other = windows[last - distance]
            if other == item:
                continue
            weight = 1.0 / distance
            for src, dst in ((other, item), (item, other)):
                s = 0
                while s < n_sources and sources[s] != src:
                    s += 1
                if s == n_sources:
                    sources[s] = src
                    group_n[s] = 0
                    n_sources += 1
                j = 0
                while j < group_n[s] and group_dst[s, j] != dst:
                    j += 1
                if j == group_n[s]:
                    group_dst[s, j] = dst
                    group_wt[s, j] = 0.0 + weight
                    group_n[s] += 1
                else:
                    group_wt[s, j] = group_wt[s, j] + weight
        for s in range(n_sources):
            row = _row_for(state, 1, sources[s], max_rows, zeroed)
            for j in range(group_n[s]):
                _add(state, 1, row, group_dst[s, j], group_wt[s, j])
            _prune(state, 1, row, max_neighbours, zeroed)
    return items.shape[0], np.array(zeroed, dtype=np.int64)


@numba.njit(cache=True, nogil=True)
def _strongest(state, g, row, max_neighbours):  # type: ignore[no-untyped-def]
    """``NeighbourGraph.strongest``: the row as it is up to ``max_neighbours`` edges, else the strongest ones."""
    dst, wt, cnt = state[2], state[3], state[4]
    n = cnt[g, row]
    if n <= max_neighbours:
        return dst[g, row, :n], wt[g, row, :n]
    order = _stable_desc(wt[g, row, :n])[:max_neighbours]
    return dst[g, row, :n][order], wt[g, row, :n][order]


@numba.njit(cache=True, nogil=True)
def neighbours(state, g, item, max_neighbours):  # type: ignore[no-untyped-def]
    """``NeighbourGraph.neighbours``: the strongest ``max_neighbours`` edges of ``item``, best first."""
    row = state[0][g, item]
    if row < 0:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    dst, wt, cnt = state[2], state[3], state[4]
    n = cnt[g, row]
    order = _stable_desc(wt[g, row, :n])[:max_neighbours]
    return dst[g, row, :n][order].astype(np.int64), wt[g, row, :n][order]


@numba.njit(cache=True, nogil=True)
def _item_vote(state, item, max_neighbours, covisit_weight, slot, vote_items, vote_values):  # type: ignore[no-untyped-def]
    """The item's vote, written to ``vote_items``/``vote_values`` (returns how many): its strongest transitions
    and co-visits, each graph normalised to its weight, added, in first-seen order (the first graph's edges,
    then the second's new ones). ``slot``: scratch over item ids, all -1, and left so."""
    row_of = state[0]
    n_votes = 0
    for g in range(2):
        row = row_of[g, item]
        if row < 0:
            continue
        edges_dst, edges_wt = _strongest(state, g, row, max_neighbours)
        total = 0.0
        for j in range(edges_wt.shape[0]):
            total += edges_wt[j]
        if total <= 0:
            continue
        scale = (1.0 if g == 0 else covisit_weight) / total
        for j in range(edges_dst.shape[0]):
            other = edges_dst[j]
            value = edges_wt[j] * scale
            v = slot[other]
            if v >= 0:
                vote_values[v] = vote_values[v] + value
            else:
                slot[other] = n_votes
                vote_items[n_votes] = other
                vote_values[n_votes] = value
                n_votes += 1
    for v in range(n_votes):
        slot[vote_items[v]] = -1
    return n_votes


@numba.njit(cache=True, nogil=True)
def _session_top(recent, decays, k, memo, vote_items, vote_values, vote_start, vote_end, scores, seen):  # type: ignore[no-untyped-def]
    """``ItemTransitions.recommend_session`` uncached: the recent items' votes (an item's in ``vote_items`` and
    ``vote_values`` from ``vote_start[memo[item]]`` to ``vote_end[memo[item]]``), the item ``p`` steps back from
    the last one times ``decays[p]``, added per item; the ``k`` best, equal scores in order of first appearance.
    ``recent``: ids, oldest first, -1 for an item without edges. ``scores`` and ``seen`` are scratch over item
    ids (``seen`` all -1, and left so)."""
    listed = [np.int64(0) for _ in range(0)]
    n_recent = recent.shape[0]
    for position in range(n_recent):
        item = recent[n_recent - 1 - position]
        if item < 0:
            continue
        at = memo[item]
        decay = decays[position]
        for v in range(vote_start[at], vote_end[at]):
            other = vote_items[v]
            value = vote_values[v] if position == 0 else vote_values[v] * decay
            if seen[other] < 0:
                seen[other] = len(listed)
                listed.append(other)
                scores[other] = value
            else:
                scores[other] = scores[other] + value
    m = len(listed)
    k = min(k, m)
    top_items = np.empty(k, np.int64)
    top_scores = np.empty(k, np.float64)
    kept = 0
    for u in range(m):
        other = listed[u]
        score = scores[other]
        seen[other] = -1
        if kept == k:
            if k == 0 or score <= top_scores[k - 1]:
                continue
            kept -= 1
        j = kept
        while j > 0 and top_scores[j - 1] < score:
            top_scores[j] = top_scores[j - 1]
            top_items[j] = top_items[j - 1]
            j -= 1
        top_scores[j] = score
        top_items[j] = other
        kept += 1
    return top_items, top_scores


@numba.njit(cache=True, nogil=True)
def session_lists(state, recents, starts, decays, k, max_neighbours, covisit_weight, scores, seen, slot, memo):  # type: ignore[no-untyped-def]
    """The list of each session ``s``, whose recent ids are ``recents[starts[s]:starts[s + 1]]``, in one call for
    a step's sessions: an item's vote is the same for every session that clicked it (nothing is learned during
    the call), so each distinct item's is built once (a popular item's rows are read by many sessions of a
    step, and a row over ``max_neighbours`` edges is sorted to be read). Rows of at most ``k`` ids and scores,
    ``counts`` of them used. ``memo``: scratch over item ids, all -1, and left so."""
    distinct = 0
    for item in recents:
        if item >= 0 and memo[item] < 0:
            memo[item] = distinct
            distinct += 1
    # The votes one after another, the ``memo[item]``-th from ``vote_start`` to ``vote_end`` (a vote holds at most
    # the strongest edges of both graphs).
    vote_items = np.empty(distinct * 2 * max_neighbours, np.int64)
    vote_values = np.empty(distinct * 2 * max_neighbours, np.float64)
    vote_start = np.full(distinct, -1, np.int64)
    vote_end = np.empty(distinct, np.int64)
    end = 0
    for item in recents:
        if item >= 0 and vote_start[memo[item]] < 0:
            vote_start[memo[item]] = end
            end += _item_vote(state, item, max_neighbours, covisit_weight, slot, vote_items[end:], vote_values[end:])
            vote_end[memo[item]] = end
    n = starts.shape[0] - 1
    items = np.zeros((n, k), np.int64)
    values = np.zeros((n, k), np.float64)
    counts = np.zeros(n, np.int64)
    for s in range(n):
        top_items, top_scores = _session_top(recents[starts[s] : starts[s + 1]], decays, k, memo, vote_items,
                                             vote_values, vote_start, vote_end, scores, seen)
        c = top_items.shape[0]
        counts[s] = c
        items[s, :c] = top_items
        values[s, :c] = top_scores
    for item in recents:
        if item >= 0:
            memo[item] = -1
    return items, values, counts
