"""Fixtures for the napari plugin tests (run under Xvfb: pytest-xvfb starts it, QT_QPA_PLATFORM=xcb).

* ``notes``: the napari notifications dispatched during the test, as ``(severity, message)``.
* ``make_widget``: a viewer (optionally with a sample) and the docked widget, with small and fast
  training settings; any training still running at teardown is stopped and awaited.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import numpy as np
import pytest

TIMEOUT_MS = 60_000


class Notes(list):
    """Notifications seen so far: ``(severity, message)`` pairs."""

    def messages(self, severity: str | None = None) -> list[str]:
        return [m for s, m in self if severity is None or s == severity]

    def errors(self) -> list[str]:
        return self.messages("error")

    def has(self, fragment: str, severity: str | None = None) -> bool:
        return any(fragment.lower() in m.lower() for m in self.messages(severity))


@pytest.fixture
def notes() -> Iterator[Notes]:
    from napari.utils.notifications import notification_manager

    seen = Notes()

    def record(event) -> None:  # type: ignore[no-untyped-def]
        seen.append((str(event.severity), str(event.message)))

    notification_manager.notification_ready.connect(record)
    yield seen
    notification_manager.notification_ready.disconnect(record)


@pytest.fixture
def make_widget(make_napari_viewer, qtbot, monkeypatch, tmp_path) -> Iterator[Callable]:  # type: ignore[no-untyped-def]
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # models kept by New / Load model land here
    widgets = []

    def factory(sample: str | None = None, *, show: bool = False, **settings):  # type: ignore[no-untyped-def]
        from napari_wss._widget import WssWidget

        viewer = make_napari_viewer(show=show)
        if sample is not None:
            viewer.open_sample("napari-wss", sample)
        widget = WssWidget(viewer)
        viewer.window.add_dock_widget(widget, name="Weakly supervised segmentation", area="right")
        fast = {"size": 64, "width": 8, "steps": 8, "batch_size": 4, "device": "cpu"}
        fast.update(settings)
        apply_settings(widget, **fast)
        widgets.append(widget)
        return viewer, widget

    yield factory
    for widget in widgets:
        widget.runner.stop()
        widget.model.predict_worker and widget.model.predict_worker.quit()
        qtbot.waitUntil(lambda w=widget: not w.runner.running and w.model.predict_worker is None, timeout=TIMEOUT_MS)


def apply_settings(widget, **values) -> None:  # type: ignore[no-untyped-def]
    s = widget.settings
    for name, value in values.items():
        field = getattr(s, name)
        if name in ("device", "penalty"):
            field.setCurrentText(str(value))
        elif name == "crop":
            field.setChecked(bool(value))
        else:
            field.setValue(value)


def digest(array) -> bytes:  # type: ignore[no-untyped-def]
    """Bytes, dtype and shape of an array: equal digests mean a byte-identical layer."""
    a = np.ascontiguousarray(array)
    return hashlib.sha256(a.tobytes()).digest() + str((a.dtype, a.shape)).encode()


@pytest.fixture
def gui(qtbot) -> SimpleNamespace:  # type: ignore[no-untyped-def]
    """Helpers: ``apply_settings``, ``train_and_wait``, ``wait_prediction``, ``digest``."""

    def train_and_wait(widget, timeout: int = TIMEOUT_MS) -> None:  # type: ignore[no-untyped-def]
        widget.train()
        assert widget.runner.running, "training did not start"
        qtbot.waitUntil(lambda: not widget.runner.running, timeout=timeout)

    def wait_prediction(widget, worker, timeout: int = TIMEOUT_MS) -> None:  # type: ignore[no-untyped-def]
        """Wait until the widget's own slot on the worker's ``finished`` (connected before the worker
        started) has run. A ``waitSignal`` opened after ``predict()`` returned can miss the signal of a
        worker that finished first (seen under load: a 60 s timeout)."""
        assert worker is not None, "prediction did not start"
        qtbot.waitUntil(lambda: widget.model.predict_worker is not worker, timeout=timeout)

    return SimpleNamespace(
        apply_settings=apply_settings, train_and_wait=train_and_wait, wait_prediction=wait_prediction, digest=digest
    )
