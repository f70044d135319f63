"""Phase (c'): ``kill -9`` every worker after the catch-up and start new ones with empty disks, as an
orchestrator does after a crash; time how long they take to be back where the killed ones were.

The new workers restore the freshest checkpoint from Kafka and read the events topic from its offsets to
the end. What they report on their /metrics: ``shopstream_restore_duration_seconds`` (start to caught up:
loading the checkpoint and replaying the tail), ``shopstream_restore_backlog_records`` (the tail, in
records), their event counts (the tail, in events: each worker reads every event) and
``shopstream_model_learned_events``, which must come back to exactly the events of the stream: every
event learned once, neither lost with the killed process nor learned a second time.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from shopstream.bench import catch_up
from shopstream.bench.scrape import samples

POLL_S = 0.5


@dataclass(frozen=True, slots=True)
class Restore:
    checkpoint_age_s: float  # age of the killed workers' freshest checkpoint at the kill
    restore_s: float  # the slowest new worker's own start-to-caught-up time
    wall_s: float  # kill to every new worker caught up, start-up included; late by up to the gauge's 5 s sampling
    backlog_records: float
    replayed_events: float  # events the slowest new worker read after its checkpoint
    duplicates: float  # replayed events the checkpoint's dedupe ids had already seen
    learned_events: float  # the model state's count once restored: the stream's events, if each counts once


def _gauge(text: str, name: str) -> float:
    return sum(samples(text, name).values())


async def _metrics(http: aiohttp.ClientSession, urls: list[str]) -> list[str]:
    texts = []
    for url in urls:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as response:
            texts.append(await response.text())
    return texts


async def kill_and_restore(
    http: aiohttp.ClientSession, fleet: catch_up.Fleet, env: dict[str, str], workdir: Path, learned: int,
    timeout_s: float,
) -> tuple[catch_up.Fleet, Restore]:
    """Kill ``fleet``, start as many workers with fresh data directories, and wait until their models have
    learned ``learned`` events again (the gauge is sampled every 5 s) and they have caught up."""
    newest = max(_gauge(text, "shopstream_checkpoint_last_success_timestamp_seconds")
                 for text in await _metrics(http, fleet.metrics_urls))
    killed_at = time.monotonic()
    age = time.time() - newest if newest else float("inf")
    for proc in fleet.procs:
        proc.kill()
        proc.wait()
    (fresh_disks := workdir / "restarted").mkdir(exist_ok=True)
    restarted = await catch_up.start_fleet(http, len(fleet.procs), env, fresh_disks)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            restarted.check_alive()
            texts = await _metrics(http, restarted.metrics_urls)
            restore_s = [_gauge(text, "shopstream_restore_duration_seconds") for text in texts]
            state = [_gauge(text, "shopstream_model_learned_events") for text in texts]
            if all(restore_s) and min(state) >= learned:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"restarted workers learned {min(state):.0f} of {learned} events, "
                                   f"restore durations {restore_s}, within {timeout_s:.0f}s")
            await asyncio.sleep(POLL_S)
    except BaseException:
        await asyncio.to_thread(catch_up.stop_fleet, restarted)
        raise
    wall_s = time.monotonic() - killed_at

    def per_worker(name: str, outcome: str) -> list[float]:
        return [sum(v for labels, v in samples(text, name).items() if ("outcome", outcome) in labels)
                for text in texts]

    return restarted, Restore(
        checkpoint_age_s=age,
        restore_s=max(restore_s),
        wall_s=wall_s,
        backlog_records=max(_gauge(text, "shopstream_restore_backlog_records") for text in texts),
        replayed_events=max(per_worker("shopstream_events_total", "processed")),
        duplicates=max(per_worker("shopstream_events_total", "duplicate")),
        learned_events=max(state),
    )
