"""Who may send events to the collector, and how much: write keys, allowed origins, rate limits.

Each check answers with its own status, so a tracker (and its operator) can tell them apart:
``401 missing_write_key``, ``403 unknown_write_key`` / ``origin_not_allowed``, ``429 rate_limited`` with
``Retry-After``. docs/security.md explains the choices.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from aiohttp import web

from shopstream.config.settings import CollectorSettings
from shopstream.producers.rate_limit import TokenBuckets
from shopstream.producers.write_keys import load_write_keys

KEY_HEADER = "X-Shopstream-Key"
KEY_PARAM = "key"  # browsers send it in the URL: a custom header would cost every request a CORS preflight


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    error: str
    retry_after_s: int | None = None


class Gate:
    """The checks a request passes before its body is read.

    Without write keys it refuses to be built unless ``allow_anonymous`` is set: an open collector must be
    a decision, not a default.
    """

    def __init__(self, settings: CollectorSettings) -> None:
        self.keys = load_write_keys(settings.write_keys, settings.write_keys_file)
        if not self.keys and not settings.allow_anonymous:
            raise ValueError("no write keys: set SHOPSTREAM_WRITE_KEYS or SHOPSTREAM_WRITE_KEYS_FILE "
                             "(or SHOPSTREAM_ALLOW_ANONYMOUS=true to accept events from anyone)")
        configured = {origin.strip() for origin in settings.cors_origins.split(",") if origin.strip()}
        self.origins = frozenset(configured or set(self.keys.values()))
        burst = settings.rate_limit_burst_s
        self.per_address = _buckets(settings.rate_limit_per_address, burst)
        self.per_key = _buckets(settings.rate_limit_per_key, burst)

    def refuse(self, request: web.Request) -> Refusal | None:
        now = time.monotonic()
        if (limited := _take(self.per_address, request.remote or "", now)) is not None:
            return limited
        origin = request.headers.get("Origin")
        if origin is not None and origin not in self.origins:
            return Refusal(403, "origin_not_allowed")
        key = request.query.get(KEY_PARAM) or request.headers.get(KEY_HEADER)
        if self.keys:
            if not key:
                return Refusal(401, "missing_write_key")
            site = self.keys.get(key)
            if site is None:
                return Refusal(403, "unknown_write_key")
            if origin is not None and origin != site:
                return Refusal(403, "origin_not_allowed")
        return _take(self.per_key, key or "", now)


def _buckets(rate: float, burst_s: float) -> TokenBuckets | None:
    return TokenBuckets(rate, max(1.0, rate * burst_s)) if rate > 0 else None


def _take(buckets: TokenBuckets | None, client: str, now: float) -> Refusal | None:
    if buckets is None:
        return None
    wait = buckets.wait(client, now)
    return Refusal(429, "rate_limited", max(1, math.ceil(wait))) if wait else None
