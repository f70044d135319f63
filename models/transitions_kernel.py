"""The compiled loop of :meth:`ItemTransitions.recommend_sessions <shopstream.models.transitions.ItemTransitions>`:
the sessions of a step, each one's items' votes summed and ranked, in one call.

A live step rebuilds nearly every touched session's list, each a merge of a few items' votes (about a hundred
entries each) and a sort: as Python dicts ~20 µs a list. The votes come in as item rows (``ItemTransitions``
maps item ids to rows) and values, each session's last item first, and are summed in that order, each item's
values times its position's decay: the same float operations as the pure-Python reference, so the same scores;
candidates keep the order they were first voted for and a stable sort ranks them, so equal scores also come in
the reference's order.

One call for all the sessions of a step, because a call costs more than a list: numba's dispatch and the NumPy
calls that feed it are ~15 µs, the loop over one session's votes ~1 µs (measured; a call per list was slower
than the Python dicts). No array indexed by row: an item's votes meet in a small hash table of the session's
own, which stays in the CPU cache where a scratch array over all items' rows misses it on nearly every vote.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def sessions_top(rows, values, starts, positions, decays, k):  # type: ignore[no-untyped-def]
    """Each session's ``k`` best-voted rows and their scores, best first, concatenated, and where each session's
    list ends. Session ``s`` is the positions ``positions[s]:positions[s + 1]``; position ``p`` votes
    ``values[starts[p]:starts[p + 1]]`` for the rows of that span, times ``decays[p - positions[s]]`` (1.0 for the
    last item: its values exactly)."""
    n_sessions = len(positions) - 1
    out_rows = np.empty(n_sessions * k, dtype=np.int64)
    out_scores = np.empty(n_sessions * k)
    ends = np.empty(n_sessions, dtype=np.int64)
    n_out = 0
    for s in range(n_sessions):
        size = starts[positions[s + 1]] - starts[positions[s]]
        mask = 1
        while mask < 2 * size:
            mask <<= 1
        slots = np.full(mask, -1, dtype=np.int64)  # open addressing: rows are dense, so a row is its own hash
        mask -= 1
        items = np.empty(size, dtype=np.int64)  # candidates, first voted for first
        scores = np.empty(size)
        m = 0
        for p in range(positions[s], positions[s + 1]):
            decay = decays[p - positions[s]]
            for i in range(starts[p], starts[p + 1]):
                row = rows[i]
                h = row & mask
                while slots[h] >= 0 and items[slots[h]] != row:
                    h = (h + 1) & mask
                if slots[h] < 0:
                    slots[h] = m
                    items[m] = row
                    scores[m] = -(values[i] * decay)  # negated (exactly): an ascending sort ranks best first
                    m += 1
                else:
                    scores[slots[h]] -= values[i] * decay
        best = np.argsort(scores[:m], kind="mergesort")[:k]  # stable: equal scores stay in first-voted order
        for j in range(len(best)):
            out_rows[n_out] = items[best[j]]
            out_scores[n_out] = -scores[best[j]]
            n_out += 1
        ends[s] = n_out
    return out_rows[:n_out], out_scores[:n_out], ends
