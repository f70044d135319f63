"""Model state checkpoints in Kafka: a worker restarted anywhere, with an empty disk, comes back warm.

A checkpoint is the pickled model stack (zlib level 1) with the input offsets it covers, stored under
the worker's id in a compacted topic: the payload in chunks under ``<id>/<slot>/<n>`` and, written last,
a manifest under ``<id>/manifest`` naming the slot, the chunk count, the payload's SHA-256 and the
offsets. Successive checkpoints alternate between two slots, so a save cut short by a crash leaves the
previous checkpoint whole; compaction keeps about two checkpoints per worker. Restoring loads the
stack, then replays the events topic from the checkpoint's offsets up to the consumer group's committed
offsets (events already written to Redis, learned again without writing), and the worker consumes on
from there. Dedupe ids are part of the stack, so nothing is learned twice (docs/design.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import pickle
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shopstream.models.engine import RecommenderStack
from shopstream.models.events import EventLimits
from shopstream.streams import metrics
from shopstream.streams.batch import BatchHandler, Record, parse_records

log = logging.getLogger(__name__)

#: Payload bytes per record: under the broker's and the producer's 1 MB message limits with room to spare.
CHUNK_BYTES = 768 * 1024
SLOTS = 2


class CheckpointCorrupt(RuntimeError):
    """The manifest's chunks are missing or do not hash to its digest; the worker starts cold."""


@dataclass(frozen=True, slots=True)
class Manifest:
    slot: int
    chunks: int
    sha256: str
    size: int
    offsets: dict[int, int]  # input partition -> next offset the stack has learned
    created: float

    def encode(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_NON_STR_KEYS)

    @classmethod
    def decode(cls, raw: bytes) -> Manifest:
        data = orjson.loads(raw)
        data["offsets"] = {int(p): int(o) for p, o in data["offsets"].items()}
        return cls(**data)


def dump_stack(stack: RecommenderStack) -> bytes:
    """The stack as checkpoint payload; fast compression, the payload is written every interval."""
    return zlib.compress(pickle.dumps(stack, protocol=pickle.HIGHEST_PROTOCOL), 1)


def load_stack(payload: bytes) -> RecommenderStack:
    """The stack a payload of :func:`dump_stack` holds. Only this worker's own topic is read: pickle
    trusts its input, so the checkpoint topic must be writable by the workers alone (docs/security.md)."""
    stack = pickle.loads(zlib.decompress(payload))
    if not isinstance(stack, RecommenderStack):
        raise CheckpointCorrupt(f"the payload holds a {type(stack).__name__}, not a model stack")
    return stack


def split(payload: bytes, size: int = CHUNK_BYTES) -> list[bytes]:
    """``payload`` in pieces of at most ``size`` bytes (at least one piece).

    >>> [len(p) for p in split(b"x" * 5, 2)], split(b"")
    ([2, 2, 1], [b''])
    """
    return [payload[i : i + size] for i in range(0, len(payload), size)] or [b""]


class KafkaCheckpointStore:
    """Saves and loads one worker's checkpoints in a compacted topic of one partition."""

    def __init__(self, bootstrap: str, topic: str, owner: str, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.bootstrap, self.topic, self.owner, self.chunk_bytes = bootstrap, topic, owner, chunk_bytes
        self._producer: AIOKafkaProducer | None = None
        self._slot_chunks = [0] * SLOTS  # chunks each slot holds now, so a smaller save deletes the rest
        self._slot = SLOTS - 1  # the slot of the last checkpoint; the next save takes the other

    def _key(self, suffix: str) -> bytes:
        return f"{self.owner}/{suffix}".encode()

    async def save(self, payload: bytes, offsets: dict[int, int]) -> Manifest:
        """Write the payload, then the manifest; returns once the broker has acknowledged all of it."""
        if self._producer is None:
            self._producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap, acks="all", max_request_size=2 * self.chunk_bytes,
                enable_idempotence=True,
            )
            await self._producer.start()
        slot = (self._slot + 1) % SLOTS
        chunks = split(payload, self.chunk_bytes)
        sends = [await self._producer.send(self.topic, chunk, key=self._key(f"{slot}/{i}"))
                 for i, chunk in enumerate(chunks)]
        sends += [await self._producer.send(self.topic, None, key=self._key(f"{slot}/{i}"))
                  for i in range(len(chunks), self._slot_chunks[slot])]
        await asyncio.gather(*sends)
        manifest = Manifest(slot, len(chunks), hashlib.sha256(payload).hexdigest(), len(payload), dict(offsets),
                            time.time())
        await self._producer.send_and_wait(self.topic, manifest.encode(), key=self._key("manifest"))
        self._slot, self._slot_chunks[slot] = slot, len(chunks)
        return manifest

    async def load(self) -> tuple[Manifest, bytes] | None:
        """The latest whole checkpoint of this worker, or None if it never saved one."""
        prefix = self._key("")
        latest: dict[bytes, bytes | None] = {}
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                    fetch_max_bytes=64 * 2**20, max_partition_fetch_bytes=4 * self.chunk_bytes)
        await consumer.start()
        try:
            tp = TopicPartition(self.topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = (await consumer.end_offsets([tp]))[tp]
            while await consumer.position(tp) < end:
                for records in (await consumer.getmany(tp, timeout_ms=1000)).values():
                    for record in records:
                        if record.key is not None and record.key.startswith(prefix):
                            latest[record.key] = record.value
        finally:
            await consumer.stop()
        for slot in range(SLOTS):
            self._slot_chunks[slot] = sum(1 for k, v in latest.items() if v is not None
                                          and k.startswith(self._key(f"{slot}/")))
        raw = latest.get(self._key("manifest"))
        if raw is None:
            return None
        manifest = Manifest.decode(raw)
        self._slot = manifest.slot
        pieces = [latest.get(self._key(f"{manifest.slot}/{i}")) for i in range(manifest.chunks)]
        if any(piece is None for piece in pieces):
            raise CheckpointCorrupt(f"checkpoint of {self.owner} lacks chunks of slot {manifest.slot}")
        payload = b"".join(piece for piece in pieces if piece is not None)
        if hashlib.sha256(payload).hexdigest() != manifest.sha256:
            raise CheckpointCorrupt(f"checkpoint of {self.owner} does not match its digest")
        return manifest, payload

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None


async def checkpoint(handler: BatchHandler, store: KafkaCheckpointStore, owned: set[int]) -> Manifest:
    """Checkpoint the handler's stack between batches, with the offsets of the partitions it owns now (the
    state of a partition given away stays in the stack, but its offsets go, so no restore replays it)."""
    started = time.perf_counter()
    async with handler.batch_lock, handler.lock:
        offsets = {p: o for p, o in handler.offsets.items() if p in owned}
        payload = await handler.in_step_thread(dump_stack, handler.stack)
    manifest = await store.save(payload, offsets)
    metrics.CHECKPOINT_DURATION.observe(time.perf_counter() - started)
    metrics.CHECKPOINT_BYTES.set(len(payload))
    metrics.CHECKPOINT_LAST.set(manifest.created)
    return manifest


async def restore(
    handler: BatchHandler, store: KafkaCheckpointStore, events_topic: str, group_id: str, limits: EventLimits,
) -> int:
    """Load the worker's checkpoint into the handler and replay the topic up to the group's committed
    offsets; returns the events replayed (0 and a cold stack when there is no usable checkpoint)."""
    started = time.perf_counter()
    try:
        found = await store.load()
    except CheckpointCorrupt:
        log.exception("starting cold: the checkpoint could not be used")
        found = None
    if found is None:
        return 0
    manifest, payload = found
    handler.stack = load_stack(payload)
    handler.offsets = dict(manifest.offsets)
    replayed = await replay_tail(handler, events_topic, group_id, limits, store.bootstrap)
    metrics.RESTORE_DURATION.set(time.perf_counter() - started)
    metrics.RESTORE_REPLAYED.set(replayed)
    log.info("restored the checkpoint of %s (%d bytes, %.0f s old) and replayed %d events",
             store.owner, manifest.size, time.time() - manifest.created, replayed)
    return replayed


async def replay_tail(
    handler: BatchHandler, events_topic: str, group_id: str, limits: EventLimits, bootstrap: str
) -> int:
    """Learn, without writing, the events between the handler's offsets and the group's committed ones:
    their lists were written before the stop; what comes after the committed offsets the worker handles."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    replayed = 0
    try:
        ends: dict[TopicPartition, int] = {}
        for partition, offset in handler.offsets.items():
            tp = TopicPartition(events_topic, partition)
            committed = await consumer.committed(tp)
            if committed is not None and committed > offset:
                ends[tp] = committed
        consumer.assign(list(ends))
        for tp in ends:
            consumer.seek(tp, handler.offsets[tp.partition])
        while ends:
            fetched = await consumer.getmany(*ends, timeout_ms=1000, max_records=5000)
            records = [Record(r.key, r.value, r.timestamp / 1000.0, tp.partition, r.offset)
                       for tp, batch in fetched.items() for r in batch if r.offset < ends[tp]]
            replayed += learn_only(handler, records, limits)
            for tp in list(ends):
                if await consumer.position(tp) >= ends[tp]:
                    del ends[tp]
    finally:
        await consumer.stop()
    return replayed


def learn_only(handler: BatchHandler, records: Sequence[Record], limits: EventLimits) -> int:
    """Learn the records' events in steps, dropping the lists and hit counts (written and counted before)."""
    valid, _, _ = parse_records(records, time.time(), limits)
    for start in range(0, len(valid), handler.step_events):
        handler.stack.process(valid[start : start + handler.step_events])
    handler.covered(records)
    return len(valid)
