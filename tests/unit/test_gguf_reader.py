"""Tests for the bounded GGUF header reader (desktop.core.gguf).

Three kinds of evidence: files written by the ``gguf`` package's own writer agree
with its own reader; one hand-built file per kind of damage is refused with a
sentence naming the problem; and random, truncated and bit-flipped files never
escape as anything but GGUFError, within a time and memory bound.
"""

from __future__ import annotations

import json
import re
import struct
import time
import tracemalloc
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf_builders import (
    ARRAY,
    BOOL,
    F16,
    F32,
    FLOAT32,
    INT32,
    Q4_K,
    Q8_0,
    STRING,
    UINT8,
    UINT32,
    UINT64,
    gguf_file,
    gstr,
    kv,
    kv_array,
    kv_raw,
    small_model,
    tensor_info,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from desktop.core.gguf import (
    BytesSource,
    CallbackRangeSource,
    FileSource,
    GGUFError,
    GGUFHeader,
    LargeArray,
    TensorInfo,
    read_header,
    read_header_file,
    summarize,
)

MAX_SECONDS_PER_PARSE = 1.0
MAX_PEAK_BYTES = 70 * 1024 * 1024
MiB = 1024 * 1024


def _write_with_gguf_writer(path: Path, *, small: bool) -> Path:
    """A llama-like model written by gguf.GGUFWriter, with F32, F16, Q8_0 and Q4_K tensors.

    ``small`` makes a ~3 KB file (every truncation of it is tried); otherwise the
    file also has arrays long enough to become LargeArray.
    """
    rng = np.random.default_rng(7)
    vocab, width = (4, 32) if small else (300, 64)
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_custom_alignment(64)
    writer.add_name("tiny test model")
    writer.add_block_count(2)
    writer.add_context_length(128)
    writer.add_embedding_length(width)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    writer.add_chat_template("{% for m in messages %}{{ m.content }}{% endfor %}")
    writer.add_token_list([f"tok{i}-é" for i in range(vocab)])
    writer.add_token_scores([float(-i) for i in range(vocab)])
    writer.add_bool("test.flag", True)
    writer.add_uint8("test.u8", 200)
    writer.add_int8("test.i8", -100)
    writer.add_uint16("test.u16", 60000)
    writer.add_int16("test.i16", -30000)
    writer.add_uint64("test.u64", 2**63 + 5)
    writer.add_int64("test.i64", -(2**40))
    writer.add_float64("test.f64", 1.0 / 3.0)
    writer.add_array("test.bools", [True, False, True])
    writer.add_array("test.ints", [1, -2, 3])
    if not small:
        writer.add_array("test.big_ints", list(range(70000)))
        writer.add_array("test.big_strings", [str(i) for i in range(5000)])

    writer.add_tensor("token_embd.weight", rng.standard_normal((vocab, width)).astype(np.float16))
    q8_rows, q4k_rows = (2, 1) if small else (64, 32)
    for block in range(2):
        norm = rng.standard_normal(width).astype(np.float32)
        writer.add_tensor(f"blk.{block}.attn_norm.weight", norm)
        q8 = gguf.quants.quantize(
            rng.standard_normal((q8_rows, width)).astype(np.float32),
            gguf.GGMLQuantizationType.Q8_0,
        )
        writer.add_tensor(
            f"blk.{block}.attn_q.weight", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0
        )
        # Q4_K has no numpy quantizer; random block bytes do, nothing dequantizes them.
        q4k_blocks = rng.integers(0, 256, size=(q4k_rows, 144), dtype=np.uint8)
        writer.add_tensor(
            f"blk.{block}.ffn_up.weight", q4k_blocks, raw_dtype=gguf.GGMLQuantizationType.Q4_K
        )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def written_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    return _write_with_gguf_writer(path, small=False)


@pytest.fixture(scope="module")
def tiny_model_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A few-KB real file, small enough to try every truncation of."""
    path = tmp_path_factory.mktemp("gguf") / "smallest.gguf"
    return _write_with_gguf_writer(path, small=True).read_bytes()


def parse_bounded(
    source: BytesSource | CallbackRangeSource, *, trace_memory: bool = True
) -> GGUFHeader | None:
    """Parse, allowing only GGUFError to escape, and check the time and memory it took.

    tracemalloc slows the 262k-token vocabulary walk ~15x, so for big headers the
    caller can check time alone (memory there is covered by test_memory_at_header_cap).
    """
    if trace_memory:
        tracemalloc.start()
    try:
        started = time.perf_counter()
        try:
            header: GGUFHeader | None = read_header(source)
        except GGUFError as exc:
            assert str(exc), "a GGUFError must carry a message"
            header = None
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] if trace_memory else 0
    finally:
        if trace_memory:
            tracemalloc.stop()
    assert elapsed < MAX_SECONDS_PER_PARSE, f"parse took {elapsed:.2f} s"
    assert peak < MAX_PEAK_BYTES, f"parse peaked at {peak} bytes"
    return header


def padded_source(prefix: bytes, size: int) -> CallbackRangeSource:
    """A file of ``size`` bytes that starts with ``prefix`` and is zeros after it."""

    def fetch(offset: int, length: int) -> bytes:
        chunk = prefix[offset : offset + length]
        return chunk + b"\0" * (length - len(chunk))

    return CallbackRangeSource(size, fetch, name="virtual.gguf")


def expected_metadata(field: gguf.ReaderField) -> object:
    """What our reader should report for one field of gguf.GGUFReader."""
    contents = field.contents()
    if field.types[0] != gguf.GGUFValueType.ARRAY:
        return contents
    item_type = field.types[-1]
    limit = 4096 if item_type == gguf.GGUFValueType.STRING else 65536
    if len(field.data) > limit:
        return LargeArray(item_type.name.lower(), len(field.data))
    return tuple(contents)


def assert_matches_gguf_reader(header: GGUFHeader, path: Path) -> None:
    reader = gguf.GGUFReader(path)
    assert header.data_offset == reader.data_offset
    assert header.alignment == reader.alignment
    assert len(header.tensors) == len(reader.tensors)
    for ours, theirs in zip(header.tensors, reader.tensors, strict=True):
        assert ours.name == theirs.name
        assert ours.shape == tuple(int(d) for d in theirs.shape)
        assert ours.ggml_type == int(theirs.tensor_type)
        assert ours.type_name == theirs.tensor_type.name
        assert ours.n_elements == theirs.n_elements
        assert ours.n_bytes == theirs.n_bytes
        assert header.data_offset + ours.offset == theirs.data_offset
    fields = {k: f for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    assert set(header.metadata) == set(fields)
    for key, field in fields.items():
        assert header.metadata[key] == expected_metadata(field), key


# --- Files from the gguf package's own writer --------------------------------------------------


def test_writer_file_matches_gguf_reader(written_model: Path) -> None:
    header = read_header_file(written_model)
    assert_matches_gguf_reader(header, written_model)
    assert header.version == 3
    assert header.alignment == 64
    assert {t.type_name for t in header.tensors} == {"F16", "F32", "Q8_0", "Q4_K"}
    assert header.file_size == written_model.stat().st_size


def test_writer_file_values(written_model: Path) -> None:
    header = read_header_file(written_model)
    assert header.architecture == "llama"
    assert header.arch_key("block_count") == 2
    assert header.arch_key("no_such_key", 5) == 5
    assert header.get("test.flag") is True
    assert header.get("test.u64") == 2**63 + 5
    assert header.get("test.i64") == -(2**40)
    assert header.get("test.bools") == (True, False, True)
    assert header.get("test.ints") == (1, -2, 3)
    assert header.get("test.big_ints") == LargeArray("int32", 70000)
    assert header.get("test.big_strings") == LargeArray("string", 5000)
    tokens = header.get("tokenizer.ggml.tokens")
    assert isinstance(tokens, tuple)
    assert tokens[:2] == ("tok0-é", "tok1-é")
    q4k = next(t for t in header.tensors if t.type_name == "Q4_K")
    assert q4k == TensorInfo("blk.0.ffn_up.weight", (256, 32), Q4_K, "Q4_K", q4k.offset, 32 * 144)
    assert header.tensor_bytes == sum(t.n_bytes for t in header.tensors)


def test_summarize_writer_file(written_model: Path) -> None:
    summary = summarize(read_header_file(written_model))
    json.dumps(summary)  # plain JSON-able values only
    assert summary["architecture"] == "llama"
    assert summary["name"] == "tiny test model"
    assert summary["file_type"] == "Q8_0"
    assert summary["main_weight_type"] == "Q4_K"  # most bytes of the blocks' matrices
    assert summary["block_count"] == 2
    assert summary["context_length"] == 128
    assert summary["embedding_length"] == 64
    assert summary["head_count"] == 4
    assert summary["head_count_kv"] == 2
    assert summary["vocab_size"] == 300
    assert summary["chat_template"] is True
    assert summary["tensor_count"] == 7
    assert summary["parameter_count"] == 300 * 64 + 2 * (64 + 64 * 64 + 256 * 32)
    mix = summary["quantization_mix"]
    assert isinstance(mix, dict)
    assert mix["Q8_0"] == {"tensors": 2, "bytes": 2 * 64 * 68}
    assert mix["F16"] == {"tensors": 1, "bytes": 300 * 64 * 2}


def test_sources_agree(written_model: Path) -> None:
    data = written_model.read_bytes()
    from_file = read_header_file(written_model)
    from_bytes = read_header(BytesSource(data))
    from_callback = read_header(CallbackRangeSource(len(data), lambda o, n: data[o : o + n]))
    assert from_file.metadata == from_bytes.metadata == from_callback.metadata
    assert from_file.tensors == from_bytes.tensors == from_callback.tensors


def test_file_source_opens_lazily_and_closes(written_model: Path) -> None:
    with FileSource(written_model) as source:
        assert source._file is None  # nothing opened until the first read
        read_header(source)
        assert source._file is not None
    assert source._file is None


# --- Reading only what is needed ----------------------------------------------------------------


def test_reads_only_the_first_chunk_of_a_huge_file() -> None:
    # A 4 GiB tensor behind a tiny header: one 1 MiB request, tensor data never fetched.
    prefix = gguf_file(
        [kv("general.architecture", STRING, "llama")], [tensor_info("huge", [2**30], F32, 0)]
    )
    source = padded_source(prefix, len(prefix) + 4 * 2**30)
    header = read_header(source)
    assert header.tensors[0].n_bytes == 4 * 2**30
    assert header.read_requests == source.requests == 1
    assert header.bytes_read == source.bytes_fetched == MiB


def test_header_larger_than_first_chunk_is_read_in_growing_chunks() -> None:
    tokens = [f"token-{i:07d}" for i in range(140_000)]  # 2.94 MB: more than 1 MiB, < 3 MiB
    data = gguf_file([kv_array("tokenizer.ggml.tokens", STRING, tokens)]) + b"\0" * (8 * MiB)
    source = CallbackRangeSource(len(data), lambda o, n: data[o : o + n])
    header = read_header(source)
    assert header.get("tokenizer.ggml.tokens") == LargeArray("string", 140_000)
    assert source.requests == 2  # 1 MiB, then 2 MiB
    assert header.bytes_read == 3 * MiB


def test_gemma_header(gemma_path: Path) -> None:
    # How fast it parses is tests/bench/bench_quick_paths.py's figure (target < 1 s).
    header = read_header_file(gemma_path)
    assert header.bytes_read < 10_000_000
    assert header.bytes_read < header.file_size / 20
    assert header.architecture == "gemma3"
    assert header.get("tokenizer.ggml.tokens") == LargeArray("string", 262144)
    assert_matches_gguf_reader(header, gemma_path)
    summary = summarize(header)
    assert summary["vocab_size"] == 262144
    assert summary["file_type"] == "Q4_K_M"
    assert summary["block_count"] == 18
    assert summary["main_weight_type"] == "Q5_0"  # 640 columns: too narrow for K-quant blocks


# --- One hand-built file per kind of damage ------------------------------------------------------


def _model_with_tensor(*tensors: bytes, data_bytes: int = 4096) -> bytes:
    return gguf_file([kv("general.architecture", STRING, "llama")], tensors, data_bytes=data_bytes)


def _preamble(version: int, tensor_count: int, kv_count: int) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, tensor_count, kv_count)


BAD_FILES: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "too short"),
    "truncated preamble": (b"GGUF\x03\x00\x00\x00\x01", "truncated"),
    "truncated in key": (gguf_file([kv("general.architecture", STRING, "x")])[:40], "truncated"),
    "truncated tensor data": (small_model()[:-1], "ends at byte"),
    "bad magic": (b"GGML" + bytes(100), "not a GGUF file"),
    "lfs pointer": (b"version https://git-lfs.github.com/spec/v1\n", "Git LFS"),
    "version 1": (_preamble(1, 0, 0), "version 1"),
    "version 4": (_preamble(4, 0, 0), "version 4"),
    "big-endian": (_preamble(3 << 24, 0, 0), "big-endian"),
    "huge kv count": (_preamble(3, 0, 2**64 - 1), "metadata entries"),
    "negative tensor count": (_preamble(3, 2**63, 0), "tensors"),
    "counts together too many": (
        gguf_file([kv("a", UINT8, 1)], kv_count=1, tensor_count=1),
        "at least",
    ),
    "key beyond file": (gguf_file([struct.pack("<Q", 1000) + b"abc"]), "truncated"),
    "key too long": (gguf_file([struct.pack("<Q", 70000) + b"k" * 70000]), "at most 65535"),
    "value string too long": (
        gguf_file([kv_raw("s", STRING, struct.pack("<Q", 17 * MiB))]),
        "at most 16777216",
    ),
    "value string beyond file": (
        gguf_file([kv_raw("s", STRING, struct.pack("<Q", 5000) + b"x")]),
        "truncated",
    ),
    "invalid utf-8 key": (gguf_file([kv(b"bad\xffkey", UINT8, 1)]), "not valid UTF-8"),
    "invalid utf-8 value": (gguf_file([kv("name", STRING, b"\xc3\x28")]), "not valid UTF-8"),
    "invalid utf-8 in kept array": (
        gguf_file([kv_array("arr", STRING, ["ok", b"\xe2\x82"])]),
        "string #1",
    ),
    "empty key": (gguf_file([kv("", UINT8, 1)]), "is empty"),
    "duplicate key": (gguf_file([kv("a.b", UINT8, 1), kv("a.b", UINT8, 2)]), "appears twice"),
    "unknown value type": (gguf_file([kv_raw("k", 13, b"\0" * 8)]), "unknown value type 13"),
    "unknown array item type": (
        gguf_file([kv_raw("k", ARRAY, struct.pack("<IQ", 42, 1))]),
        "unknown item type 42",
    ),
    "nested arrays": (
        gguf_file([kv_raw("k", ARRAY, struct.pack("<IQ", ARRAY, 1) + bytes(12))]),
        "array of arrays",
    ),
    "array count beyond file": (
        gguf_file([kv_array("k", INT32, [1, 2], count=10**6)]),
        "claims 1000000 items",
    ),
    "string array count beyond file": (
        gguf_file([kv_array("k", STRING, ["a"], count=2**62)]),
        "more than",
    ),
    "string in array too long": (
        gguf_file([kv_raw("k", ARRAY, struct.pack("<IQQ", STRING, 1, 2**40))]),
        "at most 16777216",
    ),
    "bool not 0/1": (gguf_file([kv("flag", BOOL, 2)]), "must be 0 or 1"),
    "bool array not 0/1": (gguf_file([kv_array("flags", BOOL, [0, 1, 7])]), "0 or 1"),
    "alignment zero": (gguf_file([kv("general.alignment", UINT32, 0)]), "power of two"),
    "alignment not power of two": (
        gguf_file([kv("general.alignment", UINT32, 48)]),
        "power of two",
    ),
    "alignment wrong type": (gguf_file([kv("general.alignment", UINT64, 32)]), "uint32"),
    "alignment string": (gguf_file([kv("general.alignment", STRING, "32")]), "uint32"),
    "architecture not a string": (
        gguf_file([kv("general.architecture", UINT32, 1)]),
        "not a string",
    ),
    "block count too high": (
        gguf_file(
            [kv("general.architecture", STRING, "llama"), kv("llama.block_count", UINT32, 513)]
        ),
        "block_count is 513",
    ),
    "block count not a number": (
        gguf_file(
            [kv("general.architecture", STRING, "llama"), kv("llama.block_count", STRING, "2")]
        ),
        "not a whole number",
    ),
    "five dimensions": (
        _model_with_tensor(tensor_info("t", [1, 1, 1, 1, 1], F32, 0)),
        "5 dimensions",
    ),
    "zero dimensions": (_model_with_tensor(tensor_info("t", [], F32, 0)), "0 dimensions"),
    "zero dim": (_model_with_tensor(tensor_info("t", [4, 0], F32, 0)), "dimension of 0"),
    "negative dim": (
        _model_with_tensor(tensor_info("t", [4, 2**64 - 1], F32, 0)),
        "dimension of -1",
    ),
    "element count overflow": (
        _model_with_tensor(tensor_info("t", [2**31] * 3, F32, 0)),
        "more elements",
    ),
    "unknown tensor type": (
        _model_with_tensor(tensor_info("t", [32], 999, 0)),
        "unknown GGML type 999",
    ),
    "removed tensor type": (
        _model_with_tensor(tensor_info("t", [32], 4, 0)),
        "unknown GGML type 4",
    ),
    "ne0 not block multiple": (
        _model_with_tensor(tensor_info("t", [33, 2], Q8_0, 0)),
        "not a multiple of its block size 32",
    ),
    "misaligned offset": (_model_with_tensor(tensor_info("t", [8], F32, 4)), "alignment 32"),
    "overlapping tensors": (
        _model_with_tensor(tensor_info("a", [64], F32, 0), tensor_info("b", [64], F16, 128)),
        "overlap",
    ),
    "tensor past end of file": (
        _model_with_tensor(tensor_info("t", [2048], F32, 0)),
        "ends at byte",
    ),
    "duplicate tensor name": (
        _model_with_tensor(tensor_info("t", [8], F32, 0), tensor_info("t", [8], F32, 32)),
        "appears twice",
    ),
    "empty tensor name": (_model_with_tensor(tensor_info("", [8], F32, 0)), "empty name"),
    "tensor name too long": (_model_with_tensor(tensor_info("n" * 64, [8], F32, 0)), "at most 63"),
}


@pytest.mark.parametrize(("data", "fragment"), BAD_FILES.values(), ids=BAD_FILES.keys())
def test_damaged_file_is_refused(data: bytes, fragment: str) -> None:
    with pytest.raises(GGUFError, match=re.escape(fragment)):
        read_header(BytesSource(data, name="bad.gguf"))


def test_messages_say_where() -> None:
    data = gguf_file([kv("a", UINT8, 1), kv("flag", BOOL, 3)])
    with pytest.raises(GGUFError) as info:
        read_header(BytesSource(data, name="model.gguf"))
    message = str(info.value)
    offset = 24 + len(kv("a", UINT8, 1)) + len(gstr("flag")) + 4
    assert "model.gguf" in message
    assert "'flag'" in message
    assert f"offset {offset}" in message


def test_header_above_limit() -> None:
    with pytest.raises(GGUFError, match="larger than the 64-byte limit"):
        read_header(BytesSource(small_model()), max_header_bytes=64)


def test_array_count_beyond_header_limit_is_refused_without_walking() -> None:
    # 2**40 zero-length strings would fit a 16 TiB file but not a 64 MiB header.
    prefix = gguf_file([kv_raw("k", ARRAY, struct.pack("<IQ", STRING, 2**40))])
    source = padded_source(prefix, 2**44)
    started = time.perf_counter()
    with pytest.raises(GGUFError, match="larger than the 67108864-byte limit"):
        read_header(source)
    assert time.perf_counter() - started < MAX_SECONDS_PER_PARSE
    assert source.requests == 1


def test_memory_at_header_cap() -> None:
    # The worst a hostile header can do: fill the whole cap with values that are kept.
    cap = 8 * MiB
    big_value = "x" * (MiB - 64)
    prefix = gguf_file(
        [kv(f"k{i}", STRING, big_value) for i in range(12)], kv_count=10_000, data_bytes=0
    )
    source = padded_source(prefix, 2**34)
    tracemalloc.start()
    try:
        with pytest.raises(GGUFError, match="larger than the 8388608-byte limit"):
            read_header(source, max_header_bytes=cap)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert source.bytes_fetched <= cap
    assert peak < 4 * cap, peak


def test_architecture_missing() -> None:
    header = read_header(BytesSource(gguf_file([kv("general.name", STRING, "x")])))
    with pytest.raises(GGUFError, match=r"general\.architecture"):
        _ = header.architecture
    with pytest.raises(GGUFError, match=r"general\.architecture"):
        header.arch_key("block_count")
    assert header.get("general.name") == "x"
    assert header.get("missing") is None
    assert summarize(header)["architecture"] is None


def test_missing_file() -> None:
    with pytest.raises(GGUFError, match="Could not read"):
        read_header_file("/nonexistent/model.gguf")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(GGUFError, match="Could not read"):
        read_header_file(tmp_path)


def test_source_raising_oserror() -> None:
    def fetch(offset: int, length: int) -> bytes:
        raise ConnectionResetError("connection reset by peer")

    with pytest.raises(GGUFError, match=r"Could not read remote\.gguf at offset 0: connection"):
        read_header(CallbackRangeSource(1000, fetch, name="remote.gguf"))


def test_source_shorter_than_its_size() -> None:
    data = small_model()
    source = CallbackRangeSource(len(data) + 100, lambda o, n: data[o : o + n])
    with pytest.raises(GGUFError, match="changed while being read"):
        read_header(source)


def test_source_returning_short_reads_is_fine() -> None:
    data = small_model()

    def dribble(offset: int, length: int) -> bytes:
        return data[offset : offset + min(length, 7)]

    header = read_header(CallbackRangeSource(len(data), dribble))
    assert header.get("general.name") == "tiny"
    assert header.read_requests == -(-len(data) // 7)


def test_small_model_values() -> None:
    header = read_header(BytesSource(small_model(blocks=3)))
    assert header.version == 3
    assert header.get("tokenizer.ggml.tokens") == ("<s>", "</s>", "a", "b", "ü")
    assert header.get("tokenizer.ggml.scores") == (0.0, -1.0, -2.5, 3.0, 0.5)
    assert header.get("tokenizer.ggml.add_bos_token") is True
    assert [t.offset for t in header.tensors] == [0, 128, 256]
    assert header.data_offset % 32 == 0
    assert header.data_offset + 3 * 128 == header.file_size


def test_kept_array_items_are_budgeted_across_the_header() -> None:
    # 17 arrays of 65536 items: each short enough to keep, together over the 2**20 budget.
    arrays = [kv_array(f"a{i}", UINT8, [i] * 65536) for i in range(17)]
    header = read_header(BytesSource(gguf_file(arrays)))
    assert all(isinstance(header.get(f"a{i}"), tuple) for i in range(16))
    assert header.get("a16") == LargeArray("uint8", 65536)


def test_callback_returning_too_much_is_cut_to_the_request() -> None:
    data = small_model()
    source = CallbackRangeSource(len(data), lambda offset, length: data[offset:] + b"junk")
    assert source.read(10, 4) == data[10:14]
    assert read_header(source).get("general.name") == "tiny"


def test_version_2_is_accepted() -> None:
    header = read_header(BytesSource(gguf_file([kv("k", FLOAT32, 1.5)], version=2)))
    assert header.version == 2
    assert header.get("k") == 1.5


# --- Properties: anything in, GGUFHeader or GGUFError out, quickly and in bounded memory -------

FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    parse_bounded(BytesSource(data))


@FUZZ
@given(st.sampled_from([2, 3]), st.binary(max_size=4096))
def test_random_bytes_after_valid_preamble(version: int, rest: bytes) -> None:
    parse_bounded(BytesSource(b"GGUF" + struct.pack("<I", version) + rest))


def test_every_truncation(tiny_model_bytes: bytes) -> None:
    assert 1000 < len(tiny_model_bytes) < 8192
    full = read_header(BytesSource(tiny_model_bytes))
    # The writer pads after the last tensor; cutting only that padding leaves a good file.
    data_end = full.data_offset + max(t.offset + t.n_bytes for t in full.tensors)
    for end in range(len(tiny_model_bytes) + 1):
        header = parse_bounded(BytesSource(tiny_model_bytes[:end]))
        assert (header is not None) == (end >= data_end), end
        if header is not None:
            assert header.tensors == full.tensors


@FUZZ
@given(st.data())
def test_byte_flips(tiny_model_bytes: bytes, data: st.DataObject) -> None:
    header_end = read_header(BytesSource(tiny_model_bytes)).data_offset
    flips = data.draw(
        st.lists(st.tuples(st.integers(0, header_end - 1), st.integers(0, 255)), max_size=6)
    )
    damaged = bytearray(tiny_model_bytes)
    for position, byte in flips:
        damaged[position] = byte
    parse_bounded(BytesSource(bytes(damaged)))


@pytest.fixture(scope="module")
def gemma_header_bytes(gemma_path: Path) -> tuple[bytes, int]:
    header = read_header_file(gemma_path)
    with gemma_path.open("rb") as file:
        return file.read(header.data_offset), header.file_size


@settings(FUZZ, max_examples=40)
@given(st.data())
def test_byte_flips_in_gemma_header(
    gemma_header_bytes: tuple[bytes, int], data: st.DataObject
) -> None:
    prefix, file_size = gemma_header_bytes
    # Most of the header is the vocabulary; aim half the flips at the first 4 KiB of keys.
    position = st.one_of(st.integers(0, 4095), st.integers(0, len(prefix) - 1))
    flips = data.draw(st.lists(st.tuples(position, st.integers(0, 255)), min_size=1, max_size=4))
    damaged = bytearray(prefix)
    for index, byte in flips:
        damaged[index] = byte
    parse_bounded(padded_source(bytes(damaged), file_size), trace_memory=False)
