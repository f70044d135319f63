"""The worker's Prometheus metrics: a public contract (docs/metrics.md), change names on purpose only.

Labels are bounded: event types, outcome and reason codes, key kinds, model names and K — never
user, session or item ids.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Mapping

from prometheus_client import Counter, Gauge, Histogram

from shopstream.contracts.lists import LISTS
from shopstream.models.events import EVENT_TYPES

# Event-to-Redis latency is tens of milliseconds when healthy and seconds when lagging.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SIZE_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000)

EVENTS = Counter(
    "shopstream_events_total", "Events consumed by the worker, by type and outcome.", ["type", "outcome"]
)
DLQ = Counter("shopstream_dlq_events_total", "Events sent to the dead-letter topic, by reason.", ["reason"])
BATCH_DURATION = Histogram(
    "shopstream_batch_duration_seconds", "Time to process one batch: decode, learn, serve, write.",
    buckets=FAST_BUCKETS,
)
GC_PAUSE = Histogram(
    "shopstream_gc_pause_seconds",
    "Garbage-collector pauses of the worker, by generation (2: full, the one that can stall batches).",
    ["generation"],
    buckets=FAST_BUCKETS,
)
BATCH_EVENTS = Histogram("shopstream_batch_events", "Events per processed batch.", buckets=SIZE_BUCKETS)
BATCH_RECORDS = Histogram(
    "shopstream_batch_records", "Kafka records per processed batch.", buckets=SIZE_BUCKETS
)
FRESHNESS = Histogram(
    "shopstream_freshness_seconds",
    "Redis write time minus the Kafka timestamp of the oldest event that changed the key.",
    ["kind"],
    buckets=LATENCY_BUCKETS,
)
HITS = Counter(
    "shopstream_recommendation_hits_total",
    "Events whose item was in the top K of the list served to that session or user before it.",
    ["model", "k"],
)
PREDICTIONS = Counter(
    "shopstream_recommendation_predictions_total",
    "Events scored against a previously served list (the denominator of the hit-rate).",
    ["model", "k"],
)
RECIPROCAL_RANK = Counter(
    "shopstream_recommendation_reciprocal_rank_total",
    "Sum of 1/rank of hits within K; divided by predictions it is MRR@K.",
    ["model", "k"],
)
REDIS_WRITE = Histogram(
    "shopstream_redis_write_duration_seconds", "Time of one Redis pipeline execution.", buckets=FAST_BUCKETS
)
REDIS_PIPELINE = Histogram(
    "shopstream_redis_pipeline_commands", "Commands per Redis pipeline.", buckets=SIZE_BUCKETS
)
REDIS_ERRORS = Counter("shopstream_redis_errors_total", "Failed Redis pipeline executions.")
REDIS_RETRIES = Counter("shopstream_redis_retries_total", "Retries of Redis pipeline executions.")
KEYS_WRITTEN = Counter("shopstream_redis_keys_written_total", "Recommendation keys written.", ["kind"])
REPUBLISHED = Counter(
    "shopstream_republished_keys_total", "Keys written again after Redis lost its data, by kind.", ["kind"]
)
for _spec in LISTS:  # the ``kind`` label takes the contract's kinds, each exported from the start
    FRESHNESS.labels(_spec.name)
    KEYS_WRITTEN.labels(_spec.name)
MODEL_LEARNED = Gauge(
    "shopstream_model_learned_events",
    "Events the model state has learned, carried across restarts by checkpoints: each event counts once.",
)
MODEL_ENTITIES = Gauge("shopstream_model_entities", "Entities held by the models, by kind.", ["kind"])
LAST_EVENT = Gauge(
    "shopstream_last_event_timestamp_seconds", "Kafka timestamp of the newest event processed."
)
MODEL_EVICTIONS = Counter(
    "shopstream_model_evictions_total", "Entities dropped from model state because a cap was full.", ["kind"]
)
FORECAST_ABS_ERROR = Counter(
    "shopstream_forecast_absolute_error_total",
    "Sum of |one-step forecast - actual| over closed demand windows, by series kind.", ["series"],
)
FORECAST_ACTUAL = Counter(
    "shopstream_forecast_actual_total", "Sum of the actual demand of the scored windows.", ["series"]
)
FORECAST_WINDOWS = Counter("shopstream_forecast_windows_total", "Demand windows scored.", ["series"])
LIST_IMPRESSIONS = Counter(
    "shopstream_list_impressions_total", "Items reported shown in a served list, by surface and strategy.",
    ["surface", "strategy"],
)
LIST_CLICKS = Counter(
    "shopstream_list_clicks_total",
    "Clicks from a served list (once per showing); divided by impressions it is the click-through rate.",
    ["surface", "strategy"],
)
LIST_CONVERSIONS = Counter(
    "shopstream_list_conversions_total",
    "Add-to-carts and purchases of an item credited to the list of the session that showed it (once per showing).",
    ["surface", "strategy", "type"],
)
EXPERIMENT_ALLOCATION = Gauge(
    "shopstream_experiment_allocation",
    "Share of new keys (sessions, users; item lists written) each strategy of a surface is assigned now (the "
    "bandit's or A/B split's distribution).",
    ["surface", "strategy"],
)
REBALANCES = Counter("shopstream_kafka_rebalances_total", "Consumer-group rebalances this worker took part in.")
SLOTS_HELD = Gauge(
    "shopstream_key_slots_held", "List-key slots (members-topic partitions) the group dealt this worker."
)
CONSUMER_LAG = Gauge(
    "shopstream_kafka_consumer_lag", "High-water mark minus the consumer position, per partition.",
    ["partition"],
)
CHECKPOINT_DURATION = Histogram(
    "shopstream_checkpoint_duration_seconds",
    "Time to checkpoint the model state: waiting for the batch in flight, the snapshot (a forked process pickles "
    "and compresses the state), writing it to Kafka.",
    buckets=LATENCY_BUCKETS,
)
CHECKPOINT_PAUSE = Histogram(
    "shopstream_checkpoint_pause_seconds",
    "Time the worker stops learning for a checkpoint: forking the process whose copy of the state is dumped.",
    buckets=FAST_BUCKETS,
)
CHECKPOINT_BYTES = Gauge("shopstream_checkpoint_size_bytes", "Compressed size of the last checkpoint.")
CHECKPOINT_LAST = Gauge(
    "shopstream_checkpoint_last_success_timestamp_seconds",
    "Wall-clock time of the last checkpoint the broker acknowledged (0: none since the worker started).",
)
CHECKPOINT_FAILURES = Counter("shopstream_checkpoint_failures_total", "Checkpoints that could not be written.")
RESTORE_DURATION = Gauge(
    "shopstream_restore_duration_seconds",
    "Time from the worker's start to having read the events topic up to where it ended then: loading the "
    "checkpoint and catching up.",
)
RESTORE_BACKLOG = Gauge(
    "shopstream_restore_backlog_records",
    "Kafka records between the offsets the worker started from (its checkpoint's) and the topic's end then.",
)

_exported: dict[tuple[int, tuple[str, ...]], float] = {}


def export_cumulative(counter: Counter, labels: tuple[str, ...], total: float) -> None:
    """Publish a count the models keep themselves: increment the counter by what it grew since last time."""
    key = (id(counter), labels)
    grown = total - _exported.get(key, 0.0)
    if grown > 0:
        counter.labels(*labels).inc(grown)
        _exported[key] = total


OUTCOMES = ("processed", "duplicate", "rejected")
for _type in (*EVENT_TYPES, "invalid"):
    for _outcome in OUTCOMES:
        EVENTS.labels(_type, _outcome)


def export_outcomes(outcomes: Tally[tuple[str, str, str]], allocation: Mapping[tuple[str, str], float]) -> None:
    """Count a batch's attributed ``(surface, strategy, kind)`` outcomes and set the current allocation. The
    strategy labels are a fixed set: the engine counts only the strategies it runs."""
    for (surface, strategy, kind), n in outcomes.items():
        if kind == "impression":
            LIST_IMPRESSIONS.labels(surface, strategy).inc(n)
        elif kind == "click":
            LIST_CLICKS.labels(surface, strategy).inc(n)
        else:
            LIST_CONVERSIONS.labels(surface, strategy, kind).inc(n)
    for (surface, strategy), share in allocation.items():
        EXPERIMENT_ALLOCATION.labels(surface, strategy).set(share)


def export_lag(offsets: Iterable[tuple[int, int | None, int | None]]) -> None:
    """Set the lag of each assigned ``(partition, position, high-water mark)``. Partitions lost in a
    rebalance disappear; one whose position or high-water mark is not known yet (before its first fetch
    after a rebalance) is left out rather than crash the timer, and with it the worker."""
    CONSUMER_LAG.clear()
    for partition, position, highwater in offsets:
        if position is not None and highwater is not None:
            CONSUMER_LAG.labels(str(partition)).set(max(0, highwater - position))
