"""In-memory stand-ins for Kafka and Redis at the collector's and the worker's seams (unit and fuzz tests)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from shopstream.contracts.lists import RecList


class MemoryPublisher:
    """Records what would go to Kafka; ``fail`` simulates a broker that does not acknowledge."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.dead_letters: list[tuple[bytes | None, bytes]] = []
        self.fail = False

    async def publish(self, events: Iterable[dict[str, Any]]) -> int:
        if self.fail:
            raise ConnectionError("broker down")
        self.events.extend(events)
        return 1

    async def publish_dead_letters(self, records: list[tuple[bytes | None, bytes]]) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.dead_letters.extend(records)

    async def ready(self) -> bool:
        return not self.fail


class MemorySink:
    """A :class:`Sink` that keeps what it is given."""

    def __init__(self) -> None:
        self.batches: list[list[RecList]] = []

    async def write(self, lists: Sequence[RecList], updated_at: float) -> None:
        self.batches.append(list(lists))

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None
