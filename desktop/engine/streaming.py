"""Follow one llama-cpp-python completion stream and time its tokens.

The window's chat (desktop.engine.worker) and other apps' requests (desktop.engine.api_jobs)
read the same kind of stream the same way: each decoded token is stamped as it arrives, its
text (if any) is handed on, and the speed is the tokens decoded between the first and the last
stamp over that time (a piece can hold several tokens, one multi-byte character, so counting
pieces would be wrong).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass
class StreamTiming:
    """What a followed stream did: pieces of text, stamps, and why it ended."""

    pieces: int = 0  # pieces of text handed on
    first_text_t: float = 0.0  # when the first piece of text came
    first_t: float = 0.0  # the first and the last decoded token's time
    last_t: float = 0.0
    first_n: int = 0  # llama.n_tokens at the first and the last decoded token
    last_n: int = 0
    finish: str = "length"

    @property
    def decode_tokens_per_s(self) -> float:
        decoded = self.last_n - self.first_n
        span = self.last_t - self.first_t
        return decoded / span if decoded > 0 and span > 0 else 0.0

    def ttft_s(self, started: float, ended: float) -> float:
        """Time to the first piece of text (to the end, for an answer without text)."""
        return (self.first_text_t if self.pieces else ended) - started


def follow_stream(
    stream: Iterable[Any],
    llama: Any,
    *,
    chat: bool,
    on_text: Callable[[str, float, int], None],
    stop: threading.Event,
    stopped_as: str,
) -> StreamTiming:
    """Read ``stream`` (create_chat_completion's with ``chat``, else create_completion's) to
    its end or until ``stop`` is set (then ``finish`` is ``stopped_as``); ``on_text(text, t,
    index)`` gets each piece of text with its token's time."""
    timing = StreamTiming()
    seen = False
    for chunk in stream:
        choice = chunk["choices"][0]
        if chat:
            delta = choice["delta"]
            # One decoded token; its text may be empty (a control token, half of a
            # multi-byte character), and the speed counts it all the same.
            decoded = "content" in delta
            text = delta.get("content") or ""
        else:
            decoded = True
            text = choice.get("text") or ""
        if decoded:
            now = time.monotonic()
            if not seen:
                seen = True
                timing.first_t, timing.first_n = now, llama.n_tokens
            timing.last_t, timing.last_n = now, llama.n_tokens
        if text:  # a decoded token's: `now` is its time
            on_text(text, now, timing.pieces)
            if timing.pieces == 0:
                timing.first_text_t = now
            timing.pieces += 1
        if choice.get("finish_reason"):
            timing.finish = choice["finish_reason"]
        if stop.is_set():
            timing.finish = stopped_as
            break
    return timing
