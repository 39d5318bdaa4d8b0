"""Bounded, defensive reader for the header of a GGUF model file.

A GGUF file is a small header (metadata key/value pairs and a table of tensor
descriptions) followed by gigabytes of tensor data. The estimator needs only the
header, and before a download the header has to come over HTTP Range requests, so
the reader works over any random-access :class:`ByteSource`. It walks the header
front to back through a buffered cursor that reads a few large, geometrically
growing chunks (1 MiB, 2 MiB, 4 MiB, ...), and never reads past the header except
for the overshoot of the last chunk.

Model files come from the internet. Every count, length and offset is checked
against the bytes that could actually hold it *before* anything is allocated or
looped over, and the whole header is capped at ``max_header_bytes``. Every
problem surfaces as :class:`GGUFError` whose message says what is wrong and where
(offset, key or tensor name); no other exception escapes :func:`read_header`.

Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
Quantization block sizes come from the ``gguf`` package (``GGML_QUANT_SIZES``),
the same table llama.cpp's own Python tools use, never from a copy here.
"""

from __future__ import annotations

import io
import math
import os
import struct
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Protocol, TypeAlias

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

__all__ = [
    "DEFAULT_MAX_HEADER_BYTES",
    "ByteSource",
    "BytesSource",
    "CallbackRangeSource",
    "FileSource",
    "GGUFError",
    "GGUFHeader",
    "LargeArray",
    "MetaScalar",
    "MetaValue",
    "TensorInfo",
    "read_header",
    "read_header_file",
    "summarize",
]

DEFAULT_MAX_HEADER_BYTES = 64 * 1024 * 1024  # bytes; real headers are < 20 MiB

# Limits that no sane file reaches but that keep a hostile one cheap to reject.
MAX_KEY_BYTES = 65535
MAX_STRING_BYTES = 16 * 1024 * 1024  # bytes, one string value
MAX_TENSOR_NAME_BYTES = 63  # llama.cpp: GGML_MAX_NAME (64) including the NUL
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_BLOCK_COUNT = 512
MAX_ELEMENTS = 2**63 - 1  # ggml counts elements in int64_t

# Arrays up to these lengths are kept as tuples; longer ones become LargeArray.
KEEP_NUMERIC_ITEMS = 65536
KEEP_STRING_ITEMS = 4096
# Across the whole header: tuples of Python ints cost ~10x their file size, so a
# header made only of just-short-enough arrays would otherwise balloon memory.
_KEPT_ITEMS_BUDGET = 1 << 20

_FIRST_CHUNK = 1024 * 1024  # bytes
_MAX_CHUNK = 8 * 1024 * 1024  # bytes

_MAGIC = b"GGUF"
_SUPPORTED_VERSIONS = (2, 3)
_PREAMBLE_BYTES = 4 + 4 + 8 + 8  # magic, version, tensor count, kv count
# Smallest possible records, to bound counts by the bytes that must hold them.
_MIN_KV_BYTES = 8 + 1 + 4 + 1  # key length, 1-byte key, value type, uint8 value
_MIN_TENSOR_BYTES = 8 + 1 + 4 + 8 + 4 + 8  # name length, name, n_dims, one dim, type, offset

_TYPE_ARRAY = 9
_TYPE_STRING = 8
_TYPE_BOOL = 7
_TYPE_UINT32 = 4
# GGUF value type id -> (struct code, item size in bytes, name for messages).
_SCALARS: dict[int, tuple[str, int, str]] = {
    0: ("B", 1, "uint8"),
    1: ("b", 1, "int8"),
    2: ("H", 2, "uint16"),
    3: ("h", 2, "int16"),
    4: ("I", 4, "uint32"),
    5: ("i", 4, "int32"),
    6: ("f", 4, "float32"),
    7: ("B", 1, "bool"),
    10: ("Q", 8, "uint64"),
    11: ("q", 8, "int64"),
    12: ("d", 8, "float64"),
}
_SCALAR_STRUCTS = {t: struct.Struct("<" + code) for t, (code, _, _) in _SCALARS.items()}
_TYPE_NAMES = {t: name for t, (_, _, name) in _SCALARS.items()} | {8: "string", 9: "array"}

_U32 = struct.Struct("<I").unpack_from
_U64 = struct.Struct("<Q").unpack_from


class GGUFError(Exception):
    """A GGUF file is damaged, unsupported or unreadable; the message says why and where."""


class ByteSource(Protocol):
    """Random-access bytes: a local file, an in-memory buffer, or HTTP Range reads."""

    name: str  # shown in messages: a path or URL

    def size(self) -> int:
        """Total size of the file in bytes."""
        ...

    def read(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes at ``offset``; fewer only at EOF. Raises OSError on failure."""
        ...


class FileSource:
    """A local file, opened on first use and closed by :meth:`close` or ``with``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.name = self.path
        self._file: io.FileIO | None = None

    def _handle(self) -> io.FileIO:
        if self._file is None:
            # Unbuffered: our reads are already large, a second buffer only copies.
            self._file = io.FileIO(self.path, "r")
        return self._file

    def size(self) -> int:
        return os.fstat(self._handle().fileno()).st_size

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length <= 0:
            return b""
        handle = self._handle()
        handle.seek(offset)
        return handle.read(length) or b""

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> FileSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class BytesSource:
    """An in-memory file (tests, or a header already fetched)."""

    def __init__(self, data: bytes | bytearray | memoryview, name: str = "<bytes>") -> None:
        self.name = name
        self._data = memoryview(data).cast("B")

    def size(self) -> int:
        return len(self._data)

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length <= 0:
            return b""
        return self._data[offset : offset + length].tobytes()


class CallbackRangeSource:
    """A file of known size read through ``fetch(offset, length)``, e.g. HTTP Range requests.

    ``requests`` and ``bytes_fetched`` count the calls so callers (and tests) can
    check that only the header travelled over the network.
    """

    def __init__(
        self, size: int, fetch: Callable[[int, int], bytes], name: str = "<remote file>"
    ) -> None:
        self.name = name
        self._size = size
        self._fetch = fetch
        self.requests = 0
        self.bytes_fetched = 0

    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        length = min(length, self._size - offset)
        if offset < 0 or length <= 0:
            return b""
        data = self._fetch(offset, length)
        self.requests += 1
        self.bytes_fetched += len(data)
        return bytes(data[:length])


@dataclass(frozen=True)
class LargeArray:
    """A metadata array too long to keep (e.g. 262144 tokenizer tokens): type and count only."""

    item_type: str  # "string", "int32", "float32", ...
    count: int


MetaScalar: TypeAlias = int | float | bool | str
MetaValue: TypeAlias = MetaScalar | tuple[MetaScalar, ...] | LargeArray


@dataclass(frozen=True)
class TensorInfo:
    """One entry of the tensor table. Sizes are exact bytes of the tensor's data."""

    name: str
    shape: tuple[int, ...]  # GGUF order: ne0 (the contiguous dimension) first
    ggml_type: int  # raw GGML type id
    type_name: str  # "Q4_K", "F16", ...
    offset: int  # bytes, relative to the start of the data section
    n_bytes: int  # bytes = n_elements / block_size * type_size

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class GGUFHeader:
    """Everything in a GGUF file except the tensor data."""

    version: int
    metadata: Mapping[str, MetaValue]
    tensors: tuple[TensorInfo, ...]
    alignment: int  # bytes
    data_offset: int  # absolute file offset where tensor data begins
    file_size: int  # bytes
    bytes_read: int  # bytes actually read from the source
    read_requests: int  # number of source.read calls

    def get(self, key: str, default: MetaValue | None = None) -> MetaValue | None:
        return self.metadata.get(key, default)

    @property
    def architecture(self) -> str:
        value = self.metadata.get("general.architecture")
        if not isinstance(value, str):
            raise GGUFError(
                "This GGUF file has no general.architecture key, so its model type is unknown."
            )
        return value

    def arch_key(self, suffix: str, default: MetaValue | None = None) -> MetaValue | None:
        """The architecture-specific key, e.g. ``arch_key("block_count")`` -> llama.block_count."""
        return self.metadata.get(f"{self.architecture}.{suffix}", default)

    @property
    def tensor_bytes(self) -> int:
        return sum(t.n_bytes for t in self.tensors)


class _Cursor:
    """Sequential reader over a ByteSource that keeps only the unread part of the header.

    ``buf[pos:]`` holds file bytes from absolute offset ``base + pos`` on. Hot loops
    copy ``pos`` into a local and hand it back before calling :meth:`require`.
    """

    __slots__ = (
        "_chunk",
        "_source",
        "base",
        "buf",
        "bytes_read",
        "file_size",
        "kept_items_left",
        "limit",
        "pos",
        "requests",
    )

    def __init__(self, source: ByteSource, file_size: int, max_header_bytes: int) -> None:
        self._source = source
        self._chunk = _FIRST_CHUNK
        self.file_size = file_size
        self.limit = max_header_bytes  # the header must end at or before this offset
        self.buf = bytearray()
        self.base = 0
        self.pos = 0
        self.bytes_read = 0
        self.requests = 0
        self.kept_items_left = _KEPT_ITEMS_BUDGET

    @property
    def offset(self) -> int:
        return self.base + self.pos

    @property
    def name(self) -> str:
        return self._source.name

    def bytes_left(self) -> int:
        """Bytes from here to whichever comes first: the end of the file or the header cap."""
        return min(self.file_size, self.limit) - self.offset

    def require(self, n: int, what: str) -> None:
        """Make ``buf[pos:pos + n]`` available, reading more of the source if needed."""
        if self.pos + n <= len(self.buf):
            return
        end = self.base + self.pos + n
        if end > self.file_size:
            raise GGUFError(
                f"{self.name} is truncated: {what} at offset {self.offset} needs {n} bytes, "
                f"but the file ends at byte {self.file_size}."
            )
        if end > self.limit:
            raise GGUFError(
                f"The header of {self.name} is larger than the {self.limit}-byte limit "
                f"({what} at offset {self.offset} would end at byte {end}); "
                "the file is probably damaged."
            )
        if self.pos:
            # Drop what has been parsed so memory stays at one chunk, not the whole header.
            del self.buf[: self.pos]
            self.base += self.pos
            self.pos = 0
        have = self.base + len(self.buf)
        want = max(end - have, self._chunk)
        want = min(want, self.file_size - have, self.limit - have)
        self._chunk = min(self._chunk * 2, _MAX_CHUNK)
        self._fill(have, want)

    def _fill(self, offset: int, length: int) -> None:
        got = 0
        while got < length:
            try:
                data = self._source.read(offset + got, length - got)
            except OSError as exc:
                raise GGUFError(
                    f"Could not read {self.name} at offset {offset + got}: {exc}"
                ) from exc
            self.requests += 1
            if not data:
                raise GGUFError(
                    f"{self.name} ended at byte {offset + got} although its size is "
                    f"{self.file_size} bytes; was it changed while being read?"
                )
            data = data[: length - got]
            self.buf += data
            got += len(data)
            self.bytes_read += len(data)

    def u32(self, what: str) -> int:
        self.require(4, what)
        (value,) = _U32(self.buf, self.pos)
        self.pos += 4
        return int(value)

    def u64(self, what: str) -> int:
        self.require(8, what)
        (value,) = _U64(self.buf, self.pos)
        self.pos += 8
        return int(value)

    def string(self, what: str, cap: int, cap_reason: str) -> str:
        """A GGUF string (uint64 length + UTF-8 bytes), at most ``cap`` bytes long."""
        start = self.offset
        length = self.u64(f"the length of {what}")
        if length > cap:
            raise GGUFError(
                f"In {self.name}, {what} at offset {start} claims to be {length} bytes long; "
                f"{cap_reason} at most {cap} bytes."
            )
        if length > self.file_size - self.offset:
            raise GGUFError(
                f"{self.name} is truncated: {what} at offset {start} is {length} bytes long, "
                f"but only {self.file_size - self.offset} bytes of the file are left."
            )
        self.require(length, what)
        raw = self.buf[self.pos : self.pos + length]
        self.pos += length
        return _decode(raw, self.name, what, start)


def _decode(raw: bytes | bytearray, name: str, what: str, offset: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GGUFError(
            f"In {name}, {what} at offset {offset} is not valid UTF-8 "
            f"(bad byte at position {exc.start})."
        ) from exc


def read_header(
    source: ByteSource, *, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
) -> GGUFHeader:
    """Parse and validate the header of the GGUF file in ``source``.

    Reads the header in a few growing chunks; tensor data is never parsed, and only
    the overshoot of the last chunk (at most the size of the header again) is read.
    Raises GGUFError for every problem with the file, including I/O errors.
    """
    if max_header_bytes < _PREAMBLE_BYTES:
        raise ValueError(f"max_header_bytes must be at least {_PREAMBLE_BYTES}")
    try:
        file_size = source.size()
    except OSError as exc:
        raise GGUFError(f"Could not read {source.name}: {exc}") from exc
    cur = _Cursor(source, file_size, max_header_bytes)

    version, tensor_count, kv_count = _read_preamble(cur)
    metadata, alignment = _read_metadata(cur, kv_count)
    tensors = _read_tensor_infos(cur, tensor_count, alignment)
    # The data section starts at the next multiple of the alignment after the table.
    data_offset = -(-cur.offset // alignment) * alignment
    _check_tensor_layout(cur.name, tensors, data_offset, file_size)

    return GGUFHeader(
        version=version,
        metadata=MappingProxyType(metadata),
        tensors=tensors,
        alignment=alignment,
        data_offset=data_offset,
        file_size=file_size,
        bytes_read=cur.bytes_read,
        read_requests=cur.requests,
    )


def read_header_file(path: str | os.PathLike[str]) -> GGUFHeader:
    """Read the header of a local GGUF file."""
    with FileSource(path) as source:
        return read_header(source)


def _read_preamble(cur: _Cursor) -> tuple[int, int, int]:
    name = cur.name
    if cur.file_size < 4:
        raise GGUFError(f"{name} is only {cur.file_size} bytes long, too short to be a GGUF file.")
    cur.require(4, "the file signature")
    magic = bytes(cur.buf[0:4])
    if magic != _MAGIC:
        raise GGUFError(_bad_magic_message(name, magic))
    cur.pos = 4

    version = cur.u32("the GGUF version")
    if version not in _SUPPORTED_VERSIONS:
        swapped = int.from_bytes(version.to_bytes(4, "little"), "big")
        if version == 1:
            raise GGUFError(
                f"{name} uses GGUF version 1, an early format llama.cpp no longer loads; "
                "download a newer conversion of the model."
            )
        if swapped in (1, *_SUPPORTED_VERSIONS):
            raise GGUFError(
                f"{name} is a big-endian GGUF file (its version reads as {version}, "
                f"byte-swapped {swapped}); only little-endian files are supported."
            )
        raise GGUFError(
            f"{name} has GGUF version {version}, which is not supported (expected 2 or 3)."
        )

    tensor_count = cur.u64("the tensor count")
    kv_count = cur.u64("the metadata key count")
    left = cur.file_size - cur.offset
    for count, what, min_bytes in (
        (kv_count, "metadata entries", _MIN_KV_BYTES),
        (tensor_count, "tensors", _MIN_TENSOR_BYTES),
    ):
        if count * min_bytes > left:
            raise GGUFError(
                f"{name} claims to hold {count} {what}, but the {left} bytes after its "
                f"preamble can hold at most {left // min_bytes}; the file is damaged."
            )
    needed = kv_count * _MIN_KV_BYTES + tensor_count * _MIN_TENSOR_BYTES
    if needed > left:
        raise GGUFError(
            f"{name} claims {kv_count} metadata entries and {tensor_count} tensors, "
            f"which need at least {needed} bytes, but only {left} bytes follow; "
            "the file is damaged."
        )
    if needed > cur.bytes_left():
        raise GGUFError(
            f"{name} claims {kv_count} metadata entries and {tensor_count} tensors, which "
            f"would make its header larger than the {cur.limit}-byte limit."
        )
    return version, tensor_count, kv_count


def _bad_magic_message(name: str, magic: bytes) -> str:
    hint = ""
    if magic == b"vers":
        hint = " It looks like a Git LFS pointer: the download fetched the placeholder."
    elif magic.lower().startswith((b"<!do", b"<htm", b"{")):
        hint = " It looks like a web page or an error message, not a model."
    elif magic in (b"lmgg", b"fmgg", b"tjgg"):
        hint = " It is an old GGML/GGJT model; llama.cpp needs it converted to GGUF."
    return f"{name} is not a GGUF file: it starts with {_shown_bytes(magic)}, not \"GGUF\".{hint}"


def _shown_bytes(data: bytes) -> str:
    """The first bytes of a file as a person reads them: "GGML" when they are plain letters,
    else hex ("the bytes 50 4b 03 04"), never a Python literal such as b'GGML'."""
    if data and all(0x20 < b < 0x7F for b in data):
        return f'"{data.decode("ascii")}"'
    return "the bytes " + " ".join(f"{b:02x}" for b in data)


def _read_metadata(cur: _Cursor, kv_count: int) -> tuple[dict[str, MetaValue], int]:
    name = cur.name
    metadata: dict[str, MetaValue] = {}
    alignment = 32  # GGUF_DEFAULT_ALIGNMENT when general.alignment is absent
    for index in range(kv_count):
        key_offset = cur.offset
        key = cur.string(f"metadata key #{index}", MAX_KEY_BYTES, "keys may be")
        if not key:
            raise GGUFError(f"In {name}, metadata key #{index} at offset {key_offset} is empty.")
        if key in metadata:
            raise GGUFError(
                f"In {name}, metadata key {key!r} at offset {key_offset} appears twice."
            )
        value_type = cur.u32(f"the value type of key {key!r}")
        value = _read_value(cur, key, value_type)
        metadata[key] = value

        if key == "general.alignment":
            if value_type != _TYPE_UINT32:
                raise GGUFError(
                    f"In {name}, general.alignment is stored as "
                    f"{_TYPE_NAMES.get(value_type, value_type)}; it must be a uint32."
                )
            assert isinstance(value, int)  # a uint32 value is always an int
            if value <= 0 or value & (value - 1):
                raise GGUFError(
                    f"In {name}, general.alignment is {value}; it must be a positive power of two."
                )
            alignment = value
        elif key == "general.architecture" and not isinstance(value, str):
            raise GGUFError(f"In {name}, general.architecture is not a string.")

    architecture = metadata.get("general.architecture")
    if isinstance(architecture, str):
        block_key = f"{architecture}.block_count"
        blocks = metadata.get(block_key)
        if blocks is not None:
            if not isinstance(blocks, int) or isinstance(blocks, bool):
                raise GGUFError(f"In {name}, {block_key} is not a whole number.")
            if not 0 <= blocks <= MAX_BLOCK_COUNT:
                raise GGUFError(
                    f"In {name}, {block_key} is {blocks}; it must be between 0 and "
                    f"{MAX_BLOCK_COUNT} (no real model has more blocks), so the file is "
                    "probably damaged."
                )
    return metadata, alignment


def _read_value(cur: _Cursor, key: str, value_type: int) -> MetaValue:
    scalar = _SCALAR_STRUCTS.get(value_type)
    if scalar is not None:
        offset = cur.offset
        cur.require(scalar.size, f"the value of key {key!r}")
        (value,) = scalar.unpack_from(cur.buf, cur.pos)
        cur.pos += scalar.size
        if value_type == _TYPE_BOOL:
            if value > 1:
                raise GGUFError(
                    f"In {cur.name}, the bool value of key {key!r} at offset {offset} "
                    f"is {value}; it must be 0 or 1."
                )
            return bool(value)
        number: int | float = value
        return number
    if value_type == _TYPE_STRING:
        return cur.string(f"the value of key {key!r}", MAX_STRING_BYTES, "strings may be")
    if value_type == _TYPE_ARRAY:
        return _read_array(cur, key)
    raise GGUFError(
        f"In {cur.name}, key {key!r} has unknown value type {value_type} "
        f"at offset {cur.offset - 4}."
    )


def _read_array(cur: _Cursor, key: str) -> tuple[MetaScalar, ...] | LargeArray:
    name = cur.name
    start = cur.offset
    item_type = cur.u32(f"the item type of array {key!r}")
    count = cur.u64(f"the length of array {key!r}")
    if item_type == _TYPE_ARRAY:
        raise GGUFError(
            f"In {name}, key {key!r} at offset {start} is an array of arrays, "
            "which GGUF readers do not support."
        )
    if item_type != _TYPE_STRING and item_type not in _SCALARS:
        raise GGUFError(
            f"In {name}, array {key!r} at offset {start} has unknown item type {item_type}."
        )
    item_bytes = 8 if item_type == _TYPE_STRING else _SCALARS[item_type][1]  # minimum per item
    file_left = cur.file_size - cur.offset
    if count * item_bytes > file_left:
        raise GGUFError(
            f"In {name}, array {key!r} at offset {start} claims {count} items, more than "
            f"the {file_left} bytes left in the file can hold."
        )
    if count * item_bytes > cur.bytes_left():
        raise GGUFError(
            f"In {name}, array {key!r} at offset {start} claims {count} items, which would "
            f"make the header larger than the {cur.limit}-byte limit."
        )

    if item_type == _TYPE_STRING:
        keep = count <= KEEP_STRING_ITEMS and count <= cur.kept_items_left
        strings = _read_string_items(cur, key, count, keep)
        if strings is None:
            return LargeArray("string", count)
        cur.kept_items_left -= count
        return strings

    code, size, type_name = _SCALARS[item_type]
    n_bytes = count * size
    cur.require(n_bytes, f"the items of array {key!r}")
    raw_offset = cur.pos
    cur.pos += n_bytes
    if item_type == _TYPE_BOOL:
        # Any byte other than 0 or 1; delete the good ones and see what is left.
        bad = cur.buf[raw_offset : raw_offset + n_bytes].translate(None, b"\x00\x01")
        if bad:
            raise GGUFError(
                f"In {name}, bool array {key!r} at offset {start} holds the value {bad[0]}; "
                "bools must be 0 or 1."
            )
    if count > KEEP_NUMERIC_ITEMS or count > cur.kept_items_left:
        return LargeArray(type_name, count)
    cur.kept_items_left -= count
    items = struct.unpack_from(f"<{count}{code}", cur.buf, raw_offset)
    if item_type == _TYPE_BOOL:
        return tuple(item == 1 for item in items)
    return items


def _read_string_items(cur: _Cursor, key: str, count: int, keep: bool) -> tuple[str, ...] | None:
    """Walk ``count`` GGUF strings; decode and return them only when ``keep``.

    This is the hot loop of the reader (262144 tokens for Gemma 3), so it works on
    local variables and the raw buffer, calling into the cursor only at chunk edges.
    Strings that are not kept are bounds-checked but not decoded: their text is not
    used, and llama.cpp itself does not require vocabulary entries to be UTF-8.
    """
    items: list[str] = []
    buf = cur.buf
    pos = cur.pos
    end = len(buf)
    for index in range(count):
        if pos + 8 > end:
            cur.pos = pos
            cur.require(8, f"the length of string #{index} in array {key!r}")
            pos, end = cur.pos, len(buf)
        (length,) = _U64(buf, pos)
        if length > MAX_STRING_BYTES:
            raise GGUFError(
                f"In {cur.name}, string #{index} in array {key!r} at offset "
                f"{cur.base + pos} claims to be {length} bytes long; strings may be at "
                f"most {MAX_STRING_BYTES} bytes."
            )
        stop = pos + 8 + length
        if stop > end:
            cur.pos = pos
            cur.require(8 + length, f"string #{index} in array {key!r}")
            pos, end = cur.pos, len(buf)
            stop = pos + 8 + length
        if keep:
            items.append(
                _decode(
                    buf[pos + 8 : stop],
                    cur.name,
                    f"string #{index} in array {key!r}",
                    cur.base + pos,
                )
            )
        pos = stop
    cur.pos = pos
    return tuple(items) if keep else None


def _read_tensor_infos(cur: _Cursor, tensor_count: int, alignment: int) -> tuple[TensorInfo, ...]:
    name = cur.name
    tensors: list[TensorInfo] = []
    seen: set[str] = set()
    for index in range(tensor_count):
        start = cur.offset
        tensor = cur.string(
            f"the name of tensor #{index}", MAX_TENSOR_NAME_BYTES, "llama.cpp allows names of"
        )
        if not tensor:
            raise GGUFError(f"In {name}, tensor #{index} at offset {start} has an empty name.")
        if tensor in seen:
            raise GGUFError(f"In {name}, tensor name {tensor!r} at offset {start} appears twice.")
        seen.add(tensor)

        n_dims = cur.u32(f"the dimension count of tensor {tensor!r}")
        if not 1 <= n_dims <= MAX_DIMS:
            raise GGUFError(
                f"In {name}, tensor {tensor!r} has {n_dims} dimensions; GGML supports "
                f"1 to {MAX_DIMS}."
            )
        cur.require(8 * n_dims, f"the shape of tensor {tensor!r}")
        shape: tuple[int, ...] = struct.unpack_from(f"<{n_dims}Q", cur.buf, cur.pos)
        cur.pos += 8 * n_dims
        for dim in shape:
            if dim == 0 or dim > MAX_ELEMENTS:
                shown = dim - 2**64 if dim > MAX_ELEMENTS else dim  # as the int64 ggml sees
                raise GGUFError(
                    f"In {name}, tensor {tensor!r} has shape {_signed(shape)} with a "
                    f"dimension of {shown}; every dimension must be positive."
                )
        n_elements = math.prod(shape)
        if n_elements > MAX_ELEMENTS:
            raise GGUFError(
                f"In {name}, tensor {tensor!r} has shape {list(shape)}, which is more "
                "elements than GGML can count."
            )

        type_id = cur.u32(f"the type of tensor {tensor!r}")
        try:
            ggml_type = GGMLQuantizationType(type_id)
            block_size, type_size = GGML_QUANT_SIZES[ggml_type]
        except (ValueError, KeyError):
            raise GGUFError(
                f"In {name}, tensor {tensor!r} has unknown GGML type {type_id}; "
                "a newer version of this program may support it."
            ) from None
        if shape[0] % block_size:
            raise GGUFError(
                f"In {name}, tensor {tensor!r} of type {ggml_type.name} has a first "
                f"dimension of {shape[0]}, which is not a multiple of its block size "
                f"{block_size}."
            )

        offset = cur.u64(f"the data offset of tensor {tensor!r}")
        if offset % alignment:
            raise GGUFError(
                f"In {name}, tensor {tensor!r} has data offset {offset}, which is not a "
                f"multiple of the file's alignment {alignment}."
            )
        tensors.append(
            TensorInfo(
                name=tensor,
                shape=shape,
                ggml_type=type_id,
                type_name=ggml_type.name,
                offset=offset,
                n_bytes=n_elements // block_size * type_size,
            )
        )
    return tuple(tensors)


def _signed(shape: tuple[int, ...]) -> list[int]:
    return [d - 2**64 if d > MAX_ELEMENTS else d for d in shape]


def _check_tensor_layout(
    name: str, tensors: tuple[TensorInfo, ...], data_offset: int, file_size: int
) -> None:
    """Tensor data must lie inside the file and no two tensors may share bytes."""
    previous: TensorInfo | None = None
    for tensor in sorted(tensors, key=lambda t: (t.offset, t.n_bytes)):
        end = data_offset + tensor.offset + tensor.n_bytes
        if end > file_size:
            raise GGUFError(
                f"{name} is truncated: tensor {tensor.name!r} ends at byte {end}, but the "
                f"file is only {file_size} bytes long (an incomplete download?)."
            )
        if previous is not None and tensor.offset < previous.offset + previous.n_bytes:
            raise GGUFError(
                f"In {name}, the data of tensors {previous.name!r} and {tensor.name!r} "
                f"overlap (offsets {previous.offset} and {tensor.offset})."
            )
        previous = tensor


def summarize(header: GGUFHeader) -> dict[str, object]:
    """The facts ``inspect`` shows, as plain JSON-able values."""
    architecture = header.get("general.architecture")
    arch = architecture if isinstance(architecture, str) else None

    def arch_value(suffix: str) -> object:
        return _jsonable(header.get(f"{arch}.{suffix}")) if arch else None

    mix: dict[str, dict[str, int]] = {}
    weight_bytes: Counter[str] = Counter()
    block_weight_bytes: Counter[str] = Counter()
    for tensor in header.tensors:
        entry = mix.setdefault(tensor.type_name, {"tensors": 0, "bytes": 0})
        entry["tensors"] += 1
        entry["bytes"] += tensor.n_bytes
        if len(tensor.shape) >= 2:  # matrices carry the quantization; norms stay F32
            weight_bytes[tensor.type_name] += tensor.n_bytes
            if tensor.name.startswith("blk."):
                block_weight_bytes[tensor.type_name] += tensor.n_bytes
    # The repeating blocks say what a quantization really is: a small model's huge
    # token embedding (Q8_0 in Gemma 3 270M's Q4_K_M) would otherwise outweigh them.
    main_weights = block_weight_bytes or weight_bytes
    ordered_mix = dict(sorted(mix.items(), key=lambda item: -item[1]["bytes"]))

    file_type = header.get("general.file_type")
    file_type_label: str | None = None
    if isinstance(file_type, int) and not isinstance(file_type, bool):
        try:
            label = LlamaFileType(file_type).name
            file_type_label = label.removeprefix("MOSTLY_").removeprefix("ALL_")
        except ValueError:
            file_type_label = f"unknown ({file_type})"

    tokens = header.get("tokenizer.ggml.tokens")
    if isinstance(tokens, LargeArray):
        vocab_size: int | None = tokens.count
    elif isinstance(tokens, tuple):
        vocab_size = len(tokens)
    else:
        vocab_size = None

    return {
        "architecture": arch,
        "name": _jsonable(header.get("general.name")),
        "parameter_count": sum(t.n_elements for t in header.tensors),
        "quantization_mix": ordered_mix,
        "main_weight_type": main_weights.most_common(1)[0][0] if main_weights else None,
        "file_type": file_type_label,
        "block_count": arch_value("block_count"),
        "context_length": arch_value("context_length"),
        "embedding_length": arch_value("embedding_length"),
        "head_count": arch_value("attention.head_count"),
        "head_count_kv": arch_value("attention.head_count_kv"),
        "vocab_size": vocab_size,
        "chat_template": isinstance(header.get("tokenizer.chat_template"), str),
        "tensor_count": len(header.tensors),
        "tensor_bytes": header.tensor_bytes,
        "gguf_version": header.version,
        "alignment": header.alignment,
        "file_size": header.file_size,
        "header_bytes": header.data_offset,
        "header_bytes_read": header.bytes_read,
    }


def _jsonable(value: MetaValue | None) -> object:
    if isinstance(value, LargeArray):
        return {"item_type": value.item_type, "count": value.count}
    if isinstance(value, tuple):
        return list(value)
    return value
