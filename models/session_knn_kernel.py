"""The compiled loops of :mod:`~shopstream.models.session_index`: learning a click, a session's kNN lists (of
one or several scorers sharing the candidates), and adding weighted lists (the session blend's).

A list is a few thousand scalar steps (hundreds of candidate sessions, a hundred neighbours of up to
``window`` items each); as Python dict operations they cost a millisecond, as NumPy calls on such small
arrays the per-call overhead dominates, so the loops are compiled with numba (``cache=True``: compiled
once per install, then loaded from ``__pycache__``). The list follows
:class:`~shopstream.models.session_knn.SessionKNN` step by step (neighbours ranked the more recent first
among equals, votes summed in neighbour order), and ``tests/unit/test_session_index.py`` holds it to
that reference; only items of equal scores may come in another order.

Scratch arrays indexed by item id or session row are passed in and left as they were found (zeros or -1),
so a call allocates only its outputs and a few arrays of the candidates' size.
"""

from __future__ import annotations

import math

import numba
import numpy as np

#: ``weighting`` / ``weighting_score`` codes.
WEIGHTINGS = {"div": 0, "quadratic": 1, "same": 2}


@numba.njit(cache=True, nogil=True)
def _position_weight(p: int, n: int, code: int, lambda_spw: float) -> float:
    if lambda_spw > 0.0:
        return math.exp((p - n) / lambda_spw)
    if code == 0:
        return p / n
    if code == 1:
        return (p / n) ** 2
    return 1.0


#: Columns of the kernel's per-scorer settings (``knn_lists``'s ``params``; lambdas <= 0 mean unset).
K, COSINE, WEIGHTING, WEIGHTING_SCORE, IDF, LAMBDA_SPW, LAMBDA_IPW, LAMBDA_SNH, REMIND, INH_LEN = range(10)


@numba.njit(cache=True, nogil=True)
def knn_lists(
    slot, sample_size, depth,
    items, last, n_items, distinct, seq, ts, clicks, n_sessions,
    pair_sessions, pair_entries, params, inh,
    slot_mark, item_pos, item_mark, item_score,
):  # type: ignore[no-untyped-def]
    """Each scorer's item ids and scores of the session's next items, best first (at most ``depth``): rows of
    ``(ids, scores, counts)``, one per row of ``params`` (settings, columns ``K``..``INH_LEN``) and ``inh``
    (STAN's item-neighbourhood weights by distance, ``INH_LEN`` of them).

    The scorers share the candidates (the postings and the sample of the most recent are the same), so the
    pairs are walked once for all; each then ranks its own neighbours and sums its own votes (``_votes``).
    ``pair_sessions``/``pair_entries``: every (session, entry of this session's row) pair of the postings
    of the session's items, in the session's item order.
    """
    m = len(params)
    n = n_items[slot]
    # The session's items: last position and each scorer's weight.
    norm2 = np.zeros(m)
    size = 0
    weights = np.zeros((m, n))
    for j in range(n):
        if last[slot, j]:
            for s in range(m):
                w = _position_weight(j + 1, n, int(params[s, WEIGHTING]), params[s, LAMBDA_SPW])
                weights[s, j] = w
                norm2[s] += w * w
            size += 1
            item_pos[items[slot, j]] = j + 1
    # Candidates: distinct sessions in first-seen order with each scorer's overlap, then the most recent.
    found = np.empty(len(pair_sessions), dtype=np.int64)
    dots = np.zeros((m, len(pair_sessions)))
    count = 0
    for i in range(len(pair_sessions)):
        c = pair_sessions[i]
        if c == slot:
            continue
        at = slot_mark[c]
        if at < 0:
            at = slot_mark[c] = count
            found[count] = c
            count += 1
        for s in range(m):
            dots[s, at] += weights[s, pair_entries[i]]
    for i in range(count):
        slot_mark[found[i]] = -1
    # Past ``sample_size``, the most recent (as a set: ``seq`` is unique, and the order does not matter).
    order = _at_least_kth(seq[found[:count]], sample_size)
    cands = found[order]
    out_ids = np.zeros((m, depth), dtype=np.int64)
    out_scores = np.zeros((m, depth))
    out_counts = np.zeros(m, dtype=np.int64)
    log_sessions = math.log(n_sessions)
    for s in range(m):
        # The scorer's similarities, its neighbours, their votes.
        cosine, snh = params[s, COSINE] > 0.0, params[s, LAMBDA_SNH]
        sims = np.empty(len(cands))
        norm = math.sqrt(norm2[s])
        for r in range(len(cands)):
            c = cands[r]
            sim = dots[s, order[r]] / (norm * math.sqrt(distinct[c]) if cosine else size)
            if snh > 0.0:
                sim *= math.exp((ts[c] - ts[slot]) / (snh * 86_400.0))
            sims[r] = sim
        ranked = _top_recent_first(sims, seq, cands, int(params[s, K]))
        scored, values = _votes(
            ranked, cands, sims, n, depth, log_sessions, items, last, n_items, clicks, params[s], inh[s],
            item_pos, item_mark, item_score,
        )
        out_counts[s] = len(scored)
        out_ids[s, : len(scored)] = scored
        out_scores[s, : len(scored)] = values
    for j in range(n):
        item_pos[items[slot, j]] = 0
    return out_ids, out_scores, out_counts


@numba.njit(cache=True, nogil=True)
def _votes(
    ranked, cands, sims, n, depth, log_sessions, items, last, n_items, clicks, params, inh,
    item_pos, item_mark, item_score,
):  # type: ignore[no-untyped-def]
    """One scorer's best items and scores from its neighbours ``cands[ranked]``: votes summed in neighbour
    order, items in the order of their first vote among equal scores (a neighbour's items by their last
    click). ``item_pos``: the session's items' last positions (1-based, else 0)."""
    weighting_score, ipw, idf = int(params[WEIGHTING_SCORE]), params[LAMBDA_IPW], params[IDF]
    remind, n_inh = params[REMIND] > 0.0, int(params[INH_LEN])
    scored = np.empty(len(ranked) * items.shape[1], dtype=np.int64)
    boosts = np.empty(len(scored))  # IDF boost of each scored item, computed once
    n_scored = 0
    silent = np.empty(len(ranked), dtype=np.int64)
    n_silent = 0
    for r in ranked:
        s = cands[r]
        ns = n_items[s]
        last_mine = 0
        anchor = 0
        for j in range(ns):
            if last[s, j]:
                p = item_pos[items[s, j]]
                if p > 0:
                    last_mine = max(last_mine, p)
                    anchor = j + 1
        step = n - last_mine + 1
        if ipw > 0.0:
            vote = sims[r] * math.exp((1 - step) / ipw)
        elif weighting_score == 0:
            vote = sims[r] / step
        elif weighting_score == 1:
            vote = sims[r] / (step * step)
        else:
            vote = sims[r]
        if vote == 0.0:  # underflow: a steep lambda_ipw silences neighbours without the last click
            silent[n_silent] = s
            n_silent += 1
            continue
        for j in range(ns):  # each distinct item once, at its last click (its position for STAN's distance)
            item = items[s, j]
            if not last[s, j] or (not remind and item_pos[item] > 0):
                continue
            value = vote * inh[abs(j + 1 - anchor)] if n_inh else vote
            if item_mark[item] < 0:
                item_mark[item] = n_scored
                scored[n_scored] = item
                n_scored += 1
                item_score[item] = 0.0
                if idf != 0.0:
                    boosts[n_scored - 1] = 1.0 + idf * (log_sessions - math.log(clicks[item]))
            if idf != 0.0:
                value *= boosts[item_mark[item]]
            item_score[item] += value
    # Silenced neighbours still rank above the rest of the catalogue: they fill a short list with zeros.
    for r in range(n_silent):
        if n_scored >= depth:
            break
        s = silent[r]
        for j in range(n_items[s]):
            item = items[s, j]
            if item_mark[item] < 0 and (remind or item_pos[item] == 0):
                item_mark[item] = n_scored
                scored[n_scored] = item
                n_scored += 1
                item_score[item] = 0.0
    out_scores = np.empty(n_scored)
    for i in range(n_scored):
        item = scored[i]
        out_scores[i] = item_score[item]
        item_mark[item] = -1
        item_score[item] = 0.0
    best = _top(out_scores, depth)
    return scored[best], out_scores[best]


@numba.njit(cache=True, nogil=True)
def blended(ids, scores, counts, scales, k):  # type: ignore[no-untyped-def]
    """The ``k`` best items of lists added with weights: rows of ``(ids, scores, counts)`` times ``scales``
    (rows scaled by 0 left out). Sums run in row order, equal totals keep their first appearance's order:
    what adding the lists into one dict in row order, then a stable sort, gives."""
    total = 0
    for r in range(len(counts)):
        if scales[r] != 0.0:
            total += counts[r]
    flat_ids = np.empty(total, dtype=np.int64)
    flat_values = np.empty(total)
    at = 0
    for r in range(len(counts)):
        if scales[r] != 0.0:
            for i in range(counts[r]):
                flat_ids[at] = ids[r, i]
                flat_values[at] = scores[r, i] * scales[r]
                at += 1
    by_id = np.argsort(flat_ids, kind="mergesort")  # stable: each id's entries in appearance order
    first = np.empty(total, dtype=np.int64)
    sums = np.empty(total)
    n_items = 0
    i = 0
    while i < total:
        item = flat_ids[by_id[i]]
        first[n_items] = by_id[i]
        value = flat_values[by_id[i]]
        i += 1
        while i < total and flat_ids[by_id[i]] == item:
            value += flat_values[by_id[i]]
            i += 1
        sums[n_items] = value
        n_items += 1
    appearance = np.argsort(first[:n_items], kind="mergesort")
    best = appearance[_top(sums[:n_items][appearance], k)] if n_items else appearance
    return flat_ids[first[:n_items][best]], sums[:n_items][best]


@numba.njit(cache=True, nogil=True)
def _at_least_kth(values, k):  # type: ignore[no-untyped-def]
    """Indices of the values at or above the ``k``-th largest, in index order: the only ones that can be among
    the ``k`` largest (exactly those ``k`` where values are unique)."""
    if len(values) <= k:
        return np.arange(len(values))
    return np.flatnonzero(-values <= np.partition(-values, k - 1)[k - 1])


@numba.njit(cache=True, nogil=True)
def _ranked(values, k, ties):  # type: ignore[no-untyped-def]
    """Indices of the ``k`` largest values, largest first, equal values by ascending ``ties`` (unique per
    index). A quicksort, then each run of equal values put in order: a stable sort's result at a quicksort's
    cost (numba's mergesort, its only stable sort, is several times slower, and ties are rare)."""
    picked = _at_least_kth(values, k)
    order = picked[np.argsort(-values[picked])]
    start = 0
    for i in range(1, len(order) + 1):
        if i == len(order) or values[order[i]] != values[order[start]]:
            if i - start > 1:
                run = order[start:i]
                order[start:i] = run[np.argsort(ties[run])]
            start = i
    return order[:k]


@numba.njit(cache=True, nogil=True)
def _top(values, k):  # type: ignore[no-untyped-def]
    """Indices of the ``k`` largest values, largest first, equal values in index order (a stable top-k)."""
    return _ranked(values, k, np.arange(len(values)))


@numba.njit(cache=True, nogil=True)
def _top_recent_first(sims, seq, cands, k):  # type: ignore[no-untyped-def]
    """Indices of the ``k`` most similar candidates, the more recent (``seq`` is unique) first among equals."""
    return _ranked(sims, k, -seq[cands])


# -- the index: sessions as rows of item ids, postings as blocks of one pool ----------------------------


@numba.njit(cache=True, nogil=True)
def _unpost(item, slot, pool, start, count):  # type: ignore[no-untyped-def]
    """Take the session out of the item's postings (order does not matter: recency is ``seq``)."""
    first, size = start[item], count[item]
    for i in range(first, first + size):
        if pool[i] == slot:
            pool[i] = pool[first + size - 1]
            count[item] = size - 1
            return


@numba.njit(cache=True, nogil=True)
def _post(item, slot, sample_size, items, last, posted, n_items, seq, unposted, pool, start, cap, count, top):  # type: ignore[no-untyped-def]
    """Add the session (the most recent) to the item's postings; past ``sample_size + 1`` the least recent
    leaves them, and remembers that its last click of the item is out (``posted``)."""
    size = count[item]
    if size == cap[item]:
        if size > sample_size:
            first = start[item]
            j = first
            for i in range(first + 1, first + size):
                if seq[pool[i]] < seq[pool[j]]:
                    j = i
            gone = pool[j]
            pool[j] = slot
            for e in range(n_items[gone]):
                if items[gone, e] == item and last[gone, e]:
                    posted[gone, e] = False
            unposted[gone] += 1
            return
        grown = min(max(4, 2 * size), sample_size + 1)
        at = top[0]
        pool[at : at + size] = pool[start[item] : start[item] + size]
        start[item] = at
        cap[item] = grown
        top[0] = at + grown
    pool[start[item] + size] = slot
    count[item] = size + 1


@numba.njit(cache=True, nogil=True)
def learn_click(
    slot, item, clock, sample_size,
    items, last, posted, n_items, distinct, seq, unposted, clicks,
    pool, start, cap, count, top,
):  # type: ignore[no-untyped-def]
    """Append the click to the session's row (dropping its oldest past the window) and update the postings.

    Returns the id of an item no held session has any more (to be freed), or -1. The pool must have room
    for ``window + 1`` blocks of ``sample_size + 1``.
    """
    window = items.shape[1]
    seq[slot] = clock
    clicks[item] += 1
    n = n_items[slot]
    freed = -1
    if n == window:  # the oldest click leaves the window
        gone, was_last, was_posted = items[slot, 0], last[slot, 0], posted[slot, 0]
        for e in range(window - 1):
            items[slot, e] = items[slot, e + 1]
            last[slot, e] = last[slot, e + 1]
            posted[slot, e] = posted[slot, e + 1]
        last[slot, window - 1] = posted[slot, window - 1] = False
        n -= 1
        if was_last:
            distinct[slot] -= 1
            if was_posted:
                _unpost(gone, slot, pool, start, count)
            else:
                unposted[slot] -= 1
        clicks[gone] -= 1
        if clicks[gone] == 0:
            freed = gone
    repeat = -1
    for e in range(n):
        if items[slot, e] == item and last[slot, e]:
            repeat = e
    items[slot, n] = item
    last[slot, n] = True
    n_items[slot] = n + 1
    if repeat >= 0:  # the last click moves here, with its place in the postings
        last[slot, repeat] = False
        posted[slot, n] = posted[slot, repeat]
        posted[slot, repeat] = False
    else:
        distinct[slot] += 1
        posted[slot, n] = True
        _post(item, slot, sample_size, items, last, posted, n_items, seq, unposted, pool, start, cap, count, top)
    if unposted[slot] > 0:  # now the most recent session of all its items: back in their postings
        for e in range(n + 1):
            if last[slot, e] and not posted[slot, e]:
                posted[slot, e] = True
                unposted[slot] -= 1
                _post(items[slot, e], slot, sample_size, items, last, posted, n_items, seq, unposted, pool, start,
                      cap, count, top)
    return freed


@numba.njit(cache=True, nogil=True)
def learn_clicks(
    done, n_freed, slots, item_ids, clocks, freed, sample_size, reserve,
    items, last, posted, n_items, distinct, seq, unposted, clicks,
    pool, start, cap, count, top,
):  # type: ignore[no-untyped-def]
    """``learn_click`` for the clicks from ``done`` on, the ids it frees appended to ``freed`` (``n_freed`` so
    far), until all are learned or the pool has less than ``reserve`` room left; returns ``(done, n_freed)``."""
    for i in range(done, len(slots)):
        if len(pool) - top[0] < reserve:
            return i, n_freed
        gone = learn_click(
            slots[i], item_ids[i], clocks[i], sample_size,
            items, last, posted, n_items, distinct, seq, unposted, clicks, pool, start, cap, count, top,
        )
        if gone >= 0:
            freed[n_freed] = gone
            n_freed += 1
    return len(slots), n_freed


@numba.njit(cache=True, nogil=True)
def forget_session(slot, items, last, posted, n_items, distinct, unposted, clicks, pool, start, count):  # type: ignore[no-untyped-def]
    """Take a session out of the postings and the click counts; returns the ids no held session has any more."""
    n = n_items[slot]
    freed = np.empty(n, dtype=np.int64)
    n_freed = 0
    for e in range(n):
        item = items[slot, e]
        if last[slot, e] and posted[slot, e]:
            _unpost(item, slot, pool, start, count)
        clicks[item] -= 1
        if clicks[item] == 0:
            freed[n_freed] = item
            n_freed += 1
        last[slot, e] = posted[slot, e] = False
    n_items[slot] = distinct[slot] = unposted[slot] = 0
    return freed[:n_freed]


@numba.njit(cache=True, nogil=True)
def compacted(pool, start, cap, count, size):  # type: ignore[no-untyped-def]
    """The live postings blocks copied to the front of a new pool of ``size``; returns it and its top."""
    out = np.empty(size, dtype=pool.dtype)
    top = 0
    for item in range(len(cap)):
        if cap[item]:
            out[top : top + count[item]] = pool[start[item] : start[item] + count[item]]
            start[item] = top
            top += cap[item]
    return out, top


@numba.njit(cache=True, nogil=True)
def session_pairs(slot, items, last, n_items, pool, start, count):  # type: ignore[no-untyped-def]
    """Every (session, entry) pair of the postings of the session's items, in the session's item order."""
    total = 0
    for e in range(n_items[slot]):
        if last[slot, e]:
            total += count[items[slot, e]]
    sessions = np.empty(total, dtype=np.int64)
    entries = np.empty(total, dtype=np.int64)
    at = 0
    for e in range(n_items[slot]):
        if last[slot, e]:
            item = items[slot, e]
            for i in range(start[item], start[item] + count[item]):
                sessions[at] = pool[i]
                entries[at] = e
                at += 1
    return sessions, entries
