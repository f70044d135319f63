"""Paced publishing sends everything in order; model-kept counts are exported without double counting."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter

from shopstream.producers.pacing import publish_paced
from shopstream.streams.metrics import export_cumulative


class Recorder:
    def __init__(self) -> None:
        self.calls: list[list[dict[str, Any]]] = []

    async def publish(self, events: Iterable[dict[str, Any]]) -> int:
        self.calls.append(list(events))
        return 1


@pytest.mark.parametrize("pace", [{}, {"rate": 20_000.0}, {"speedup": 1_000.0}])
async def test_every_event_is_sent_once_in_order(pace: dict[str, float]) -> None:
    events = [{"ts": 1.0 + i / 100, "n": i} for i in range(300)]
    recorder = Recorder()
    assert await publish_paced(recorder, events, chunk=50, **pace) == 300
    assert [e["n"] for call in recorder.calls for e in call] == list(range(300))
    assert max(len(call) for call in recorder.calls) <= 50


async def test_rate_and_speedup_are_exclusive() -> None:
    with pytest.raises(ValueError):
        await publish_paced(Recorder(), [{"ts": 1.0}], rate=1.0, speedup=1.0)


def test_export_cumulative_adds_only_growth() -> None:
    counter = Counter("demo_evictions_total", "test", ["kind"], registry=CollectorRegistry())
    for total in (3, 3, 7):
        export_cumulative(counter, ("users",), total)
    assert counter.labels("users")._value.get() == 7
