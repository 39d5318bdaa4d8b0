"""What to change, ranked by the speed a person would get: the detail pane's "What to do".

A plan's own suggestion names one change at a time ("use the q8_0 KV cache for 28 GPU
layers": one more layer). :func:`ranked_alternatives` re-plans each change a person can make to
the same file on the same machine - a lower context that fits fully, the q8_0 KV cache, as many
GPU layers as fit - and takes the other quantizations' plans beside it (the best quality that
does better: the largest file of the best verdict, as :func:`~desktop.core.estimate.
sibling_suggestion` picks). Then it ranks them by predicted tokens per second, fastest first,
keeping only what beats the plan as it is. :func:`lead_sentence` says the best one in plain
words: "Q6_K fits fully on the GPU at ~30 tok/s (as it is: ~13.6 tok/s)."

Pure: the estimator's own functions, no new figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from desktop.core.estimate import (
    Device,
    Plan,
    Verdict,
    estimate,
    max_ctx_full_gpu,
    padded_ctx,
)
from desktop.core.modelspec import ModelSpec

__all__ = ["Alternative", "format_tokens_per_s", "lead_sentence", "ranked_alternatives"]

#: An alternative must beat the plan as it is by this much to be worth a sentence.
MIN_GAIN = 1.05


@dataclass(frozen=True)
class Alternative:
    """One change and the plan it would give."""

    kind: str  # "quant", "context", "kv", "layers"
    change: str  # "Q6_K", "lowering the context to 8k", "the q8_0 KV cache (...)"
    plan: Plan

    @property
    def tokens_per_s(self) -> float:
        return self.plan.predicted_tokens_per_s or 0.0

    @property
    def sentence(self) -> str:
        """ "Q6_K fits fully on the GPU at ~30 tok/s" (other kinds start in lower case)."""
        speed = format_tokens_per_s(self.tokens_per_s)
        where = _where(self.plan)
        if self.kind == "quant":
            return f"{self.change} {where} at {speed}"
        if self.kind == "context":
            return f"{self.change} {where.replace('fits', 'fits it', 1)} at {speed}"
        return f"{self.change} gives {self.plan.gpu_layers} GPU layers, {speed}"


def format_tokens_per_s(value: float) -> str:
    """ "~42 tok/s", "~3.5 tok/s" (as the table shows speeds)."""
    return f"~{value:.0f} tok/s" if value >= 10 else f"~{value:.1f} tok/s"


def _where(plan: Plan) -> str:
    if plan.verdict is Verdict.FULL_GPU:
        return "fits fully on the GPU"
    if plan.verdict is Verdict.PARTIAL:
        return f"puts {plan.gpu_layers} of {plan.offloadable_layers} layers on the GPU"
    return "fits in system memory"


def _runs(plan: Plan | None) -> bool:
    return (
        plan is not None
        and plan.verdict is not Verdict.TOO_LARGE
        and bool(plan.predicted_tokens_per_s)
    )


def ranked_alternatives(
    spec: ModelSpec,
    plan: Plan,
    devices: Sequence[Device],
    siblings: Sequence[tuple[str, Plan | None]] = (),
) -> list[Alternative]:
    """Every change that makes ``plan`` (``spec`` on ``devices``) faster, fastest first.

    ``siblings`` are the other quantizations of the model, (label, plan) on the same machine
    and context; the plan's own file may be among them (it is skipped)."""
    settings = plan.settings
    current = plan.predicted_tokens_per_s or 0.0
    found: list[Alternative] = []

    better = [
        (label, p)
        for label, p in siblings
        if p is not None and p is not plan and _runs(p) and p.verdict.rank < plan.verdict.rank
    ]
    if better:
        best_rank = min(p.verdict.rank for _, p in better)
        label, best = max(
            ((label, p) for label, p in better if p.verdict.rank == best_rank),
            key=lambda item: item[1].total_bytes,
        )
        found.append(Alternative("quant", label, best))

    if any(d.is_gpu for d in devices) and plan.verdict is not Verdict.FULL_GPU:
        ctx_full = max_ctx_full_gpu(spec, settings, devices)
        if ctx_full and 1024 <= ctx_full < padded_ctx(settings.n_ctx):
            n_ctx = ctx_full // 1024 * 1024
            shorter = estimate(spec, replace(settings, n_ctx=n_ctx), devices)
            if _runs(shorter):
                label = f"{n_ctx // 1024}k"
                found.append(Alternative("context", f"lowering the context to {label}", shorter))
        if settings.kv_type == "f16":
            quantized = estimate(
                spec, replace(settings, kv_type="q8_0", flash_attn=True), devices
            )
            if _runs(quantized) and quantized.gpu_layers > plan.gpu_layers:
                found.append(
                    Alternative("kv", "the q8_0 KV cache (with flash attention)", quantized)
                )
        if settings.n_gpu_layers is not None and plan.max_gpu_layers > plan.gpu_layers:
            most = estimate(spec, replace(settings, n_gpu_layers=None), devices)
            if _runs(most):
                found.append(Alternative("layers", "as many GPU layers as fit", most))

    faster = [a for a in found if a.tokens_per_s > current * MIN_GAIN]
    return sorted(faster, key=lambda a: a.tokens_per_s, reverse=True)


def lead_sentence(plan: Plan, alternatives: Sequence[Alternative]) -> str | None:
    """The best change in plain words, then the runners-up; None when nothing is faster.

    "Q6_K fits fully on the GPU at ~30 tok/s (as it is: ~13.6 tok/s). Also: lowering the
    context to 8k fits it fully on the GPU at ~25 tok/s."
    """
    if not alternatives:
        return None
    best, *rest = alternatives
    now = plan.predicted_tokens_per_s
    text = best.sentence[:1].upper() + best.sentence[1:]
    if now:
        text += f" (as it is: {format_tokens_per_s(now)})"
    text += "."
    if rest:
        text += " Also: " + "; ".join(a.sentence for a in rest[:2]) + "."
    return text
