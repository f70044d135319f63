"""One benchmark run: preload, ceilings, catch-up, restore after a kill, freshness, memory, collector ingest —
one JSON result.

Every phase uses fresh topics, consumer groups and a Redis key prefix named after the run, and
removes them at the end, so runs can share the servers with development and tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from shopstream.bench import catch_up, collector_load, freshness, machine, restore
from shopstream.bench.fetch_ceiling import fetch_and_decode
from shopstream.bench.noop_ceiling import faust_noop_eps
from shopstream.bench.servers import delete_keys, ensure_servers
from shopstream.bench.topics import EVENT_RATE, delete_topics, preload
from shopstream.config.topics import ensure_topics
from shopstream.producers.kafka_publisher import EventPublisher

PARTITIONS = 8


@dataclass(frozen=True, slots=True)
class BenchConfig:
    bootstrap: str
    redis_url: str
    events: int = 1_000_000
    event_rate: float = EVENT_RATE  # preload events per second of event time
    naive_events: int = 200_000
    seed: int = 0
    workers: int = 1
    rate: float = 5000.0
    seconds: float = 60.0
    max_events_per_record: int = 200
    session_model: str = "transitions"
    collector_batch: int = 50
    collector_batch_events: int = 200_000
    collector_single_events: int = 20_000
    collector_concurrency: int = 32
    collector_seconds: float = 20.0
    catch_up_timeout_s: float = 1800.0
    workdir: Path | None = None


def _r(x: float, digits: int = 4) -> float:
    return round(x, digits)


async def _delete_keys(redis_url: str, prefix: str) -> None:
    client = aioredis.from_url(redis_url)
    try:
        await delete_keys(client, prefix)
    finally:
        await client.aclose()


async def run(cfg: BenchConfig, log: Any = print) -> dict[str, Any]:
    """Run every phase and return the result object (the ``--json`` output)."""
    bootstrap, redis_url = ensure_servers(cfg.bootstrap, cfg.redis_url)
    run_id = f"bench-{uuid.uuid4().hex[:8]}"
    workdir = cfg.workdir or Path(tempfile.mkdtemp(prefix=f"shopstream-{run_id}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    topics = {name: f"{run_id}-{name}" for name in ("events", "dlq", "naive", "collector", "collector-dlq")}
    # The workers make their checkpoint topic (one partition): a restore reads it whole, and one shared with
    # earlier runs (their last checkpoints are never deleted) made it read every earlier run's as well.
    checkpoint_topic = f"{run_id}-checkpoints"
    prefix = f"{run_id}:"
    result: dict[str, Any] = {
        "run_id": run_id,
        "events": cfg.events,
        "workers": cfg.workers,
        "seed": cfg.seed,
        "machine": machine.describe(),
        "loadavg_start": machine.load_average(),
        "workdir": str(workdir),
    }
    await ensure_topics(bootstrap, list(topics.values()), PARTITIONS)
    try:
        log(f"preloading {cfg.events} events into {topics['events']} ({PARTITIONS} partitions)")
        loaded = await preload(
            bootstrap, topics["events"], PARTITIONS, cfg.seed, cfg.events, cfg.max_events_per_record, cfg.event_rate
        )
        naive_n = min(cfg.naive_events, cfg.events)
        log(f"preloading {naive_n} events, one per record, into {topics['naive']}")
        naive = await preload(bootstrap, topics["naive"], PARTITIONS, cfg.seed, naive_n, 1, cfg.event_rate)
        result |= {
            "records": loaded.records,
            "preload_event_rate": cfg.event_rate,
            "preload_event_hours": _r(cfg.events / cfg.event_rate / 3600, 2),
            "events_per_record": _r(cfg.events / loaded.records, 2),
            "preload_seconds": _r(loaded.seconds, 2),
            "preload_eps": round(cfg.events / loaded.seconds),
            "naive_events": naive_n,
            "naive_preload_seconds": _r(naive.seconds, 2),
        }

        log("ceiling (a): aiokafka getmany + orjson")
        result["ceiling_aiokafka_eps"] = round(
            await fetch_and_decode(bootstrap, topics["events"], PARTITIONS, cfg.events)
        )
        log("ceiling (b): Faust no-op agent, one event per record")
        result["ceiling_faust_noop_eps"] = round(
            await faust_noop_eps(bootstrap, topics["naive"], naive_n, workdir, run_id)
        )

        worker_env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "REDIS_URL": redis_url,
            "SHOPSTREAM_EVENTS_TOPIC": topics["events"],
            "SHOPSTREAM_DLQ_TOPIC": topics["dlq"],
            "SHOPSTREAM_CHECKPOINT_TOPIC": checkpoint_topic,
            "SHOPSTREAM_TOPIC_PARTITIONS": str(PARTITIONS),
            "SHOPSTREAM_APP_ID": f"{run_id}-worker",
            "SHOPSTREAM_KEY_PREFIX": prefix,
            "SHOPSTREAM_LOG_LEVEL": "warn",
            "SHOPSTREAM_SESSION_MODEL": cfg.session_model,
        }
        async with aiohttp.ClientSession() as http:
            log(f"catch-up: {cfg.workers} worker(s) from the start of {topics['events']}")
            fleet = await catch_up.start_fleet(http, cfg.workers, worker_env, workdir)
            try:
                done = await catch_up.catch_up(http, fleet, cfg.events, cfg.catch_up_timeout_s)
                result |= {
                    "pipeline_eps": round(done.eps),
                    "pipeline_seconds": _r(done.seconds, 2),
                    "pipeline_vs_faust_noop": _r(done.eps / max(result["ceiling_faust_noop_eps"], 1), 2),
                    "peak_rss_mb": _r(done.peak_rss_mb, 1),
                    "peak_rss_total_mb": _r(done.peak_rss_total_mb, 1),
                    "rss_half_mb": _r(done.rss_half_mb, 1),
                    "rss_end_mb": _r(done.rss_end_mb, 1),
                    "rss_growth_mb": _r(done.rss_end_mb - done.rss_half_mb, 1),
                    "scrape_timeouts": done.scrape_timeouts,
                    "worker_cpu_us_per_event": [_r(c, 1) for c in done.cpu_us_per_event],
                    "session_model": cfg.session_model,
                    "keys_written": round(done.last.keys_written),
                    "batches": round(done.last.batches),
                }
                log(f"restore: kill -9 of the worker(s), new ones with empty disks restore from {topics['events']}")
                fleet, back = await restore.kill_and_restore(
                    http, fleet, worker_env, workdir, cfg.events, cfg.catch_up_timeout_s
                )
                result |= {
                    "restore_checkpoint_age_s": _r(back.checkpoint_age_s, 2),
                    "restore_s": _r(back.restore_s, 2),
                    "restore_wall_s": _r(back.wall_s, 2),
                    "restore_backlog_records": round(back.backlog_records),
                    "restore_replayed_events": round(back.replayed_events),
                    "restore_duplicates": round(back.duplicates),
                    "restore_learned_events": round(back.learned_events),
                }
                log(f"freshness: {cfg.rate:.0f} events/s offered for {cfg.seconds:.0f}s")
                publisher = EventPublisher(bootstrap, topics["events"], topics["dlq"], cfg.max_events_per_record)
                await publisher.start()
                try:
                    fresh = await freshness.measure(
                        http,
                        fleet.metrics_urls,
                        publisher,
                        redis_url,
                        prefix,
                        run_id,
                        cfg.seed + 1,
                        cfg.rate,
                        cfg.seconds,
                    )
                finally:
                    await publisher.stop()
                rss_after = sum(fleet.rss_bytes()) / catch_up.MIB
            finally:
                await asyncio.to_thread(catch_up.stop_fleet, fleet)
            result |= {
                "freshness_method": "probe sessions + Redis keyspace notifications",
                "freshness_offered_eps": round(fresh.offered_eps),
                "freshness_seconds": _r(fresh.seconds, 1),
                "freshness_probes": fresh.probes,
                "freshness_probes_seen": fresh.probes_seen,
                **{f"freshness_{k}_s": _r(v) for k, v in fresh.exact.items()},
                "freshness_slowest_by_second_s": fresh.slowest_by_second,
                **{f"freshness_hist_{k}_s": _r(v) for k, v in fresh.histogram.items()},
                "rss_after_freshness_mb": _r(rss_after, 1),
            }

            log("collector ingest")
            collector_env = {
                **worker_env,
                "SHOPSTREAM_EVENTS_TOPIC": topics["collector"],
                "SHOPSTREAM_DLQ_TOPIC": topics["collector-dlq"],
            }
            col = await collector_load.measure(
                http,
                collector_env,
                topics["collector"],
                workdir,
                cfg.seed + 2,
                cfg.collector_batch,
                cfg.collector_batch_events,
                cfg.collector_single_events,
                cfg.collector_concurrency,
                cfg.collector_seconds,
            )
        for ingest, key in ((col.ndjson, "collector_ndjson"), (col.single, "collector_single")):
            result |= {
                f"{key}_eps": round(ingest.eps),
                f"{key}_p50_s": _r(ingest.p50_s),
                f"{key}_p99_s": _r(ingest.p99_s),
                f"{key}_accepted": ingest.accepted,
                f"{key}_failed_requests": ingest.failed_requests,
            }
        result |= {
            "collector_accepted": col.accepted,
            "collector_on_topic_events": col.on_topic_events,
            "collector_on_topic_distinct": col.on_topic_distinct,
            "collector_lost": col.lost,
        }
    finally:
        result["loadavg_end"] = machine.load_average()
        with contextlib.suppress(Exception):
            await _delete_keys(redis_url, prefix)
        await delete_topics(bootstrap, [*topics.values(), checkpoint_topic])
    result["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return result
