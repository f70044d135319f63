"""A capped item-id ↔ row mapping, so per-item scores live in NumPy arrays and top-k is vectorised.

>>> index = ItemIndex(capacity=2)
>>> index.add("a"), index.add("b"), index.add("a")
(0, 1, 0)
>>> index.full
True
>>> index.remove("a")
0
>>> index.add("c")      # the freed row is reused
0
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


class ItemIndex:
    """Assigns each item a dense row in ``[0, capacity)``; freed rows are reused."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._rows: dict[str, int] = {}
        self._ids = np.empty(capacity, dtype=object)
        self._free: list[int] = []
        self.high = 0  # rows below this have been used; scans stop here, not at capacity

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, item_id: str) -> bool:
        return item_id in self._rows

    @property
    def full(self) -> bool:
        return len(self._rows) >= self.capacity

    def get(self, item_id: str) -> int | None:
        return self._rows.get(item_id)

    @property
    def row_of(self) -> Callable[[str], int | None]:
        """:meth:`get` as the C ``dict.get`` itself, for loops over many items."""
        return self._rows.get

    def add(self, item_id: str) -> int:
        """The item's row, assigning one if new; raises when full (callers evict first)."""
        row = self._rows.get(item_id)
        if row is not None:
            return row
        if self._free:
            row = self._free.pop()
        elif len(self._rows) < self.capacity:
            row = len(self._rows)
        else:
            raise OverflowError("ItemIndex is full: evict before adding")
        self._rows[item_id] = row
        self._ids[row] = item_id
        self.high = max(self.high, row + 1)
        return row

    def remove(self, item_id: str) -> int:
        row = self._rows.pop(item_id)
        self._ids[row] = None
        self._free.append(row)
        return row

    def __getstate__(self) -> dict[str, object]:
        """The rows in use only: a checkpoint of a mostly empty index stays small."""
        return {**self.__dict__, "_ids": self._ids[: self.high]}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._ids = padded(self._ids, self.capacity)

    def ids(self, rows: np.ndarray) -> list[str]:
        return self._ids[rows].tolist()

    def rows_in_use(self) -> np.ndarray:
        return np.fromiter(self._rows.values(), dtype=np.int64, count=len(self._rows))


def padded(rows: np.ndarray, capacity: int, fill: int = 0, axis: int = 0) -> np.ndarray:
    """``rows`` at the top of an array of ``capacity`` rows along ``axis``, the rest ``fill`` (None for objects;
    zeros are left to the OS until written): what a pickled prefix of a preallocated array restores to, and a
    growing array's next size.

    >>> padded(np.array([1.0, 2.0]), 4).tolist(), padded(np.array([[1], [2]]), 3, -1, axis=1).tolist()
    ([1.0, 2.0, 0.0, 0.0], [[1, -1, -1], [2, -1, -1]])
    """
    shape = (*rows.shape[:axis], capacity, *rows.shape[axis + 1 :])
    if rows.dtype == object:
        full = np.empty(shape, dtype=object)  # holds None
    else:
        full = np.zeros(shape, dtype=rows.dtype) if fill == 0 else np.full(shape, fill, dtype=rows.dtype)
    full[(slice(None),) * axis + (slice(0, rows.shape[axis]),)] = rows
    return full


class PicklesUsedRows:
    """Pickles the arrays named in ``_row_arrays`` (with the index that assigns their rows) up to the
    index's highest used row, so the checkpoint of a model with large preallocated capacities stays
    the size of what it learned."""

    _row_arrays: tuple[tuple[str, str], ...] = ()

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        for name, index in self._row_arrays:
            state[name] = state[name][: state[index].high]
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        for name, index in self._row_arrays:
            setattr(self, name, padded(getattr(self, name), getattr(self, index).capacity))


def top_k(scores: np.ndarray, k: int, valid: np.ndarray | None = None) -> np.ndarray:
    """Rows of the k largest scores, best first, in O(n) + O(k log k); invalid and ``-inf`` rows never.

    >>> top_k(np.array([0.1, 0.9, 0.5, 0.7]), 2).tolist()
    [1, 3]
    """
    if valid is not None:
        scores = np.where(valid, scores, -np.inf)
    return top_k_rows(scores[None, :], k)[0]


def top_k_rows(scores: np.ndarray, k: int) -> list[np.ndarray]:
    """:func:`top_k` of each row of a 2-D array, in one vectorised pass.

    >>> [row.tolist() for row in top_k_rows(np.array([[0.1, 0.9, 0.5], [0.7, -np.inf, 0.2]]), 2)]
    [[1, 2], [0, 2]]
    """
    k = min(k, scores.shape[1])
    if k <= 0:
        return [np.empty(0, dtype=np.int64) for _ in range(scores.shape[0])]
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    best = np.take_along_axis(part, np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable"),
                              axis=1)
    finite = np.isfinite(np.take_along_axis(scores, best, axis=1))
    return [row[ok] for row, ok in zip(best, finite, strict=True)]
