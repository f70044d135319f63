"""The collector's HTTP contract, with an in-memory publisher standing in for Kafka."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from shopstream.config.settings import CollectorSettings
from shopstream.producers.collector import create_app, split_body


class MemoryPublisher:
    """Records what would go to Kafka; ``fail`` simulates a broker that does not acknowledge."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.dead_letters: list[tuple[bytes | None, bytes]] = []
        self.fail = False

    async def publish(self, events: Iterable[dict[str, Any]]) -> int:
        if self.fail:
            raise ConnectionError("broker down")
        self.events.extend(events)
        return 1

    async def publish_dead_letters(self, records: list[tuple[bytes | None, bytes]]) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.dead_letters.extend(records)

    async def ready(self) -> bool:
        return not self.fail


def event(n: int, **change: Any) -> dict[str, Any]:
    return {"event_id": f"e{n}", "ts": time.time(), "session_id": "s1", "type": "view", "item_id": "i1", **change}


@pytest.fixture
def publisher() -> MemoryPublisher:
    return MemoryPublisher()


@pytest.fixture
async def client(publisher: MemoryPublisher) -> AsyncIterator[TestClient]:
    settings = CollectorSettings(max_body_bytes=4096, max_events_per_request=5, cors_origins="https://shop.example")
    async with TestClient(TestServer(create_app(settings, publisher))) as test_client:  # type: ignore[arg-type]
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
    assert down.status == 503 and (await down.json())["accepted"] == 0
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
