"""A user who presses everything in any order: random sequences of the widget's actions while
training runs — layers deleted or re-picked under it, classes added and removed, checkboxes
toggled, the prediction and the strokes painted on, models saved, exported, predicted — must
never raise (in a Qt slot, a worker thread or the notification of an error), never show a
traceback, never write to the source file, and never change the user's labels layers (strokes,
ground truth) except by the user's own brush.
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from napari.layers import Image, Labels

from napari_wss import _layers, io, toy

from .conftest import TIMEOUT_MS

pytestmark = pytest.mark.gui


def _theirs(viewer) -> dict[int, tuple[Labels, np.ndarray]]:  # type: ignore[no-untyped-def]
    """The user's labels layers (all but the predictions) and a copy of what they hold now."""
    return {
        id(lay): (lay, np.array(lay.data))
        for lay in viewer.layers
        if isinstance(lay, Labels) and _layers.role_of(lay.metadata) != _layers.ROLE_PREDICTION
    }


def _actions(viewer, widget, rng: np.random.Generator, tmp: Path, theirs: dict) -> dict[str, Callable[[], None]]:  # type: ignore[no-untyped-def]
    """Every action a user can take, by name; each picks its own random details from ``rng``.
    ``theirs`` follows the user's own labels layers as only the user's brush changes them."""

    def layer(kind: type) -> object | None:
        found = [lay for lay in viewer.layers if isinstance(lay, kind)]
        return found[int(rng.integers(len(found)))] if found else None

    def paint(target: Labels | None) -> None:
        if target is None:
            return
        shape = target.data.shape
        point = tuple(int(rng.integers(n)) for n in shape)
        target.paint(point, int(rng.integers(0, 4)))
        if id(target) in theirs:
            theirs[id(target)] = (target, np.array(target.data))

    def remove(kind: type) -> None:
        found = layer(kind)
        if found is not None:
            viewer.layers.remove(found)

    def pick(picker) -> None:  # type: ignore[no-untyped-def]
        picker.setCurrentIndex(int(rng.integers(picker.count()))) if picker.count() else None

    def toggle(box) -> None:  # type: ignore[no-untyped-def]
        box.setChecked(not box.isChecked())

    def edit_bound() -> None:
        table = widget.table
        if table.rowCount() > 1:
            row, col = int(rng.integers(1, table.rowCount())), int(rng.integers(2, 4))
            table.set_cell(row, col, str(rng.choice(["", "100", "2500", "-3", "abc", "1e9", "0"])))

    def slice_step() -> None:
        if viewer.dims.ndim > 2:
            axis = viewer.dims.ndim - 3
            viewer.dims.set_current_step(axis, int(rng.integers(viewer.dims.nsteps[axis])))

    def duplicate_image() -> None:
        image = layer(Image)
        if image is not None:
            viewer.add_image(np.asarray(image.data).copy(), name="copy", scale=image.scale)

    def rectangle() -> None:
        """A rectangle on the layer 'Box from rectangle' made, anywhere, even off the image."""
        shapes = next((lay for lay in viewer.layers if lay.name == "centroid boxes"), None)
        if shapes is not None and shapes in viewer.layers:
            lo = rng.uniform(-20, 150, 2)
            lead = [0.0] * (shapes.ndim - 2)
            shapes.add_rectangles(np.array([[*lead, *lo], [*lead, *(lo + rng.uniform(1, 80, 2))]]))

    def press(button) -> Callable[[], None]:  # type: ignore[no-untyped-def]
        return button.click  # does nothing while the button is disabled, as for a user

    def through(button, action: Callable[[], object]) -> Callable[[], None]:  # type: ignore[no-untyped-def]
        """A button that opens a file dialog: its action with a chosen path, if the button is enabled."""
        return lambda: action() if button.isEnabled() else None

    def model_file() -> Path:
        return tmp / f"m{int(rng.integers(3))}.pt"

    return {
        "train": press(widget.train_button),
        "train again": press(widget.train_button),
        "stop": press(widget.stop_button),
        "pause": press(widget.pause_button),
        "predict volume": press(widget.predict_button),
        "predict all frames": press(widget.predict_cine_button),
        "new model": press(widget.new_model_button),
        "save model": through(widget.save_button, lambda: widget.model.save(model_file())),
        "load model": through(widget.load_button, lambda: widget.model.load(model_file())),
        "export prediction": through(widget.export_button, lambda: widget.model.export(tmp / "pred.nii.gz")),
        "measurements": through(widget.measure_button, lambda: widget.model.export_measurements(tmp / "m.csv")),
        "add class": widget.classes.add_class,
        "remove class": widget.classes.remove_class,
        "estimate bounds": widget.classes.estimate_bounds,
        "cardiac sizes": widget.classes.cardiac_sizes,
        "box from rectangle": widget.classes.box_from_rectangle,
        "draw a rectangle": rectangle,
        "new scribble layer": lambda: (widget.classes.new_scribble_layer(), theirs.update(_theirs(viewer) | theirs)),
        "select a class": lambda: widget.table.selectRow(int(rng.integers(max(1, widget.table.rowCount())))),
        "tick absent": lambda: (
            widget.table.set_absent(int(rng.integers(1, max(2, widget.table.rowCount()))), bool(rng.integers(2)))
            if widget.table.rowCount() > 1
            else None
        ),
        "edit a bound": edit_bound,
        "pick image": lambda: pick(widget.image_picker),
        "pick scribbles": lambda: pick(widget.scribble_picker),
        "pick ground truth": lambda: pick(widget.gt_picker),
        "islands": lambda: toggle(widget.largest_component),
        "lv hull": lambda: toggle(widget.lv_hull),
        "dark myocardium": lambda: toggle(widget.dark_myo),
        "septum": lambda: toggle(widget.septum_wall),
        "average flips": lambda: toggle(widget.tta),
        "stroke boxes": lambda: toggle(widget.stroke_boxes),
        "train all": lambda: toggle(widget.train_all),
        "crop": lambda: toggle(widget.settings.crop),
        "wall mm": lambda: widget.max_wall.setValue(float(rng.choice([0.0, 3.0, 12.0]))),
        "paint the prediction": lambda: paint(widget.prediction_layer),
        "paint a labels layer": lambda: paint(layer(Labels)),  # type: ignore[arg-type]
        "remove a labels layer": lambda: remove(Labels),
        "remove an image layer": lambda: remove(Image),
        "duplicate the image": duplicate_image,
        "open a frame": lambda: (widget.frame_box.setValue(int(rng.integers(3))), widget.open_frame_button.click()),
        "move the slice": slice_step,
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_presses_never_raise(seed: int, make_widget, qtbot, tmp_path: Path, notes, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    failures: list[str] = []
    record = lambda kind, value, tb: failures.append("".join(traceback.format_exception(kind, value, tb)))  # noqa: E731
    monkeypatch.setattr(threading, "excepthook", lambda a: record(a.exc_type, a.exc_value, a.exc_traceback))
    monkeypatch.setattr(sys, "excepthook", record)
    viewer, widget = make_widget("phantom", steps=40)
    # a 4D array as a layer (refused for training), and a cine file with strokes on its frame 0:
    # Open frame and Predict all frames have something to do
    image = viewer.layers["cardiac phantom"]
    viewer.add_image(np.stack([image.data, image.data[:, ::-1]]), name="4D array", scale=(1, *image.scale))
    frames = [toy.cardiac_phantom(n_slices=3, size=48, seed=s) for s in range(3)]
    cine = io.write_nifti(tmp_path / "cine.nii.gz", np.stack([f.image for f in frames]), np.diag([1.5, 1.5, 8, 1]))
    viewer.open(str(cine), plugin="napari-wss")
    widget.image_picker.set_layer(viewer.layers["cine [frame 0]"])
    widget.classes.new_scribble_layer().data = frames[0].scribbles.copy()
    widget.image_picker.set_layer(image)
    widget.scribble_picker.set_layer(viewer.layers["scribbles"])
    source = cine.read_bytes()
    rng = np.random.default_rng(seed)
    theirs = _theirs(viewer)
    actions = _actions(viewer, widget, rng, tmp_path, theirs)
    names = sorted(actions)
    done: list[str] = []
    steps: list[int] = []
    widget.runner.progressed.connect(lambda item: steps.append(item.event.step))
    widget.train_button.click()  # the phantom trains: the first presses land while it runs
    qtbot.waitUntil(lambda: bool(steps), timeout=TIMEOUT_MS)
    for _ in range(60):
        if not widget.runner.running and rng.random() < 0.3:
            done.append("train")  # most of the presses below land while training runs
            widget.train_button.click()
        name = names[int(rng.integers(len(names)))]
        done.append(name)
        actions[name]()
        qtbot.wait(int(rng.integers(0, 250)))
    widget.stop()
    qtbot.waitUntil(lambda: not widget.runner.running and widget.model.predict_worker is None, timeout=TIMEOUT_MS)
    shown = [m for m in notes.messages() if "Traceback" in m or "\n" in m.strip()]
    assert not failures and not shown, (done, failures, shown)
    assert cine.read_bytes() == source
    changed = [lay.name for lay, data in theirs.values() if lay in viewer.layers and not np.array_equal(lay.data, data)]
    assert not changed, (done, changed)
