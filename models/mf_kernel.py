"""The compiled SGD pass of :class:`~shopstream.models.mf.ImplicitMF`: a batch's (user, item, target) pairs, one
after the other, each River's ``FunkMF`` step (squared loss, L2).

A live step's pairs repeat users and items (negatives are drawn from recent positives), so NumPy needed a round
of small-array calls per chain of repeats; a compiled loop in stream order is both cheaper and the definition
(``tests/unit/test_mf.py`` holds it to ``river.reco.FunkMF``; figures in docs/performance.md). numba's cache
(``cache=True``) is ``NUMBA_CACHE_DIR`` if set, else ``__pycache__`` beside this file (the image sets the
former and compiles the kernels into it at build).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def sgd_pairs(  # type: ignore[no-untyped-def]
    user_factors, item_factors, users, items, targets, lr, l2
):
    """Update the factor rows in place, pair by pair: ``users[n]``'s and ``items[n]``'s rows move by minus
    the gradient of ``(targets[n] - p·q)² + l2 (|p|² + |q|²)/2``, both taken before either moves."""
    rate, penalty = np.float32(lr), np.float32(l2)
    for n in range(users.shape[0]):
        p, q = user_factors[users[n]], item_factors[items[n]]
        dot = np.float32(0.0)
        for k in range(p.shape[0]):
            dot += p[k] * q[k]
        g = np.float32(2.0) * (np.float32(targets[n]) - dot)
        for k in range(p.shape[0]):
            pk, qk = p[k], q[k]
            p[k] = pk + rate * (g * qk - penalty * pk)
            q[k] = qk + rate * (g * pk - penalty * qk)
