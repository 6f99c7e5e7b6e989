"""The widget builds, lists the classes and turns its controls into layers, bounds and settings."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_wss._qt.class_table import ABSENT, CENTROID, SIZE_HI, SIZE_LO
from napari_wss._qt.settings import ABSENCE_WEIGHT, WARMUP
from napari_wss.config import DEFAULT_CLASS_NAMES, INTERACTIVE_SIZE, INTERACTIVE_SIZE_FP32, TrainConfig

pytestmark = pytest.mark.gui


def test_plugin_widget_docks_and_lists_default_classes(make_napari_viewer) -> None:  # type: ignore[no-untyped-def]
    viewer = make_napari_viewer()
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-wss", "Weakly supervised segmentation")
    assert type(widget).__name__ == "WssWidget"
    assert widget.table.names() == list(DEFAULT_CLASS_NAMES)
    assert widget.image_layer() is None and widget.scribble_layer() is None
    assert widget.train_button.isEnabled() and not widget.stop_button.isEnabled()
    assert not widget.predict_button.isEnabled()  # no model yet


def test_sample_layers_are_picked_and_classes_adopted(make_widget) -> None:  # type: ignore[no-untyped-def]
    viewer, widget = make_widget("toy")
    assert widget.image_layer() is viewer.layers["TOY"]
    assert widget.scribble_layer() is viewer.layers["scribbles"]
    assert widget.gt_picker.layer() is viewer.layers["ground truth"]
    assert widget.table.names() == ["background", "target"]
    assert widget.table.unit == "px"
    lo, hi = widget.table.size_bounds(1)  # the target's area ± 10 %
    area = float(viewer.layers["ground truth"].data[0].sum())
    assert lo == pytest.approx(0.9 * area, abs=0.5) and hi == pytest.approx(1.1 * area, abs=0.5)


def test_phantom_sizes_are_in_mm2(make_widget) -> None:  # type: ignore[no-untyped-def]
    _viewer, widget = make_widget("phantom")
    assert widget.table.names() == list(DEFAULT_CLASS_NAMES)
    assert widget.table.unit == "mm²"
    assert widget.spacing_yx() == (1.5, 1.5)
    widget.table.set_cell(3, SIZE_LO, "225")
    widget.table.set_cell(3, SIZE_HI, "450")
    assert widget.priors()[3].size == pytest.approx((100.0, 200.0))  # 2.25 mm² per pixel


def test_float_fields_keep_small_values(make_widget) -> None:  # type: ignore[no-untyped-def]
    _viewer, widget = make_widget()
    lr = widget.settings.lr
    lr.setValue(1e-3)
    assert lr.text() == "0.001" and widget.settings.config().lr == pytest.approx(1e-3)
    lr.setValue(2.5e-5)
    assert lr.value() == pytest.approx(2.5e-5) and lr.text() == "2.5e-05"
    lr.stepBy(1)  # the arrows multiply by 10
    assert lr.value() == pytest.approx(2.5e-4)
    widget.settings.size_weight.setValue(1e-4)
    assert widget.settings.config().size_weight == pytest.approx(1e-4)


def test_selecting_a_class_selects_its_label_for_the_brush(make_widget) -> None:  # type: ignore[no-untyped-def]
    viewer, widget = make_widget("phantom")
    scribbles = viewer.layers["scribbles"]
    widget.table.selectRow(2)
    assert scribbles.selected_label == 3
    assert viewer.layers.selection.active is scribbles
    assert scribbles.mode == "paint"


def test_new_scribble_layer_follows_the_image_and_class_colours(make_widget) -> None:  # type: ignore[no-untyped-def]
    viewer, widget = make_widget("phantom")
    widget.table.set_color(3, "#123456")
    layer = widget.classes.new_scribble_layer()
    assert layer is not None and widget.scribble_layer() is layer
    assert layer.data.shape == viewer.layers["cardiac phantom"].data.shape and not layer.data.any()
    np.testing.assert_allclose(layer.scale, viewer.layers["cardiac phantom"].scale)
    np.testing.assert_allclose(layer.get_color(4), [0x12 / 255, 0x34 / 255, 0x56 / 255, 1.0], atol=1e-6)
    assert layer.get_color(0) is None  # not annotated = transparent


def test_add_and_remove_classes(make_widget, notes) -> None:  # type: ignore[no-untyped-def]
    _viewer, widget = make_widget()
    widget.table.add_class("scar")
    assert widget.table.names()[-1] == "scar" and len(widget.table.colors()) == 5
    widget.table.remove_class(4)
    widget.table.remove_class(3)
    widget.table.remove_class(2)
    assert widget.table.names() == ["background", "RV"]
    widget.classes.remove_class()  # two is the minimum
    assert notes.has("at least two classes", "error")
    assert widget.table.names() == ["background", "RV"]


def test_estimate_bounds_from_ground_truth(make_widget) -> None:  # type: ignore[no-untyped-def]
    viewer, widget = make_widget("phantom")
    widget.margin.setValue(0.1)
    widget.classes.estimate_bounds()
    gt = viewer.layers["ground truth"].data
    lv_areas = (gt == 3).sum(axis=(1, 2)) * 2.25
    lo, hi = widget.table.size_bounds(3)
    assert lo == pytest.approx(0.9 * lv_areas.min(), abs=2.5) and hi == pytest.approx(1.1 * lv_areas.max(), abs=2.5)
    assert widget.table.centroid_box(3) is not None and widget.table.centroid_box(0) is None
    rv_absent = [z for z in range(gt.shape[0]) if not (gt[z] == 1).any()]
    assert [(z, 1) for z in rv_absent] == [p for p in widget.table.absent_pairs() if p[1] == 1]
    viewer.dims.set_point(0, rv_absent[0] * 10.0)
    assert widget.current_slice() == rv_absent[0]
    assert widget.table.item(1, ABSENT).checkState() == Qt.CheckState.Checked
    # Unticking "absent here" forgets that pair only.
    widget.table.set_absent(1, False)
    assert (rv_absent[0], 1) not in widget.table.absent_pairs()


def test_absent_column_half_ticks_what_the_strokes_make_absent(make_widget, qtbot) -> None:  # type: ignore[no-untyped-def]
    """A slice with strokes but none of a class has that class absent in training: the Absent cell
    shows it half-ticked on that slice, follows painting, and a tick the user takes back returns to
    half-ticked; slices without strokes show nothing. The scribbles change only by the test's brush."""
    viewer, widget = make_widget("phantom")
    scribbles = viewer.layers["scribbles"]
    marks = np.asarray(scribbles.data)
    no_rv = [z for z in range(marks.shape[0]) if (marks[z] > 0).any() and not (marks[z] == 2).any()]
    bare = [z for z in range(marks.shape[0]) if not (marks[z] > 0).any()]
    assert no_rv, "the phantom's apical slices have strokes but no RV"
    states = lambda: [widget.table.item(r, ABSENT).checkState() for r in range(4)]  # noqa: E731
    viewer.dims.set_point(0, no_rv[0] * widget.image_layer().scale[0])
    assert widget.current_slice() == no_rv[0] and widget.table.inferred_absent() == [1]
    assert states() == [Qt.CheckState.Unchecked, Qt.CheckState.PartiallyChecked, *[Qt.CheckState.Unchecked] * 2]
    assert "none of this class" in widget.table.item(1, ABSENT).toolTip()
    widget.table.item(1, ABSENT).setCheckState(Qt.CheckState.Checked)  # the user's tick ...
    assert (no_rv[0], 1) in widget.table.absent_pairs() and states()[1] == Qt.CheckState.Checked
    widget.table.item(1, ABSENT).setCheckState(Qt.CheckState.Unchecked)  # ... taken back
    assert (no_rv[0], 1) not in widget.table.absent_pairs() and states()[1] == Qt.CheckState.PartiallyChecked
    before = marks.copy()
    scribbles.paint((no_rv[0], 30, 30), 2)  # an RV stroke there: no longer absent
    qtbot.waitUntil(lambda: widget.table.inferred_absent() == [], timeout=5000)
    assert states()[1] == Qt.CheckState.Unchecked
    changed = np.asarray(scribbles.data) != before
    assert changed.any() and np.all(np.asarray(scribbles.data)[changed] == 2)
    from napari_wss.data import absent_classes

    marks = np.asarray(scribbles.data)
    rule = absent_classes(marks.shape[0], 4, scribbles=marks)  # what training takes as absent
    for z in range(marks.shape[0]):  # the half-ticks follow the same rule on every slice
        viewer.dims.set_point(0, z * widget.image_layer().scale[0])
        assert widget.table.inferred_absent() == np.flatnonzero(rule[z]).tolist(), z
    if bare:
        viewer.dims.set_point(0, bare[0] * widget.image_layer().scale[0])
        assert widget.table.inferred_absent() == []
    widget.scribble_picker.set_layer(None)
    assert widget.table.inferred_absent() == []


def test_cardiac_sizes_fill_the_heart_rows_in_mm2(make_widget, notes) -> None:  # type: ignore[no-untyped-def]
    from napari_wss.metrics import CARDIAC_AREA_MM2

    _viewer, widget = make_widget("phantom")
    edits = []
    widget.table.changed.connect(lambda: edits.append(1))
    widget.table.set_cell(2, CENTROID, "10, 20, 30, 40")
    edits.clear()
    widget.classes.cardiac_sizes()
    assert len(edits) == 1  # one edit: a running training gets the new bounds once
    assert notes.has("RV 38–5238", "info")
    for row, key in ((1, "RV"), (2, "myocardium"), (3, "LV")):
        assert widget.table.size_bounds(row) == CARDIAC_AREA_MM2[key]
        lo, hi = CARDIAC_AREA_MM2[key]
        assert widget.priors()[row].size == pytest.approx((lo / 2.25, hi / 2.25))  # 1.5 mm pixels
    assert widget.table.size_bounds(0) is None and widget.table.centroid_box(2) == ((10.0, 20.0), (30.0, 40.0))


def test_cardiac_sizes_need_mm2_and_heart_classes(make_widget, notes) -> None:  # type: ignore[no-untyped-def]
    _viewer, widget = make_widget("toy")  # a PNG: sizes in pixels
    widget.classes.cardiac_sizes()
    assert notes.has("has no pixel spacing", "error")
    assert widget.table.size_bounds(1) is not None and widget.table.size_bounds(1)[1] < 1e4  # the toy's own
    _viewer, widget = make_widget("phantom")
    for row, name in enumerate(("bg", "nucleus", "cell", "halo")):
        widget.table.set_cell(row, 0, name)
    widget.classes.cardiac_sizes()
    assert notes.has("classes named RV, myocardium or LV", "error")


def test_centroid_box_from_a_rectangle(make_widget, notes) -> None:  # type: ignore[no-untyped-def]
    viewer, widget = make_widget("phantom")
    widget.table.selectRow(3)
    widget.classes.box_from_rectangle()  # no shapes yet: makes the layer and asks for a rectangle
    shapes = viewer.layers["centroid boxes"]
    assert notes.has("draw a rectangle", "info") and shapes.mode == "add_rectangle"
    z = 10.0 * widget.current_slice()
    r0, r1, c0, c1 = 30 * 1.5, 60 * 1.5, 40 * 1.5, 80 * 1.5  # world coordinates (mm)
    shapes.add_rectangles(np.array([[z, r0, c0], [z, r0, c1], [z, r1, c1], [z, r1, c0]]))
    widget.table.selectRow(3)
    widget.classes.box_from_rectangle()
    assert widget.table.centroid_box(3) == ((30.0, 60.0), (40.0, 80.0))
    assert widget.table.item(3, CENTROID).text() == "30, 60, 40, 80"


def test_demo_opens_the_phantom_with_the_widget_docked(make_napari_viewer, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import napari

    from napari_wss import _demo

    monkeypatch.setattr(napari, "Viewer", make_napari_viewer)  # the fixture closes it afterwards
    viewer = _demo.launch(block=False)
    assert [layer.name for layer in viewer.layers] == ["cardiac phantom", "ground truth", "scribbles"]
    widgets = [w for w in viewer.window.dock_widgets.values() if type(w).__name__ == "WssWidget"]
    assert len(widgets) == 1, "the widget is not docked"
    widget = widgets[0]
    assert widget.image_layer() is viewer.layers["cardiac phantom"]
    assert widget.settings.crop.isChecked() and widget.table.size_bounds(3) is not None


def test_penalty_warmup_setting_reaches_the_config_and_comes_back(make_widget) -> None:  # type: ignore[no-untyped-def]
    _viewer, widget = make_widget()
    settings = widget.settings
    # The widget warms the penalties up by default (tight bounds at full weight empty structures);
    # the library keeps the papers' 0.
    assert settings.config().penalty_warmup == WARMUP > 0 == TrainConfig().penalty_warmup
    settings.warmup.setValue(120)
    config = settings.config()
    assert config.penalty_warmup == 120
    settings.warmup.setValue(0)
    settings.set_config(config)  # what Load model… does
    assert settings.warmup.value() == 120


def test_auto_network_size_follows_the_devices_arithmetic(make_napari_viewer, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """*auto* (the default) is resolved at the press: 80 px on a CPU without bf16, else 96 px."""
    from napari_wss import _widget, training

    viewer = make_napari_viewer()
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-wss", "Weakly supervised segmentation")
    settings = widget.settings
    settings.device.setCurrentText("cpu")
    assert settings.size.value() == 0 and settings.size.text() == "auto"
    monkeypatch.setattr(training, "bf16_fast", lambda device: False)
    assert settings.config().size == INTERACTIVE_SIZE_FP32 == 80
    monkeypatch.setattr(training, "bf16_fast", lambda device: True)
    assert settings.config().size == INTERACTIVE_SIZE == 96
    settings.size.setValue(112)  # a typed size is kept
    config = settings.config()
    assert config.size == 112
    settings.size.setValue(0)
    settings.set_config(config)  # Load model… shows the model's own size
    assert settings.size.value() == 112
    # the warm-up, started with a placeholder size, resolves auto on its own thread
    seen = []
    monkeypatch.setattr(training, "bf16_fast", lambda device: False)
    monkeypatch.setattr(training, "warm_up", lambda config, rows: seen.append(config.size) or 0.0)
    monkeypatch.setattr(training, "resolve_device", lambda name: training.torch.device("cpu"))
    _widget._warm_up((TrainConfig(size=INTERACTIVE_SIZE, device="cpu"), 4), auto_size=True)
    _widget._warm_up((TrainConfig(size=64, device="cpu"), 4))
    assert seen == [80, 64]


def test_absence_weight_setting_reaches_the_config_and_comes_back(make_widget) -> None:  # type: ignore[no-untyped-def]
    _viewer, widget = make_widget()
    settings = widget.settings
    # The widget keeps absent classes off their slices with their own term; the library keeps the
    # papers' size bound of 0.
    assert settings.config().absence_weight == ABSENCE_WEIGHT > 0 == TrainConfig().absence_weight
    settings.absence_weight.setValue(0.0)  # the rule before: absence as a size bound of 0
    config = settings.config()
    assert config.absence_weight == 0.0
    settings.absence_weight.setValue(0.5)
    settings.set_config(config)
    assert settings.absence_weight.value() == 0.0


def test_progress_bar_says_how_long_the_press_has_left(make_widget, gui) -> None:  # type: ignore[no-untyped-def]
    """The time left comes from the press's own pace, once five steps have set it."""
    from napari_wss._widget import time_left

    assert time_left(10.0, 4, 300) == ""  # the first steps pay one-off set-up
    assert time_left(10.0, 10, 300) == " · 4 min 50 s left"
    assert time_left(10.0, 100, 300) == " · 20 s left"
    assert time_left(99.0, 300, 300) == ""
    _, widget = make_widget("phantom", steps=120)  # long enough for the bar to refresh mid-press
    seen = []
    widget.progress_bar.setFormat = lambda text, real=widget.progress_bar.setFormat: seen.append(text) or real(text)  # type: ignore[method-assign]
    gui.train_and_wait(widget)
    assert any(t.endswith(" s left") for t in seen) and "left" not in seen[-1]
