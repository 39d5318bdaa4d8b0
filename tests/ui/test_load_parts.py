"""The load controls' parts: the context choices offered per model and the fit sentence."""

from __future__ import annotations

from desktop.core.estimate import DevicePlan
from desktop.core.units import GIB
from desktop.ui.load_parts import context_choices, fit_sentence


def test_context_choices_stop_at_the_trained_length_and_keep_an_odd_setting() -> None:
    choices, position = context_choices(32768, 8192)
    assert [n for _label, n in choices] == [2048, 4096, 8192, 16384, 32768]
    assert choices[position] == ("8k tokens", 8192)

    choices, position = context_choices(40960, 3000)  # a trained length off the list
    assert [n for _label, n in choices] == [2048, 3000, 4096, 8192, 16384, 32768, 40960]
    assert choices[-1] == ("40k tokens (trained)", 40960)
    assert choices[position] == ("3000 tokens", 3000)

    choices, position = context_choices(4096, 131072)  # capped at what it was trained for
    assert choices[position][1] == 4096


def test_fit_sentence_names_the_device_that_overflows() -> None:
    over = DevicePlan(
        "RTX 3060",
        "cuda",
        layers=20,
        weights_bytes=13 * GIB,
        kv_bytes=0,
        compute_bytes=0,
        output_bytes=0,
        overhead_bytes=0,
        capacity_bytes=12 * GIB,
    )
    text = fit_sentence([over], 20, True, 33, "#ff0000")
    assert "Does not fit" in text and "RTX 3060" in text and "Lower the GPU layers" in text
    assert fit_sentence([], 33, True, 33, "red").startswith("Every layer is on the GPU")
    assert fit_sentence([], 0, False, 33, "red").startswith("No usable GPU")
    assert fit_sentence([], 10, True, 33, "red").startswith("10 of 33 layers")
