"""Builds monitoring/grafana/dashboards/shopstream.json: ``python monitoring/grafana/build_dashboard.py``.

The dashboard is generated so that panels stay uniform (datasource, units, legend, layout) and so the
queries live in one reviewable list; tests/unit/test_monitoring_config.py fails if the committed JSON
differs from what this script builds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATASOURCE_UID = "shopstream-prometheus"  # provisioning/datasources/prometheus.yml
DASHBOARD_UID = "shopstream-overview"
DATASOURCE = {"type": "prometheus", "uid": DATASOURCE_UID}
OUT = Path(__file__).parent / "dashboards" / "shopstream.json"

RI = "$__rate_interval"


def quantiles(metric: str, qs: tuple[float, ...], by: str = "le") -> list[tuple[str, str]]:
    return [
        (f"histogram_quantile({q}, sum by ({by}) (rate({metric}_bucket[{RI}])))", f"p{round(q * 100)}") for q in qs
    ]


@dataclass(frozen=True)
class Panel:
    """One panel: what it shows (description), in which unit, from which queries (expr, legend)."""

    title: str
    description: str
    unit: str
    targets: list[tuple[str, str]]
    type: str = "timeseries"
    width: int = 12
    height: int = 8
    defaults: dict[str, Any] = field(default_factory=dict)


RATIO = {"min": 0, "max": 1}

PANELS: list[Panel] = [
    # --- headline stats --------------------------------------------------------------------------------------
    Panel("Events/s", "Events learned per second by all workers.", "eps",
          [(f'sum(rate(shopstream_events_total{{outcome="processed"}}[{RI}]))', "events/s")],
          type="stat", width=6, height=4),
    Panel("Newest event age", "Now minus the Kafka timestamp of the newest event any worker processed; "
          "ShopstreamNoEvents pages above 5 minutes.", "s",
          [("time() - max(shopstream_last_event_timestamp_seconds)", "age")],
          type="stat", width=6, height=4,
          defaults={"thresholds": {"mode": "absolute", "steps": [
              {"color": "green", "value": None}, {"color": "orange", "value": 60}, {"color": "red", "value": 300}]}}),
    Panel("Total consumer lag", "Records in the events topic not yet consumed, summed over partitions.", "short",
          [("sum(shopstream_kafka_consumer_lag)", "lag")], type="stat", width=6, height=4),
    Panel("Targets up", "1 when Prometheus scraped the component at its last attempt (ShopstreamWorkerDown, "
          "ShopstreamCollectorDown).", "none",
          [('up{job=~"shopstream-.*"}', "{{instance}}")], type="stat", width=6, height=4,
          defaults={"thresholds": {"mode": "absolute", "steps": [
              {"color": "red", "value": None}, {"color": "green", "value": 1}]}}),
    # --- flow ------------------------------------------------------------------------------------------------
    Panel("Throughput by event type", "Events the workers learned from, per type; duplicates (re-sent event ids) "
          "and rejects (to the dead-letter topic) per outcome.", "eps",
          [(f'sum by (type) (rate(shopstream_events_total{{outcome="processed"}}[{RI}]))', "{{type}}"),
           (f'sum by (outcome) (rate(shopstream_events_total{{outcome!="processed"}}[{RI}]))', "{{outcome}}")]),
    Panel("Freshness p50 / p95 / p99", "Redis write time minus the Kafka timestamp of the oldest event that changed "
          "the key: how stale a served list is. ShopstreamFreshnessP99High pages above 5 s.", "s",
          quantiles("shopstream_freshness_seconds", (0.5, 0.95, 0.99))),
    Panel("Freshness p99 by key kind", "p99 freshness per kind of Redis key (session, user, item, trending, "
          "category).", "s",
          [(f"histogram_quantile(0.99, sum by (le, kind) (rate(shopstream_freshness_seconds_bucket[{RI}])))",
            "{{kind}}")]),
    Panel("Kafka consumer lag by partition", "High-water mark minus the consumer position of each events-topic "
          "partition, sampled every 5 s by the worker that owns it.", "short",
          [("sum by (partition) (shopstream_kafka_consumer_lag)", "partition {{partition}}")]),
    Panel("Batch duration p50 / p99", "Time to decode, learn, serve and write one batch; long batches delay "
          "heartbeats and freshness.", "s",
          quantiles("shopstream_batch_duration_seconds", (0.5, 0.99))),
    Panel("Events per batch", "Average events per processed batch and Redis commands per pipeline: how well the "
          "worker amortises its per-batch costs.", "short",
          [(f"sum(rate(shopstream_batch_events_sum[{RI}])) / sum(rate(shopstream_batch_events_count[{RI}]))",
            "events/batch"),
           (f"sum(rate(shopstream_redis_pipeline_commands_sum[{RI}]))"
            f" / sum(rate(shopstream_redis_pipeline_commands_count[{RI}]))", "commands/pipeline")]),
    # --- recommendation quality -------------------------------------------------------------------------------
    Panel("Hit-rate by model and K", "Share of positive events whose item was in the top K of the list last served "
          "to that session or user, by the model that made the list (10-minute window).", "percentunit",
          [("sum by (model, k) (rate(shopstream_recommendation_hits_total[10m]))"
            " / sum by (model, k) (rate(shopstream_recommendation_predictions_total[10m]))", "{{model}} @{{k}}")],
          defaults=RATIO),
    Panel("MRR by model and K", "Mean reciprocal rank of hits within K over the same predictions (0 to 1, "
          "10-minute window).", "none",
          [("sum by (model, k) (rate(shopstream_recommendation_reciprocal_rank_total[10m]))"
            " / sum by (model, k) (rate(shopstream_recommendation_predictions_total[10m]))", "{{model}} @{{k}}")],
          defaults=RATIO),
    Panel("Model sizes by kind", "Entities the models hold per worker (sessions, users, items, ...); bounded by the "
          "SHOPSTREAM_MAX_* settings.", "short",
          [("sum by (instance, kind) (shopstream_model_entities)", "{{instance}} {{kind}}")]),
    Panel("Model evictions by kind", "Entities dropped per second because a model's cap was full "
          "(shopstream_model_evictions_total): steady evictions mean the caps are too small for the traffic.", "ops",
          [(f"sum by (kind) (rate(shopstream_model_evictions_total[{RI}]))", "{{kind}}")]),
    # --- strategy experiments ---------------------------------------------------------------------------------
    Panel("CTR by surface and strategy", "Clicks over impressions of the served lists, per surface and strategy "
          "(10-minute window); impressions and clicks come from the shop's tracker (docs/redis-keys.md).",
          "percentunit",
          [("sum by (surface, strategy) (rate(shopstream_list_clicks_total[10m]))"
            " / sum by (surface, strategy) (rate(shopstream_list_impressions_total[10m]))",
            "{{surface}} {{strategy}}")],
          defaults=RATIO),
    Panel("Strategy allocation by surface", "Share of new sessions, of users, and of item-list writes each "
          "strategy of the surface is assigned now (SHOPSTREAM_EXPERIMENT: each surface's bandit distribution, "
          "or the fixed split).", "percentunit",
          [("max by (surface, strategy) (shopstream_experiment_allocation)", "{{surface}} {{strategy}}")],
          defaults=RATIO),
    Panel("Conversions per impression by strategy", "Add-to-carts and purchases credited to a list, over its "
          "impressions, per surface and strategy (10-minute window).", "percentunit",
          [("sum by (surface, strategy, type) (rate(shopstream_list_conversions_total[10m]))"
            " / on (surface, strategy) group_left"
            " sum by (surface, strategy) (rate(shopstream_list_impressions_total[10m]))",
            "{{surface}} {{strategy}} {{type}}")],
          defaults=RATIO),
    Panel("Impressions and clicks by strategy", "Items reported shown and clicks per second, per surface and "
          "strategy: how much evidence the ratios rest on.", "ops",
          [(f"sum by (surface, strategy) (rate(shopstream_list_impressions_total[{RI}]))",
            "impressions {{surface}} {{strategy}}"),
           (f"sum by (surface, strategy) (rate(shopstream_list_clicks_total[{RI}]))",
            "clicks {{surface}} {{strategy}}")]),
    # --- dead letters -----------------------------------------------------------------------------------------
    Panel("Dead-letter rate by reason", "Events sent to the dead-letter topic per second: by the workers, per "
          "reason code, and by the collector (all reasons; split in the validation panel).", "eps",
          [(f"sum by (reason) (rate(shopstream_dlq_events_total[{RI}]))", "worker {{reason}}"),
           (f'sum(rate(shopstream_collector_events_total{{outcome="rejected"}}[{RI}]))', "collector (all reasons)")]),
    Panel("Dead-letter share of consumed events", "Worker rejects over events consumed (5-minute window); "
          "ShopstreamDLQRateHigh fires above 5%.", "percentunit",
          [("sum(rate(shopstream_dlq_events_total[5m])) / sum(rate(shopstream_events_total[5m]))", "share")],
          defaults=RATIO),
    # --- Redis ------------------------------------------------------------------------------------------------
    Panel("Redis write latency p50 / p99", "Time of one Redis pipeline execution (one per batch).", "s",
          quantiles("shopstream_redis_write_duration_seconds", (0.5, 0.99))),
    Panel("Redis errors, retries and republished keys", "Failed Redis pipeline executions and their retries per "
          "second, per worker (the sink retries until Redis answers), and keys written again because Redis came back "
          "empty (the worker republishes the lists it holds).", "ops",
          [(f"sum by (instance) (rate(shopstream_redis_errors_total[{RI}]))", "errors {{instance}}"),
           (f"sum by (instance) (rate(shopstream_redis_retries_total[{RI}]))", "retries {{instance}}"),
           (f"sum by (instance) (rate(shopstream_republished_keys_total[{RI}]))", "republished {{instance}}")]),
    # --- collector --------------------------------------------------------------------------------------------
    Panel("Collector requests by status", "HTTP requests to the collector per status code: 202 accepted, 4xx "
          "tracker errors, 503 Kafka unavailable.", "reqps",
          [(f"sum by (status) (rate(shopstream_collector_requests_total[{RI}]))", "{{status}}")]),
    Panel("Collector validation failures by reason", "Posted events rejected by schema validation per reason code "
          "(they go to the dead-letter topic).", "eps",
          [(f"sum by (reason) (rate(shopstream_collector_validation_failures_total[{RI}]))", "{{reason}}")]),
    Panel("Collector latency p50 / p99", "Request to response, including the wait for Kafka's acknowledgement.", "s",
          quantiles("shopstream_collector_request_duration_seconds", (0.5, 0.99))),
    Panel("Kafka produce errors", "Failed publishes to Kafka per second, by component.", "ops",
          [(f"sum by (component) (rate(shopstream_kafka_produce_errors_total[{RI}]))", "{{component}}")]),
    # --- forecasting and the consumer group -------------------------------------------------------------------
    Panel("Forecast error (WAPE)", "Sum of absolute one-step forecast errors over the actual demand of closed "
          "windows, per series kind (shop, category, item), over 1 hour.", "percentunit",
          [("sum by (series) (rate(shopstream_forecast_absolute_error_total[1h]))"
            " / sum by (series) (rate(shopstream_forecast_actual_total[1h]))", "{{series}}")]),
    Panel("Forecast MAE", "Mean absolute error per scored window, in units sold, per series kind, over "
          "1 hour.", "short",
          [("sum by (series) (rate(shopstream_forecast_absolute_error_total[1h]))"
            " / sum by (series) (rate(shopstream_forecast_windows_total[1h]))", "{{series}}")]),
    Panel("Consumer-group rebalances", "Rebalances in the last 15 minutes "
          "(shopstream_kafka_rebalances_total); ShopstreamRebalanceStorm fires above 6.", "short",
          [("sum(increase(shopstream_kafka_rebalances_total[15m]))", "rebalances/15m")]),
    # --- model state durability -------------------------------------------------------------------------------
    Panel("Checkpoint age and duration", "Seconds since each worker's last checkpoint reached Kafka "
          "(ShopstreamCheckpointStale fires above 5 minutes), and the p99 time to take one: waiting for the batch "
          "in flight, pickling, writing.", "s",
          [("time() - shopstream_checkpoint_last_success_timestamp_seconds", "age {{instance}}"),
           (f"histogram_quantile(0.99, sum by (le) (rate(shopstream_checkpoint_duration_seconds_bucket[{RI}])))",
            "p99 duration")]),
    Panel("Checkpoint size", "Compressed size of each worker's last checkpoint.", "bytes",
          [("shopstream_checkpoint_size_bytes", "{{instance}}")]),
    Panel("Restore at start", "Seconds each worker took at its last start to load its checkpoint and read the "
          "events topic up to where it ended then, and the Kafka records it had to read to get there.", "short",
          [("shopstream_restore_duration_seconds", "seconds {{instance}}"),
           ("shopstream_restore_backlog_records", "records {{instance}}")]),
]

PANEL_OPTIONS: dict[str, dict[str, Any]] = {
    "timeseries": {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    },
    "stat": {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "value",
        "graphMode": "area",
        "justifyMode": "auto",
        "textMode": "auto",
    },
}


def _panel(panel_id: int, panel: Panel, x: int, y: int) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": panel.type,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit, **panel.defaults}, "overrides": []},
        "options": PANEL_OPTIONS[panel.type],
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend,
             "range": True}
            for i, (expr, legend) in enumerate(panel.targets)
        ],
    }


def build() -> dict[str, Any]:
    """The dashboard as Grafana's provisioning reads it (24-column grid, panels flow left to right)."""
    panels, x, y, row_height = [], 0, 0, 0
    for panel_id, panel in enumerate(PANELS, start=1):
        if x + panel.width > 24:
            x, y, row_height = 0, y + row_height, 0
        panels.append(_panel(panel_id, panel, x, y))
        x, row_height = x + panel.width, max(row_height, panel.height)
    return {
        "uid": DASHBOARD_UID,
        "title": "Shopstream",
        "description": "Real-time recommendation pipeline: collector → Kafka → workers → Redis (docs/metrics.md).",
        "tags": ["shopstream"],
        "timezone": "browser",
        "editable": False,
        "graphTooltip": 1,
        "refresh": "10s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "links": [],
        "panels": panels,
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}")
