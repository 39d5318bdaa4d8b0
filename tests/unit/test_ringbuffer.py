"""RingBuffer: newest values, oldest first, as one contiguous read-only view."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from desktop.core.ringbuffer import RingBuffer


def test_empty() -> None:
    buf = RingBuffer(4)
    assert len(buf) == 0
    assert buf.values().shape == (0,)
    assert math.isnan(buf.last())


def test_fills_then_drops_the_oldest() -> None:
    buf = RingBuffer(3)
    buf.extend([1, 2])
    assert buf.values().tolist() == [1, 2]
    buf.extend([3, 4, 5])
    assert buf.values().tolist() == [3, 4, 5]
    assert len(buf) == 3
    assert buf.last() == 5


def test_view_is_contiguous_read_only_and_not_a_copy() -> None:
    buf = RingBuffer(5)
    buf.extend(range(7))
    view = buf.values()
    assert view.flags.c_contiguous
    assert not view.flags.writeable
    with pytest.raises(ValueError):
        view[0] = 1.0
    assert np.shares_memory(view, buf.values())


def test_nan_for_unknown_and_clear() -> None:
    buf = RingBuffer(2)
    buf.append(float("nan"))
    buf.append(1.0)
    assert np.isnan(buf.values()[0])
    buf.clear()
    assert len(buf) == 0
    buf.append(2.0)
    assert buf.values().tolist() == [2.0]


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RingBuffer(0)


@given(st.integers(1, 20), st.lists(st.floats(allow_nan=False), max_size=80))
def test_matches_the_tail_of_a_list(capacity: int, values: list[float]) -> None:
    buf = RingBuffer(capacity)
    for v in values:
        buf.append(v)
        assert buf.last() == v
    assert buf.values().tolist() == values[-capacity:]
