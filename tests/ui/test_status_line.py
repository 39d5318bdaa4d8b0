"""The status line follows the machine shown and the model loaded: no VRAM reserve on a
machine without a GPU, and the loaded model's file, context and layers once one is loaded."""

from __future__ import annotations

from conftest import GIB, WindowFactory, make_profile

from desktop.engine import protocol
from desktop.ui.state import WorkbenchState
from desktop.ui.window_parts import status_sentence


def _loaded(n_ctx: int, gpu_layers: int) -> protocol.Loaded:
    return protocol.Loaded(
        n_ctx=n_ctx,
        n_gpu_layers=gpu_layers,
        n_layers=18,
        chat_template="gguf",
        chat_format="chat_template.default",
        buffers={},
        load_seconds=1.2,
    )


def test_the_vram_reserve_is_mentioned_only_on_a_machine_with_a_gpu(
    make_window: WindowFactory,
) -> None:
    cpu_only = make_window(make_profile(gpu=None, backends=("cpu",)))
    text = cpu_only.status_text.text()
    assert text == "Estimates for this computer at 4k tokens of context.", text
    with_gpu = make_window(make_profile())
    assert with_gpu.status_text.text() == (
        "Estimates for this computer at 4k tokens of context; 0.5 GB of VRAM kept free."
    )
    # A what-if GPU on the GPU-less machine: the reserve applies to the card shown.
    cpu_only.what_if.choose("GeForce RTX 4090", 64 * GIB)
    assert "VRAM kept free" in cpu_only.status_text.text()


def test_the_status_line_names_the_loaded_model_its_context_and_layers() -> None:
    state = WorkbenchState(n_ctx=8192)
    state.set_real_profile(make_profile(gpu=None, backends=("cpu",)))
    text = status_sentence(state, _loaded(4096, 0), "gemma-3-270m-it-Q4_K_M.gguf")
    assert text == (
        "Loaded: gemma-3-270m-it-Q4_K_M.gguf, 4k tokens of context, every layer on the CPU. "
        "Estimates for this computer at 8k tokens of context."
    )
    state.set_real_profile(make_profile())
    text = status_sentence(state, _loaded(2048, 19), "model.gguf")
    assert text.startswith("Loaded: model.gguf, 2k tokens of context, 19 layers on the GPU. ")
    assert status_sentence(state) == (
        "Estimates for this computer at 8k tokens of context; 0.5 GB of VRAM kept free."
    )
