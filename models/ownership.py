"""Which worker writes which list: every key belongs to one slot, every slot to one worker.

All workers learn every event (docs/design.md), so any of them could build any list; each key is
written by the one worker that holds its slot, so K workers write what one worker writes, once. The
slot comes from CRC-32 of the key's id: stable across processes, versions and machines (Python's
``hash`` is salted per process).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass


def key_slot(key_id: str, slots: int) -> int:
    """The slot of a list key's id.

    >>> key_slot("sess-1", 8), key_slot("sess-1", 8) == key_slot("sess-1", 8)
    (7, True)
    """
    return zlib.crc32(key_id.encode()) % slots


@dataclass(frozen=True, slots=True)
class KeyOwner:
    """The slots one worker holds, out of ``slots``; called with a key id, says whether it writes it.

    >>> owner = KeyOwner(8, frozenset({7}))
    >>> owner("sess-1"), KeyOwner.everything()("anything")
    (True, True)
    """

    slots: int
    held: frozenset[int]

    @classmethod
    def everything(cls) -> KeyOwner:
        return cls(1, frozenset({0}))

    def __call__(self, key_id: str) -> bool:
        # A worker holding every slot (the single-worker case) owns every key without hashing it.
        return len(self.held) >= self.slots or zlib.crc32(key_id.encode()) % self.slots in self.held
