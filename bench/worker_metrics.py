"""What the bench reads from the worker's /metrics: event counts and the freshness histogram."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import aiohttp
from prometheus_client.parser import text_string_to_metric_families


@dataclass(slots=True)
class Scrape:
    events: float = 0.0  # shopstream_events_total over every type and outcome
    keys_written: float = 0.0
    batches: float = 0.0
    freshness: dict[float, float] = field(default_factory=dict)  # cumulative count by upper bound, all kinds

    def __add__(self, other: Scrape) -> Scrape:
        bounds = self.freshness.keys() | other.freshness.keys()
        merged = {le: self.freshness.get(le, 0.0) + other.freshness.get(le, 0.0) for le in bounds}
        return Scrape(
            self.events + other.events, self.keys_written + other.keys_written, self.batches + other.batches, merged
        )


def parse(text: str) -> Scrape:
    """Sum the samples the bench needs.

    >>> s = parse('shopstream_events_total{type="view",outcome="processed"} 3.0\\n'
    ...           'shopstream_freshness_seconds_bucket{kind="item",le="0.1"} 2.0\\n'
    ...           'shopstream_freshness_seconds_bucket{kind="item",le="+Inf"} 3.0\\n')
    >>> s.events, s.freshness
    (3.0, {0.1: 2.0, inf: 3.0})
    """
    out = Scrape()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "shopstream_events_total":
                out.events += sample.value
            elif sample.name == "shopstream_redis_keys_written_total":
                out.keys_written += sample.value
            elif sample.name == "shopstream_batch_events_count":
                out.batches += sample.value
            elif sample.name == "shopstream_freshness_seconds_bucket":
                le = float(sample.labels["le"])
                out.freshness[le] = out.freshness.get(le, 0.0) + sample.value
    return out


async def scrape(http: aiohttp.ClientSession, urls: Iterable[str]) -> Scrape:
    """The sum over several workers' /metrics."""
    total = Scrape()
    for url in urls:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
            total = total + parse(await resp.text())
    return total


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
