"""The collector's Prometheus metrics (documented in docs/metrics.md); labels are bounded codes."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter("shopstream_collector_requests_total", "HTTP requests to the collector, by status.", ["status"])
REQUEST_DURATION = Histogram(
    "shopstream_collector_request_duration_seconds",
    "Time from request to response, including the wait for Kafka's acknowledgement.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
PAYLOAD_BYTES = Histogram(
    "shopstream_collector_payload_bytes", "Request body sizes.",
    buckets=(256, 1024, 4096, 16384, 65536, 262144, 1048576),
)
EVENTS = Counter("shopstream_collector_events_total", "Events received, by outcome.", ["outcome"])
VALIDATION_FAILURES = Counter(
    "shopstream_collector_validation_failures_total", "Rejected events, by reason code.", ["reason"]
)
PRODUCE_ERRORS = Counter("shopstream_kafka_produce_errors_total", "Failed publishes to Kafka.", ["component"])

for _outcome in ("accepted", "rejected"):
    EVENTS.labels(_outcome)
PRODUCE_ERRORS.labels("collector")
PRODUCER_RESTARTS = Counter(
    "shopstream_collector_producer_restarts_total", "Kafka producers replaced after a failed send."
)
