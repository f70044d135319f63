"""Runs ceiling (b), the Faust no-op agent (bench/faust_noop.py), as a process and reads its result."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import orjson

from shopstream.bench import processes


async def faust_noop_eps(
    bootstrap: str, topic: str, expected: int, workdir: Path, run_id: str, timeout_s: float = 600.0
) -> float:
    """Events/s of a Faust agent that only counts, over ``expected`` events of ``topic``."""
    result = workdir / "faust-noop.json"
    log = workdir / "faust-noop.log"
    env = {
        "BENCH_BOOTSTRAP": bootstrap,
        "BENCH_TOPIC": topic,
        "BENCH_APP_ID": f"{run_id}-noop",
        "BENCH_EXPECTED": str(expected),
        "BENCH_DATA_DIR": str(workdir / "faust-noop-data"),
        "BENCH_RESULT": str(result),
    }
    proc = processes.start("shopstream.bench.faust_noop", [], {**os.environ, **env}, log)
    try:
        deadline = time.monotonic() + timeout_s
        while not result.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Faust no-op agent did not finish:\n{processes.tail(log)}")
            await asyncio.sleep(0.2)
        return float(orjson.loads(result.read_bytes())["eps"])
    finally:
        await asyncio.to_thread(processes.stop, proc)
