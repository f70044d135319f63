"""The collector's HTTP contract, with an in-memory publisher standing in for Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from shopstream.config.settings import CollectorSettings
from shopstream.producers.collector import create_app, split_body
from tests.fakes import MemoryPublisher


def event(n: int, **change: Any) -> dict[str, Any]:
    return {"event_id": f"e{n}", "ts": time.time(), "session_id": "s1", "type": "view", "item_id": "i1", **change}


@pytest.fixture
def publisher() -> MemoryPublisher:
    return MemoryPublisher()


KEY = "shop-key-0001"
SITE = "https://shop.example"


def settings(**change: Any) -> CollectorSettings:
    return CollectorSettings(**{"max_body_bytes": 4096, "max_events_per_request": 5,
                                "write_keys": f"{KEY}={SITE},other-key-002=https://other.example", **change})


@pytest.fixture
async def client(publisher: MemoryPublisher) -> AsyncIterator[TestClient]:
    async with serve(settings(), publisher) as test_client:
        yield test_client


@contextlib.asynccontextmanager
async def serve(config: CollectorSettings, publisher: MemoryPublisher) -> AsyncIterator[TestClient]:
    """A collector whose requests carry the write key unless a test sets ``params`` itself."""
    async with TestClient(TestServer(create_app(config, publisher))) as test_client:  # type: ignore[arg-type]
        post = test_client.post

        def post_with_key(path: str, **kwargs: Any) -> Any:
            kwargs.setdefault("params", {"key": KEY})
            return post(path, **kwargs)

        test_client.post = post_with_key  # type: ignore[method-assign]
        yield test_client


async def test_single_array_and_ndjson_bodies(client: TestClient, publisher: MemoryPublisher) -> None:
    for body, ctype in [
        (orjson.dumps(event(1)), "application/json"),
        (orjson.dumps([event(2), event(3)]), "application/json"),
        (orjson.dumps(event(4)) + b"\n" + orjson.dumps(event(5)) + b"\n", "application/x-ndjson"),
        (orjson.dumps([event(6)]), "text/plain;charset=UTF-8"),  # what sendBeacon sends
    ]:
        response = await client.post("/v1/events", data=body, headers={"Content-Type": ctype})
        assert response.status == 202
        assert (await response.json())["rejected"] == 0
    assert [e["event_id"] for e in publisher.events] == [f"e{i}" for i in range(1, 7)]


async def test_rejects_go_to_the_dead_letters_with_their_index(client: TestClient, publisher: MemoryPublisher) -> None:
    body = orjson.dumps(event(1)) + b"\n{nope\n" + orjson.dumps(event(2, type="teleport"))
    response = await client.post("/v1/events", data=body, headers={"Content-Type": "application/x-ndjson"})
    answer = await response.json()
    assert response.status == 202 and answer["accepted"] == 1 and answer["rejected"] == 2
    assert [(e["index"], e["reason"]) for e in answer["errors"]] == [(1, "invalid_json"), (2, "unknown_type")]
    letters = [orjson.loads(value) for _, value in publisher.dead_letters]
    assert letters[0]["raw"] == "{nope" and letters[1]["raw"]["type"] == "teleport"
    assert publisher.dead_letters[1][0] == b"s1"  # keyed by the session when there is one


async def test_limits_and_kafka_failure(client: TestClient, publisher: MemoryPublisher) -> None:
    too_many = await client.post("/v1/events", data=orjson.dumps([event(i) for i in range(6)]))
    assert too_many.status == 413 and (await too_many.json())["error"] == "too_many_events"
    too_big = await client.post("/v1/events", data=b"x" * 5000)
    assert too_big.status == 413
    publisher.fail = True
    down = await client.post("/v1/events", data=orjson.dumps(event(1)))
    assert down.status == 503 and (await down.json())["accepted"] == 0 and down.headers["Retry-After"] == "1"
    assert (await client.get("/readyz")).status == 503
    assert not publisher.events


async def test_cors_preflight_allows_the_configured_origin(client: TestClient) -> None:
    response = await client.options("/v1/events", headers={
        "Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    })
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example"


def test_split_body_keeps_undecodable_lines() -> None:
    assert split_body(b"[]", "application/json") == []
    assert split_body(b"{oops", "application/json") == [(None, b"{oops")]


async def test_write_keys_are_required_and_checked(client: TestClient, publisher: MemoryPublisher) -> None:
    body = orjson.dumps(event(1))
    answers = [await client.post("/v1/events", data=body, params=params, headers=headers) for params, headers in [
        ({}, {}), ({"key": "nope-nope-nope"}, {}), ({}, {"X-Shopstream-Key": KEY}),
        ({"key": KEY}, {"Origin": "https://other.example"}), ({"key": "other-key-002"}, {"Origin": SITE}),
    ]]
    assert [(r.status, (await r.json()).get("error")) for r in answers] == [
        (401, "missing_write_key"), (403, "unknown_write_key"), (202, None),
        (403, "origin_not_allowed"), (403, "origin_not_allowed")]
    assert len(publisher.events) == 1


def test_an_open_collector_is_a_decision_and_wildcard_origins_are_refused() -> None:
    with pytest.raises(ValueError, match="SHOPSTREAM_ALLOW_ANONYMOUS"):
        create_app(CollectorSettings(), MemoryPublisher())  # type: ignore[arg-type]
    create_app(CollectorSettings(allow_anonymous=True), MemoryPublisher())  # type: ignore[arg-type]
    for origins in ("*", "https://a.example, null"):
        with pytest.raises(ValueError, match="allowed origins"):
            CollectorSettings(cors_origins=origins)


async def test_no_origin_is_echoed_but_the_keys_sites(client: TestClient) -> None:
    for origin in ("https://evil.example", "null"):
        response = await client.options("/v1/events", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST"})
        assert response.status == 403 and "Access-Control-Allow-Origin" not in response.headers
        post = await client.post("/v1/events", data=orjson.dumps(event(1)), headers={"Origin": origin})
        assert post.status == 403 and "Access-Control-Allow-Origin" not in post.headers
    ok = await client.post("/v1/events", data=orjson.dumps(event(1)), headers={"Origin": SITE})
    assert ok.status == 202 and ok.headers["Access-Control-Allow-Origin"] == SITE


async def test_a_client_over_its_rate_gets_429_and_others_do_not(publisher: MemoryPublisher) -> None:
    config = settings(rate_limit_per_key=2.0, rate_limit_burst_s=1.5, rate_limit_per_address=0)
    async with serve(config, publisher) as client:
        statuses = [(await client.post("/v1/events", data=orjson.dumps(event(n)))).status for n in range(5)]
        limited = await client.post("/v1/events", data=orjson.dumps(event(9)))
        answer = await limited.json()
        other = await client.post("/v1/events", data=orjson.dumps(event(10)), params={"key": "other-key-002"})
    assert statuses == [202, 202, 202, 429, 429]
    assert limited.status == 429 and int(limited.headers["Retry-After"]) >= 1
    assert answer["error"] == "rate_limited" and other.status == 202
    per_address = settings(rate_limit_per_address=1.0, rate_limit_burst_s=2.0)
    async with serve(per_address, publisher) as client:
        statuses = [(await client.post("/v1/events", data=b"{")).status for _ in range(3)]
    assert statuses == [202, 202, 429]


async def test_oversize_bodies_are_refused_before_reading_and_slow_bodies_time_out(
    publisher: MemoryPublisher,
) -> None:
    async with serve(settings(read_timeout_s=0.2), publisher) as client:
        declared = await client.post("/v1/events", data=b"x" * 5000, headers={"Content-Length": "5000"})
        assert declared.status == 413

        async def slow_body() -> AsyncIterator[bytes]:
            yield b"["
            await asyncio.sleep(1.0)
            yield b"]"

        slow = await client.post("/v1/events", data=slow_body())
        assert slow.status == 408 and (await slow.json())["error"] == "request_timeout"


async def test_input_that_can_never_succeed_is_dead_lettered_not_503(
    client: TestClient, publisher: MemoryPublisher,
) -> None:
    """Nesting too deep for a Kafka record, and a rejected event whose dead letter would be too large."""
    deep: Any = {}
    for _ in range(250):
        deep = {"d": deep}
    async with serve(settings(max_body_bytes=4_000_000), publisher) as big_client:
        response = await big_client.post("/v1/events", data=orjson.dumps(
            [event(1, properties=deep), event(2, item_id="\x00" * 500_000), event(3)]))
        answer = await response.json()
    assert response.status == 202 and (answer["accepted"], answer["rejected"]) == (1, 2)
    letters = [orjson.loads(value) for _, value in publisher.dead_letters]
    assert [letter["reason"] for letter in letters] == ["bad_value", "size_violation"]
    assert letters[1]["original_reason"] == "bad_id" and letters[1]["truncated"]
