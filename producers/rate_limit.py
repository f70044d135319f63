"""Token buckets per client (a write key, an address), so one sender cannot take the collector's capacity."""

from __future__ import annotations

from collections import OrderedDict


class TokenBuckets:
    """``rate`` requests a second per key with bursts of ``burst``; the least recently seen of more than
    ``max_keys`` keys are forgotten (a forgotten key starts with a full bucket again).

    >>> buckets = TokenBuckets(rate=1.0, burst=2.0)
    >>> [buckets.wait("a", now=0.0) for _ in range(3)], buckets.wait("b", now=0.0), buckets.wait("a", now=1.0)
    ([0.0, 0.0, 1.0], 0.0, 0.0)
    """

    def __init__(self, rate: float, burst: float, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def wait(self, key: str, now: float) -> float:
        """Take a token: 0.0 if there was one, else the seconds until there is (nothing is taken then)."""
        tokens, at = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        waited = 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens - 1.0 if waited == 0.0 else tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return waited
