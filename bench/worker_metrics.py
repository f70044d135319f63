"""What the bench reads from the worker's /metrics: event counts and the freshness histogram."""

from __future__ import annotations

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
    busy_s: float = 0.0  # seconds in batches (shopstream_batch_duration_seconds_sum) of the busiest worker

    def __add__(self, other: Scrape) -> Scrape:
        """Two workers' scrapes: counts add up; busy time is the larger, as workers run side by side."""
        bounds = self.freshness.keys() | other.freshness.keys()
        merged = {le: self.freshness.get(le, 0.0) + other.freshness.get(le, 0.0) for le in bounds}
        return Scrape(
            self.events + other.events, self.keys_written + other.keys_written, self.batches + other.batches, merged,
            max(self.busy_s, other.busy_s),
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
            elif sample.name == "shopstream_batch_duration_seconds_sum":
                out.busy_s += sample.value
            elif sample.name == "shopstream_freshness_seconds_bucket":
                le = float(sample.labels["le"])
                out.freshness[le] = out.freshness.get(le, 0.0) + sample.value
    return out


async def scrape(http: aiohttp.ClientSession, urls: Iterable[str]) -> Scrape:
    """The sum over several workers' /metrics, except ``events``: every worker reads every event, so the
    fleet has processed what its slowest worker has."""
    parts = []
    for url in urls:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
            parts.append(parse(await resp.text()))
    total = sum(parts, Scrape())
    total.events = min((part.events for part in parts), default=0.0)
    return total
