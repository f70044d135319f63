"""``shopstream bench`` end to end on a small run: every phase runs and reports sane figures.

Not a performance test: CI machines vary, so nothing here is timed; the figures themselves are
judged in docs/performance.md.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from shopstream.bench.report import table
from shopstream.bench.runner import BenchConfig, run

pytestmark = pytest.mark.integration

REQUIRED = (
    "events",
    "ceiling_aiokafka_eps",
    "ceiling_faust_noop_eps",
    "pipeline_eps",
    "restore_s",
    "freshness_p50_s",
    "freshness_p99_s",
    "peak_rss_mb",
    "rss_growth_mb",
    "collector_ndjson_eps",
    "collector_single_eps",
)


def test_small_bench_run_reports_every_figure(kafka_bootstrap: str, redis_url: str, tmp_path: Path) -> None:
    cfg = BenchConfig(
        bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        events=20_000,
        naive_events=10_000,
        rate=500.0,
        seconds=5.0,
        collector_batch_events=5_000,
        collector_single_events=500,
        collector_seconds=10.0,
        catch_up_timeout_s=600.0,
        workdir=tmp_path,
    )
    result = asyncio.run(run(cfg, log=lambda _: None))

    missing = [key for key in REQUIRED if key not in result]
    assert not missing, f"missing keys {missing} in {result}"
    assert result["events"] == 20_000
    for key in REQUIRED[1:]:
        value = result[key]
        assert isinstance(value, int | float) and math.isfinite(value), (key, value)
    for key in (
        "ceiling_aiokafka_eps",
        "ceiling_faust_noop_eps",
        "pipeline_eps",
        "peak_rss_mb",
        "collector_ndjson_eps",
        "collector_single_eps",
    ):
        assert result[key] > 0, (key, result[key])
    assert 0 < result["freshness_p50_s"] <= result["freshness_p99_s"] <= result["freshness_max_s"]
    assert result["freshness_probes_seen"] == result["freshness_probes"] > 0
    assert abs(result["rss_growth_mb"]) < result["peak_rss_mb"]
    assert len(result["worker_cpu_us_per_event"]) == 1 and 1 < result["worker_cpu_us_per_event"][0] < 10_000
    assert result["restore_learned_events"] == 20_000 and result["restore_duplicates"] == 0
    assert 0 < result["restore_s"] <= result["restore_wall_s"]
    assert result["collector_lost"] == 0
    assert result["collector_on_topic_distinct"] == result["collector_accepted"] > 0
    assert result["machine"]["cores"] >= 1 and result["machine"]["packages"]["aiokafka"]
    assert "pipeline catch-up" in table(result)
