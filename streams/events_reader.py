"""Every partition of the events topic, read from the offsets the worker's model state covers.

Each worker learns every event (docs/design.md: one full model state per worker, each list key written
by the worker holding its slot), so the reader takes the whole topic by assignment, not by consumer
group: its position is the state's own offsets (restored with a checkpoint), which is also why no
offsets are committed to Kafka. A batch is what one fetch returns, up to ``max_records`` records.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from shopstream.config.topics import topic_partitions
from shopstream.streams.batch import BatchHandler, Record


class EventsReader:
    """Feeds the handler the events topic's records, all partitions, in fetch-sized batches."""

    def __init__(
        self, bootstrap: str, topic: str, handler: BatchHandler, max_records: int, within_s: float,
        max_bytes: int = 16 * 2**20, **options: Any,
    ) -> None:
        """``options``: the clients' connection options (``CommonSettings.kafka_security_options``)."""
        self.topic, self.handler, self.max_records = topic, handler, max_records
        self.within_ms = max(1, round(within_s * 1000))
        self.bootstrap, self._options = bootstrap, options
        self._config: dict[str, object] = {
            "bootstrap_servers": bootstrap, "enable_auto_commit": False, "auto_offset_reset": "earliest",
            "fetch_max_bytes": max_bytes, "max_partition_fetch_bytes": max_bytes // 4,
            "fetch_max_wait_ms": self.within_ms, **options,
        }
        self.consumer: AIOKafkaConsumer | None = None  # made in start(): aiokafka needs the running loop
        self.partitions: list[TopicPartition] = []
        self.backlog = 0  # records between the start offsets and the topic's end when the reader started
        self.caught_up = asyncio.Event()  # set once the reader has read up to that end
        self._start_ends: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        """Assign every partition, each at the offset the state covers (the earliest kept if none)."""
        numbers = await topic_partitions(self.bootstrap, self.topic, **self._options)
        self.partitions = [TopicPartition(self.topic, p) for p in numbers]
        self.consumer = AIOKafkaConsumer(**self._config)
        await self.consumer.start()
        self.consumer.assign(self.partitions)
        for tp in self.partitions:
            if tp.partition in self.handler.offsets:
                self.consumer.seek(tp, self.handler.offsets[tp.partition])
            else:
                await self.consumer.seek_to_beginning(tp)
        self._start_ends = await self.consumer.end_offsets(self.partitions)
        positions = {tp: await self.consumer.position(tp) for tp in self.partitions}
        self.backlog = sum(max(0, end - positions[tp]) for tp, end in self._start_ends.items())
        self._check_caught_up(positions)

    def _check_caught_up(self, positions: dict[TopicPartition, int]) -> None:
        if all(positions[tp] >= end for tp, end in self._start_ends.items()):
            self.caught_up.set()

    async def run(self) -> None:
        """Read and handle until cancelled; a batch is handled (written) before the next fetch."""
        assert self.consumer is not None, "start() first"
        while True:
            fetched = await self.consumer.getmany(timeout_ms=self.within_ms, max_records=self.max_records)
            records = [
                Record(r.key, r.value, r.timestamp / 1000.0, tp.partition, r.offset)
                for tp, batch in fetched.items() for r in batch
            ]
            if records:
                await self.handler.handle(records)
            if not self.caught_up.is_set():
                self._check_caught_up({tp: await self.consumer.position(tp) for tp in self.partitions})

    async def lag(self) -> list[tuple[int, int | None, int | None]]:
        """``(partition, position, high-water mark)`` of every partition, for the lag gauge."""
        if self.consumer is None:
            return []
        return [(tp.partition, await self.consumer.position(tp), self.consumer.highwater(tp))
                for tp in self.partitions]

    async def stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
