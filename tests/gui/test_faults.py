"""Faults in the plugin (issue 5): out of memory, Stop mid-epoch, closing the viewer while training,
pressing Train twice (no hang, no thread left behind), and nothing the user owns is written by
training, prediction, a stop or an error.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from qtpy.QtCore import QThreadPool

from napari_wss import io, toy, training
from napari_wss.errors import InputError
from napari_wss.training import Objective

from .conftest import TIMEOUT_MS, apply_settings

pytestmark = pytest.mark.gui


def _python_threads() -> set[str]:
    # The widget's one-off background import thread may still be finishing: not a worker.
    return {t.name for t in threading.enumerate() if t.is_alive() and t.name != "napari-wss-import"}


def _idle(pool: QThreadPool) -> bool:
    return pool.activeThreadCount() == 0


@pytest.fixture
def released(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts calls of training.release_memory (train's finally: GPU memory handed back)."""
    calls: list[int] = []
    real = training.release_memory
    monkeypatch.setattr(training, "release_memory", lambda: (calls.append(1), real()))
    return calls


def test_out_of_memory_is_advice_and_the_widget_trains_again(  # type: ignore[no-untyped-def]
    make_widget, gui, qtbot, monkeypatch, notes, released
) -> None:
    real = Objective.__call__

    def oom(self, *a, **k):  # type: ignore[no-untyped-def]
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Objective, "__call__", oom)
    viewer, widget = make_widget("phantom", steps=3)
    scribbles = gui.digest(viewer.layers["scribbles"].data)
    with qtbot.waitSignal(widget.runner.ended, timeout=TIMEOUT_MS) as ended:
        widget.train()
    assert ended.args[0] is None
    message = notes.errors()[-1]
    assert "ran out of memory at batch 4, width 8" in message and "lower the batch size (e.g. 2)" in message
    assert released, "GPU memory was not released"
    assert widget.train_button.isEnabled() and not widget.stop_button.isEnabled()
    assert "nothing you painted changed" in widget.status.text()
    # The widget is usable: with the advice followed, Train works.
    monkeypatch.setattr(Objective, "__call__", real)
    gui.apply_settings(widget, batch_size=2)
    gui.train_and_wait(widget)
    assert widget.state.step == 3 and len(notes.errors()) == 1
    assert gui.digest(viewer.layers["scribbles"].data) == scribbles


def test_stop_mid_epoch_leaves_no_thread_behind(make_widget, qtbot, released) -> None:  # type: ignore[no-untyped-def]
    pool = QThreadPool.globalInstance()
    qtbot.waitUntil(lambda: _idle(pool), timeout=TIMEOUT_MS)
    _viewer, widget = make_widget("phantom", steps=5000)
    threads = _python_threads()
    widget.train()
    with qtbot.waitSignal(widget.runner.progressed, timeout=TIMEOUT_MS):
        pass
    assert pool.activeThreadCount() == 1
    with qtbot.waitSignal(widget.runner.ended, timeout=TIMEOUT_MS) as ended:
        widget.stop()
    state = ended.args[0]
    assert state is not None and 0 < state.step < widget.settings.t_every.value()  # mid-epoch
    assert state.t == state.config.t0  # t grows at epoch ends only
    qtbot.waitUntil(lambda: _idle(pool), timeout=TIMEOUT_MS)
    assert released and _python_threads() <= threads


def test_closing_the_viewer_while_training_ends_the_worker(make_napari_viewer, qtbot, released) -> None:  # type: ignore[no-untyped-def]
    from napari_wss._widget import WssWidget

    pool = QThreadPool.globalInstance()
    qtbot.waitUntil(lambda: _idle(pool), timeout=TIMEOUT_MS)
    viewer = make_napari_viewer()
    viewer.open_sample("napari-wss", "phantom")
    widget = WssWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Weakly supervised segmentation")
    apply_settings(widget, size=64, width=8, steps=5000, batch_size=4, device="cpu")
    threads = _python_threads()
    widget.train()
    with qtbot.waitSignal(widget.runner.progressed, timeout=TIMEOUT_MS):
        pass
    control = widget.runner.control
    viewer.close()
    qtbot.waitUntil(lambda: control.stop.is_set() and _idle(pool) and bool(released), timeout=TIMEOUT_MS)
    assert _python_threads() <= threads


def test_pressing_train_twice_is_refused_with_a_message(make_widget, gui, qtbot, notes) -> None:  # type: ignore[no-untyped-def]
    pool = QThreadPool.globalInstance()
    _viewer, widget = make_widget("toy", steps=5000)
    widget.train()
    with qtbot.waitSignal(widget.runner.progressed, timeout=TIMEOUT_MS):
        pass
    worker, job = widget.runner._worker, widget.job
    widget.train()  # e.g. a shortcut while the button is disabled
    assert notes.has("already running", "info")
    assert widget.runner._worker is worker and widget.job is job and pool.activeThreadCount() == 1
    with pytest.raises(InputError, match="already running"):
        widget.runner.start(job, widget.state)
    with qtbot.waitSignal(widget.runner.ended, timeout=TIMEOUT_MS):
        widget.stop()
    qtbot.waitUntil(lambda: _idle(pool), timeout=TIMEOUT_MS)
    gui.apply_settings(widget, steps=2)
    gui.train_and_wait(widget)  # and Train works again afterwards
    assert not notes.errors(), notes


# --------------------------------------------------------------------------------------------
# Nothing lost


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def case_files(tmp_path: Path) -> list[Path]:
    """An ACDC-like image with _gt and _scribble siblings on disk."""
    ph = toy.cardiac_phantom(n_slices=3, size=48, seed=2)
    affine = np.diag([1.5, 1.5, 10.0, 1.0])
    return [
        io.write_nifti(tmp_path / f"case{suffix}.nii.gz", arr, affine, spacing=(10.0, 1.5, 1.5))
        for suffix, arr in (("", ph.image.astype(np.int16)), ("_gt", ph.labels), ("_scribble", ph.scribbles))
    ]


def test_training_prediction_stop_errors_and_export_never_write_the_users_files(  # type: ignore[no-untyped-def]
    make_widget, gui, qtbot, monkeypatch, notes, case_files
) -> None:
    hashes = {p: _sha(p) for p in case_files}
    image_path, gt_path, scribble_path = case_files
    viewer, widget = make_widget(steps=3)
    viewer.open(str(image_path), plugin="napari-wss")
    scribbles = viewer.layers["scribbles"]
    assert widget.scribble_layer() is scribbles and widget.image_layer() is viewer.layers["case"]
    painted = gui.digest(scribbles.data)

    gui.train_and_wait(widget)  # train
    worker = widget.model.predict()  # predict
    gui.wait_prediction(widget, worker)
    gui.apply_settings(widget, steps=5000)  # stop
    widget.train()
    with qtbot.waitSignal(widget.runner.progressed, timeout=TIMEOUT_MS):
        pass
    with qtbot.waitSignal(widget.runner.ended, timeout=TIMEOUT_MS):
        widget.stop()
    real = Objective.__call__  # an error mid-run

    def diverges(self, *a, **k):  # type: ignore[no-untyped-def]
        total, parts, probs = real(self, *a, **k)
        return total * float("nan"), parts, probs

    monkeypatch.setattr(Objective, "__call__", diverges)
    with qtbot.waitSignal(widget.runner.ended, timeout=TIMEOUT_MS):
        widget.train()
    assert notes.has("training diverged", "error")

    # Export: never onto the image, never over its scribbles or ground truth; elsewhere, yes.
    for target in (image_path, scribble_path, gt_path):
        assert widget.model.export(target) == []
    assert notes.has("source image", "error") and notes.has("over case_scribble.nii.gz", "error")
    out = image_path.parent / "case_pred.nii.gz"
    assert widget.model.export(out) == [str(out)]
    np.testing.assert_array_equal(
        np.asarray(nib.load(str(out)).dataobj).transpose(2, 1, 0), widget.prediction_layer.data
    )

    assert gui.digest(scribbles.data) == painted
    assert widget.prediction_layer is not scribbles
    assert {p: _sha(p) for p in case_files} == hashes


def test_python_exit_waits_for_the_widgets_warm_up(make_widget) -> None:  # type: ignore[no-untyped-def]
    """A warm-up thread still running when Python finalises aborts the process (SIGABRT)."""
    from napari_wss import _widget

    make_widget("phantom")
    threads = list(_widget._warm_ups)
    assert threads and all(t.name == "napari-wss-warm-up" for t in threads)
    _widget._join_warm_ups()  # what atexit runs
    assert not any(t.is_alive() for t in threads)
