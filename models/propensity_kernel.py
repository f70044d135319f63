"""River's ``StandardScaler | LogisticRegression(SGD)`` learning step, compiled, for a batch of labelled rows.

The purchase propensity learns up to eight feature snapshots per session when the session ends; through
River's pipeline each costs ~10 µs of dict work (scaler update, transform, gradient, step), the largest model
cost of a catch-up step. These loops do the same arithmetic on arrays, row after row in order, and
:class:`~shopstream.models.propensity.SessionPropensity` writes the result back into River's own state, which
stays the model (scoring, checkpoints); ``tests/unit/test_propensity.py`` holds the two paths together.
"""

from __future__ import annotations

import math

import numba


@numba.njit(cache=True, nogil=True)
def learn_rows(x, y, counts, means, variances, weights, intercept, lr, intercept_lr, clip):  # type: ignore[no-untyped-def]
    """Learn rows ``x`` (features as the pipeline sees them) with labels ``y`` in order, updating the arrays in
    place (``intercept`` is a one-element array): River's Welford ``StandardScaler.learn_one``, then its
    ``transform_one`` with the updated statistics, then ``LogisticRegression.learn_one`` with log loss (the
    gradient clamped to ``clip``), the intercept stepped by ``intercept_lr`` and the weights by ``lr``."""
    n_features = x.shape[1]
    scaled = [0.0] * n_features
    for r in range(x.shape[0]):
        for i in range(n_features):
            xi = x[r, i]
            counts[i] += 1.0
            old_mean = means[i]
            means[i] += (xi - old_mean) / counts[i]
            variances[i] += ((xi - old_mean) * (xi - means[i]) - variances[i]) / counts[i]
        logit = 0.0
        for i in range(n_features):
            v = variances[i]
            scaled[i] = (x[r, i] - means[i]) / v**0.5 if v != 0.0 else 0.0
            logit += weights[i] * scaled[i]
        logit += intercept[0]
        sign = 1.0 if y[r] else -1.0
        z = logit * sign
        if z > 18.0:
            gradient = math.exp(-z) * -sign
        elif z < -18.0:
            gradient = -sign
        else:
            gradient = -sign / (math.exp(z) + 1.0)
        gradient = min(max(gradient, -clip), clip)
        intercept[0] -= intercept_lr * gradient
        for i in range(n_features):
            weights[i] -= lr * (gradient * scaled[i])
