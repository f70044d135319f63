"""producers/tracker.js in a real browser: a shop page → collector → Kafka → worker → Redis.

Headless Chromium (Debian ``chromium`` + ``chromium-driver``, driven by Selenium) loads a product page
served from another origin than the collector, so every POST is a real cross-origin request. The
``add to cart`` click fills a batch (fetch path); leaving the next product page sends its queued view
with ``navigator.sendBeacon`` (exit path). Both must reach Kafka under the browser's session id and
turn into that session's recommendations in Redis.
"""

from __future__ import annotations

import html
import importlib.resources
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from shopstream.bench import processes
from shopstream.client.reader import RecommendationReader
from shopstream.producers.kafka_publisher import session_partition
from tests.pipeline import Pipeline, start_pipeline, stop_pipeline

pytestmark = pytest.mark.integration

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome")
DRIVER_NAMES = ("chromedriver",)
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
)
USER_ID = "u-browser"
PRODUCTS = {
    "sku-1": ("Wooden train", 19.99, "toys", "sku-2"),
    "sku-2": ("Puzzle cube", 7.5, "toys", "sku-1"),
}

PRODUCT_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{name}</title>
<script>
  // Count the beacons that the browser accepted, so the test can tell which path sent the events.
  (function () {{
    var send = navigator.sendBeacon.bind(navigator);
    navigator.sendBeacon = function (url, data) {{
      var ok = send(url, data);
      if (ok) localStorage.setItem("beacons", String(Number(localStorage.getItem("beacons") || 0) + 1));
      return ok;
    }};
  }})();
</script>
<script src="/static/tracker.js"></script>
<script>
  shopstream.init({{ endpoint: {endpoint}, writeKey: {write_key}, userId: "{user_id}", batchSize: 2,
                     flushIntervalMs: 600000 }});
  shopstream.track("view", "{item}", {{ price: {price}, category: "{category}" }});
</script>
</head><body>
<h1>{name}</h1><p>{price} EUR</p>
<button id="add-to-cart"
  onclick="shopstream.track('add_to_cart', '{item}', {{ price: {price}, quantity: 1, category: '{category}' }})">
  Add to cart</button>
<a id="next" href="/product/{next}">See also</a>
</body></html>
"""


def find_binary(names: tuple[str, ...]) -> str:
    for name in names:
        if path := shutil.which(name):
            return path
    pytest.fail(
        f"none of {', '.join(names)} is on PATH: the browser tracker test needs headless Chromium and its "
        "WebDriver (Debian: apt-get install -y chromium chromium-driver)",
        pytrace=False,
    )


class ShopHandler(BaseHTTPRequestHandler):
    """A two-product shop; ``collector_url`` is set on a subclass per test module."""

    collector_url = ""
    write_key = ""
    tracker_js = b""

    def do_GET(self) -> None:
        if self.path == "/static/tracker.js":
            self._send(200, "application/javascript", self.tracker_js)
        elif self.path.startswith("/product/") and (product := PRODUCTS.get(self.path.removeprefix("/product/"))):
            name, price, category, next_item = product
            page = PRODUCT_PAGE.format(
                name=html.escape(name), endpoint=orjson.dumps(f"{self.collector_url}/v1/events").decode(),
                write_key=orjson.dumps(self.write_key).decode(),
                user_id=USER_ID, item=self.path.removeprefix("/product/"), price=price, category=category,
                next=next_item,
            )
            self._send(200, "text/html; charset=utf-8", page.encode())
        elif self.path == "/done":
            self._send(200, "text/html; charset=utf-8", b"<!doctype html><title>done</title>")
        else:
            self._send(404, "text/plain", b"not found")

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def shop_port() -> int:
    return processes.free_port()


@pytest.fixture(scope="module")
def pipeline(
    kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory, shop_port: int
) -> Iterator[Pipeline]:
    """The pipeline with a write key for the shop's origin: the collector's allow-list is the keys' sites."""
    running = start_pipeline(kafka_bootstrap, redis_url, tmp_path_factory.mktemp("pipeline"),
                             sites=(f"http://127.0.0.1:{shop_port}",))
    try:
        yield running
    finally:
        stop_pipeline(running)


@pytest.fixture(scope="module")
def shop_url(pipeline: Pipeline, shop_port: int) -> Iterator[str]:
    """The shop on its own loopback port: another origin than the collector, so CORS is exercised."""
    handler = type("Shop", (ShopHandler,), {
        "collector_url": pipeline.collector_url,
        "write_key": pipeline.write_key,
        # From the installed package: proves tracker.js ships as package data.
        "tracker_js": (importlib.resources.files("shopstream.producers") / "tracker.js").read_bytes(),
    })
    server = ThreadingHTTPServer(("127.0.0.1", shop_port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    chromium, chromedriver = find_binary(BROWSER_NAMES), find_binary(DRIVER_NAMES)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    log = Path(tmp_path_factory.mktemp("chromedriver")) / "chromedriver.log"
    # An explicit driver path: Selenium Manager (which would download drivers) is never run.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver, log_output=str(log)))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def session_events(pipeline: Pipeline, session_id: str, expected: int, timeout_s: float = 30.0) -> list[dict]:
    """Every event of the session in the events topic, checking each record is a keyed JSON array."""
    consumer = KafkaConsumer(
        pipeline.events_topic, bootstrap_servers=pipeline.env["KAFKA_BOOTSTRAP_SERVERS"],
        auto_offset_reset="earliest", group_id=f"test-browser-{uuid.uuid4().hex}", enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    events: list[dict] = []
    partitions = int(pipeline.env["SHOPSTREAM_TOPIC_PARTITIONS"])
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and len(events) < expected:
            for record in consumer:
                batch = orjson.loads(record.value)
                assert isinstance(batch, list), record.value
                assert all(session_partition(e["session_id"], partitions) == record.partition for e in batch)
                events.extend(e for e in batch if e["session_id"] == session_id)
    finally:
        consumer.close()
    return events


def test_page_views_and_add_to_cart_become_session_recommendations(
    pipeline: Pipeline, shop_url: str, browser: webdriver.Chrome
) -> None:
    started = time.time()
    stats = "return shopstream.stats()"

    # Product page: its view is queued; the add-to-cart click fills the batch of 2 → fetch (CORS).
    browser.get(f"{shop_url}/product/sku-1")
    session_id = browser.execute_script("return shopstream.sessionId()")
    assert uuid.UUID(session_id).version == 4
    browser.find_element(By.ID, "add-to-cart").click()
    sent = WebDriverWait(browser, 15).until(lambda d: (s := d.execute_script(stats))["sent"] == 2 and s)
    # 202 is readable only if the collector's CORS headers allowed this origin.
    assert sent["lastStatus"] == 202, sent

    # Next product: same tab, same session; its view waits in the queue (interval 10 min).
    browser.find_element(By.ID, "next").click()
    WebDriverWait(browser, 15).until(lambda d: d.title == "Puzzle cube")
    assert browser.execute_script("return shopstream.sessionId()") == session_id
    assert browser.execute_script(stats)["queued"] == 1

    # Leaving the page (pagehide / visibilitychange → hidden) hands the queue to sendBeacon.
    browser.get("about:blank")
    browser.get(f"{shop_url}/done")
    beacons = "return localStorage.getItem('beacons')"
    WebDriverWait(browser, 5).until(lambda d: d.execute_script(beacons) is not None)
    assert browser.execute_script(beacons) == "1"

    events = session_events(pipeline, session_id, expected=3)
    assert [(e["type"], e["item_id"]) for e in events] == [
        ("view", "sku-1"), ("add_to_cart", "sku-1"), ("view", "sku-2"),
    ], pipeline.tail()
    assert len({e["event_id"] for e in events}) == 3
    for event in events:
        assert event["user_id"] == USER_ID
        assert event["category"] == "toys"
        assert started - 5 <= event["ts"] <= time.time() + 5
    assert (events[0]["price"], events[1]["price"], events[1]["quantity"], events[2]["price"]) == (19.99, 19.99, 1, 7.5)

    # The worker turned them into this session's (and user's) lists; the beacon's view reached trending.
    pipeline.wait_for_key(f"rec:session:{session_id}")
    pipeline.wait_for_key(f"rec:user:{USER_ID}")
    reader = RecommendationReader(pipeline.redis, pipeline.key_prefix)
    wait_until(lambda: "sku-2" in reader.recommend(k=10).items, 20, f"sku-2 in trending\n{pipeline.tail()}")
    session = reader.recommend(session_id=session_id, category="toys", k=5)
    assert session.sources[0] == "session" and session.items, session
    assert set(session.items) <= {"sku-1", "sku-2"}
    assert session.age_s is not None and session.age_s < 60
    assert reader.recommend(user_id=USER_ID, session_id=session_id).sources[0] == "user"


def test_impressions_and_clicks_carry_the_list_they_came_from(
    pipeline: Pipeline, shop_url: str, browser: webdriver.Chrome
) -> None:
    browser.get(f"{shop_url}/done")
    browser.execute_script("sessionStorage.clear()")  # a new session, whichever test ran before
    browser.get(f"{shop_url}/product/sku-1")
    session_id = browser.execute_script("return shopstream.sessionId()")
    served = {"v": 1, "model": "session_knn", "strategy": "vsknn", "propensity": 0.8, "items": ["sku-1", "sku-2"]}
    browser.execute_script(
        "shopstream.impressions(arguments[0], 'session', arguments[0].items, { requestId: 'r-1' });"
        "shopstream.click(arguments[0], 'session', 'sku-2', 1, { requestId: 'r-1', category: 'toys' });",
        served,
    )
    WebDriverWait(browser, 15).until(
        lambda d: d.execute_script("shopstream.flush(); return shopstream.stats()")["queued"] == 0
    )
    events = session_events(pipeline, session_id, expected=4)
    ref = {"surface": "session", "strategy": "vsknn", "propensity": 0.8, "request_id": "r-1"}
    assert [(e["type"], e["item_id"], e.get("list")) for e in events] == [
        ("view", "sku-1", None),
        ("impression", "sku-1", {**ref, "position": 0}),
        ("impression", "sku-2", {**ref, "position": 1}),
        ("view", "sku-2", {**ref, "position": 1}),
    ], pipeline.tail()
    assert browser.execute_script("return shopstream.stats()")["lastStatus"] == 202
