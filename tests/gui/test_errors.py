"""Every bad input is one notification in plain words: nothing crashes, nothing painted changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_wss import training
from napari_wss._qt.class_table import CENTROID, SIZE_HI, SIZE_LO
from napari_wss.config import TrainConfig

pytestmark = pytest.mark.gui


def _refused(widget, notes, fragment: str) -> None:  # type: ignore[no-untyped-def]
    assert not widget.runner.running, "training started on bad input"
    assert widget.prediction_layer is None
    assert any(fragment.lower() in m.lower() for m in notes.errors()), notes


def test_no_image(make_widget, notes) -> None:  # type: ignore[no-untyped-def]
    _viewer, widget = make_widget()
    widget.train()
    _refused(widget, notes, "no image is chosen")


def test_no_scribble_layer_and_no_scribbles_painted(make_widget, gui, notes) -> None:  # type: ignore[no-untyped-def]
    viewer, widget = make_widget()
    viewer.add_image(np.random.default_rng(0).random((3, 32, 32)), name="img")
    widget.train()
    _refused(widget, notes, "no scribble layer is chosen")
    layer = widget.classes.new_scribble_layer()
    widget.train()
    _refused(widget, notes, "no scribbles are painted")
    assert gui.digest(layer.data) == gui.digest(np.zeros((3, 32, 32), np.uint8))


def test_scribble_layer_of_another_shape(make_widget, gui, notes) -> None:  # type: ignore[no-untyped-def]
    viewer, widget = make_widget("phantom")
    odd = viewer.add_labels(np.ones((8, 64, 64), np.uint8), name="odd")
    widget.scribble_picker.set_layer(odd)
    before = gui.digest(odd.data)
    widget.train()
    _refused(widget, notes, "has shape (8, 64, 64) but image")
    assert gui.digest(odd.data) == before


def test_lower_bound_above_upper(make_widget, gui, notes) -> None:  # type: ignore[no-untyped-def]
    viewer, widget = make_widget("phantom")
    before = gui.digest(viewer.layers["scribbles"].data)
    widget.table.set_cell(3, SIZE_LO, "900")
    widget.table.set_cell(3, SIZE_HI, "300")
    widget.train()
    _refused(widget, notes, "size bounds for 'LV': lower 900 > upper 300 mm²")
    assert gui.digest(viewer.layers["scribbles"].data) == before


def test_not_a_number(make_widget, notes) -> None:  # type: ignore[no-untyped-def]
    _viewer, widget = make_widget("phantom")
    widget.table.set_cell(2, SIZE_LO, "lots")
    widget.train()
    _refused(widget, notes, "the minimum size of 'myocardium' must be a number")


def test_centroid_box_outside_the_image(make_widget, notes) -> None:  # type: ignore[no-untyped-def]
    _viewer, widget = make_widget("phantom")
    widget.table.set_cell(3, CENTROID, "200, 250, 10, 20")
    widget.train()
    _refused(widget, notes, "lies outside the 128x128 image")
    widget.table.set_cell(3, CENTROID, "10, 20, 30")
    widget.train()
    _refused(widget, notes, "needs four numbers")


def test_class_with_neither_scribbles_nor_bounds(make_widget, notes) -> None:  # type: ignore[no-untyped-def]
    _viewer, widget = make_widget("phantom")
    widget.table.add_class("scar")
    widget.train()
    _refused(widget, notes, "class 'scar' has neither scribbles nor bounds")


def test_scribble_value_beyond_the_classes(make_widget, notes) -> None:  # type: ignore[no-untyped-def]
    _viewer, widget = make_widget("phantom")
    widget.table.remove_class(3)
    widget.train()
    _refused(widget, notes, "uses label 4 but only 3 classes are defined")


def test_network_size_not_a_multiple_of_16(make_widget, gui, notes) -> None:  # type: ignore[no-untyped-def]
    _viewer, widget = make_widget("phantom")
    gui.apply_settings(widget, size=72)
    widget.train()
    _refused(widget, notes, "multiple of 16")


def test_checkpoint_for_another_class_count(make_widget, tmp_path: Path, notes) -> None:  # type: ignore[no-untyped-def]
    _viewer, widget = make_widget("phantom")
    config = TrainConfig(width=4, depth=2, size=16, device="cpu")
    path = training.save_checkpoint(training.TrainState.create(config, ["background", "target"]), tmp_path / "two.pt")
    assert widget.model.load(path) is None
    assert widget.state is None
    assert notes.has("segments 2 classes (background, target) but 4 are defined here", "error")
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(b"not a model")
    assert widget.model.load(damaged) is None
    assert notes.has("is not a napari-wss model file or is damaged", "error")


def test_model_actions_without_a_model(make_widget, notes) -> None:  # type: ignore[no-untyped-def]
    _viewer, widget = make_widget("phantom")
    assert widget.model.predict() is None
    assert widget.model.save("/tmp/never.pt") is None
    assert widget.model.export("/tmp/never.nii.gz") == []
    for fragment in ("no model yet", "no model to save", "no prediction to export"):
        assert notes.has(fragment, "error")


def test_unexpected_error_in_the_worker_is_notified_and_logged(make_widget, qtbot, monkeypatch, caplog, notes) -> None:  # type: ignore[no-untyped-def]
    def broken(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("simulated failure")
        yield  # a generator, like the real one

    monkeypatch.setattr(training, "train", broken)
    _viewer, widget = make_widget("phantom")
    with qtbot.waitSignal(widget.runner.ended, timeout=30_000) as ended:
        widget.train()
    assert ended.args[0] is None
    assert notes.has("unexpected error (RuntimeError: simulated failure)", "error")
    assert "simulated failure" in caplog.text
    assert widget.train_button.isEnabled()


def test_diverging_training_is_a_plain_message(make_widget, qtbot, monkeypatch, notes) -> None:  # type: ignore[no-untyped-def]
    def diverges(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise training.TrainingError("training diverged at step 1: lower the learning rate")
        yield

    monkeypatch.setattr(training, "train", diverges)
    _viewer, widget = make_widget("phantom")
    with qtbot.waitSignal(widget.runner.ended, timeout=30_000):
        widget.train()
    assert notes.errors()[-1] == "training diverged at step 1: lower the learning rate"
