"""Reading a Prometheus exposition text: what the demo, the bench and the tests take from /metrics."""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]


def samples(text: str, name: str) -> dict[Labels, float]:
    """Every sample of ``name``, keyed by its sorted label pairs.

    >>> samples('x_total{b="2",a="1"} 3.0\\nx_total{a="0",b="0"} 1.0\\n', "x_total")
    {(('a', '1'), ('b', '2')): 3.0, (('a', '0'), ('b', '0')): 1.0}
    """
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def histogram_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """Quantile of the observations made between two scrapes, linear within a bucket (as PromQL).

    Past the last finite bound it returns that bound: a lower limit, not a value.

    >>> round(histogram_quantile({}, {0.1: 50.0, 0.2: 100.0, math.inf: 100.0}, 0.75), 6)
    0.15
    """
    bounds = sorted(after)
    delta = [(le, after[le] - before.get(le, 0.0)) for le in bounds]
    total = delta[-1][1] if delta else 0.0
    if total <= 0:
        return math.nan
    target = q * total
    lower, below = 0.0, 0.0
    for le, cumulative in delta:
        if cumulative >= target:
            if math.isinf(le):
                return lower
            return lower + (le - lower) * (target - below) / max(cumulative - below, 1e-12)
        lower, below = le, cumulative
    return lower
