"""The pipeline driven as a user drives it: events POSTed to the collector, keys read from Redis.

Runs against real Kafka and Redis with ``shopstream collector`` and ``shopstream worker`` as
processes (tests/pipeline.py).
"""

from __future__ import annotations

import time
import uuid

import orjson

from shopstream.bench.scrape import samples
from shopstream.producers.kafka_publisher import session_partition
from shopstream.producers.synthetic import SyntheticTraffic
from tests.pipeline import Pipeline, consume_all, wait_for


def processed_total(pipeline: Pipeline, outcomes: tuple[str, ...] = ("processed",)) -> float:
    values = samples(pipeline.metrics(), "shopstream_events_total")
    return sum(v for labels, v in values.items() if dict(labels)["outcome"] in outcomes)


def settled(pipeline: Pipeline) -> bool:
    """Every event the collector accepted so far has reached the worker (learned or dropped as a duplicate)."""
    accepted = samples(pipeline.metrics("collector"), "shopstream_collector_events_total")
    return processed_total(pipeline, ("processed", "duplicate")) >= accepted[(("outcome", "accepted"),)]


def test_tracker_events_become_recommendations(pipeline: Pipeline) -> None:
    now = time.time()
    warmup = SyntheticTraffic(seed=7, start_ts=now - 600, rate=10).take(3000)
    per_request = 500  # the collector's default SHOPSTREAM_MAX_EVENTS_PER_REQUEST
    for i in range(0, len(warmup), per_request):
        body = b"\n".join(orjson.dumps(e) for e in warmup[i : i + per_request])
        response = pipeline.post(body, "application/x-ndjson")
        assert response.status_code == 202, response.text
        assert response.json()["accepted"] == per_request

    session, user = f"sess-{uuid.uuid4().hex[:8]}", f"user-{uuid.uuid4().hex[:8]}"
    browsed = [e["item_id"] for e in warmup if e["type"] == "view"][:3]
    mine = [
        {"event_id": f"{session}-{i}", "ts": now + i, "session_id": session, "user_id": user, "type": t,
         "item_id": item, "category": "c1"}
        for i, (t, item) in enumerate([("view", browsed[0]), ("view", browsed[1]), ("add_to_cart", browsed[1])])
    ]
    response = pipeline.post(orjson.dumps(mine))
    assert response.status_code == 202 and response.json() == {"accepted": 3, "rejected": 0, "errors": []}

    session_value = orjson.loads(pipeline.wait_for_key(f"rec:session:{session}"))
    user_value = orjson.loads(pipeline.wait_for_key(f"rec:user:{user}"))
    for value in (session_value, user_value):
        assert value["v"] == 1 and value["model"]
        assert 0 < len(value["items"]) <= 20 and len(value["items"]) == len(value["scores"])
        assert value["scores"] == sorted(value["scores"], reverse=True)
        assert abs(value["updated_at"] - time.time()) < 30
    # Items browsed together in the warm-up traffic lead the list of a session that browsed them.
    known_items = {e["item_id"] for e in warmup}
    assert set(session_value["items"]) <= known_items
    assert pipeline.redis.ttl(f"{pipeline.key_prefix}rec:session:{session}") > 0
    assert orjson.loads(pipeline.wait_for_key("rec:trending"))["items"]
    assert orjson.loads(pipeline.wait_for_key(f"rec:item:{browsed[1]}"))["items"]

    # A returning buyer is served by the repeat-buy + matrix-factorisation blend.
    buyer = next(e["user_id"] for e in reversed(warmup) if e["type"] == "purchase" and "user_id" in e)
    assert orjson.loads(pipeline.wait_for_key(f"rec:user:{buyer}"))["model"] == "repeat_blend"
    # Ten minutes of purchases in 20 s windows, read across 4 partitions, give shop-level forecasts.
    forecast = orjson.loads(pipeline.wait_for_key("forecast:shop"))
    assert forecast["window_s"] == 20 and len(forecast["forecast"]) == 7
    assert all(v >= 0 for v in forecast["forecast"])
    # Sessions carry a purchase propensity once the classifier has seen finished sessions.
    propensity = session_value.get("purchase_propensity")
    assert propensity is None or 0.0 <= propensity <= 1.0


def test_bad_events_go_to_the_dead_letter_topic_with_their_reason(pipeline: Pipeline) -> None:
    now = time.time()
    good = {"event_id": f"ok-{uuid.uuid4().hex}", "ts": now, "session_id": "s-dlq", "type": "view", "item_id": "i1"}
    bad = [
        {**good, "event_id": "bad-type", "type": "teleport"},
        {k: v for k, v in good.items() if k != "session_id"} | {"event_id": "bad-missing"},
        {**good, "event_id": "bad-ts", "ts": 12},
        {**good, "event_id": "bad-price", "price": "cheap"},
    ]
    response = pipeline.post(orjson.dumps([good, *bad]))
    assert response.status_code == 202
    assert response.json()["accepted"] == 1 and response.json()["rejected"] == 4
    response = pipeline.post(b'{"broken json', "application/json")
    assert response.json()["rejected"] == 1

    letters = [orjson.loads(r.value) for r in consume_all(pipeline.bootstrap, pipeline.dlq_topic, expected=5)]
    reasons = {letter["raw"].get("event_id") if isinstance(letter["raw"], dict) else "json": letter["reason"]
               for letter in letters}
    assert reasons == {"bad-type": "unknown_type", "bad-missing": "missing_field", "bad-ts": "bad_timestamp",
                       "bad-price": "wrong_type", "json": "invalid_json"}
    assert all(letter["source"] == "collector" for letter in letters)

    failures = samples(pipeline.metrics("collector"), "shopstream_collector_validation_failures_total")
    assert failures[(("reason", "unknown_type"),)] >= 1
    assert failures[(("reason", "invalid_json"),)] >= 1


def test_order_no_loss_and_no_double_counting(pipeline: Pipeline) -> None:
    """Every accepted event is on the topic once, per-session in order; a re-sent batch is not re-learned."""
    start = time.time()
    events = SyntheticTraffic(seed=11, start_ts=start - 300, rate=50).take(2000)
    wait_for(lambda: settled(pipeline), what="earlier tests' events to be processed")
    before = processed_total(pipeline)
    for i in range(0, len(events), 100):
        assert pipeline.post(orjson.dumps(events[i : i + 100])).json()["accepted"] == 100
    duplicate_batch = events[:100]
    assert pipeline.post(orjson.dumps(duplicate_batch)).json()["accepted"] == 100

    wait_for(lambda: processed_total(pipeline) - before >= 2000, what="the worker to process 2000 events")
    time.sleep(1.0)
    assert processed_total(pipeline) - before == 2000
    duplicates = samples(pipeline.metrics(), "shopstream_events_total")
    assert sum(v for labels, v in duplicates.items() if ("outcome", "duplicate") in labels) >= 100

    ours = {e["event_id"] for e in events}
    partitions = int(pipeline.env["SHOPSTREAM_TOPIC_PARTITIONS"])
    seen: dict[str, list[str]] = {}
    for record in consume_all(pipeline.bootstrap, pipeline.events_topic, expected=10**9, timeout_s=8):
        for event in orjson.loads(record.value):
            if event["event_id"] in ours:
                assert record.partition == session_partition(event["session_id"], partitions)
                seen.setdefault(event["session_id"], []).append(event["event_id"])
    sent: dict[str, list[str]] = {}
    for event in events + duplicate_batch:
        sent.setdefault(event["session_id"], []).append(event["event_id"])
    assert seen == sent


def test_metrics_show_counts_freshness_and_hit_rate(pipeline: Pipeline) -> None:
    text = pipeline.metrics()
    freshness = samples(text, "shopstream_freshness_seconds_count")
    assert freshness[(("kind", "session"),)] > 0
    predictions = samples(text, "shopstream_recommendation_predictions_total")
    assert sum(predictions.values()) > 0
    assert samples(text, "shopstream_redis_write_duration_seconds_count")[()] > 0
    accepted = samples(pipeline.metrics("collector"), "shopstream_collector_events_total")
    assert accepted[(("outcome", "accepted"),)] >= 3000
