"""Ceiling (b): a Faust agent doing nothing but count, run as its own process (``python -m``).

It consumes the naive topic (one event per record) with the worker's batching (``take_events``),
so its rate is what Faust's per-record machinery allows before any model work. Configured by
environment (BENCH_BOOTSTRAP, BENCH_TOPIC, BENCH_APP_ID, BENCH_EXPECTED, BENCH_DATA_DIR,
BENCH_BATCH, BENCH_WITHIN, BENCH_RESULT); writes a JSON result file when ``BENCH_EXPECTED``
events were seen (Faust's banner owns stdout) and then idles until the bench stops it.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import faust
import orjson

BOOTSTRAP = os.environ["BENCH_BOOTSTRAP"]
EXPECTED = int(os.environ["BENCH_EXPECTED"])
RESULT = Path(os.environ["BENCH_RESULT"])

app = faust.App(
    os.environ["BENCH_APP_ID"],
    broker=f"kafka://{BOOTSTRAP}",
    store="memory://",
    key_serializer="raw",
    value_serializer="raw",
    consumer_auto_offset_reset="earliest",
    web_enabled=False,
    datadir=os.environ["BENCH_DATA_DIR"],
)
topic = app.topic(os.environ["BENCH_TOPIC"])


@app.agent(topic)
async def count(stream: faust.StreamT) -> None:
    seen = timed_from = 0
    started = 0.0
    reported = False
    batch_size, within = int(os.environ.get("BENCH_BATCH", "2000")), float(os.environ.get("BENCH_WITHIN", "0.02"))
    async for batch in stream.take_events(batch_size, within=within):
        for event in batch:
            decoded = orjson.loads(event.value)
            seen += len(decoded) if isinstance(decoded, list) else 1
        if not started:
            started, timed_from = time.perf_counter(), seen
        if seen >= EXPECTED and not reported:
            reported = True
            elapsed = time.perf_counter() - started
            result = {"events": seen, "seconds": elapsed, "eps": (seen - timed_from) / max(elapsed, 1e-9)}
            partial = RESULT.with_suffix(".tmp")
            partial.write_bytes(orjson.dumps(result))
            partial.rename(RESULT)


if __name__ == "__main__":
    sys.argv = [sys.argv[0], "worker", "-l", "warn"]
    app.main()
