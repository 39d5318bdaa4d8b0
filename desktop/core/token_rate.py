"""Tokens per second from token timestamps, for the live chart beside the prediction.

Two series, both from the worker's ``time.monotonic()`` stamps on each token:

* instantaneous: ``n / Δt`` between one token and the one before it; jumpy,
  shows single slow steps.
* rolling: tokens decoded over the last ``window_s`` seconds divided by the time
  they took (the span between the oldest stamp in the window and the newest);
  this is what is compared with the predicted decode speed.

A new generation starts with :meth:`TokenRateTracker.start_generation`, so the
pause between two answers (and the prompt processing before the first token) is
never counted as a slow token.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from desktop.core.ringbuffer import RingBuffer


@dataclass(frozen=True)
class TokenRate:
    """Rates at the moment of one token, in tokens per second (NaN when not known yet)."""

    t: float  # seconds, time.monotonic() of the token
    instantaneous: float
    rolling: float


class TokenRateTracker:
    """Turns token timestamps into rate series held in ring buffers."""

    def __init__(self, window_s: float = 1.0, capacity: int = 4096) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be positive, not {window_s}")
        self.window_s = window_s
        self.times = RingBuffer(capacity)
        self.instantaneous = RingBuffer(capacity)
        self.rolling = RingBuffer(capacity)
        self._recent: deque[tuple[float, int]] = deque()  # (t, tokens) inside the window
        self._recent_tokens = 0  # sum of the tokens in _recent
        self._previous_t: float | None = None
        self.total_tokens = 0

    def start_generation(self) -> None:
        """Forget the previous answer's last token; the series themselves are kept."""
        self._recent.clear()
        self._recent_tokens = 0
        self._previous_t = None

    def clear(self) -> None:
        """Forget everything, series included."""
        self.start_generation()
        self.times.clear()
        self.instantaneous.clear()
        self.rolling.clear()
        self.total_tokens = 0

    def add(self, t: float, tokens: int = 1) -> TokenRate:
        """Record ``tokens`` tokens that arrived at time ``t``; return the rates then."""
        previous = self._previous_t
        dt = t - previous if previous is not None else 0.0
        instantaneous = tokens / dt if dt > 0 else math.nan
        self._previous_t = t
        self.total_tokens += tokens

        recent = self._recent
        recent.append((t, tokens))
        self._recent_tokens += tokens
        while t - recent[0][0] > self.window_s:
            self._recent_tokens -= recent.popleft()[1]
        span = t - recent[0][0]
        # The oldest stamp in the window opens the span; the tokens after it were made in it.
        decoded = self._recent_tokens - recent[0][1]
        rolling = decoded / span if span > 0 and decoded > 0 else math.nan

        self.times.append(t)
        self.instantaneous.append(instantaneous)
        self.rolling.append(rolling)
        return TokenRate(t, instantaneous, rolling)

    def rolling_rate(self, now: float) -> float:
        """The rolling rate as seen at ``now``: 0 once no token came for a whole window."""
        if self._previous_t is None or now - self._previous_t > self.window_s:
            return 0.0
        return self.rolling.last()
