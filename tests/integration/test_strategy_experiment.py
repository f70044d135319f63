"""The strategy experiment end to end (real Kafka and Redis, collector and worker processes): served session, user
and item lists carry their strategy and propensity, and impressions, clicks and carts posted through the
collector with those lists are counted per surface and strategy in the worker's /metrics."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TypeVar

import orjson
import pytest

from shopstream.bench.scrape import samples
from shopstream.contracts.lists import BY_NAME
from shopstream.producers.synthetic import SyntheticTraffic
from tests.pipeline import Pipeline, start_pipeline, stop_pipeline

pytestmark = pytest.mark.integration

ARMS = {
    "session": ("transitions", "vsknn", "trending"),
    "user": ("repeat_blend", "session", "trending"),
    "item": ("transitions", "vsknn", "trending"),
}
FLOOR = 0.1
T = TypeVar("T")


@pytest.fixture(scope="module")
def pipeline(kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    running = start_pipeline(
        kafka_bootstrap, redis_url, tmp_path_factory.mktemp("pipeline"),
        SHOPSTREAM_EXPERIMENT="thompson", SHOPSTREAM_EXPERIMENT_FLOOR=str(FLOOR),
    )
    try:
        yield running
    finally:
        stop_pipeline(running)


def poll(read: Callable[[], T], done: Callable[[T], bool], timeout_s: float) -> T:
    """What ``read`` returns once ``done`` accepts it, or at the deadline."""
    deadline = time.monotonic() + timeout_s
    while not done(value := read()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return value


def wait_for_metric(pipeline: Pipeline, name: str, expected: dict, timeout_s: float = 30.0) -> dict:
    return poll(lambda: {labels: v for labels, v in samples(pipeline.metrics(), name).items() if v},
                expected.__eq__, timeout_s)


def processed_events(pipeline: Pipeline) -> float:
    return sum(v for labels, v in samples(pipeline.metrics(), "shopstream_events_total").items()
               if ("outcome", "processed") in labels)


def post(pipeline: Pipeline, events: list[dict]) -> None:
    for i in range(0, len(events), 500):  # the collector's default events per request
        response = pipeline.post(b"\n".join(orjson.dumps(e) for e in events[i : i + 500]), "application/x-ndjson")
        assert response.status_code == 202 and response.json()["rejected"] == 0, response.text


def test_served_lists_carry_strategy_and_outcomes_are_counted_per_surface_and_strategy(pipeline: Pipeline) -> None:
    now = time.time()
    warmup = SyntheticTraffic(seed=11, start_ts=now - 300, rate=10).take(1500)
    post(pipeline, warmup)
    # Keys are read once the worker learned the whole warm-up: a list written earlier can be shorter.
    processed = poll(lambda: processed_events(pipeline), lambda n: n >= len(warmup), timeout_s=60.0)
    assert processed >= len(warmup), pipeline.tail()
    views = [e for e in warmup if e["type"] == "view"]
    popular = Counter(e["item_id"] for e in views)
    # The latest session of each of 8 sessions, users and (often viewed, so with neighbours) items.
    shown_to = {
        "session": {e["session_id"]: e["session_id"] for e in views},
        "user": {e["user_id"]: e["session_id"] for e in views if "user_id" in e},
        "item": {e["item_id"]: e["session_id"] for e in views if popular[e["item_id"]] >= 5},
    }

    def full_list(surface: str, key: str) -> dict:
        """The key's list once it holds the three items shown below (item lists, not topped up from trending,
        are rewritten by the deferred tier after the session lists the processed count waits for)."""
        redis_key = BY_NAME[surface].key("", key)
        return poll(lambda: orjson.loads(pipeline.wait_for_key(redis_key)), lambda v: len(v["items"]) >= 3, 30.0)

    served = {(surface, key): full_list(surface, key) for surface, keys in shown_to.items() for key in list(keys)[-8:]}
    for (surface, _), value in served.items():
        assert value["strategy"] in ARMS[surface], (surface, value)
        assert FLOOR / 3 - 1e-9 <= value["propensity"] <= 1.0, (surface, value)

    # Each list's shopper sees three items, clicks the second and puts it in the cart.
    feedback, shown = [], Counter()
    for n, ((surface, key), value) in enumerate(served.items()):
        sid = shown_to[surface][key]
        ref = {"surface": surface, "strategy": value["strategy"], "propensity": value["propensity"],
               "request_id": f"r{n}"}
        items = value["items"][:3]
        assert len(items) == 3, value
        feedback += [{"event_id": f"imp-{n}-{p}", "ts": now + 1, "session_id": sid, "type": "impression",
                      "item_id": item, "list": {**ref, "position": p}} for p, item in enumerate(items)]
        feedback += [
            {"event_id": f"clk-{n}", "ts": now + 2, "session_id": sid, "type": "view", "item_id": items[1],
             "list": {**ref, "position": 1}},
            {"event_id": f"cart-{n}", "ts": now + 3, "session_id": sid, "type": "add_to_cart", "item_id": items[1],
             "quantity": 1},
        ]
        shown[surface, value["strategy"]] += 1
    post(pipeline, feedback)

    def by_strategy(factor: int, *extra: tuple[str, str]) -> dict:
        return {(("strategy", strategy), ("surface", surface), *extra): float(factor * n)
                for (surface, strategy), n in shown.items()}

    impressions = wait_for_metric(pipeline, "shopstream_list_impressions_total", by_strategy(3))
    assert impressions == by_strategy(3), pipeline.tail()
    assert wait_for_metric(pipeline, "shopstream_list_clicks_total", by_strategy(1)) == by_strategy(1)
    carts = by_strategy(1, ("type", "add_to_cart"))
    assert wait_for_metric(pipeline, "shopstream_list_conversions_total", carts) == carts
    allocation: dict[str, dict[str, float]] = {}
    for labels, share in samples(pipeline.metrics(), "shopstream_experiment_allocation").items():
        allocation.setdefault(dict(labels)["surface"], {})[dict(labels)["strategy"]] = share
    assert {surface: set(shares) for surface, shares in allocation.items()} == {s: set(a) for s, a in ARMS.items()}
    for shares in allocation.values():
        assert sum(shares.values()) == pytest.approx(1.0)
        assert min(shares.values()) >= FLOOR / 3 - 1e-9
