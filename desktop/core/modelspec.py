"""ModelSpec: the numbers the estimator needs, from a GGUF header or from the catalog.

From a header the spec is exact: every tensor's byte size, grouped by the layer llama.cpp puts
it on (``blk.N.*`` -> repeating layer N, ``token_embd`` -> the input layer, which llama.cpp
always keeps on the CPU, everything else -> the output layer). From the catalog, before any
byte is downloaded, the per-layer sizes are derived from the file size and the architecture
numbers, and the spec says so (``source == "catalog"``).

Hyper-parameters are read the way llama.cpp reads them (src/llama-model.cpp, the
``src/models/<arch>.cpp`` loaders and src/llama-hparams.cpp): per-layer arrays for head counts
where the file gives them, key/value head sizes defaulting to ``n_embd / n_head``, the
sliding-window layer pattern each architecture sets with ``set_swa_pattern``, MLA (compressed
KV: one K row of ``kv_lora_rank + rope dims`` and no V), and recurrent layers that keep a fixed
state instead of a KV cache.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from desktop.core.chat_kind import base_model_reason
from desktop.core.gguf import GGUFError, GGUFHeader, LargeArray, TensorInfo

#: Architectures whose loader calls ``load_swa_pattern(ml, n, dense_first)`` when the file has a
#: sliding window: every n-th layer uses full attention, the others the window
#: (llama.cpp src/models/<arch>.cpp). The GGUF key ``<arch>.attention.sliding_window_pattern``
#: overrides the default (an int n, or a per-layer bool array).
SWA_PATTERNS: Mapping[str, tuple[int, bool]] = {
    "gemma2": (2, False),
    "gemma3": (6, False),
    "gemma3n": (5, False),
    "gemma-embedding": (6, False),
    "cohere2": (4, False),
    "gpt-oss": (2, False),
    "llama4": (4, False),
    "exaone4": (4, False),
    "olmo2": (4, False),
    "afmoe": (4, False),
    "plamo3": (8, False),
    "smallthinker": (4, True),
}

#: Architectures that ignore a sliding window given in the file (phi3 sets swa_type NONE).
SWA_IGNORED = frozenset({"phi3"})

#: gemma2 uses a 4096-token window when the file does not say (src/models/gemma2.cpp).
SWA_DEFAULT_WINDOW: Mapping[str, int] = {"gemma2": 4096}

_BLOCK_RE = re.compile(r"^blk\.(\d+)\.")
_EXPERT_RE = re.compile(r"_exps\.|_shexp\.|\.ffn_(gate|up|down|gate_up)_exps")
_INPUT_TENSORS = frozenset({"token_embd.weight", "token_embd_norm.weight", "token_types.weight"})


@dataclass(frozen=True)
class TensorSlice:
    """The part of one tensor the estimator needs: where it is, how it is stored, how big."""

    name: str
    type_name: str  # "Q4_K", "F16", ...
    shape: tuple[int, ...]  # GGUF order: ne0 (row length) first
    offset: int  # absolute file offset of the data
    n_bytes: int

    @property
    def rows(self) -> int:
        """ne[1]: llama.cpp's repack kernels need it to be a multiple of 8 (or 4)."""
        return self.shape[1] if len(self.shape) > 1 else 1


@dataclass(frozen=True)
class LayerSpec:
    """One repeating block: its attention shape and the bytes of its tensors."""

    index: int
    n_head: int
    n_head_kv: int  # 0: a recurrent layer with no KV cache
    head_dim_k: int  # per KV head; for MLA the compressed row (kv_lora_rank + rope dims)
    head_dim_v: int  # 0 for MLA (no V cache)
    is_swa: bool
    is_recurrent: bool
    weight_bytes: int  # all tensors of blk.N
    expert_bytes: int  # of which: routed-expert tensors (MoE)
    tensors: tuple[TensorSlice, ...] = ()

    @property
    def n_embd_k_gqa(self) -> int:
        return self.head_dim_k * self.n_head_kv

    @property
    def n_embd_v_gqa(self) -> int:
        return self.head_dim_v * self.n_head_kv


@dataclass(frozen=True)
class RecurrentState:
    """Per-layer recurrent state sizes in f32 elements (llama_hparams::n_embd_r / n_embd_s)."""

    conv_elements: int
    state_elements: int


@dataclass(frozen=True)
class ModelSpec:
    """What the estimator needs to know about one model file."""

    architecture: str
    name: str
    source: str  # "header" (exact, from the file) or "catalog" (derived before download)
    n_layer: int
    n_embd: int
    n_head: int
    n_vocab: int
    n_ctx_train: int
    n_ff: int  # dense feed-forward width (largest over layers)
    n_ff_exp: int  # width of one routed expert (MoE), 0 for dense models
    n_swa: int  # sliding window in tokens, 0 when none
    n_expert: int
    n_expert_used: int
    is_mla: bool
    layers: tuple[LayerSpec, ...]
    input_bytes: int  # token embedding (+ its norm): the input layer, always on the CPU
    output_bytes: int  # output projection + final norm (0 when tied to the embedding)
    output_tied: bool  # no output.weight: llama.cpp reuses token_embd for the output matmul
    output_type: str  # storage type of the output matmul weight (the embedding's when tied)
    total_params: int
    file_size: int
    recurrent: RecurrentState | None = None
    input_tensors: tuple[TensorSlice, ...] = ()
    output_tensors: tuple[TensorSlice, ...] = ()
    quant_label: str = ""
    notes: tuple[str, ...] = field(default=())
    # Why it is a base model that continues text instead of chatting (core.chat_kind), "" for
    # a chat model or when unknown (the catalog's specs).
    base_model: str = ""

    @property
    def weight_bytes(self) -> int:
        """Bytes of all tensors in the file (the tied output counted once)."""
        return self.input_bytes + self.output_bytes + sum(lay.weight_bytes for lay in self.layers)

    @property
    def swa_layers(self) -> tuple[int, ...]:
        return tuple(lay.index for lay in self.layers if lay.is_swa)

    @property
    def has_swa(self) -> bool:
        return any(lay.is_swa for lay in self.layers)

    @property
    def offloadable_layers(self) -> int:
        """llama.cpp counts the output layer as one more offloadable layer: N blocks + 1."""
        return self.n_layer + 1

    @property
    def active_weight_bytes_per_token(self) -> int:
        """Bytes of weights read to make one token: MoE models read only the used experts."""
        total = self.output_weight_bytes
        for lay in self.layers:
            dense = lay.weight_bytes - lay.expert_bytes
            experts = lay.expert_bytes
            if self.n_expert > 0 and experts:
                experts = experts * self.n_expert_used // self.n_expert
            total += dense + experts
        # One row of the embedding per token: negligible, but not zero.
        total += self.input_bytes // max(self.n_vocab, 1)
        return total

    @property
    def output_weight_bytes(self) -> int:
        """Bytes of the output matmul weight; when tied, the embedding is read for it too."""
        if self.output_tied:
            return self.output_bytes + self.input_bytes
        return self.output_bytes


def _as_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise GGUFError(f"The model's {what} should be a whole number, found {value!r}.")
    if value < 0:
        raise GGUFError(f"The model's {what} is negative ({value}).")
    return value


def _per_layer(value: object, n_layer: int, what: str, default: int) -> list[int]:
    """A hyper-parameter given once or per layer (llama.cpp get_key_or_arr)."""
    if value is None:
        return [default] * n_layer
    if isinstance(value, tuple):
        items = [_as_int(v, what) for v in value]
        if len(items) != n_layer:
            raise GGUFError(
                f"The model gives {len(items)} values for {what} but has {n_layer} layers."
            )
        return items
    return [_as_int(value, what)] * n_layer


def _swa_flags(header: GGUFHeader, arch: str, n_layer: int, n_swa: int) -> list[bool]:
    if n_swa <= 0 or arch in SWA_IGNORED:
        return [False] * n_layer
    pattern = header.arch_key("attention.sliding_window_pattern")
    if isinstance(pattern, tuple):
        flags = [bool(v) for v in pattern]
        if len(flags) == n_layer:
            return flags
    n_pattern, dense_first = SWA_PATTERNS.get(arch, (0, False))
    if isinstance(pattern, int) and not isinstance(pattern, bool):
        n_pattern = pattern
    if arch not in SWA_PATTERNS and not isinstance(pattern, int):
        # An architecture we have no pattern for that still names a window: llama.cpp applies
        # the window to every layer only when the loader says so; assume all layers are full.
        return [False] * n_layer
    if dense_first:
        return [n_pattern == 0 or (il % n_pattern != 0) for il in range(n_layer)]
    return [n_pattern == 0 or (il % n_pattern < n_pattern - 1) for il in range(n_layer)]


def _slice(t: TensorInfo, data_offset: int) -> TensorSlice:
    return TensorSlice(t.name, t.type_name, t.shape, data_offset + t.offset, t.n_bytes)


def _vocab_size(header: GGUFHeader, arch: str, embd_tensor: TensorInfo | None) -> int:
    tokens = header.get("tokenizer.ggml.tokens")
    if isinstance(tokens, LargeArray):
        return tokens.count
    if isinstance(tokens, tuple):
        return len(tokens)
    vocab = header.arch_key("vocab_size")
    if isinstance(vocab, int) and not isinstance(vocab, bool):
        return vocab
    if embd_tensor is not None and len(embd_tensor.shape) >= 2:
        return embd_tensor.shape[1]
    return 0


def _recurrent_state(header: GGUFHeader) -> RecurrentState | None:
    d_conv = header.arch_key("ssm.conv_kernel")
    d_inner = header.arch_key("ssm.inner_size")
    d_state = header.arch_key("ssm.state_size")
    n_group = header.arch_key("ssm.group_count", 0)
    if not all(isinstance(v, int) for v in (d_conv, d_inner, d_state, n_group)):
        return None
    assert isinstance(d_conv, int) and isinstance(d_inner, int)
    assert isinstance(d_state, int) and isinstance(n_group, int)
    conv = max(d_conv - 1, 0) * (d_inner + 2 * n_group * d_state)
    return RecurrentState(conv_elements=conv, state_elements=d_state * d_inner)


#: llama.cpp's limit on experts per layer (src/llama-hparams.h LLAMA_MAX_EXPERTS).
MAX_EXPERTS = 512
#: ggml's CPU buffers must start on a multiple of this (TENSOR_ALIGNMENT, ggml-cpu): a
#: memory-mapped file whose tensor data does not aborts in ggml_backend_cpu_buffer_from_ptr.
MMAP_ALIGNMENT = 32
_EXPERT_TENSOR_RE = re.compile(r"^blk\.\d+\.ffn_(?:gate|up|down|gate_up)_exps\.")


def _refuse_what_aborts_llama_cpp(header: GGUFHeader, n_expert: int, n_expert_used: int) -> None:
    """Raise GGUFError for the headers that make llama.cpp abort the whole process (a failed
    GGML_ASSERT while loading), so that a header-only estimate never calls them fine."""
    has_expert_tensors = any(_EXPERT_TENSOR_RE.match(t.name) for t in header.tensors)
    if has_expert_tensors and n_expert == 0:
        raise GGUFError(
            "The file has mixture-of-experts tensors but an expert count of 0; llama.cpp "
            "would abort loading it. The file is damaged or was converted wrongly."
        )
    if n_expert > MAX_EXPERTS:
        raise GGUFError(
            f"The model says it has {n_expert} experts per layer; llama.cpp supports at most "
            f"{MAX_EXPERTS}, so the file is probably damaged."
        )
    if n_expert and not 0 < n_expert_used <= n_expert:
        raise GGUFError(
            f"The model uses {n_expert_used} of its {n_expert} experts per token; it must use "
            "at least one and at most all of them (llama.cpp would abort). The file is damaged."
        )
    prefix = f"{header.architecture}."
    for key, value in header.metadata.items():
        if key.startswith(prefix) and isinstance(value, float) and not math.isfinite(value):
            raise GGUFError(
                f"The model's {key[len(prefix) :]} is {value}, not a number llama.cpp can use; "
                "the file is damaged."
            )
    misaligned = [t for t in header.tensors if (header.data_offset + t.offset) % MMAP_ALIGNMENT]
    if misaligned:
        raise GGUFError(
            f"The tensor data of {misaligned[0].name} starts at a byte offset that is not a "
            f"multiple of {MMAP_ALIGNMENT} (general.alignment is {header.alignment}); "
            "llama.cpp would abort memory-mapping it. Re-convert or re-download the file."
        )


def spec_from_header(header: GGUFHeader) -> ModelSpec:
    """Build the exact spec of a model from its GGUF header. Raises GGUFError if unusable."""
    arch = header.architecture
    n_layer = _as_int(header.arch_key("block_count"), "layer count (block_count)")
    n_embd = _as_int(header.arch_key("embedding_length"), "embedding length")
    if n_layer == 0 or n_embd == 0:
        raise GGUFError("The model has no layers or a zero embedding length.")
    heads = _per_layer(header.arch_key("attention.head_count"), n_layer, "head count", 0)
    n_head = max(heads) if heads else 0
    heads_kv = _per_layer(
        header.arch_key("attention.head_count_kv"), n_layer, "KV head count", n_head
    )
    head_dim_default = n_embd // n_head if n_head else 0
    key_length = header.arch_key("attention.key_length")
    value_length = header.arch_key("attention.value_length")
    dim_k = _as_int(key_length, "key length") if key_length is not None else head_dim_default
    dim_v = _as_int(value_length, "value length") if value_length is not None else head_dim_default
    swa_dims_k = header.arch_key("attention.key_length_swa")
    swa_dims_v = header.arch_key("attention.value_length_swa")

    is_mla = header.arch_key("attention.kv_lora_rank") is not None and (
        header.arch_key("attention.key_length_mla") is not None
    )
    n_swa_raw = header.arch_key("attention.sliding_window", SWA_DEFAULT_WINDOW.get(arch, 0))
    n_swa = n_swa_raw if isinstance(n_swa_raw, int) and not isinstance(n_swa_raw, bool) else 0
    swa = _swa_flags(header, arch, n_layer, n_swa)
    if not any(swa):
        n_swa = 0

    n_expert = header.arch_key("expert_count", 0)
    n_expert_used = header.arch_key("expert_used_count", 0)
    n_expert = n_expert if isinstance(n_expert, int) else 0
    n_expert_used = n_expert_used if isinstance(n_expert_used, int) else 0
    _refuse_what_aborts_llama_cpp(header, n_expert, n_expert_used)
    ff = header.arch_key("feed_forward_length", 0)
    ff_values = list(ff) if isinstance(ff, tuple) else [ff]
    n_ff = max([v for v in ff_values if isinstance(v, int)] + [0])
    ff_exp = header.arch_key("expert_feed_forward_length", 0)
    n_ff_exp = ff_exp if isinstance(ff_exp, int) and n_expert_used else 0
    if n_expert_used and not n_ff_exp:
        n_ff_exp = n_ff  # older MoE files (Mixtral) give only feed_forward_length

    by_layer: dict[int, list[TensorSlice]] = {i: [] for i in range(n_layer)}
    input_tensors: list[TensorSlice] = []
    output_tensors: list[TensorSlice] = []
    embd_tensor: TensorInfo | None = None
    output_tensor: TensorInfo | None = None
    for t in header.tensors:
        piece = _slice(t, header.data_offset)
        match = _BLOCK_RE.match(t.name)
        if match and int(match.group(1)) < n_layer:
            by_layer[int(match.group(1))].append(piece)
        elif t.name in _INPUT_TENSORS:
            input_tensors.append(piece)
            if t.name == "token_embd.weight":
                embd_tensor = t
        else:
            # output.weight, output_norm.*, rope_freqs, and MTP/next-n blocks past n_layer:
            # llama.cpp creates all of them on the output layer's device.
            output_tensors.append(piece)
            if t.name == "output.weight":
                output_tensor = t

    recurrent = _recurrent_state(header)
    layers = []
    for il in range(n_layer):
        tensors = tuple(by_layer[il])
        is_rec = heads_kv[il] == 0 and recurrent is not None
        k_dim = dim_k
        v_dim = dim_v
        if swa[il] and isinstance(swa_dims_k, int):
            k_dim = swa_dims_k
        if swa[il] and isinstance(swa_dims_v, int):
            v_dim = swa_dims_v
        if is_mla:
            v_dim = 0  # MLA caches only the compressed K row (llama_kv_cache: has_v = !is_mla)
        layers.append(
            LayerSpec(
                index=il,
                n_head=heads[il],
                n_head_kv=heads_kv[il],
                head_dim_k=k_dim,
                head_dim_v=v_dim,
                is_swa=swa[il],
                is_recurrent=is_rec,
                weight_bytes=sum(p.n_bytes for p in tensors),
                expert_bytes=sum(p.n_bytes for p in tensors if _EXPERT_RE.search(p.name)),
                tensors=tensors,
            )
        )

    output_tied = output_tensor is None
    if output_tensor is not None:
        output_type = output_tensor.type_name
    else:
        output_type = embd_tensor.type_name if embd_tensor is not None else "F32"
    ctx_train = header.arch_key("context_length", 0)
    name = header.get("general.name", "")
    file_type = header.get("general.file_type")
    return ModelSpec(
        architecture=arch,
        name=name if isinstance(name, str) else "",
        source="header",
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        n_vocab=_vocab_size(header, arch, embd_tensor),
        n_ctx_train=ctx_train if isinstance(ctx_train, int) else 0,
        n_ff=n_ff,
        n_ff_exp=n_ff_exp,
        n_swa=n_swa,
        n_expert=n_expert,
        n_expert_used=n_expert_used,
        is_mla=is_mla,
        layers=tuple(layers),
        input_bytes=sum(p.n_bytes for p in input_tensors),
        output_bytes=sum(p.n_bytes for p in output_tensors),
        output_tied=output_tied,
        output_type=output_type,
        total_params=sum(t.n_elements for t in header.tensors),
        file_size=header.file_size,
        recurrent=recurrent,
        input_tensors=tuple(input_tensors),
        output_tensors=tuple(output_tensors),
        quant_label=_quant_label(file_type, header.tensors),
        base_model=base_model_reason(header),
    )


def _quant_label(file_type: object, tensors: Sequence[TensorInfo]) -> str:
    """A short label like "Q4_K_M": from general.file_type, else the most common weight type."""
    if isinstance(file_type, int) and not isinstance(file_type, bool):
        try:
            import gguf

            name: str = gguf.LlamaFileType(file_type).name
            return name.removeprefix("MOSTLY_")
        except (ValueError, ImportError):
            pass
    weights: dict[str, int] = {}
    for t in tensors:
        if len(t.shape) >= 2:
            weights[t.type_name] = weights.get(t.type_name, 0) + t.n_bytes
    return max(weights, key=lambda k: weights[k]) if weights else ""


def spec_from_catalog(model: Any, variant: Any) -> ModelSpec:
    """A spec from the catalog's architecture numbers and a variant's file size.

    Before download there are no tensors to add up, so the file's bytes are shared out by
    parameter count: the embedding (and an untied output) take ``vocab x n_embd`` parameters,
    the repeating layers split the rest evenly, and inside a MoE layer the routed experts take
    their share of ``3 x n_embd x n_ff_exp x n_expert``. The plan says it is a catalog estimate;
    reading the real header replaces it. Raises ValueError when the numbers are too incomplete
    to estimate.
    """
    arch = model.arch
    missing = [
        name
        for name in ("architecture", "block_count", "embedding_length", "head_count", "vocab_size")
        if getattr(arch, name) in (None, 0, "")
    ]
    if missing:
        raise ValueError(f"{model.name}: the catalog lacks {', '.join(missing)}")
    size = variant.size_bytes
    if not size:
        raise ValueError(f"{model.name} {variant.quant}: the file size is unknown")
    n_layer = int(arch.block_count)
    n_embd = int(arch.embedding_length)
    n_head = int(arch.head_count)
    n_vocab = int(arch.vocab_size)
    head_k = int(arch.key_length or n_embd // n_head)
    head_v = int(arch.value_length or n_embd // n_head)
    n_ff = int(arch.feed_forward_length or 0)
    n_expert = int(arch.expert_count or 0)
    n_expert_used = int(arch.expert_used_count or 0)
    n_ff_exp = int(arch.expert_feed_forward_length or (n_ff if n_expert else 0))
    tied = bool(arch.tie_word_embeddings)
    kv_heads = [
        int(arch.kv_heads(il) if arch.kv_heads(il) is not None else n_head) for il in range(n_layer)
    ]
    family = str(arch.architecture)
    n_swa = int(arch.sliding_window or 0)
    pattern = arch.sliding_window_pattern
    if n_swa and pattern is None and family in SWA_PATTERNS:
        pattern = SWA_PATTERNS[family][0]
    if family in SWA_IGNORED:
        n_swa = 0
    swa = [bool(n_swa and pattern and il % pattern < pattern - 1) for il in range(n_layer)]

    # Parameters per part, to share the file's bytes out in proportion.
    embd_params = n_vocab * n_embd
    output_params = 0 if tied else n_vocab * n_embd
    attn = [
        n_embd * n_head * head_k + 2 * n_embd * kv * max(head_k, head_v) + n_head * head_v * n_embd
        for kv in kv_heads
    ]
    experts = 3 * n_embd * n_ff_exp * n_expert if n_expert else 0
    dense_ffn = 0 if n_expert else 3 * n_embd * n_ff
    layer_params = [a + experts + dense_ffn for a in attn]
    counted = embd_params + output_params + sum(layer_params)
    total_params = int(arch.total_params or counted)
    bytes_per_param = size / max(counted, 1)

    layers = []
    for il in range(n_layer):
        weight = int(layer_params[il] * bytes_per_param)
        layers.append(
            LayerSpec(
                index=il,
                n_head=n_head,
                n_head_kv=kv_heads[il],
                head_dim_k=head_k,
                head_dim_v=head_v,
                is_swa=swa[il],
                is_recurrent=False,
                weight_bytes=weight,
                expert_bytes=int(experts * bytes_per_param),
            )
        )
    return ModelSpec(
        architecture=family,
        name=f"{model.name} {variant.quant}",
        source="catalog",
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        n_vocab=n_vocab,
        n_ctx_train=int(arch.context_length or 0),
        n_ff=n_ff,
        n_ff_exp=n_ff_exp if n_expert else 0,
        n_swa=n_swa if any(swa) else 0,
        n_expert=n_expert,
        n_expert_used=n_expert_used,
        is_mla=False,
        layers=tuple(layers),
        input_bytes=int(embd_params * bytes_per_param),
        output_bytes=int(output_params * bytes_per_param),
        output_tied=tied,
        output_type=variant.quant,
        total_params=total_params,
        file_size=int(size),
        quant_label=variant.quant,
    )
