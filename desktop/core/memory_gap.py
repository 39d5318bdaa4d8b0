"""Why the memory a running model holds differs from the estimate, in one sentence.

The estimate counts every buffer llama.cpp *allocates*; the operating system reports what a
process has *touched* (resident pages for RAM; for VRAM, the driver's count, which includes
the CUDA runtime's own context). So a freshly loaded model usually holds less RAM than
estimated: llama.cpp reserves its compute buffer for the worst case (``n_ubatch`` prompt tokens
at once, all attending to the whole context), and a short prompt touches a small part of it;
pages never written are never resident. A GPU's memory is taken when allocated, so there less
than the estimate means llama.cpp allocated less. More than the estimate means memory the
buffers do not include: the worker process itself (Python and the llama.cpp library) in RAM,
the GPU runtime's context on a GPU.

:func:`memory_gap_sentence` says which of these fits the numbers, and says nothing ("") when
measured and estimated agree within :data:`CLOSE_FRACTION`.
"""

from __future__ import annotations

from typing import Final

from desktop.core.estimate import DevicePlan
from desktop.core.units import format_bytes

__all__ = ["CLOSE_FRACTION", "memory_gap_sentence"]

#: Within this share of the estimate, measured and estimated agree: nothing to explain.
CLOSE_FRACTION: Final = 0.10


def memory_gap_sentence(plan: DevicePlan, measured_bytes: int | None, *, what: str) -> str:
    """Why ``measured_bytes`` (the worker's resident RAM, or its VRAM) differs from ``plan``.

    ``what`` names the measurement in the sentence ("The model worker holds", "On the GPU the
    worker holds"). "" when there is nothing to compare or the two agree.
    """
    estimate = plan.total_bytes
    if measured_bytes is None or measured_bytes <= 0 or estimate <= 0:
        return ""
    gap = estimate - measured_bytes
    if abs(gap) <= CLOSE_FRACTION * estimate:
        return ""
    if gap > 0:
        held = f"{what} {format_bytes(measured_bytes)}, {format_bytes(gap)} less than estimated"
        if plan.kind != "cpu":
            # A GPU's memory is taken when it is allocated, touched or not: no lazy pages.
            return (
                f"{held}: llama.cpp allocated less there than the estimate allows for; the "
                "load controls compare the two buffer by buffer."
            )
        if plan.compute_bytes and gap <= plan.compute_bytes + CLOSE_FRACTION * estimate:
            return (
                f"{held}: llama.cpp reserves a {format_bytes(plan.compute_bytes)} compute "
                "buffer for the longest prompt it may be sent, and a short prompt touches "
                "little of it (memory counts once it is used)."
            )
        return (
            f"{held}: the estimate counts every buffer llama.cpp reserves (the compute buffer "
            "for the longest prompt, the KV cache for the whole context), and memory counts "
            "only once it is used."
        )
    extra = f"{what} {format_bytes(measured_bytes)}, {format_bytes(-gap)} more than estimated"
    if plan.kind == "cpu":
        return (
            f"{extra}: the worker process itself (Python and the llama.cpp library) needs "
            "memory beside the model's buffers."
        )
    return f"{extra}: the GPU runtime's own context takes memory beside the model's buffers."
