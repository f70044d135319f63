"""Publishing through a collector over HTTP, as a site's tracker does: with the site's write key, in bodies of
at most the collector's events per request, retrying ``429`` and ``503`` after their ``Retry-After``.

The synthetic generator uses it (``shopstream generate --collector URL --write-key KEY``) so that the compose
demo's traffic takes the path real traffic takes, keys and limits included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import aiohttp
import orjson

RETRYABLE = (429, 503)


class CollectorError(RuntimeError):
    """The collector refused a body for good (a 4xx other than 429): retrying would not help."""


class CollectorClient:
    """A :class:`~shopstream.producers.pacing.Publisher` that posts NDJSON bodies to ``url``/v1/events."""

    def __init__(self, url: str, write_key: str, max_events_per_request: int = 500) -> None:
        self.url = f"{url.rstrip('/')}/v1/events"
        self.write_key = write_key
        self.max_events_per_request = max_events_per_request
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def publish(self, events: Iterable[dict[str, Any]]) -> int:
        """Post the events; returns the number of requests it took, once every body was answered 202."""
        batch = list(events)
        requests = 0
        for i in range(0, len(batch), self.max_events_per_request):
            body = b"\n".join(orjson.dumps(e) for e in batch[i : i + self.max_events_per_request])
            requests += await self._post(body)
        return requests

    async def _post(self, body: bytes) -> int:
        assert self._session is not None, "start() first"
        attempts = 0
        while True:
            attempts += 1
            async with self._session.post(self.url, data=body, params={"key": self.write_key},
                                          headers={"Content-Type": "application/x-ndjson"}) as response:
                if response.status == 202:
                    return attempts
                text = await response.text()
                if response.status not in RETRYABLE:
                    raise CollectorError(f"the collector answered {response.status}: {text[:200]}")
                await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
