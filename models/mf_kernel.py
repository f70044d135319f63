"""The compiled SGD pass of :class:`~shopstream.models.mf.ImplicitMF`: a batch's (user, item, target) pairs, one
after the other, each River's ``FunkMF`` step (squared loss, L2).

A live step learns a few hundred pairs whose users and items repeat (negatives are drawn from recent positives),
so vectorised NumPy needed one round of a dozen small-array calls per chain of repeats: ~60 µs a round, eight
rounds a 100-event step, 5.7 µs an event of the live path (``python -m shopstream.bench.stack_breakdown``). A
compiled loop takes the pairs in stream order, which is also the definition: ``tests/unit/test_mf.py`` holds
it to ``river.reco.FunkMF`` pair by pair. Compiled once per install (``cache=True``), then loaded from
``__pycache__``.
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
