"""The generator's HTTP publisher: write key, bodies within the collector's limit, retries of 429 and 503."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from shopstream.producers.collector_client import CollectorClient, CollectorError


async def test_it_posts_with_the_key_in_bodies_within_the_limit_and_retries_what_a_retry_can_fix() -> None:
    answers = [web.Response(status=503, headers={"Retry-After": "0"}),
               web.Response(status=429, headers={"Retry-After": "0"})]
    bodies: list[tuple[str, int]] = []

    async def collect(request: web.Request) -> web.Response:
        bodies.append((request.query["key"], len((await request.read()).splitlines())))
        return answers.pop(0) if answers else web.Response(status=202)

    app = web.Application()
    app.router.add_post("/v1/events", collect)
    async with TestServer(app) as server:
        client = CollectorClient(str(server.make_url("")), "site-key-0001", max_events_per_request=4)
        await client.start()
        try:
            assert await client.publish([{"event_id": str(i)} for i in range(10)]) == 5  # 3 bodies, 2 retries
            answers.append(web.Response(status=403, text='{"error": "unknown_write_key"}'))
            with pytest.raises(CollectorError, match="403"):
                await client.publish([{"event_id": "x"}])
        finally:
            await client.stop()
    assert bodies[:5] == [("site-key-0001", 4)] * 3 + [("site-key-0001", 4), ("site-key-0001", 2)]
