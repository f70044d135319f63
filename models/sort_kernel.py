"""A stable descending order for the compiled kernels: numba's mergesort (its only stable sort) is several times
slower than its quicksort on the short arrays the kernels rank, and equal values are rare, so a quicksort
followed by putting each run of equal values back in index order gives the stable order for less."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def by_value_desc(values, picked):  # type: ignore[no-untyped-def]
    """``picked`` (ascending positions of ``values``) ordered by their values, largest first, equal values in
    position order: what a stable sort gives."""
    order = picked[np.argsort(-values[picked])]
    start = 0
    for i in range(1, len(order) + 1):
        if i == len(order) or values[order[i]] != values[order[start]]:
            if i - start > 1:
                order[start:i] = np.sort(order[start:i])
            start = i
    return order
