"""A fixed-size NumPy ring buffer for the live charts.

The charts redraw from a QTimer several times a second, so reading the window
must not copy or reorder. Every value is written twice, at ``i`` and
``i + capacity`` of a buffer twice the capacity: the last ``n`` values are then
always one contiguous slice, returned as a read-only view in O(1).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt


class RingBuffer:
    """The newest ``capacity`` floats, oldest first; unknown values are NaN."""

    def __init__(self, capacity: int, dtype: npt.DTypeLike = np.float64) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self._capacity = capacity
        self._data: npt.NDArray[np.generic] = np.zeros(2 * capacity, dtype=dtype)
        self._next = 0  # where the next value goes, in [0, capacity)
        self._size = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    def __len__(self) -> int:
        return self._size

    def append(self, value: float) -> None:
        """Add one value; the oldest one drops out once the buffer is full."""
        i = self._next
        self._data[i] = value
        self._data[i + self._capacity] = value
        self._next = (i + 1) % self._capacity
        if self._size < self._capacity:
            self._size += 1

    def extend(self, values: Iterable[float]) -> None:
        for value in values:
            self.append(value)

    def values(self) -> npt.NDArray[np.generic]:
        """The stored values, oldest first: a read-only view, valid until the next append.

        Copy it (``np.array(buf.values())``) to keep it longer.
        """
        start = self._next + self._capacity - self._size
        view = self._data[start : start + self._size]
        view.flags.writeable = False
        return view

    def last(self) -> float:
        """The newest value (NaN when empty)."""
        if self._size == 0:
            return float("nan")
        return float(self._data[self._next + self._capacity - 1])

    def clear(self) -> None:
        self._next = 0
        self._size = 0
