"""Training in the worker: live previews, Stop, bounds sent mid-run, Predict, Save / Load, export."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_wss import training
from napari_wss._qt.class_table import SIZE_HI
from napari_wss.data import absent_classes
from napari_wss.postprocess import (
    FROM_PREDICTION,
    clear_absent,
    fill_lv_hull,
    keep_largest_component,
    limit_myocardium_brightness,
    limit_wall_to_septum,
    myocardium_ceiling,
)

pytestmark = pytest.mark.gui

TIMEOUT = 60_000


def test_training_updates_one_prediction_layer_and_never_the_scribbles(make_widget, gui, notes) -> None:  # type: ignore[no-untyped-def]
    viewer, widget = make_widget("toy", steps=8)
    scribbles = viewer.layers["scribbles"]
    before = gui.digest(scribbles.data)
    n_layers = len(viewer.layers)
    seen = []
    widget.runner.progressed.connect(seen.append)

    gui.train_and_wait(widget)

    assert not notes.errors(), notes
    assert [p.event.step for p in seen] == list(range(1, 9))
    assert widget.state.step == 8
    pred = widget.prediction_layer
    assert pred is not None and pred.name == "prediction" and len(viewer.layers) == n_layers + 1
    assert pred is not scribbles and pred.data.shape == scribbles.data.shape
    assert widget.frames_shown >= 2  # the first and the last step at least
    last = next(p for p in reversed(seen) if p.frame is not None)
    np.testing.assert_array_equal(pred.data[last.rows], last.frame)
    assert pred.data.any()
    assert last.dice is not None and last.dice.shape == (2,)  # a ground truth is picked
    assert gui.digest(scribbles.data) == before
    # A second run continues the same model and reuses the same layer.
    gui.train_and_wait(widget)
    assert widget.state.step == 16 and widget.prediction_layer is pred and len(viewer.layers) == n_layers + 1
    assert gui.digest(scribbles.data) == before


def test_stop_ends_the_worker_within_a_step(make_widget, gui, qtbot, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    released = []
    real = training.release_memory
    monkeypatch.setattr(training, "release_memory", lambda: (released.append(1), real()))
    _viewer, widget = make_widget("toy", steps=5000)
    widget.train()
    with qtbot.waitSignal(widget.runner.progressed, timeout=TIMEOUT):
        pass
    assert widget.pause_button.isEnabled() and not widget.train_button.isEnabled()
    step_at_stop = widget.last_progress.event.step
    with qtbot.waitSignal(widget.runner.ended, timeout=TIMEOUT) as ended:
        widget.stop_button.click()
    state = ended.args[0]
    assert state is widget.state and state.step <= step_at_stop + 2
    assert next(state.model.parameters()).device.type == "cpu"
    assert released, "train's finally did not run"
    assert widget.train_button.isEnabled() and widget.predict_button.isEnabled()


def test_pause_and_resume(make_widget, qtbot) -> None:  # type: ignore[no-untyped-def]
    _viewer, widget = make_widget("toy", steps=5000)
    widget.train()
    with qtbot.waitSignal(widget.runner.progressed, timeout=TIMEOUT):
        pass
    with qtbot.waitSignal(widget.runner.paused_changed, timeout=TIMEOUT):
        widget.pause_button.click()
    assert widget.pause_button.text() == "Resume"
    step = widget.last_progress.event.step
    qtbot.wait(300)
    assert widget.last_progress.event.step <= step + 1
    with qtbot.waitSignal(widget.runner.progressed, timeout=TIMEOUT):
        widget.pause_button.click()
    assert widget.pause_button.text() == "Pause"


def test_bounds_edited_mid_training_reach_the_next_step(make_widget, qtbot) -> None:  # type: ignore[no-untyped-def]
    _viewer, widget = make_widget("toy", steps=5000, crop=False)  # TOY 256 px → network 64 px: areas ÷ 16
    widget.train()
    with qtbot.waitSignal(widget.runner.progressed, timeout=TIMEOUT) as first:
        pass
    assert first.args[0].bounds_version == 0
    old_upper = first.args[0].event.size_bounds[1, 1]
    step_at_edit = widget.last_progress.event.step
    widget.table.set_cell(1, SIZE_HI, "9000")
    assert widget.bounds_version == 1
    qtbot.waitUntil(lambda: widget.last_progress.bounds_version == 1, timeout=TIMEOUT)
    event = widget.last_progress.event
    assert event.size_bounds[1, 1] == pytest.approx(9000 / 16)
    assert event.size_bounds[1, 1] != pytest.approx(old_upper)
    assert event.step <= step_at_edit + 2  # the step in flight, then the new bounds
    widget.stop()


def test_predict_save_load_and_export(make_widget, gui, tmp_path: Path, notes) -> None:  # type: ignore[no-untyped-def]
    from napari_wss import _widget

    viewer, widget = make_widget("phantom", steps=4, crop=True)
    # the widget's background warm-up must not run beside the exact comparisons below (one full
    # run of make test on 2026-12-08 saw 113 of 131072 labels differ here; not reproduced alone)
    _widget._join_warm_ups()
    gui.train_and_wait(widget)
    trained = widget.state
    model_path = widget.model.save(tmp_path / "model.pt")
    assert model_path is not None and model_path.is_file()

    widget.model.new()
    assert widget.state is None and not widget.predict_button.isEnabled()
    loaded = widget.model.load(model_path)
    assert loaded is widget.state and loaded.step == trained.step == 4
    assert loaded.geometry == trained.geometry  # the crop box travels with the model
    assert widget.settings.width.value() == trained.config.width

    assert widget.tta.isChecked()  # on by default: the eight symmetries averaged
    raw = training.predict_volume(loaded, viewer.layers["cardiac phantom"].data, tta=8)
    strokes = widget.scribble_layer().data.copy()
    names = widget.table.names()
    assert widget.lv_hull.isChecked() and widget.dark_myo.isChecked()  # on by default, with these class names
    assert widget.septum_wall.isChecked()
    image = np.asarray(viewer.layers["cardiac phantom"].data)
    ceiling = myocardium_ceiling(image, strokes, names)
    in_plane = widget.spacing_zyx()[1:]
    for keep, hull, dark, septum in ((True, True, True, True), (False, True, True, False), (False,) * 4):
        assert widget.largest_component.isChecked() is keep  # islands: marked (else largest) 3D objects
        widget.lv_hull.setChecked(hull)
        widget.dark_myo.setChecked(dark)
        widget.septum_wall.setChecked(septum)
        widget.prediction_layer.data[...] = 0
        worker = widget.model.predict()
        gui.wait_prediction(widget, worker)
        # with the islands removed, what the strokes say is absent from a slice is cleared there first
        absent = absent_classes(strokes.shape[0], 4, scribbles=strokes, absent=widget.table.absent_pairs())
        expected = keep_largest_component(clear_absent(raw, absent), 4, scribbles=strokes) if keep else raw
        expected = limit_myocardium_brightness(expected, image, ceiling, names) if dark else expected
        expected = fill_lv_hull(expected, names) if hull else expected
        expected = limit_wall_to_septum(expected, names, in_plane) if septum else expected
        np.testing.assert_array_equal(widget.prediction_layer.data, expected)
        widget.largest_component.setChecked(False)
    widget.tta.setChecked(False)  # unticked, one forward pass a slice
    worker = widget.model.predict()
    gui.wait_prediction(widget, worker)
    plain = training.predict_volume(loaded, image)
    assert (plain != raw).any()
    np.testing.assert_array_equal(widget.prediction_layer.data, plain)
    widget.tta.setChecked(True)
    augmented = loaded.config
    loaded.config = augmented.with_(augment=False)  # a model that never saw other orientations predicts once
    worker = widget.model.predict()
    gui.wait_prediction(widget, worker)
    np.testing.assert_array_equal(widget.prediction_layer.data, plain)
    loaded.config = augmented
    np.testing.assert_array_equal(widget.scribble_layer().data, strokes)  # prediction never paints there

    # A loaded model continues training.
    gui.train_and_wait(widget)
    assert widget.state.step == 8

    out = tmp_path / "phantom_pred.nii.gz"
    assert widget.model.export(out) == [str(out)]
    back = nib.load(str(out))
    np.testing.assert_allclose(back.affine, viewer.layers["cardiac phantom"].metadata["affine"])
    np.testing.assert_array_equal(np.asarray(back.dataobj).transpose(2, 1, 0), widget.prediction_layer.data)
    assert not notes.errors(), notes


def test_centroid_near_the_strokes_reaches_the_training_job(make_widget, gui, notes) -> None:  # type: ignore[no-untyped-def]
    from napari_wss._qt.settings import STROKE_BOX_FLOOR

    _viewer, widget = make_widget("phantom", steps=2)
    assert widget.stroke_boxes.isChecked()  # on by default
    untyped = [r for r in range(1, widget.table.rowCount()) if widget.table.centroid_box(r) is None]
    assert untyped  # classes without a typed box get their strokes' boxes
    for ticked in (True, False):
        widget.stroke_boxes.setChecked(ticked)
        gui.train_and_wait(widget)
        job = widget.job
        cents = job.data.centroid_bounds[:, untyped, 0, 0]
        if ticked:
            assert job.stroke_boxes == STROKE_BOX_FLOOR and np.isfinite(cents).any()
        else:
            assert job.stroke_boxes is None and np.isnan(cents).all()
    assert not notes.errors(), notes


def test_predict_volume_marks_islands_with_a_copy_of_the_strokes(make_widget, gui, monkeypatch, notes) -> None:  # type: ignore[no-untyped-def]
    _viewer, widget = make_widget("phantom", steps=2)
    gui.train_and_wait(widget)
    seen: dict[str, object] = {}
    real = training.predict_volume

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "predict_volume", spy)
    for keep in (True, False):
        widget.largest_component.setChecked(keep)
        gui.wait_prediction(widget, widget.model.predict())
        strokes = seen["scribbles"]
        assert seen["lv_hull"] is True  # the phantom's classes are named LV and myocardium, the box is ticked
        # dark myocardium, ticked by default: 99 % of the intensities under the myocardium's strokes
        marks = widget.scribble_layer().data
        image = np.asarray(_viewer.layers["cardiac phantom"].data)
        assert seen["myo_ceiling"] == pytest.approx(np.percentile(image[marks == 3], 99))
        assert seen["max_wall_mm"] is None  # the wall limit is off until the user states one
        # the wall within 1.5 x the septum, ticked by default, in the image's in-plane voxel size
        assert seen["septum_factor"] == 1.5 and seen["spacing_yx"] == widget.spacing_zyx()[1:]
        if keep:
            assert seen["largest_component"] == "volume"
            assert isinstance(strokes, np.ndarray) and strokes is not widget.scribble_layer().data
            np.testing.assert_array_equal(strokes, widget.scribble_layer().data)
            # what the strokes (and the Absent ticks) say is not on a slice is cleared there
            want = absent_classes(strokes.shape[0], 4, scribbles=strokes, absent=widget.table.absent_pairs())
            np.testing.assert_array_equal(seen["absent"], want)
        else:
            assert seen["largest_component"] is None and strokes is None and seen["absent"] is None
    # The status line reports each class's volume in mL from the phantom's voxel size.
    spacing = widget.spacing_zyx()
    assert spacing is not None and spacing == tuple(float(s) for s in _viewer.layers["cardiac phantom"].scale)
    counts = np.bincount(widget.prediction_layer.data.ravel(), minlength=4)
    names = widget.table.names()
    volumes = widget.prediction_layer.metadata["volumes_ml"]
    for c, name in enumerate(names):
        assert volumes[name] == pytest.approx(counts[c] * np.prod(spacing) / 1000)
    assert f"{names[3]} {volumes[names[3]]:.1f} mL" in widget.status.text()
    # Without myocardium strokes on the image, the ceiling comes from the prediction itself.
    layer = widget.scribble_layer()
    painted = layer.data.copy()
    layer.data = np.where(painted == 3, 0, painted)
    gui.wait_prediction(widget, widget.model.predict())
    assert seen["myo_ceiling"] == FROM_PREDICTION
    layer.data = painted
    widget.dark_myo.setChecked(False)
    gui.wait_prediction(widget, widget.model.predict())
    assert seen["myo_ceiling"] is None
    widget.septum_wall.setChecked(False)
    gui.wait_prediction(widget, widget.model.predict())
    assert seen["septum_factor"] is None
    # A stated wall thickness reaches Predict volume with the image's in-plane voxel size ...
    widget.max_wall.setValue(9.5)
    gui.wait_prediction(widget, widget.model.predict())
    assert seen["max_wall_mm"] == 9.5 and seen["spacing_yx"] == spacing[1:]
    # ... and without a voxel size it is refused in one line, nothing predicted.
    monkeypatch.setattr(widget, "spacing_zyx", lambda image=None: None)
    assert widget.model.predict() is None
    assert "needs an image with a voxel size" in notes.errors()[-1]


def test_second_frame_own_prediction_and_ejection_fraction(  # type: ignore[no-untyped-def]
    make_widget, gui, monkeypatch, notes, tmp_path: Path
) -> None:
    """Train on one frame, pick the same heart's other frame (same grid), Predict volume: a new
    prediction layer (the first one kept as it was) and the EF of the two; Export measurements
    writes both frames' volumes and the indices from the labels as edited. Predictions are fixed
    here (the expert mask, then the mask with part of the LV removed) so the EF is known."""
    viewer, widget = make_widget("phantom", steps=2)
    gui.train_and_wait(widget)
    image = viewer.layers["cardiac phantom"]
    ed = np.asarray(viewer.layers["ground truth"].data).astype(np.uint8)
    es = ed.copy()
    lv = np.argwhere(es == 3)
    drop = lv[: len(lv) * 2 // 5]  # 40 % of the LV voxels become background: EF 40 %
    es[tuple(drop.T)] = 0
    outputs = [ed, es]
    monkeypatch.setattr(training, "predict_volume", lambda *a, **k: outputs.pop(0).copy())

    gui.wait_prediction(widget, widget.model.predict())
    first = widget.prediction_layer
    assert "Volumes: " in widget.status.text() and "EF" not in widget.status.text()
    other = viewer.add_image(
        np.asarray(image.data).copy(), name="phantom ES", scale=image.scale, metadata=dict(image.metadata)
    )
    widget.image_picker.set_layer(other)
    gui.wait_prediction(widget, widget.model.predict())
    second = widget.prediction_layer
    assert second is not first and second.name == "prediction (phantom ES)" and first in viewer.layers
    np.testing.assert_array_equal(first.data, ed)  # the first frame's prediction is kept
    np.testing.assert_array_equal(second.data, es)
    n_ed, n_es = int((ed == 3).sum()), int((es == 3).sum())
    lv_name = widget.table.names()[3]
    assert f"{lv_name} EF {100 * (n_ed - n_es) / n_ed:.1f} %" in widget.status.text()
    assert "with 'prediction' as the other frame" in widget.status.text().lower()

    # Export measurements: both frames' volumes and the indices of the two, from the labels as they are now.
    spacing = tuple(float(v) for v in image.metadata["spacing"])
    voxel_ml = float(np.prod(spacing)) / 1000
    table = _csv_items(widget.model.export_measurements(tmp_path / "m.csv"))
    assert table[f"prediction {lv_name}"] == pytest.approx(n_ed * voxel_ml, rel=1e-5)
    assert table[f"prediction (phantom ES) {lv_name}"] == pytest.approx(n_es * voxel_ml, rel=1e-5)
    assert table["LV EF"] == pytest.approx(100 * (n_ed - n_es) / n_ed, rel=1e-5)
    edited = es.copy()
    edited[tuple(lv[len(lv) * 2 // 5 : len(lv) * 3 // 5].T)] = 0  # the user erases more of the ES cavity
    second.data = edited
    table = _csv_items(widget.model.export_measurements(tmp_path / "m.csv"))  # replaced in place
    n_edit = int((edited == 3).sum())
    assert n_edit < n_es and table["LV EF"] == pytest.approx(100 * (n_ed - n_edit) / n_ed, rel=1e-5)
    edited[0, 0, 0] = 9  # a label no class has
    second.data = edited
    assert widget.model.export_measurements(tmp_path / "bad.csv") is None and not (tmp_path / "bad.csv").exists()
    assert "holds labels outside 0..3" in notes.errors()[-1]


def test_new_or_load_model_keeps_a_model_no_one_saved(make_widget, gui, tmp_path: Path, notes) -> None:  # type: ignore[no-untyped-def]
    """New model and Load model never lose trained steps no Save model wrote: the model goes to the
    temporary folder, the notification names the file, and it loads back as it was."""
    import torch

    _, widget = make_widget("phantom", steps=2)
    gui.train_and_wait(widget)
    trained = widget.state
    widget.model.new()
    kept = list((tmp_path / "napari-wss").glob("unsaved-model-*.pt"))
    assert widget.state is None and len(kept) == 1 and notes.has(str(kept[0]))
    back = widget.model.load(kept[0])
    assert back.step == trained.step == 2
    for a, b in zip(back.model.state_dict().values(), trained.model.state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu())
    widget.model.new()  # loaded from a file and not trained since: nothing to keep
    gui.train_and_wait(widget)
    widget.model.save(tmp_path / "mine.pt")
    assert widget.model.load(tmp_path / "mine.pt") is not None  # saved: nothing to keep either
    assert len(list((tmp_path / "napari-wss").glob("*.pt"))) == 1
    gui.train_and_wait(widget)  # two more steps no one saved
    widget.model.load(tmp_path / "mine.pt")
    assert len(list((tmp_path / "napari-wss").glob("*.pt"))) == 2 and widget.state.step == 2
    gui.train_and_wait(widget)
    widget.table.add_class("scar")  # a fifth class: the next Train starts a new model, the old one is kept
    widget.table.set_sizes({4: (10.0, 200.0)})  # bounds only: strokes are not needed
    gui.train_and_wait(widget)
    kept = sorted((tmp_path / "napari-wss").glob("*.pt"), key=lambda p: p.stat().st_mtime)
    assert widget.state.num_classes == 5 and len(kept) == 3
    assert widget.model.load(kept[-1]) is None  # the four-class model, kept with its own four classes
    assert notes.has("segments 4 classes", "error")


def test_a_prediction_the_user_painted_on_is_never_overwritten(make_widget, gui, notes) -> None:  # type: ignore[no-untyped-def]
    """Brush, fill or eraser on the prediction layer make it the user's work: Predict volume and the
    training previews then go to a new layer and the edited one keeps every voxel; the ejection
    fraction pairs frames, not a frame's edited and new predictions."""
    viewer, widget = make_widget("phantom", steps=2)
    gui.train_and_wait(widget)
    gui.wait_prediction(widget, widget.model.predict())
    first = widget.prediction_layer
    untouched = gui.digest(first.data)
    gui.wait_prediction(widget, widget.model.predict())
    assert widget.prediction_layer is first  # not painted on: refilled in place
    first.paint((1, 20, 20), (int(first.data[1, 20, 20]) + 1) % 4)  # the user's brush, another class there
    assert first.metadata["edited"] and gui.digest(first.data) != untouched
    painted = gui.digest(first.data)
    gui.wait_prediction(widget, widget.model.predict())
    second = widget.prediction_layer
    assert second is not first and second.name == "prediction (new)" and first in viewer.layers
    assert gui.digest(first.data) == painted and notes.has("'prediction' has your edits")
    assert "EF" not in widget.status.text()  # the same frame twice is not two frames
    gui.train_and_wait(widget)  # the previews go to the new layer too
    assert widget.prediction_layer is second and gui.digest(first.data) == painted


def test_the_status_line_names_the_classes_taken_as_absent(make_widget, gui) -> None:  # type: ignore[no-untyped-def]
    """A slice painted without a class has it absent in training and Predict volume: the status
    line says where, during the press and after it."""
    viewer, widget = make_widget("phantom", steps=2)
    gui.train_and_wait(widget)
    # the phantom's apical slices 6 and 7 show no RV, and its strokes say so
    assert widget.status.text().endswith(
        "Taken as absent where a painted slice has no stroke of it: RV on slices 6, 7."
    )
    strokes = viewer.layers["scribbles"]
    marks = strokes.data.copy()
    marks[2][marks[2] == 4] = 0  # the user erases the LV's strokes on slice 2
    strokes.data = marks
    widget.train()
    assert widget.status.text().endswith(": RV on slices 6, 7; LV on slice 2.")
    gui.train_and_wait(widget)
    assert widget.status.text().endswith(": RV on slices 6, 7; LV on slice 2.")
    assert widget.job.data.size_bounds[2, 3, 1] == 0  # what the line says is what training used


def test_previews_and_predictions_stay_with_their_image_when_another_is_picked(  # type: ignore[no-untyped-def]
    make_widget, gui, qtbot, notes
) -> None:
    """Picking another image while training runs or Predict volume works (a random-press test
    found this raising in the preview slot): the labels go to the prediction layer of the image
    they were computed for, and none is made for the image picked since."""
    viewer, widget = make_widget("phantom", steps=30)
    phantom = viewer.layers["cardiac phantom"]
    other = viewer.add_image(np.zeros((1, 20, 20), np.float32) + np.arange(20, dtype=np.float32), name="other")
    widget.image_picker.setCurrentIndex(widget.image_picker.findText("cardiac phantom"))
    seen = []
    widget.runner.progressed.connect(lambda item: seen.append(item.frame is not None))
    widget.train()
    qtbot.waitUntil(lambda: len(seen) >= 2, timeout=TIMEOUT)
    widget.image_picker.setCurrentIndex(widget.image_picker.findText("other"))
    assert widget.image_layer() is other and widget.runner.running
    switched = len(seen)
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=TIMEOUT)
    pred = widget.prediction_layer
    assert pred.data.shape == phantom.data.shape and pred.data.any()
    assert widget.prediction_image is phantom and any(seen[switched:])  # previews after the switch landed too
    assert not any(lay.data.shape == other.data.shape for lay in viewer.layers if lay is not other)
    widget.image_picker.setCurrentIndex(widget.image_picker.findText("cardiac phantom"))
    pred.data[...] = 0
    worker = widget.model.predict()
    widget.image_picker.setCurrentIndex(widget.image_picker.findText("other"))
    gui.wait_prediction(widget, worker)
    assert widget.prediction_layer is pred and pred.data.any() and not notes.errors()
    # an image closed before its prediction is ready: a status line, no layer, no error
    widget.image_picker.setCurrentIndex(widget.image_picker.findText("cardiac phantom"))
    worker = widget.model.predict()
    layers = len(viewer.layers)
    viewer.layers.remove(phantom)  # before the result's slot can run: it runs on this (the main) thread
    gui.wait_prediction(widget, worker)
    assert "was closed before its prediction was ready" in widget.status.text()
    assert len(viewer.layers) == layers - 1 and not notes.errors()


ACDC_PATIENT = Path(__file__).resolve().parents[3] / "shared" / "data" / "acdc" / "training" / "patient001"


@pytest.mark.skipif(not ACDC_PATIENT.is_dir(), reason="the shared ACDC data is not mounted here")
def test_train_on_both_frames_of_a_real_acdc_heart(make_widget, gui) -> None:  # type: ignore[no-untyped-def]
    """ACDC patient 1's two frames opened from their files, each with its expert-drawn scribbles:
    ticked, one press learns both, each scribble layer paired with its own frame's file; Predict
    volume on the end-systole then maps it through its own crop. No layer the user painted changes."""
    viewer, widget = make_widget(steps=2)
    viewer.open(str(ACDC_PATIENT / "patient001_frame01.nii.gz"), plugin="napari-wss")
    viewer.open(str(ACDC_PATIENT / "patient001_frame12.nii.gz"), plugin="napari-wss")
    ed, es = viewer.layers["patient001_frame01"], viewer.layers["patient001_frame12"]
    ed_strokes, es_strokes = viewer.layers["scribbles"], viewer.layers["scribbles [1]"]
    assert es_strokes.metadata["source_path"] == es.metadata["source_path"]
    painted = [gui.digest(ed_strokes.data), gui.digest(es_strokes.data)]
    widget.image_picker.set_layer(ed)
    widget.scribble_picker.set_layer(ed_strokes)
    widget.train_all.setChecked(True)
    gui.train_and_wait(widget)
    job = widget.job
    assert job.others == ("patient001_frame12",) and len(job.data) == ed.data.shape[0] + es.data.shape[0]
    assert job.config.steps == 4 and job.others_geometry[0].source_shape == es.data.shape[1:]
    assert painted == [gui.digest(ed_strokes.data), gui.digest(es_strokes.data)]

    widget.image_picker.set_layer(es)
    widget.scribble_picker.set_layer(es_strokes)
    gui.wait_prediction(widget, widget.model.predict())
    assert widget.prediction_layer.name == "prediction (patient001_frame12)"
    assert widget.prediction_layer.data.shape == es.data.shape and widget.prediction_layer.data.any()
    assert painted == [gui.digest(ed_strokes.data), gui.digest(es_strokes.data)]


def _csv_items(path: Path | None) -> dict[str, float]:
    """An exported measurements CSV as {item: value}, after checking its header and units."""
    import csv

    assert path is not None
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["item", "value", "unit"]
    assert {unit for _, _, unit in rows[1:]} <= {"mL", "%", "g", "frame"}
    return {item: float(value) for item, value, _ in rows[1:]}


def test_strokes_off_the_image_grid_are_not_used() -> None:
    from types import SimpleNamespace

    from napari_wss._widget_model import _strokes_on

    eye, moved = np.eye(4), np.eye(4)
    moved[0, 3] = 5.0  # 5 mm off
    img = SimpleNamespace(data=np.zeros((2, 8, 8)), metadata={"affine": eye})
    strokes = np.ones((2, 8, 8), dtype=np.uint8)
    assert _strokes_on(img, None) is None
    assert _strokes_on(img, SimpleNamespace(data=strokes[0], metadata={})) is None  # another shape
    assert _strokes_on(img, SimpleNamespace(data=strokes, metadata={"affine": moved})) is None  # another grid
    assert _strokes_on(img, SimpleNamespace(data=strokes.astype(float), metadata={})) is None  # not labels
    same = _strokes_on(img, SimpleNamespace(data=strokes, metadata={"affine": eye}))
    assert same is not None and same is not strokes
    np.testing.assert_array_equal(same, strokes)


def test_cine_frames_open_as_their_own_images_with_their_own_strokes(  # type: ignore[no-untyped-def]
    make_widget, gui, qtbot, notes, tmp_path: Path
) -> None:
    """A 4D cine opens its frame 0; 'Open frame' adds another frame on the same grid as an image of
    its own. Strokes painted on one frame never train another, and nothing writes to the file."""
    from napari_wss import io, toy

    frames = [toy.cardiac_phantom(n_slices=3, size=48, seed=s) for s in range(3)]
    path = io.write_nifti(tmp_path / "cine.nii.gz", np.stack([f.image for f in frames]), np.diag([1.5, 1.5, 8, 1]))
    source = path.read_bytes()
    viewer, widget = make_widget()
    assert not widget.open_frame_button.isVisibleTo(widget)  # shown for cines only
    viewer.open(str(path), plugin="napari-wss")
    first = viewer.layers["cine [frame 0]"]
    assert notes.has("cine of 3 time frames", "info")
    widget.image_picker.set_layer(first)
    assert widget.open_frame_button.isVisibleTo(widget) and widget.frame_box.maximum() == 2
    strokes = widget.classes.new_scribble_layer()
    assert strokes.name == "scribbles [frame 0]" and strokes.metadata["frame"] == 0
    strokes.data = frames[0].scribbles.copy()
    painted = gui.digest(strokes.data)
    widget.train()
    assert widget.runner.running and widget.open_frame(1) is None  # not while training
    assert "stop it before opening another frame" in notes.errors()[-1]
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=TIMEOUT)
    assert widget.state is not None and widget.image_layer() is first

    third = widget.open_frame(2)
    assert third is not None and third.name == "cine [frame 2]" and widget.image_layer() is third
    np.testing.assert_array_equal(third.data, io.read_nifti(path, frame=2).data)
    assert third.metadata["frame"] == 2 and tuple(third.scale) == tuple(first.scale)
    assert widget.scribble_layer() is None  # frame 0's strokes are not frame 2's
    widget.scribble_picker.set_layer(strokes)
    widget.train()
    assert not widget.runner.running
    assert "painted on frame 0 but 'cine [frame 2]' is frame 2" in notes.errors()[-1]
    assert widget.model.predict() is not None
    qtbot.waitUntil(lambda: widget.model.predict_worker is None, timeout=TIMEOUT)
    assert widget.prediction_layer.name == "prediction (cine [frame 2])"
    assert widget.prediction_layer.data.shape == third.data.shape

    widget.scribble_picker.set_layer(None)
    n_layers = len(viewer.layers)
    assert widget.open_frame(0) is first and len(viewer.layers) == n_layers  # an open frame is picked again
    assert widget.scribble_layer() is strokes  # with its own strokes
    assert gui.digest(strokes.data) == painted and path.read_bytes() == source


def _cine_file(tmp_path: Path, n_frames: int = 3) -> tuple[Path, list]:
    """A small 4D cine (phantoms of different seeds as its frames; voxel 1.5 x 1.5 x 8 mm, 33 ms apart)."""
    from napari_wss import io, toy

    frames = [toy.cardiac_phantom(n_slices=3, size=48, seed=s) for s in range(n_frames)]
    stack = np.stack([f.image for f in frames]).astype(np.float32)
    path = io.write_nifti(tmp_path / "cine.nii.gz", stack, np.diag([1.5, 1.5, 8, 1]), frame_step=33.0)
    return path, frames


def test_predict_all_frames_of_a_cine(make_widget, gui, notes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Predict all frames: each frame of the cine file segmented as Predict volume would (the
    islands removed in 3D, the LV made convex) into one 4D layer over a 4D image of the cine, which
    exports as a 4D NIfTI with the cine's time step; the file and the strokes stay as they were,
    a second press refills the same layers, and one after the user painted on the labels adds a new labels layer."""
    from napari_wss import io

    path, frames = _cine_file(tmp_path)
    source = path.read_bytes()
    viewer, widget = make_widget()
    viewer.open(str(path), plugin="napari-wss")
    first = viewer.layers["cine [frame 0]"]
    widget.image_picker.set_layer(first)
    assert widget.predict_cine_button.isVisibleTo(widget) and not widget.predict_cine_button.isEnabled()
    assert widget.model.predict_cine() is None and "no model yet" in notes.errors()[-1]
    strokes = widget.classes.new_scribble_layer()
    strokes.data = frames[0].scribbles.copy()
    painted = gui.digest(strokes.data)
    gui.train_and_wait(widget)
    assert widget.predict_cine_button.isEnabled()

    worker = widget.model.predict_cine()
    assert not widget.predict_button.isEnabled() and not widget.predict_cine_button.isEnabled()
    gui.wait_prediction(widget, worker)
    movie, pred = viewer.layers["cine [all frames]"], viewer.layers["cine prediction [all frames]"]
    assert pred.data.shape == movie.data.shape == (3, 3, 48, 48)
    assert tuple(pred.scale) == tuple(movie.scale) == (1.0, *first.scale)
    names = widget.state.class_names
    ceiling = myocardium_ceiling(np.asarray(first.data), strokes.data, names)  # the picked frame's strokes, all frames
    for t in range(3):
        volume = io.read_nifti(path, frame=t).data
        np.testing.assert_array_equal(movie.data[t], volume)
        expected = training.predict_volume(
            widget.state, volume, largest_component="volume", lv_hull=True, myo_ceiling=ceiling, tta=8
        )
        np.testing.assert_array_equal(pred.data[t], expected)
    assert len(pred.metadata["frame_volumes_ml"]) == 3
    assert "Predicted all 3 frames" in widget.status.text()
    assert path.read_bytes() == source and gui.digest(strokes.data) == painted
    assert widget.current_slice() == viewer.dims.current_step[1]  # the frame's slice in a 4D world

    viewer.layers.selection.active = pred  # Export prediction writes the prediction chosen in the list
    written = widget.model.export(tmp_path / "cine_pred.nii.gz")
    back = nib.load(written[0])
    np.testing.assert_array_equal(np.asarray(back.dataobj).transpose(3, 2, 1, 0), pred.data)
    assert back.header.get_zooms()[3] == pytest.approx(33.0)
    np.testing.assert_allclose(back.affine, nib.load(path).affine)

    n_layers = len(viewer.layers)
    pred.data = np.zeros_like(pred.data)
    gui.wait_prediction(widget, widget.model.predict_cine())
    assert len(viewer.layers) == n_layers and viewer.layers["cine prediction [all frames]"] is pred
    assert pred.data.any()
    pred.paint((1, 1, 20, 20), 0)  # the user corrects a frame: the next press keeps it and adds a layer
    corrected = gui.digest(pred.data)
    gui.wait_prediction(widget, widget.model.predict_cine())
    assert gui.digest(pred.data) == corrected and viewer.layers["cine prediction [all frames] (new)"].data.any()
    assert notes.has("'cine prediction [all frames]' has your edits")

    widget.image_picker.set_layer(movie)  # the 4D image itself is not a frame: refused in one line
    assert widget.model.predict_cine() is None
    assert "not a frame of a 4D cine" in notes.errors()[-1]


def test_predict_all_frames_finds_the_phases_and_reports_the_indices(  # type: ignore[no-untyped-def]
    make_widget, gui, monkeypatch, notes, tmp_path: Path
) -> None:
    """With each frame's prediction fixed to its true labels, the frames of the largest and
    smallest LV are named end-diastole and end-systole, the viewer goes to end-diastole, and the
    EDV, ESV, EF and mass follow from the voxel counts (1.5 x 1.5 x 8 mm = 0.018 mL a voxel);
    Export measurements writes the same curve and indices, and never onto the cine file."""
    path, frames = _cine_file(tmp_path, n_frames=4)
    truth = [f.labels.astype(np.uint8) for f in frames]
    truth[2] = truth[2].copy()
    truth[2][truth[2] == 3] = 0  # frame 2 loses its whole LV: the smallest, end-systole
    lv0 = np.argwhere(truth[0] == 3)[:20]
    truth[0][tuple(lv0.T)] = 0  # and frame 0 20 LV voxels: end-diastole is not the frame on show
    images = [f.image.astype(np.float32) for f in frames]
    fake = lambda state, image, **kw: truth[next(t for t, im in enumerate(images) if np.array_equal(im, image))]  # noqa: E731
    viewer, widget = make_widget(steps=2)
    viewer.open(str(path), plugin="napari-wss")
    widget.image_picker.set_layer(viewer.layers["cine [frame 0]"])
    strokes = widget.classes.new_scribble_layer()
    strokes.data = frames[0].scribbles.copy()
    gui.train_and_wait(widget)
    monkeypatch.setattr(training, "predict_volume", fake)
    gui.wait_prediction(widget, widget.model.predict_cine())
    np.testing.assert_array_equal(viewer.layers["cine prediction [all frames]"].data, np.stack(truth))
    lv = [int((t == 3).sum()) * 0.018 for t in truth]
    myo = [int((t == 2).sum()) * 0.018 for t in truth]
    ed = int(np.argmax(lv))
    assert ed != 0
    text = widget.status.text()
    assert f"End-diastole = frame {ed}, end-systole = frame 2" in text
    assert f"LV EDV {lv[ed]:.1f} mL, ESV 0.0 mL, EF 100.0 %" in text
    assert f"myocardial mass {myo[ed] * 1.05:.1f} g" in text
    assert viewer.dims.current_step[0] == ed
    curves, marked_ed, marked_es = widget.plot.volume_curves  # the plot shows the curve, phases marked
    np.testing.assert_allclose(curves[:, 3], lv)
    assert (marked_ed, marked_es) == (ed, 2) and not widget.plot.grab().isNull()
    viewer.layers.selection.active = viewer.layers["cine prediction [all frames]"]
    table = _csv_items(widget.model.export_measurements(tmp_path / "cine.csv"))  # the curve and the indices
    assert (table["end-diastole frame"], table["end-systole frame"]) == (ed, 2)
    assert [table[f"frame {t} LV"] for t in range(4)] == pytest.approx(lv, rel=1e-5)
    assert table["LV EF"] == pytest.approx(100.0) and table["myo mass"] == pytest.approx(myo[ed] * 1.05, rel=1e-5)
    before = path.read_bytes()
    assert widget.model.export_measurements(path) is None  # never onto the image file
    assert "onto the source image" in notes.errors()[-1] and path.read_bytes() == before
    gui.train_and_wait(widget)  # a new Train brings the training panels back
    assert widget.plot.volume_curves is None


def test_predict_volume_places_the_model_by_the_strokes(make_widget, gui, notes, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Predict volume on a painted image the model was not trained on cuts it around its own
    strokes, as Train would; on an unpainted image of another size it predicts the whole slice and
    a warning says why that is poor; the trained image keeps the model's crop. No strokes change."""
    from napari_wss import _layers, toy
    from napari_wss.data import SliceGeometry, crop_around

    viewer, widget = make_widget("phantom", steps=4)
    picked, picked_strokes = viewer.layers["cardiac phantom"], viewer.layers["scribbles"]
    gui.train_and_wait(widget)
    assert not widget.job.geometry.is_full  # the default: a crop around the strokes
    other = toy.cardiac_phantom(n_slices=5, size=40, seed=7)
    image = viewer.add_image(other.image, name="other heart", scale=picked.scale)
    kwargs = _layers.labels_kwargs("other strokes", _layers.ROLE_SCRIBBLES, scale=picked.scale)
    strokes = viewer.add_labels(other.scribbles.copy(), **kwargs)
    painted = [gui.digest(strokes.data), gui.digest(picked_strokes.data)]
    seen = []
    real = training.predict_volume
    monkeypatch.setattr(training, "predict_volume", lambda *a, **k: seen.append(k["geometry"]) or real(*a, **k))

    def predict() -> None:
        gui.wait_prediction(widget, widget.model.predict())

    widget.image_picker.set_layer(image)
    widget.scribble_picker.set_layer(strokes)
    predict()
    assert seen == [SliceGeometry((40, 40), crop_around(other.scribbles), widget.job.geometry.size)]
    assert not notes.messages("warning") and widget.prediction_layer.data.shape == image.data.shape

    bare = viewer.add_image(toy.cardiac_phantom(n_slices=3, size=48, seed=8).image, name="bare", scale=picked.scale)
    widget.image_picker.set_layer(bare)  # the scribble layer lies on another grid: no strokes for it
    predict()
    assert seen[-1] is None and notes.has("'bare': the model learnt a crop", "warning")
    assert widget.prediction_layer.data.shape == bare.data.shape

    widget.image_picker.set_layer(picked)
    widget.scribble_picker.set_layer(picked_strokes)
    predict()
    assert seen[-1] is None  # the trained image: the model's own crop
    assert painted == [gui.digest(strokes.data), gui.digest(picked_strokes.data)] and not notes.errors()


def test_train_on_every_painted_image(make_widget, gui, notes, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Ticked, Train also learns from the other images that have a scribble layer of their own
    (one model; the picked image's slices first), reads their strokes only, and leaves out a
    scribble layer that fits several images; a bad one is refused in one line naming it."""
    from napari_wss import _layers, toy

    viewer, widget = make_widget("phantom", steps=4)
    picked = viewer.layers["cardiac phantom"]
    other = toy.cardiac_phantom(n_slices=5, size=40, seed=7)
    image = viewer.add_image(other.image, name="other heart", scale=picked.scale)
    kwargs = _layers.labels_kwargs("other strokes", _layers.ROLE_SCRIBBLES, scale=picked.scale)
    strokes = viewer.add_labels(other.scribbles.copy(), **kwargs)
    painted = gui.digest(strokes.data)
    widget.image_picker.set_layer(picked)
    widget.scribble_picker.set_layer(viewer.layers["scribbles"])
    n_picked = picked.data.shape[0]

    gui.train_and_wait(widget)  # unticked (the default): the picked pair only
    assert not widget.train_all.isChecked() and widget.job.others == () and len(widget.job.data) == n_picked

    widget.train_all.setChecked(True)
    gui.train_and_wait(widget)
    assert widget.job.others == ("other heart",) and len(widget.job.data) == n_picked + 5
    assert widget.job.config.steps == 2 * 4  # the settings' steps for each image
    np.testing.assert_array_equal(widget.job.data.volume, [0] * n_picked + [1] * 5)
    assert gui.digest(strokes.data) == painted and widget.prediction_layer.data.shape == picked.data.shape

    geometry = widget.job.others_geometry[0]  # its own crop around its own strokes
    assert geometry.source_shape == (40, 40) and geometry.box != widget.job.geometry.box
    seen = []
    real = training.predict_volume
    monkeypatch.setattr(training, "predict_volume", lambda *a, **k: seen.append(k["geometry"]) or real(*a, **k))
    widget.image_picker.set_layer(image)  # Predict volume on the other image maps it as it was trained
    gui.wait_prediction(widget, widget.model.predict())
    assert seen == [geometry]
    widget.image_picker.set_layer(picked)
    gui.wait_prediction(widget, widget.model.predict())
    assert seen[-1] is None  # the picked image: the model's own geometry
    widget.image_picker.set_layer(picked)
    widget.scribble_picker.set_layer(viewer.layers["scribbles"])

    twin = viewer.add_image(other.image.copy(), name="twin", scale=picked.scale)  # now the strokes fit two images
    gui.train_and_wait(widget)
    assert widget.job.others == ()
    viewer.layers.remove(twin)

    strokes.data = np.where(other.scribbles > 0, 9, 0).astype(np.uint8)  # label 9: no such class
    widget.train()
    assert not widget.runner.running
    assert "'other strokes' uses label 9" in notes.errors()[-1] and "every painted image" in notes.errors()[-1]
    assert image in viewer.layers
