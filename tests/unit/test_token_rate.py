"""TokenRateTracker: instantaneous and rolling tokens per second from timestamps."""

from __future__ import annotations

import math

import pytest

from desktop.core.token_rate import TokenRateTracker


def test_steady_stream_gives_its_rate() -> None:
    tracker = TokenRateTracker(window_s=1.0)
    rates = [tracker.add(10.0 + i * 0.02) for i in range(200)]  # 50 tokens/s
    assert math.isnan(rates[0].instantaneous) and math.isnan(rates[0].rolling)
    assert rates[1].instantaneous == pytest.approx(50)
    assert rates[-1].rolling == pytest.approx(50)
    assert tracker.total_tokens == 200
    assert len(tracker.times) == len(tracker.rolling) == 200


def test_rolling_rate_follows_a_slowdown_within_the_window() -> None:
    tracker = TokenRateTracker(window_s=1.0)
    t = 0.0
    for _ in range(100):
        t += 0.01  # 100 tokens/s
        tracker.add(t)
    for _ in range(30):
        t += 0.1  # 10 tokens/s for 3 s
        last = tracker.add(t)
    assert last.instantaneous == pytest.approx(10)
    assert last.rolling == pytest.approx(10)


def test_pieces_of_several_tokens_count_all_of_them() -> None:
    tracker = TokenRateTracker()
    tracker.add(0.0)
    rate = tracker.add(0.1, tokens=2)
    assert rate.instantaneous == pytest.approx(20)
    assert rate.rolling == pytest.approx(20)


def test_a_new_generation_does_not_count_the_pause() -> None:
    tracker = TokenRateTracker(window_s=2.0)
    tracker.add(0.0)
    tracker.add(0.05)
    tracker.start_generation()
    first = tracker.add(0.5)
    assert math.isnan(first.instantaneous) and math.isnan(first.rolling)
    assert tracker.add(0.55).rolling == pytest.approx(20)


def test_rate_drops_to_zero_when_tokens_stop() -> None:
    tracker = TokenRateTracker(window_s=1.0)
    for i in range(10):
        tracker.add(i * 0.1)
    assert tracker.rolling_rate(0.95) == pytest.approx(10)
    assert tracker.rolling_rate(3.0) == 0.0
    tracker.clear()
    assert tracker.rolling_rate(3.0) == 0.0
    assert len(tracker.times) == 0


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError):
        TokenRateTracker(window_s=0)
