"""Phase (c): real worker processes (``python -m shopstream.cli worker``) in one fresh consumer group.

Completion is detected from their /metrics (``shopstream_events_total`` summed over workers), and
their RSS is sampled with psutil on the same tick. The rate is every event over the time from when
the first batch began to the moment the count reached the total, interpolated between the two scrapes
around it. A worker counts a batch's events when the batch is written, ~34,000 events at a time in a
catch-up (a small run is one batch), so the start is the first scrape that shows events minus the
busiest worker's own seconds in batches by then (``shopstream_batch_duration_seconds_sum``): late by at
most the time between that batch's end and the scrape. Scrapes are 0.5 s apart: rendering /metrics
costs the worker ~10 ms of CPU.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil

from shopstream.bench import processes
from shopstream.bench.worker_metrics import Scrape, scrape

POLL_S = 0.5
MIB = 1024 * 1024


@dataclass(slots=True)
class Fleet:
    """K workers sharing a consumer group; each has its own web port and log."""

    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    @property
    def metrics_urls(self) -> list[str]:
        return [f"{url}/metrics" for url in self.urls]

    def rss_bytes(self) -> list[int]:
        return [psutil.Process(p.pid).memory_info().rss for p in self.procs if p.poll() is None]

    def cpu_seconds(self) -> list[float]:
        """CPU time (user + system) each worker has used so far, its threads and snapshot children included."""
        seconds = []
        for proc in self.procs:
            times = psutil.Process(proc.pid).cpu_times()
            seconds.append(times.user + times.system + times.children_user + times.children_system)
        return seconds

    def check_alive(self) -> None:
        for proc, log in zip(self.procs, self.logs, strict=True):
            if proc.poll() is not None:
                raise RuntimeError(f"{log.stem} exited with {proc.returncode}:\n{processes.tail(log)}")


async def start_fleet(http: aiohttp.ClientSession, k: int, env: dict[str, str], workdir: Path) -> Fleet:
    fleet = Fleet()
    for i in range(k):
        port = processes.free_port()
        log = workdir / f"worker-{i}.log"
        worker_env = {
            **env,
            "SHOPSTREAM_WEB_PORT": str(port),
            "SHOPSTREAM_WEB_HOST": "127.0.0.1",
            "SHOPSTREAM_DATA_DIR": str(workdir / f"worker-{i}-data"),
            # Each worker its own id, the same for its replacement after a kill (as a StatefulSet names pods).
            "SHOPSTREAM_WORKER_ID": f"worker-{i}",
        }
        fleet.procs.append(processes.start_component("worker", {**os.environ, **worker_env}, log))
        fleet.urls.append(f"http://127.0.0.1:{port}")
        fleet.logs.append(log)
    for proc, url, log in zip(fleet.procs, fleet.urls, fleet.logs, strict=True):
        await asyncio.to_thread(processes.wait_ready, proc, url, 120.0, log)
    return fleet


def stop_fleet(fleet: Fleet) -> None:
    for proc in fleet.procs:
        processes.stop(proc)


@dataclass(frozen=True, slots=True)
class CatchUp:
    eps: float
    seconds: float
    peak_rss_mb: float  # the largest single worker
    peak_rss_total_mb: float
    rss_half_mb: float  # all workers, when half of the events were processed
    rss_end_mb: float  # all workers, when the last one was
    scrape_timeouts: int  # /metrics requests a busy worker did not answer within 5 s
    last: Scrape
    # CPU each worker spent per event of the stream from when it was ready to the end of the catch-up: what
    # K workers on K machines would need, where this machine's cores are shared.
    cpu_us_per_event: list[float] = field(default_factory=list)


async def catch_up(http: aiohttp.ClientSession, fleet: Fleet, expected: int, timeout_s: float) -> CatchUp:
    """Wait until the fleet has counted ``expected`` events; rate, RSS peak and second-half growth."""
    deadline = time.monotonic() + timeout_s
    started = prev_t = prev_n = 0.0
    peak = peak_total = half = scrape_timeouts = 0
    cpu_started = fleet.cpu_seconds()  # the workers are ready: start-up (imports, restore) is behind them
    while True:
        fleet.check_alive()
        now = time.perf_counter()
        try:
            current = await scrape(http, fleet.metrics_urls)
        except TimeoutError:  # a worker too busy to answer within 5 s: counted, and sampled again
            scrape_timeouts += 1
            await asyncio.sleep(POLL_S)
            continue
        rss = fleet.rss_bytes()
        peak, peak_total = max(peak, *rss), max(peak_total, sum(rss))
        if current.events > 0 and not started:
            started = now - current.busy_s
        if not half and current.events >= expected / 2:
            half = sum(rss)
        if current.events >= expected:
            done_t = now
            if prev_t and current.events > prev_n:
                done_t = prev_t + (now - prev_t) * (expected - prev_n) / (current.events - prev_n)
            seconds = done_t - started
            cpu = [end - begin for begin, end in zip(cpu_started, fleet.cpu_seconds(), strict=True)]
            return CatchUp(
                eps=expected / max(seconds, 1e-9),
                seconds=seconds,
                peak_rss_mb=peak / MIB,
                peak_rss_total_mb=peak_total / MIB,
                rss_half_mb=half / MIB,
                rss_end_mb=sum(rss) / MIB,
                scrape_timeouts=scrape_timeouts,
                last=current,
                cpu_us_per_event=[1e6 * c / expected for c in cpu],
            )
        prev_t, prev_n = now, current.events
        if time.monotonic() > deadline:
            raise RuntimeError(f"workers processed {current.events:.0f} of {expected} events in {timeout_s:.0f}s")
        await asyncio.sleep(POLL_S)
