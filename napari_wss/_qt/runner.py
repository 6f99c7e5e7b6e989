"""Runs :func:`napari_wss._session.run_training` in a napari worker thread.

The worker's signals arrive on the GUI thread; this object turns them into three Qt signals the
widget listens to, drives the napari progress bar, and turns errors into notifications (an
:class:`~napari_wss.errors.InputError` as its own plain message, anything else as one line plus
the traceback in the log).

Stop is cooperative: :meth:`stop` sets a flag the generator checks after every step, so the step
in flight finishes, ``train`` is closed in the worker (its ``finally`` frees GPU memory) and the
state returned holds the weights trained so far. (``worker.quit()`` would skip the generator
instead of closing it: ``train``'s ``finally`` would then run whenever it is garbage-collected.)
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from collections.abc import Generator, Iterator
from typing import Any

from qtpy.QtCore import QObject, QTimer, Signal

from napari_wss.errors import InputError

log = logging.getLogger(__name__)

SWITCH_INTERVAL_S = 0.001
PBAR_INTERVAL_MS = 1000


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn an InputError into an error notification (nothing else happens)."""
    try:
        yield
    except InputError as exc:
        from napari.utils.notifications import show_error

        show_error(str(exc))


def notify_error(exc: BaseException, what: str = "Training") -> None:
    from napari.utils.notifications import show_error

    if isinstance(exc, InputError):
        show_error(str(exc))
        return
    cause = exc.__cause__ if exc.__cause__ is not None and type(exc).__name__ == "WorkerCrash" else exc
    log.error("%s failed", what, exc_info=(type(cause), cause, cause.__traceback__))
    show_error(f"{what} stopped after an unexpected error ({type(cause).__name__}: {cause}); the log has the details.")


class TrainingRunner(QObject):
    progressed = Signal(object)  # napari_wss._session.Progress
    ended = Signal(object)  # the TrainState (also after Stop), or None after an error
    paused_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._worker: Any = None
        self._control: Any = None
        self._pbar: Any = None
        self._state: Any = None
        self._version = 0
        self._switch_interval = sys.getswitchinterval()
        self._done = 0
        self._pbar_timer = QTimer(self)
        self._pbar_timer.setSingleShot(True)
        self._pbar_timer.setInterval(PBAR_INTERVAL_MS)
        self._pbar_timer.timeout.connect(self._sync_pbar)

    @property
    def running(self) -> bool:
        return self._worker is not None

    @property
    def paused(self) -> bool:
        return self._worker is not None and self._worker.is_paused

    @property
    def control(self) -> Any:
        return self._control

    def start(self, job: Any, state: Any, *, control: Any = None) -> None:
        from napari.qt.threading import create_worker
        from napari.utils import progress

        from napari_wss import _session

        if self.running:
            raise InputError("training is already running: stop it first")
        self._control = control or _session.RunControl()
        self._state = None
        self._version = 0
        gen = _session.run_training(job, state, self._control)
        worker = create_worker(_drive, gen, _start_thread=False, _connect={"errored": self._on_error})
        # Closing the viewer quits every worker: superqt then drops the generator without closing
        # it, and train's finally (weights to the CPU, GPU memory and torch threads given back)
        # would wait for the garbage collector. Close it ourselves; it is suspended by then.
        worker.aborted.connect(functools.partial(_close_generator, gen))
        worker.yielded.connect(self._on_yielded)
        worker.returned.connect(self._on_returned)
        worker.finished.connect(self._on_finished)
        worker.paused.connect(lambda: self.paused_changed.emit(True))
        worker.resumed.connect(lambda: self.paused_changed.emit(False))
        self._done = 0
        self._pbar = progress(total=job.config.steps, desc="Training")
        _pause_activity_spinner()
        # The GUI thread waits at most this long for the interpreter when the worker holds it
        # (CPython's default is 5 ms; a canvas redraw makes hundreds of GL calls that release it).
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, SWITCH_INTERVAL_S))
        self._worker = worker
        worker.start()

    def send_bounds(self, update: Any) -> int:
        """Send new bounds (a BoundsUpdate); returns the version later Progress items echo."""
        from napari_wss._session import BoundsMessage

        if not self.running:
            return self._version
        self._version += 1
        self._worker.send(BoundsMessage(update, self._version))
        return self._version

    def toggle_pause(self) -> None:
        if self.running:
            self._worker.toggle_pause()

    def stop(self) -> None:
        if not self.running:
            return
        self._control.stop.set()
        if self._worker.is_paused:
            self._worker.resume()

    def set_current_slice(self, z: int) -> None:
        if self._control is not None:
            self._control.current_slice = int(z)

    # ---------------------------------------------------------------- worker slots (GUI thread)
    def show_progress(self, done: int) -> None:
        """Move napari's progress bar to ``done`` steps, soon and outside the caller's slot.

        napari's progress-bar widget calls ``QApplication.processEvents()`` on every change, which
        would paint everything pending at once, in the middle of the caller's updates (and could
        deliver the next training event re-entrantly). A single-shot timer batches the change.
        """
        self._done = done
        if not self._pbar_timer.isActive():
            self._pbar_timer.start()

    def _sync_pbar(self) -> None:
        pbar = self._pbar
        if pbar is not None and self._done > pbar.n:
            pbar.update(self._done - pbar.n)

    def _on_yielded(self, item: Any) -> None:
        self.progressed.emit(item)

    def _on_returned(self, state: Any) -> None:
        self._state = state

    def _on_error(self, exc: BaseException) -> None:
        notify_error(exc)

    def _on_finished(self) -> None:
        log.debug("training worker finished")
        sys.setswitchinterval(self._switch_interval)
        self._pbar_timer.stop()
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self._worker = None
        state, self._state = self._state, None
        self.ended.emit(state)


def _drive(gen: Generator[Any, Any, Any]) -> Generator[Any, Any, Any]:
    """The worker's generator function: runs ``gen``, forwarding what is sent in and its result."""
    return (yield from gen)


def _close_generator(gen: Generator[Any, Any, Any]) -> None:
    try:
        gen.close()
    except Exception:  # the worker is gone already; keep the reason in the log
        log.exception("closing the aborted training generator failed")


def _pause_activity_spinner() -> None:
    """Hold napari's "in progress" GIF on one frame while we train.

    The GIF runs at 33 frames/s and each frame repaints the main window; under software OpenGL
    (Xvfb, remote desktops, VMs: Mesa's llvmpipe) every repaint recomposites the whole window,
    30-50 ms on a 2-core CPU, so the spinner alone kept the event loop busy most of the time
    (benchmarks/gui_responsiveness.py). The progress bar itself keeps working; napari stops and
    hides the spinner when the progress closes. Only public Qt API is used; if napari changes how
    it shows activity, this finds nothing and does nothing.
    """
    from qtpy.QtWidgets import QApplication, QLabel

    app = QApplication.instance()
    if app is None:
        return
    for top in app.topLevelWidgets():
        for label in top.findChildren(QLabel):
            movie = label.movie()
            if movie is not None and movie.fileName().endswith("loading.gif"):
                movie.setPaused(True)
