"""Hand-built GGUF bytes for reader tests, including files no honest writer would make.

Each helper returns raw little-endian bytes, so a test can build a valid file and
then break exactly one field (a count, a length, a type id) to see how the reader
copes. Value type ids and layouts follow the GGUF spec.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY = range(10)
UINT64, INT64, FLOAT64 = 10, 11, 12

_CODES = {
    UINT8: "B",
    INT8: "b",
    UINT16: "H",
    INT16: "h",
    UINT32: "I",
    INT32: "i",
    FLOAT32: "f",
    BOOL: "B",
    UINT64: "Q",
    INT64: "q",
    FLOAT64: "d",
}

F32, F16, Q8_0, Q4_K = 0, 1, 8, 12  # GGML type ids used by the tests


def gstr(text: str | bytes) -> bytes:
    """A GGUF string: uint64 byte length, then the bytes."""
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def value(value_type: int, item: object) -> bytes:
    """The encoding of one scalar or string value (no type tag)."""
    if value_type == STRING:
        assert isinstance(item, str | bytes)
        return gstr(item)
    return struct.pack("<" + _CODES[value_type], item)


def kv(key: str | bytes, value_type: int, item: object) -> bytes:
    """A metadata entry holding a scalar or string."""
    return gstr(key) + struct.pack("<I", value_type) + value(value_type, item)


def kv_array(
    key: str | bytes, item_type: int, items: Sequence[object], *, count: int | None = None
) -> bytes:
    """A metadata entry holding an array; ``count`` overrides the stored length."""
    stored = len(items) if count is None else count
    body = b"".join(value(item_type, item) for item in items)
    return gstr(key) + struct.pack("<IIQ", ARRAY, item_type, stored) + body


def kv_raw(key: str | bytes, value_type: int, payload: bytes) -> bytes:
    """A metadata entry with arbitrary bytes after the type tag."""
    return gstr(key) + struct.pack("<I", value_type) + payload


def tensor_info(name: str | bytes, shape: Sequence[int], ggml_type: int, offset: int) -> bytes:
    """One tensor table entry; ``shape`` in GGUF order (ne0 first)."""
    dims = struct.pack(f"<{len(shape)}Q", *shape)
    return gstr(name) + struct.pack("<I", len(shape)) + dims + struct.pack("<IQ", ggml_type, offset)


def gguf_file(
    kvs: Iterable[bytes] = (),
    tensors: Iterable[bytes] = (),
    *,
    data_bytes: int = 0,
    alignment: int = 32,
    version: int = 3,
    magic: bytes = b"GGUF",
    kv_count: int | None = None,
    tensor_count: int | None = None,
) -> bytes:
    """A whole file: preamble, entries, padding to ``alignment``, ``data_bytes`` of data."""
    kv_list, tensor_list = list(kvs), list(tensors)
    header = (
        magic
        + struct.pack("<I", version)
        + struct.pack("<Q", len(tensor_list) if tensor_count is None else tensor_count)
        + struct.pack("<Q", len(kv_list) if kv_count is None else kv_count)
        + b"".join(kv_list)
        + b"".join(tensor_list)
    )
    padding = -len(header) % alignment
    return (
        header
        + b"\0" * padding
        + bytes(range(256)) * (data_bytes // 256)
        + b"\1" * (data_bytes % 256)
    )


def small_model(*, blocks: int = 2, extra_kvs: Iterable[bytes] = ()) -> bytes:
    """A small valid llama-style file: a few keys, a short vocab, one F32 tensor per block."""
    kvs = [
        kv("general.architecture", STRING, "llama"),
        kv("general.name", STRING, "tiny"),
        kv("llama.block_count", UINT32, blocks),
        kv("llama.context_length", UINT32, 256),
        kv("general.alignment", UINT32, 32),
        kv_array("tokenizer.ggml.tokens", STRING, ["<s>", "</s>", "a", "b", "ü"]),
        kv_array("tokenizer.ggml.scores", FLOAT32, [0.0, -1.0, -2.5, 3.0, 0.5]),
        kv("tokenizer.ggml.add_bos_token", BOOL, 1),
        *extra_kvs,
    ]
    tensors = [tensor_info(f"blk.{i}.attn_norm.weight", [32], F32, i * 128) for i in range(blocks)]
    return gguf_file(kvs, tensors, data_bytes=blocks * 128)
