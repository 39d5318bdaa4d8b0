"""main(): early checks, the QApplication and the main window; slow work off the GUI thread.

The window appears first; then the hardware check (a RAM bandwidth test and a llama.cpp
subprocess, one to three seconds) and the catalog's estimates run on the thread pool and fill
it in. Heavy modules are imported inside :func:`main`, after the cheap checks, so a missing
display or library is reported in one plain sentence instead of a traceback or a Qt abort.

llama_cpp is never imported in this process: models run in the worker process.

Environment variables for tests and measurements:

* ``LLMW_REPORT_READY=1`` - print "ready" once everything has filled in (end-to-end tests).
* ``LLMW_SMOKE=1`` - print timings ("shown", "catalog", "hardware", "library": seconds since
  the process started) and quit once the window is shown and the background jobs are done.
* ``LLMW_SETTINGS`` - the settings file to use instead of the per-user one.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # The real classes, for the types only: main() imports them after its cheap checks.
    from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

    from desktop.core.calibration import SpeedFigures
    from desktop.core.hardware.profile import HardwareProfile
    from desktop.core.history import ChatHistory
    from desktop.core.rows import ModelRow
    from desktop.core.settings import UserSettings
    from desktop.services.download_manager import DownloadManager
    from desktop.services.engine_api import EngineLike
    from desktop.services.library_sync import LibrarySync
    from desktop.services.load_request import LoadRequest
    from desktop.services.monitor import Monitor
    from desktop.services.run_recorder import RunRecorder
    from desktop.services.tasks import Task
    from desktop.ui.chat_panel import ChatPanel
    from desktop.ui.main_window import MainWindow
    from desktop.ui.models_table import ModelsTableModel
    from desktop.ui.monitor_panel import MonitorPanel
    from desktop.ui.state import WorkbenchState

__all__ = ["install_excepthook", "log_dir", "main"]

APP_NAME = "LLM Workbench"
APP_ID = "llm-workbench"
MIN_PYTHON = (3, 11)

log = logging.getLogger("desktop")


def _fail(message: str) -> int:
    print(f"{APP_ID}: {message}", file=sys.stderr)
    return 1


def _display_problem() -> str | None:
    """Why Qt could not open a window here, in one sentence; None when it should work.

    Qt aborts the whole process when its platform plugin cannot start, with a message that
    means little to most people; the common causes are checked before it gets that far.
    """
    if not sys.platform.startswith("linux"):
        return None
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform and platform not in ("xcb", "wayland"):
        return None  # offscreen, vnc, ...: the person asked for it
    has_x = bool(os.environ.get("DISPLAY"))
    has_wayland = bool(os.environ.get("WAYLAND_DISPLAY"))
    if not has_x and not has_wayland:
        return (
            "there is no graphical display (neither DISPLAY nor WAYLAND_DISPLAY is set). "
            "Start it from a desktop session, or use the terminal commands: "
            f"'{APP_ID} hardware', '{APP_ID} models'."
        )
    wants_xcb = platform == "xcb" or (not platform and not has_wayland)
    if wants_xcb:
        import ctypes.util

        if ctypes.util.find_library("xcb-cursor") is None:
            return (
                "Qt needs the library libxcb-cursor to open a window on X11, and it is not "
                "installed. Install it (Debian/Ubuntu: 'sudo apt install libxcb-cursor0', "
                "Fedora: 'sudo dnf install xcb-util-cursor') and start again."
            )
    return None


def log_dir() -> Path:
    """The per-user log folder (platformdirs)."""
    import platformdirs

    return platformdirs.user_log_path(APP_ID, appauthor=False)


def _setup_logging() -> Path | None:
    """Log to ``<user log dir>/llm-workbench.log`` (rotated); None when it cannot be written."""
    from logging.handlers import RotatingFileHandler

    try:
        folder = log_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{APP_ID}.log"
        handler = RotatingFileHandler(path, maxBytes=1_000_000, backupCount=3, encoding="utf-8")
    except OSError:
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return path


class _ErrorReporter:
    """The sys.excepthook: log the traceback, show one dialog, keep the app running."""

    def __init__(self, log_path: Path | None, parent: QWidget | None = None) -> None:
        self.log_path = log_path
        self.parent = parent
        self.dialog: QMessageBox | None = None  # the one on screen, if any
        self.count = 0

    def __call__(
        self,
        exc_type: type[BaseException],
        exc: BaseException,
        tb: TracebackType | None,
    ) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        self.count += 1
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        log.error("Unhandled exception\n%s", text)
        if self.log_path is None:
            print(text, file=sys.stderr)
        try:
            self._show(exc, text)
        except Exception:  # never let the hook itself raise
            log.exception("could not show the error dialog")
            print(text, file=sys.stderr)

    def _show(self, exc: BaseException, text: str) -> None:
        from PySide6.QtCore import Qt
        from PySide6.QtWidgets import QApplication, QMessageBox

        if QApplication.instance() is None:
            print(text, file=sys.stderr)
            return
        if self.dialog is not None and self.dialog.isVisible():
            return  # one dialog at a time; the log has every one
        where = (
            f"The details are in {self.log_path}."
            if self.log_path is not None
            else "The details were printed to the terminal."
        )
        box = QMessageBox(self.parent)
        box.setIcon(QMessageBox.Icon.Critical)
        box.setWindowTitle("Something went wrong")
        box.setText(f"LLM Workbench hit an unexpected error: {exc or type(exc).__name__}")
        box.setInformativeText(
            f"The app is still running; you can carry on. {where} Please include them if you "
            "report the problem."
        )
        box.setDetailedText(text)
        box.setStandardButtons(QMessageBox.StandardButton.Ok)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(self._dialog_closed)
        self.dialog = box
        box.open()  # not exec(): the hook must return to the event loop

    def _dialog_closed(self) -> None:
        self.dialog = None


def install_excepthook(log_path: Path | None, parent: QWidget | None = None) -> _ErrorReporter:
    """Install (and return) the hook that logs unhandled exceptions and shows a dialog."""
    reporter = _ErrorReporter(log_path, parent)
    sys.excepthook = reporter
    return reporter


def _process_age() -> float:
    """Seconds since this process started (for the startup timing).

    ``LLMW_T0`` (a time.time() value set by whoever launched us) wins over the process start
    time, whose resolution is the kernel's clock tick.
    """
    launched = os.environ.get("LLMW_T0")
    if launched:
        return time.time() - float(launched)
    try:
        # Linux: the start time in clock ticks since boot, against the uptime (10 ms steps);
        # psutil's create_time adds the boot time, which the kernel gives in whole seconds.
        with open("/proc/self/stat", encoding="ascii") as stat:
            start_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as uptime:
            now = float(uptime.read().split()[0])
        return now - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    try:
        import psutil

        return time.time() - psutil.Process().create_time()
    except Exception:
        return float("nan")


def _make_app() -> QApplication:
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QApplication

    from desktop.ui.main_window import app_icon

    QCoreApplication.setApplicationName(APP_NAME)
    QCoreApplication.setOrganizationName(APP_NAME)
    QCoreApplication.setApplicationVersion(_version())
    app = QApplication.instance() or QApplication(sys.argv)
    assert isinstance(app, QApplication)
    QApplication.setApplicationDisplayName(APP_NAME)
    QApplication.setDesktopFileName(APP_ID)
    app.setWindowIcon(app_icon())
    return app


def _version() -> str:
    from desktop import __version__

    return __version__


def _load_catalog_rows() -> list[ModelRow]:
    """Runs on the thread pool: read models.json and build each variant's spec."""
    from desktop.core.catalog import load_catalog
    from desktop.core.rows import catalog_rows

    return catalog_rows(load_catalog())


def _scan_library(folders: list[Path], files: Sequence[Path] = ()) -> list[ModelRow]:
    """Runs on the thread pool: GGUF files on this computer (headers read, bounded).

    The first time, the starter chat model (SmolLM2 135M Instruct, shipped in a package) is
    written into the models folder, so a fresh install can chat at once without any download.
    """
    from desktop.core.added_models import scan_local
    from desktop.core.library import ensure_starter_model
    from desktop.core.rows import library_rows

    if folders:
        try:
            ensure_starter_model(folders[0])
        except OSError as exc:  # a full or read-only disk: the scan still lists the rest
            log.warning("could not write the starter model: %s", exc)
    return library_rows(scan_local(folders, files))  # files: opened or dropped by hand


def _library_sources(settings: UserSettings) -> tuple[list[Path], list[Path]]:
    """The folders scanned for models (the app's first) and the files added by hand."""
    folders = [settings.models_path, *(Path(f).expanduser() for f in settings.extra_folders)]
    return folders, [Path(f) for f in settings.extra_files]


def _wire_library(
    window: MainWindow,
    on_rows: Callable[[list[ModelRow]], None],
    on_error: Callable[[BaseException], None],
    scan: Callable[[list[Path], list[Path]], list[ModelRow]] = _scan_library,
) -> LibrarySync:
    """The local models: scanned at start, when a watched models folder changes (a file
    copied in shows up without a restart), and when a file is opened or dropped (then it is
    selected)."""
    from desktop.services.library_sync import LibrarySync

    library = LibrarySync(scan, window)
    library.set_sources(*_library_sources(window.settings))
    select: list[str] = []

    def on_scanned(rows: list[ModelRow]) -> None:
        on_rows(rows)
        if select:
            window.select_model(select.pop())
            select.clear()

    def on_files_added(paths: list[Path]) -> None:
        select[:] = [str(paths[0])]
        library.set_sources(*_library_sources(window.settings))
        library.scan_now()

    library.scanned.connect(on_scanned)
    library.failed.connect(on_error)
    window.model_opener.filesAdded.connect(on_files_added)
    return library


def _wire_last_model(window: MainWindow, engine: EngineLike, chat: ChatPanel) -> None:
    """Remember each load that worked, and (when the setting is on) load it again at start.

    A crash forgets it: a model that ran the computer out of memory must not be loaded again
    by itself at the next start. The chat's Enter key follows the settings too.
    """
    import dataclasses

    from desktop.engine import protocol as p

    def on_loaded(_loaded: object) -> None:
        load = engine.last_load
        if load is None:
            return
        fields = dataclasses.asdict(load)
        fields.pop("id", None)
        if fields != window.settings.last_load:
            window.update_settings(last_load=fields)

    def on_crashed(*_args: object) -> None:
        if window.settings.last_load:
            window.update_settings(last_load={})

    def reload_at_start() -> None:
        settings = window.settings
        saved = settings.last_load
        if not settings.reload_last_model or not saved or engine.model is not None:
            return
        if not Path(str(saved.get("path", ""))).is_file():
            window.statusBar().showMessage(
                f"The model loaded last ({Path(str(saved.get('path'))).name}) is gone; "
                "pick one in the Models table.",
                10_000,
            )
            return
        try:
            load = p.decode(p.encode(p.Load(**{k: v for k, v in saved.items() if k != "id"})))
        except (TypeError, ValueError) as exc:  # a hand-edited or older settings file
            log.warning("cannot reload the last model: %s", exc)
            return
        assert isinstance(load, p.Load)
        window.statusBar().showMessage(f"Loading {Path(load.path).name} again…", 8000)
        engine.load(load)

    engine.loaded.connect(on_loaded)
    engine.crashed.connect(on_crashed)
    window.firstShown.connect(reload_at_start)
    chat.set_enter_sends(window.settings.enter_sends)
    window.settingsChanged.connect(lambda new: chat.set_enter_sends(new.enter_sends))


def _detect_hardware() -> tuple[HardwareProfile, str, SpeedFigures]:
    """Runs on the thread pool: the whole hardware check (never raises by design), and the
    speed figures this computer has earned from its measured runs."""
    from desktop.core.hardware import detect
    from desktop.core.runs import load_figures, profile_machine_key

    profile = detect()
    key = profile_machine_key(profile)
    return profile, key, load_figures(key)


def _wire_panels(
    window: MainWindow,
    engine: EngineLike,
    monitor: Monitor,
    downloads: DownloadManager,
    chat: ChatPanel,
    plots: MonitorPanel,
) -> None:
    """Connect the chat, the live monitor and the downloads to the engine and the window.

    The engine client owns loading: each load's request carries the plan it was made from,
    so the prediction beside the live plots is that plan (the run recorder takes its
    expectation from the same request itself).
    """
    engine.token.connect(monitor.add_token)
    engine.hello.connect(lambda hello: monitor.set_worker_pid(hello.pid))

    def on_state(name: str) -> None:
        if name == "generating":
            monitor.start_generation()
        elif name == "stopped":
            monitor.set_worker_pid(None)

    engine.stateChanged.connect(on_state)

    def on_load_started(request: LoadRequest) -> None:
        plots.set_prediction(request.plan)  # None: a load nobody planned
        if request.row is not None and request.plan is not None:
            chat.set_model_name(request.model_name)
        chat.set_base_model(request.spec.base_model if request.spec is not None else None)

    engine.loadStarted.connect(on_load_started)
    # A failed load kept (or brought back) the model that worked: every label names it again.
    engine.modelKept.connect(on_load_started)
    engine.unloaded.connect(lambda *_: plots.set_prediction(None))
    # The chat's "reload with fewer layers" is a load like any other: the load controls
    # follow it (their slider included) through the engine client's loadStarted.

    def on_download(row: ModelRow) -> None:
        if row.repo is None:
            return  # a local file: nothing to download
        size = row.file_size_bytes if row.size_exact else None
        downloads.enqueue(
            row.repo, list(row.download_files), window.settings.models_path, size=size
        )
        window.show_tab("downloads")

    window.downloadRequested.connect(on_download)


def _wire_calibration(window: MainWindow, recorder: RunRecorder) -> None:
    """The hardware bar's "Measure speed": `llm-workbench calibrate` in its own process,
    then the recorder refits this computer's figures from the runs it stored."""
    from desktop.services.calibration_job import CalibrationJob

    job = CalibrationJob(window)
    panel = window.hardware_panel

    def on_finished(ok: bool, message: str) -> None:
        panel.set_calibration_progress(message, running=False)
        if ok:
            recorder.refit()

    panel.calibrateRequested.connect(job.start)
    job.progress.connect(lambda line: panel.set_calibration_progress(line, running=True))
    job.finished.connect(on_finished)
    window.destroyed.connect(job.cancel)


@dataclass
class Workbench:
    """Everything the window is made of, wired together (see :func:`assemble`)."""

    state: WorkbenchState
    table: ModelsTableModel
    window: MainWindow
    engine: EngineLike
    history: ChatHistory
    monitor: Monitor
    downloads: DownloadManager
    chat: ChatPanel
    plots: MonitorPanel
    recorder: RunRecorder


def assemble(
    settings: UserSettings, settings_path: Path | None, *, history_path: Path | None = None
) -> Workbench:
    """Build the window with its chat, live monitor and downloads, connected to one engine.

    Needs a QApplication. Starts nothing: the caller starts the monitor and the background
    work; ``engine.shutdown()`` etc. are the caller's too (main() does both).
    """
    from desktop.core.dryrun import build_key
    from desktop.core.gpu_specs import GpuSpecError, load_gpu_specs
    from desktop.core.history import ChatHistory
    from desktop.services.download_manager import DownloadManager
    from desktop.services.engine_client import EngineClient
    from desktop.services.monitor import Monitor
    from desktop.services.run_recorder import RunRecorder
    from desktop.ui.chat_panel import ChatPanel
    from desktop.ui.downloads_panel import DownloadsPanel
    from desktop.ui.main_window import MainWindow
    from desktop.ui.models_table import ModelsTableModel
    from desktop.ui.monitor_panel import MonitorPanel
    from desktop.ui.state import WorkbenchState

    state = WorkbenchState(n_ctx=settings.n_ctx, reserve_bytes=settings.vram_reserve_bytes)
    table = ModelsTableModel(state)
    try:
        gpu_specs = load_gpu_specs()
    except GpuSpecError as exc:
        log.warning("GPU table unavailable: %s", exc)
        gpu_specs = []
    engine = EngineClient()
    window = MainWindow(
        state,
        table,
        gpu_specs=gpu_specs,
        settings=settings,
        settings_path=settings_path,
        engine=engine,
    )
    from desktop.ui.remote_devices import install_remote_devices

    install_remote_devices(window, state, engine)  # the hardware bar's other computers (RPC)
    history = ChatHistory(history_path)
    monitor = Monitor(window)
    engine.set_memory_facts(monitor.memory_facts)  # a crash is explained by what was free
    # The check before a load shares the detail pane's dry runs (same build key, same cache).
    state.realProfileChanged.connect(lambda real: engine.set_check_build(build_key(real.backends)))
    downloads = DownloadManager(window)
    chat = ChatPanel(engine, history)
    plots = MonitorPanel(monitor)
    from desktop.ui.remote_memory import install_remote_memory_plot

    install_remote_memory_plot(plots, engine)  # other computers' memory (RPC) over time
    window.set_chat_widget(chat)
    from desktop.ui.serve_panel import install_serving

    install_serving(window, engine, monitor, plots)  # "Serve to other apps", request log
    window.set_downloads_widget(DownloadsPanel(downloads))
    recorder = RunRecorder(engine, path=history_path, parent=window)
    recorder.figuresChanged.connect(state.set_figures)
    _wire_calibration(window, recorder)
    _wire_panels(window, engine, monitor, downloads, chat, plots)
    _wire_last_model(window, engine, chat)
    return Workbench(
        state, table, window, engine, history, monitor, downloads, chat, plots, recorder
    )


def main() -> int:
    """Open the window; return the exit status."""
    if sys.version_info < MIN_PYTHON:
        wanted = ".".join(map(str, MIN_PYTHON))
        return _fail(
            f"LLM Workbench needs Python {wanted} or newer; this is {sys.version.split()[0]}."
        )
    problem = _display_problem()
    if problem:
        return _fail(f"cannot open the window: {problem}")
    try:
        import PySide6.QtWidgets  # noqa: F401
    except ImportError as exc:
        return _fail(
            f"cannot open the window: Qt for Python (PySide6) is not usable ({exc}). "
            "Reinstall LLM Workbench."
        )

    smoke = os.environ.get("LLMW_SMOKE") == "1"
    log_path = _setup_logging()
    app = _make_app()
    from desktop.ui.test_probe import install_from_env  # LLMW_PROBE: e2e tests read the window

    install_from_env()
    reporter = install_excepthook(log_path)

    from PySide6.QtCore import QThreadPool

    from desktop.core.settings import default_settings_path, load_settings
    from desktop.services.tasks import run_in_thread

    settings_path = Path(os.environ.get("LLMW_SETTINGS") or default_settings_path())
    settings = load_settings(settings_path)
    from desktop.ui.theme import apply_theme

    apply_theme(app, settings.theme)  # before the window: it never flashes the other theme
    parts = assemble(settings, settings_path)
    state, table, window = parts.state, parts.table, parts.window
    engine, monitor, downloads, history = (
        parts.engine,
        parts.monitor,
        parts.downloads,
        parts.history,
    )
    table.set_loading(True)
    reporter.parent = window
    monitor.start()

    pending = {"catalog", "hardware", "library"}
    tasks: list[Task] = []

    report_ready = os.environ.get("LLMW_REPORT_READY") == "1"

    def finished(name: str) -> None:
        pending.discard(name)
        if smoke:
            print(f"{name} {_process_age():.3f}", flush=True)
            if not pending:
                window.close()
        elif report_ready and not pending:
            print(f"ready {_process_age():.3f}", flush=True)  # for end-to-end tests

    def on_rows(rows: list[ModelRow]) -> None:
        table.set_source_rows("catalog", rows)  # local files may have arrived first
        finished("catalog")

    def on_catalog_error(exc: BaseException) -> None:
        table.set_loading(False)
        table.set_source_rows("catalog", [])
        window.statusBar().showMessage(str(exc))
        log.error("catalog: %s", exc)
        finished("catalog")

    def on_library(rows: list[ModelRow]) -> None:
        table.set_source_rows("local", rows)
        finished("library")

    def on_library_error(exc: BaseException) -> None:
        log.error("scanning for local models failed", exc_info=exc)
        finished("library")

    library = _wire_library(window, on_library, on_library_error)

    def scan_library(current: UserSettings) -> Task:
        library.set_sources(*_library_sources(current))
        return library.scan_now()

    def on_profile(detected: tuple[HardwareProfile, str, SpeedFigures]) -> None:
        profile, machine, figures = detected
        parts.recorder.set_machine(machine)
        state.set_figures(figures)
        state.set_real_profile(profile)
        finished("hardware")

    def on_detect_error(exc: BaseException) -> None:
        log.error("hardware check failed", exc_info=exc)
        state.set_detection_failed(f"{exc}. Estimates are not available.")
        finished("hardware")

    def start_background_work() -> None:
        if smoke:
            print(f"shown {_process_age():.3f}", flush=True)
        tasks.append(run_in_thread(_load_catalog_rows, on_rows, on_catalog_error))
        tasks.append(run_in_thread(_detect_hardware, on_profile, on_detect_error))
        tasks.append(scan_library(settings))

    def shutdown() -> None:
        library.cancel()
        for task in tasks:
            task.cancel()
        downloads.shutdown()
        monitor.stop()
        engine.shutdown(wait_ms=3000)
        history.close()
        # Let a hardware check still running end before Python tears down its objects.
        QThreadPool.globalInstance().waitForDone(5000)

    window.firstShown.connect(start_background_work)
    # New folders in the Settings dialog: look again.
    window.settingsChanged.connect(lambda new: tasks.append(scan_library(new)))
    # A finished download shows up as a local model at once.
    downloads.finished.connect(lambda _id, _path: tasks.append(scan_library(window.settings)))
    app.aboutToQuit.connect(shutdown)
    window.show()
    return int(app.exec())
