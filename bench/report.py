"""The human table of a result: each figure next to the target it is judged against."""

from __future__ import annotations

from typing import Any

TARGETS: dict[str, str] = {
    "pipeline_eps": ">= 25,000 and >= 3x the Faust no-op ceiling",
    "freshness_p99_s": "<= 0.1 s at 5,000 events/s offered",
    "peak_rss_mb": "< 1024 MiB at 10^6 events",
    "rss_growth_mb": "<= 5 % of peak",
    "collector_ndjson_eps": ">= 20,000",
    "restore_s": "<= 10 s at 10^6 events",
    "restore_learned_events": "= events preloaded (each learned once)",
}

ROWS: tuple[tuple[str, str], ...] = (
    ("events", "events preloaded"),
    ("events_per_record", "events per Kafka record"),
    ("preload_eps", "preload, events/s"),
    ("ceiling_aiokafka_eps", "ceiling (a) aiokafka getmany + orjson, events/s"),
    ("ceiling_faust_noop_eps", "ceiling (b) Faust no-op, 1 event/record, events/s"),
    ("pipeline_eps", "pipeline catch-up, all models + Redis, events/s"),
    ("pipeline_vs_faust_noop", "pipeline / Faust no-op ceiling"),
    ("worker_cpu_us_per_event", "worker CPU per event in the catch-up, µs (each worker)"),
    ("restore_checkpoint_age_s", "restore: age of the newest checkpoint at the kill, s"),
    ("restore_s", "restore: new worker's start to caught up, s"),
    ("restore_replayed_events", "restore: events read again after the checkpoint"),
    ("restore_duplicates", "restore: replayed events already learned"),
    ("restore_learned_events", "restore: events the restored models count"),
    ("freshness_offered_eps", "freshness phase, offered events/s"),
    ("freshness_p50_s", "freshness p50 (probes), s"),
    ("freshness_p95_s", "freshness p95 (probes), s"),
    ("freshness_p99_s", "freshness p99 (probes), s"),
    ("freshness_max_s", "freshness max (probes), s"),
    ("freshness_hist_p50_s", "freshness p50 (worker histogram), s"),
    ("freshness_hist_p99_s", "freshness p99 (worker histogram), s"),
    ("peak_rss_mb", "worker peak RSS, MiB"),
    ("rss_growth_mb", "RSS growth, second half of catch-up, MiB"),
    ("collector_ndjson_eps", "collector NDJSON batches, accepted events/s"),
    ("collector_ndjson_p99_s", "collector NDJSON p99 response, s"),
    ("collector_single_eps", "collector single events, accepted events/s"),
    ("collector_single_p99_s", "collector single p99 response, s"),
    ("collector_lost", "accepted events missing from the topic"),
)


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value < 100:
        return f"{value:.4g}"
    if isinstance(value, int | float):
        return f"{value:,.0f}"
    return str(value)


def table(result: dict[str, Any]) -> str:
    rows = [(label, _fmt(result[key]), TARGETS.get(key, "")) for key, label in ROWS if key in result]
    width = max(len(label) for label, _, _ in rows)
    vwidth = max(len(v) for _, v, _ in rows)
    lines = [f"{label:<{width}}  {value:>{vwidth}}  {target}".rstrip() for label, value, target in rows]
    m = result["machine"]
    lines.append(
        f"machine: {m['cores']} cores ({m['cpu']}), Python {m['python']}, workers={result['workers']}, "
        f"load average start {result['loadavg_start']} end {result.get('loadavg_end')}"
    )
    return "\n".join(lines)
