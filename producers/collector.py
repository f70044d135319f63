"""The HTTP collector web trackers post events to.

It accepts one event (a JSON object), a JSON array, or NDJSON; validates every event against
schema v1; publishes the valid ones to Kafka and the rejects, with reason and raw payload, to the
dead-letter topic; and answers ``202`` with the counts only after Kafka acknowledged both, so an
accepted event is never lost. Only what a retry can fix answers ``503`` (with ``Retry-After``): Kafka
not acknowledging. Events that can never succeed are rejected and dead-lettered with a reason, and
validation bounds every event (docs/events.md), so one client's event cannot fail the Kafka record it
shares with other clients' events. Who may send, and how much, is checked first (collector_gate.py).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any

import aiohttp_cors
import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest, start_http_server

from shopstream.config.settings import CollectorSettings, load
from shopstream.config.topics import ensure_pipeline_topics
from shopstream.models.events import InvalidEvent, dead_letter, decode_events, parse_event
from shopstream.producers import collector_metrics as metrics
from shopstream.producers.collector_gate import Gate
from shopstream.producers.kafka_publisher import EventPublisher
from shopstream.producers.log_throttle import ThrottleFilter

log = logging.getLogger(__name__)

PUBLISHER = web.AppKey("publisher", EventPublisher)
SETTINGS = web.AppKey("settings", CollectorSettings)
GATE = web.AppKey("gate", Gate)
MAX_ERRORS_REPORTED = 100
#: Events validated between two yields to the event loop, so that a large body does not hold other requests.
VALIDATION_SLICE = 100
RETRY_AFTER_S = 1
LOG_LEVELS = {"crit": logging.CRITICAL, "error": logging.ERROR, "warn": logging.WARNING, "info": logging.INFO,
              "debug": logging.DEBUG}


def split_body(body: bytes, content_type: str) -> list[tuple[Any, bytes | None]]:
    """The raw events of a request body, each with its source line when it could not be decoded.

    >>> [raw for raw, _ in split_body(b'{"a": 1}\\n{"a": 2}\\n', "application/x-ndjson")]
    [{'a': 1}, {'a': 2}]
    >>> split_body(b'{"a": 1}\\nnope', "application/x-ndjson")[1]
    (None, b'nope')
    """
    if content_type in ("application/x-ndjson", "application/jsonl") or (
        content_type != "application/json" and b"\n{" in body.strip()
    ):
        out: list[tuple[Any, bytes | None]] = []
        for line in body.splitlines():
            if line.strip():
                try:
                    out.append((orjson.loads(line), None))
                except orjson.JSONDecodeError:
                    out.append((None, line))
        return out
    try:
        return [(raw, None) for raw in decode_events(body)]
    except InvalidEvent:
        return [(None, body)]


async def post_events(request: web.Request) -> web.Response:
    started = time.perf_counter()
    settings = request.app[SETTINGS]
    refusal = request.app[GATE].refuse(request)
    if refusal is not None:
        retry = refusal.retry_after_s
        return _respond(refusal.status, {"error": refusal.error, **({"retry_after_s": retry} if retry else {})},
                        started, {"Retry-After": str(retry)} if retry else None)
    too_large = {"error": "payload_too_large", "limit_bytes": settings.max_body_bytes}
    if (request.content_length or 0) > settings.max_body_bytes:  # refused before a byte of it is read
        return _respond(413, too_large, started)
    try:
        body = await asyncio.wait_for(request.read(), settings.read_timeout_s)
    except web.HTTPRequestEntityTooLarge:
        return _respond(413, too_large, started)
    except TimeoutError:
        return _respond(408, {"error": "request_timeout", "limit_s": settings.read_timeout_s}, started)
    metrics.PAYLOAD_BYTES.observe(len(body))
    raws = split_body(body, request.content_type)
    if len(raws) > settings.max_events_per_request:
        limit = settings.max_events_per_request
        return _respond(413, {"error": "too_many_events", "limit_events": limit}, started)
    now = time.time()
    limits = settings.event_limits()
    accepted: list[dict[str, Any]] = []
    rejects: list[tuple[bytes | None, bytes]] = []
    errors: list[dict[str, Any]] = []
    for index, (raw, undecodable) in enumerate(raws):
        if index % VALIDATION_SLICE == VALIDATION_SLICE - 1:
            await asyncio.sleep(0)
        try:
            if undecodable is not None:
                raise InvalidEvent("invalid_json", "line is not JSON")
            accepted.append(parse_event(raw, now, limits).to_dict())
        except InvalidEvent as error:
            metrics.VALIDATION_FAILURES.labels(error.reason).inc()
            key = raw.get("session_id") if isinstance(raw, dict) else None
            payload = undecodable if undecodable is not None else raw
            rejects.append((key.encode() if isinstance(key, str) else None,
                            dead_letter(payload, error, "collector", now)))
            if len(errors) < MAX_ERRORS_REPORTED:
                errors.append({"index": index, **error.as_dict()})
    publisher = request.app[PUBLISHER]
    try:
        await asyncio.gather(publisher.publish(accepted), publisher.publish_dead_letters(rejects))
    except Exception as exc:  # validation bounds every record and letter: what fails here is Kafka
        metrics.PRODUCE_ERRORS.labels("collector").inc()
        log.error("publishing events failed: %s: %s", type(exc).__name__, exc)
        body_503 = {"error": "kafka_unavailable", "accepted": 0, "retry_after_s": RETRY_AFTER_S}
        return _respond(503, body_503, started, {"Retry-After": str(RETRY_AFTER_S)})
    metrics.EVENTS.labels("accepted").inc(len(accepted))
    metrics.EVENTS.labels("rejected").inc(len(rejects))
    return _respond(202, {"accepted": len(accepted), "rejected": len(rejects), "errors": errors}, started)


def _respond(status: int, body: dict[str, Any], started: float, headers: dict[str, str] | None = None) -> web.Response:
    metrics.REQUESTS.labels(str(status)).inc()
    metrics.REQUEST_DURATION.observe(time.perf_counter() - started)
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)


async def metrics_page(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    ready = await request.app[PUBLISHER].ready()
    return web.json_response({"ready": ready, "checks": {"kafka": ready}}, status=200 if ready else 503)


def create_app(settings: CollectorSettings, publisher: EventPublisher | None = None) -> web.Application:
    """The collector; ``publisher`` replaces the Kafka one (tests), else it is made at start-up.
    Raises ValueError on bad write keys, or none without ``allow_anonymous``."""
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[GATE] = gate = Gate(settings)

    async def kafka_lifecycle(app: web.Application) -> Any:
        await ensure_pipeline_topics(settings)
        app[PUBLISHER] = EventPublisher.from_settings(settings)
        await app[PUBLISHER].start()
        yield
        await app[PUBLISHER].stop()

    if publisher is None:
        app.cleanup_ctx.append(kafka_lifecycle)
    else:
        app[PUBLISHER] = publisher
    cors = aiohttp_cors.setup(app, defaults={
        origin: aiohttp_cors.ResourceOptions(allow_headers=("Content-Type", "X-Shopstream-Key"),
                                             allow_methods=["POST", "OPTIONS"], max_age=3600)
        for origin in gate.origins
    })
    for path in ("/v1/events", "/events"):
        cors.add(app.router.add_post(path, post_events))
    if not settings.metrics_port:
        app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


def main() -> None:
    """Run the collector (what ``shopstream collector`` calls)."""
    settings = load(CollectorSettings)
    logging.basicConfig(level=LOG_LEVELS[settings.log_level])
    for handler in logging.getLogger().handlers:  # outages repeat the same lines per request: once per 10 s
        handler.addFilter(ThrottleFilter(10.0))
    try:
        app = create_app(settings)
    except (ValueError, OSError) as exc:
        sys.exit(f"invalid configuration for CollectorSettings: {exc}")
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.host)
    web.run_app(app, host=settings.host, port=settings.port, access_log=None, print=None)
