"""How long the chat list's search takes over a large history (a script, not a test).

    .venv/bin/python tests/bench/bench_chat_search.py [--chats 1000] [--messages 20]

Writes a history of ``--chats`` conversations with ``--messages`` messages of about 600
characters each into a temporary SQLite file (the real ChatHistory), then times
``search_conversations`` for a word in one title, a word in every message, and no match.
Target: under 100 ms each for 1000 chats (the list searches 200 ms after typing pauses, so a
search must not be felt on top of that).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from desktop.core.history import ChatHistory

TARGET_S = 0.100
FILLER = (
    "The quick brown fox jumps over the lazy dog while the model explains attention, "
    "caches and quantization in plain words for a curious hobbyist. "
) * 4


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chats", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, ChatHistory(Path(folder) / "h.sqlite3") as h:
        started = time.perf_counter()
        for i in range(args.chats):
            conversation = h.create_conversation(f"Chat number {i} about topic{i}")
            for j in range(args.messages):
                h.add_message(conversation, "user" if j % 2 == 0 else "assistant", FILLER)
        print(
            f"wrote {args.chats} chats x {args.messages} messages "
            f"in {time.perf_counter() - started:.1f} s"
        )
        worst = 0.0
        for label, query in (
            ("one title", "topic517"),
            ("every message", "hobbyist"),
            ("no match", "zebra"),
            ("two words", "curious topic9"),
        ):
            times = []
            found = 0
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                found = len(h.search_conversations(query))
                times.append(time.perf_counter() - t0)
            median = statistics.median(times)
            worst = max(worst, median)
            print(f"search {label!r:>16} ({query!r}): {median * 1000:7.1f} ms, {found} chats")
        verdict = "OK" if worst <= TARGET_S else "SLOWER THAN TARGET"
        print(f"slowest median {worst * 1000:.1f} ms (target {TARGET_S * 1000:.0f} ms): {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
