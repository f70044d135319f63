"""Model state checkpoints in Kafka: a worker restarted anywhere, with an empty disk, comes back warm.

A checkpoint is the pickled model stack (zlib level 1) with the input offsets it covers, stored under
``<app id>/<worker id>`` in a compacted topic: the payload in chunks under ``<app>/<worker>/<slot>/<n>``
and, written last, a manifest under ``<app>/<worker>/manifest`` naming the slot, the chunk count, the
payload's SHA-256 and the offsets. Successive checkpoints alternate between two slots, so a save cut
short by a crash leaves the previous checkpoint whole; compaction keeps about two per worker. A worker
restores its own checkpoint, or the freshest of its app's other workers when it has none (every
worker learns every event, so any checkpoint is a whole state), and reads on from its offsets. Dedupe
ids are part of the stack, so nothing is learned twice (docs/design.md).

A pickle holds the objects of the code that wrote it: loaded by other model code it may fail, or worse,
load and then fail at the first batch, on every restart. So each manifest names the state's *layout*
(:func:`state_layout`: the model code, docstrings and comments aside, and the stack settings), and a
worker restores only a checkpoint of its own layout; otherwise, or when a payload does not load, it
starts cold and says why.
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import os
import pickle
import time
import zlib
from dataclasses import asdict, astuple, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

import shopstream.contracts
import shopstream.models
from shopstream.models.engine import RecommenderStack
from shopstream.models.stack_config import StackConfig
from shopstream.streams import metrics
from shopstream.streams.batch import BatchHandler

#: Payload bytes per record: under the broker's and the producer's 1 MB message limits with room to spare.
CHUNK_BYTES = 768 * 1024
SLOTS = 2


class CheckpointFailed(RuntimeError):
    """A checkpoint could not be taken; the next interval tries again."""


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
    layout: str = ""  # state_layout() of the writer; manifests from before it was recorded have none
    slots: list[int] = field(default_factory=list)  # key slots whose lists were all written (BatchHandler)
    epoch: str | None = None  # the store epoch they were written to; None: the slots vouch for nothing

    def encode(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_NON_STR_KEYS)

    @classmethod
    def decode(cls, raw: bytes) -> Manifest:
        data = orjson.loads(raw)
        data["offsets"] = {int(p): int(o) for p, o in data["offsets"].items()}
        return cls(**data)


def state_layout(config: StackConfig) -> str:
    """What a checkpoint's pickle depends on: the code of the models and contracts packages (their syntax
    trees without docstrings: a comment or a docstring changes nothing) and the stack settings, hashed.

    >>> state_layout(StackConfig()) == state_layout(StackConfig()) != state_layout(StackConfig(top_k=5))
    True
    """
    digest = hashlib.sha256(repr(astuple(config)).encode())
    for package in (shopstream.contracts, shopstream.models):
        root = Path(package.__file__).parent
        for path in sorted(root.rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                body = getattr(node, "body", None)
                if (isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and body
                        and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                        and isinstance(body[0].value.value, str)):
                    node.body = body[1:] or [ast.Pass()]
            digest.update(path.relative_to(root).as_posix().encode() + ast.dump(tree).encode())
    return digest.hexdigest()[:16]


def dump_stack(stack: RecommenderStack) -> bytes:
    """The stack as checkpoint payload; fast compression, the payload is written every interval."""
    return zlib.compress(pickle.dumps(stack, protocol=pickle.HIGHEST_PROTOCOL), 1)


class Snapshot:
    """The stack as it is now, dumped by a forked child from its copy-on-write view of the memory (as Redis
    does its background saves): the worker pauses for the fork, not for the pickling (~4 s for the state
    of 10^6 events). :meth:`payload` collects the child's output. Where there is no fork, the stack is
    dumped in-process at once."""

    def __init__(self, stack: RecommenderStack) -> None:
        self._payload: bytes | None = None
        if not hasattr(os, "fork"):
            self._payload = dump_stack(stack)
            return
        read, write = os.pipe()
        self._pid = os.fork()
        if self._pid == 0:  # the child: only pickles and writes, then leaves without any cleanup
            status = 1
            try:
                # Lowest CPU priority: on a machine with spare cores nothing changes, but where the broker,
                # Redis or the worker want the core, the dump waits for them. At equal priority, a dump of
                # a few seconds took a core from the live path and held every probe up (freshness p99 1.2-1.9 s
                # against 0.45 s without checkpoints; docs/performance.md).
                os.nice(19)
                os.close(read)
                with os.fdopen(write, "wb") as out:
                    out.write(dump_stack(stack))
                status = 0
            finally:
                os._exit(status)
        os.close(write)
        self._read = read

    def payload(self) -> bytes:
        """The child's payload (blocking: call it in a thread); raises if the child failed."""
        if self._payload is not None:
            return self._payload
        with os.fdopen(self._read, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(self._pid, 0)
        if status != 0:
            raise CheckpointFailed(f"the snapshot process ended with status {status}")
        return data


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
    """Saves one worker's checkpoints in a compacted topic of one partition, and loads its own or a peer's."""

    def __init__(
        self, bootstrap: str, topic: str, app_id: str, worker_id: str, chunk_bytes: int = CHUNK_BYTES,
        layout: str = "", **options: Any
    ) -> None:
        """``layout``: the :func:`state_layout` this worker writes and restores; ``options``: the clients'
        connection options (``CommonSettings.kafka_security_options``)."""
        self.bootstrap, self.topic, self.chunk_bytes, self.options = bootstrap, topic, chunk_bytes, options
        self.app_id, self.worker_id, self.layout = app_id, worker_id, layout
        self._producer: AIOKafkaProducer | None = None
        self._slot_chunks = [0] * SLOTS  # chunks each slot holds now, so a smaller save deletes the rest
        self._slot = SLOTS - 1  # the slot of the last checkpoint; the next save takes the other

    def _key(self, suffix: str, worker: str | None = None) -> bytes:
        return f"{self.app_id}/{worker or self.worker_id}/{suffix}".encode()

    async def save(
        self, payload: bytes, offsets: dict[int, int], slots: frozenset[int] = frozenset(), epoch: str | None = None
    ) -> Manifest:
        """Write the payload, then the manifest; returns once the broker has acknowledged all of it."""
        if self._producer is None:
            self._producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap, acks="all", max_request_size=2 * self.chunk_bytes,
                enable_idempotence=True, **self.options,
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
                            time.time(), self.layout, sorted(slots), epoch)
        await self._producer.send_and_wait(self.topic, manifest.encode(), key=self._key("manifest"))
        self._slot, self._slot_chunks[slot] = slot, len(chunks)
        return manifest

    async def load(self) -> tuple[str, Manifest, bytes] | None:
        """``(worker id, manifest, payload)`` of this worker's latest whole checkpoint, else of the freshest
        checkpoint another worker of the app wrote, among those of this store's layout; None if the app has
        none. Raises :class:`CheckpointCorrupt` when the app has checkpoints, but none of this layout."""
        latest = await self._read_app_records()
        own = f"{self.app_id}/{self.worker_id}/".encode()
        for slot in range(SLOTS):
            self._slot_chunks[slot] = sum(1 for k, v in latest.items() if v is not None
                                          and k.startswith(own + f"{slot}/".encode()))
        manifests = {key.decode().split("/")[-2]: Manifest.decode(value) for key, value in latest.items()
                     if value is not None and key.endswith(b"/manifest")}
        if not manifests:
            return None
        usable = {worker: manifest for worker, manifest in manifests.items() if manifest.layout == self.layout}
        if not usable:
            raise CheckpointCorrupt(f"its {len(manifests)} worker checkpoint(s) were written by other model code "
                                    f"or stack settings (layout {self.layout}; found "
                                    f"{sorted({m.layout or 'none' for m in manifests.values()})})")
        if self.worker_id in manifests and self.worker_id not in usable:
            self._slot = manifests[self.worker_id].slot  # the next save overwrites the other slot
        manifests = usable
        worker = self.worker_id if self.worker_id in manifests else max(manifests, key=lambda w: manifests[w].created)
        manifest = manifests[worker]
        if worker == self.worker_id:
            self._slot = manifest.slot
        pieces = [latest.get(self._key(f"{manifest.slot}/{i}", worker)) for i in range(manifest.chunks)]
        if any(piece is None for piece in pieces):
            raise CheckpointCorrupt(f"checkpoint of {worker} lacks chunks of slot {manifest.slot}")
        payload = b"".join(piece for piece in pieces if piece is not None)
        if hashlib.sha256(payload).hexdigest() != manifest.sha256:
            raise CheckpointCorrupt(f"checkpoint of {worker} does not match its digest")
        return worker, manifest, payload

    async def _read_app_records(self) -> dict[bytes, bytes | None]:
        """The latest value of every key of this app in the topic (None: deleted)."""
        prefix = f"{self.app_id}/".encode()
        latest: dict[bytes, bytes | None] = {}
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                    fetch_max_bytes=64 * 2**20, max_partition_fetch_bytes=4 * self.chunk_bytes,
                                    **self.options)
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
        return latest

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None


async def checkpoint(handler: BatchHandler, store: KafkaCheckpointStore) -> Manifest:
    """Checkpoint the handler's stack between batches, with the offsets its events came to."""
    started = time.perf_counter()
    async with handler.batch_lock, handler.lock:
        offsets = dict(handler.offsets)
        slots, epoch = frozenset(handler.written_slots), handler.written_epoch
        paused = time.perf_counter()
        snapshot = await handler.in_step_thread(Snapshot, handler.stack)
        metrics.CHECKPOINT_PAUSE.observe(time.perf_counter() - paused)
    payload = await asyncio.to_thread(snapshot.payload)
    manifest = await store.save(payload, offsets, slots, epoch)
    metrics.CHECKPOINT_DURATION.observe(time.perf_counter() - started)
    metrics.CHECKPOINT_BYTES.set(len(payload))
    metrics.CHECKPOINT_LAST.set(manifest.created)
    return manifest


async def restore(handler: BatchHandler, store: KafkaCheckpointStore) -> str:
    """Load the worker's (or a peer's) checkpoint into the handler, before it reads anything; returns what
    happened, for the worker's log once its logging is set up."""
    try:
        found = await store.load()
    except CheckpointCorrupt as exc:
        return f"starting cold: the checkpoint could not be used ({exc})"
    if found is None:
        return f"starting cold: no checkpoint of {store.app_id} in {store.topic}"
    worker, manifest, payload = found
    owner = handler.stack.owner
    try:
        stack = load_stack(payload)
    except Exception as exc:  # unpickling runs the pickle's constructors: any error means "unusable"
        return f"starting cold: the checkpoint of {store.app_id}/{worker} does not load ({type(exc).__name__}: {exc})"
    handler.stack = stack
    handler.stack.owner = owner  # which keys this worker writes is its own, not the checkpoint's
    handler.offsets = dict(manifest.offsets)
    if worker == store.worker_id and manifest.epoch is not None and manifest.slots:
        # Its own checkpoint: this worker wrote every list of these slots up to the checkpoint, and writes every
        # list its replay touches again, so if dealt them again it need not republish them (unless the store
        # lost its data meanwhile: the epoch tells). A peer's checkpoint vouches for none of this worker's keys.
        handler.written_slots, handler.written_epoch = set(manifest.slots), manifest.epoch
        handler.stack.hold_back()  # its replay builds no list until the group deals it slots (streams/app.py)
    else:
        handler.stack.release_held_back()  # keys a peer held back: its slots dealt here are republished whole
    return (f"restored the checkpoint of {store.app_id}/{worker} ({manifest.size} bytes, "
            f"{time.time() - manifest.created:.0f} s old)")
