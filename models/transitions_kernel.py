"""The compiled loop of :meth:`ItemTransitions.recommend_session <shopstream.models.transitions.ItemTransitions>`:
a session's items' votes summed and ranked.

A live step rebuilds nearly every touched session's list, each a merge of a few items' votes (about a hundred
entries each) and a sort; as Python dict operations that is ~50 µs a list, here a few. The votes come in as
item rows (``ItemTransitions`` maps item ids to rows) and values, the last item's first, and are summed in
that order, each item's values times its position's decay: the same float operations as the pure-Python
reference, so the same scores; candidates keep the order they were first voted for and a stable sort ranks
them, so equal scores also come in the reference's order.

No array indexed by row: an item's votes meet in a small hash table of the list's own, which stays in the CPU
cache where a scratch array over all items' rows misses it on nearly every vote. The votes come in flat arrays
(a tuple of arrays costs numba ~6 µs to dispatch, plain arrays ~1).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def session_top(rows, values, starts, decays, k):  # type: ignore[no-untyped-def]
    """Rows and scores of the ``k`` best-voted items, best first: position ``p`` votes ``values[starts[p]:
    starts[p + 1]]`` times ``decays[p]`` (1.0 for the last item: its values exactly) for the rows of that span."""
    size = len(rows)
    mask = 1
    while mask < 2 * size:
        mask <<= 1
    slots = np.full(mask, -1, dtype=np.int64)  # open addressing: rows are dense, so a row is its own hash
    mask -= 1
    items = np.empty(size, dtype=np.int64)  # candidates, first voted for first
    scores = np.empty(size)
    m = 0
    for p in range(len(starts) - 1):
        decay = decays[p]
        for i in range(starts[p], starts[p + 1]):
            row = rows[i]
            h = row & mask
            while slots[h] >= 0 and items[slots[h]] != row:
                h = (h + 1) & mask
            if slots[h] < 0:
                slots[h] = m
                items[m] = row
                scores[m] = -(values[i] * decay)  # negated: an ascending sort ranks best first
                m += 1
            else:
                scores[slots[h]] -= values[i] * decay
    best = np.argsort(scores[:m], kind="mergesort")[:k]  # stable: equal scores stay in first-voted order
    return items[best], -scores[best]
