"""What every verdict depends on: the machine (real or what-if), the context, the VRAM reserve.

:class:`WorkbenchState` is the one model object the "what fits" panels share. The hardware
bar shows its profile, the what-if selector swaps the profile, the context control sets
``n_ctx``, the settings dialog sets the reserve; the models table, the detail pane and the
load controls listen to ``estimatesChanged`` and re-evaluate. No panel talks to another.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QObject, Signal

from desktop.core.calibration import DEFAULT_FIGURES, SpeedFigures
from desktop.core.estimate import (
    Device,
    Plan,
    Settings,
    capped_context,
    devices_from_profile,
    estimate,
)
from desktop.core.hardware import HardwareProfile
from desktop.core.modelspec import ModelSpec
from desktop.core.rpc import RemoteDevice
from desktop.core.settings import DEFAULT_N_CTX, DEFAULT_VRAM_RESERVE_BYTES
from desktop.services.signals import emit

__all__ = ["CONTEXT_CHOICES", "WorkbenchState", "context_label"]

#: The context lengths offered above the models table and in the load controls.
CONTEXT_CHOICES = (2048, 4096, 8192, 16384, 32768, 65536, 131072)


def context_label(n_ctx: int) -> str:
    """2048 -> "2k", 131072 -> "128k", 3000 -> "3000"."""
    return f"{n_ctx // 1024}k" if n_ctx >= 1024 and n_ctx % 1024 == 0 else str(n_ctx)


class WorkbenchState(QObject):
    """The inputs of every estimate, with a signal for each change.

    ``profile`` is the machine the estimates are for: this computer (``real_profile``) or a
    what-if machine. It is None until detection finishes; estimates are None until then.
    """

    realProfileChanged = Signal(object)  # HardwareProfile of this computer
    profileChanged = Signal(object)  # the profile estimates use (this computer or what-if)
    detectionFailed = Signal(str)  # a sentence for the person
    contextChanged = Signal(int)  # tokens
    reserveChanged = Signal(object)  # bytes of VRAM kept free (an int; may exceed 2**31)
    figuresChanged = Signal(object)  # SpeedFigures of this computer (calibration)
    estimatesChanged = Signal()  # any of the above changed: re-evaluate every verdict

    def __init__(
        self,
        *,
        n_ctx: int = DEFAULT_N_CTX,
        reserve_bytes: int = DEFAULT_VRAM_RESERVE_BYTES,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._real: HardwareProfile | None = None
        self._what_if: HardwareProfile | None = None
        self._what_if_label = ""
        self._n_ctx = n_ctx
        self._reserve = reserve_bytes
        self._devices: list[Device] | None = None
        self._detection_error = ""
        self._figures: SpeedFigures = DEFAULT_FIGURES
        self._remote: tuple[RemoteDevice, ...] = ()  # other computers' devices (RPC)

    # ------------------------------------------------------------------ reading

    @property
    def real_profile(self) -> HardwareProfile | None:
        return self._real

    @property
    def profile(self) -> HardwareProfile | None:
        return self._what_if if self._what_if is not None else self._real

    @property
    def is_what_if(self) -> bool:
        return self._what_if is not None

    @property
    def what_if_label(self) -> str:
        """ "RTX 4090, 32 GB RAM" while a what-if machine is shown, else ""."""
        return self._what_if_label if self._what_if is not None else ""

    @property
    def detection_error(self) -> str:
        return self._detection_error

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    @property
    def reserve_bytes(self) -> int:
        return self._reserve

    @property
    def figures(self) -> SpeedFigures:
        """The speed figures estimates use: this computer's calibration, or for a what-if
        machine (which has never run anything here) the defaults."""
        return DEFAULT_FIGURES if self._what_if is not None else self._figures

    @property
    def prediction_source(self) -> str:
        """Where predicted speeds come from, for a person."""
        if self._what_if is not None:
            return "another computer: estimated from bandwidth"
        return self._figures.describe()

    def devices(self) -> Sequence[Device]:
        """The estimator's devices for the current profile and reserve (empty while detecting)."""
        if self._devices is None:
            profile = self.profile
            self._devices = (
                []
                if profile is None
                else devices_from_profile(profile, self._reserve, self.figures, self._remote)
            )
        return self._devices

    def real_devices(self) -> Sequence[Device]:
        """The estimator's devices for this computer, whatever machine is shown: a load
        always runs here, so it is planned here (empty while detecting)."""
        if self._what_if is None:
            return self.devices()
        if self._real is None:
            return []
        return devices_from_profile(self._real, self._reserve, self._figures, self._remote)

    @property
    def remote_devices(self) -> tuple[RemoteDevice, ...]:
        return self._remote

    def set_remote_devices(self, devices: Sequence[RemoteDevice]) -> None:
        """Other computers' devices (llama.cpp RPC servers) that plans and loads use."""
        remote = tuple(devices)
        if remote == self._remote:
            return
        self._remote = remote
        self._devices = None
        emit(self.estimatesChanged)

    def settings_for(
        self, spec: ModelSpec, n_ctx: int | None = None, **changes: object
    ) -> Settings:
        """Estimator settings for ``spec``: the chosen context, capped at the trained length
        (:func:`~desktop.core.estimate.capped_context`)."""
        wanted = self._n_ctx if n_ctx is None else n_ctx
        return Settings(
            n_ctx=capped_context(wanted, spec.n_ctx_train),
            reserve_bytes=self._reserve,
            **changes,  # type: ignore[arg-type]
        )

    def estimate(self, spec: ModelSpec) -> Plan | None:
        """The plan for ``spec`` on the current machine and context; None while detecting."""
        devices = self.devices()
        if not devices:
            return None
        return estimate(spec, self.settings_for(spec), devices)

    # ------------------------------------------------------------------ changing

    def set_real_profile(self, profile: HardwareProfile) -> None:
        """This computer's profile, from detection (or a fake one in tests)."""
        self._real = profile
        self._detection_error = ""
        emit(self.realProfileChanged, profile)
        if self._what_if is None:
            self._profile_changed()

    def set_figures(self, figures: SpeedFigures) -> None:
        """This computer's speed figures, refitted after a measured run."""
        if figures == self._figures:
            return
        self._figures = figures
        emit(self.figuresChanged, figures)
        if self._what_if is None and self._real is not None:  # no profile: no estimates yet
            self._devices = None
            emit(self.estimatesChanged)

    def set_detection_failed(self, message: str) -> None:
        self._detection_error = message
        emit(self.detectionFailed, message)

    def set_what_if(self, profile: HardwareProfile | None, label: str = "") -> None:
        """Estimate for another machine; None goes back to this computer."""
        if profile is None and self._what_if is None:
            return
        self._what_if = profile
        self._what_if_label = label if profile is not None else ""
        self._profile_changed()

    def set_n_ctx(self, n_ctx: int) -> None:
        if n_ctx <= 0:
            raise ValueError(f"context must be positive, got {n_ctx}")
        if n_ctx == self._n_ctx:
            return
        self._n_ctx = n_ctx
        emit(self.contextChanged, n_ctx)
        emit(self.estimatesChanged)

    def set_reserve_bytes(self, reserve_bytes: int) -> None:
        if reserve_bytes < 0:
            raise ValueError("the VRAM reserve cannot be negative")
        if reserve_bytes == self._reserve:
            return
        self._reserve = reserve_bytes
        self._devices = None
        emit(self.reserveChanged, reserve_bytes)
        emit(self.estimatesChanged)

    def _profile_changed(self) -> None:
        self._devices = None
        emit(self.profileChanged, self.profile)
        emit(self.estimatesChanged)
