"""The widget's layout: layer pickers, class table, settings, buttons, progress and the live plot.

:func:`build_layout` creates the parts as attributes of the widget (``image_picker``, ``table``,
``settings``, ``train_button``...) and wires the buttons to its methods; behaviour stays in
:mod:`napari_wss._widget`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from napari.layers import Image, Labels
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

from napari_wss import _layers
from napari_wss._qt.class_table import ClassTable
from napari_wss._qt.fields import FloatField
from napari_wss._qt.live_plot import LivePlot
from napari_wss._qt.pickers import LayerPicker
from napari_wss._qt.settings import SettingsForm

if TYPE_CHECKING:
    from napari_wss._widget import WssWidget


def _button(text: str, slot: Any, tip: str = "") -> QPushButton:
    button = QPushButton(text)
    button.clicked.connect(lambda _=False: slot())
    button.setToolTip(tip)
    return button


def build_layout(w: WssWidget) -> None:
    """Create the widget's parts as attributes of the widget and lay them out in a scroll area."""
    v = w.viewer
    w.image_picker = LayerPicker(v, Image, role=_layers.ROLE_IMAGE)
    w.scribble_picker = LayerPicker(v, Labels, role=_layers.ROLE_SCRIBBLES, allow_none=True)
    w.gt_picker = LayerPicker(v, Labels, role=_layers.ROLE_GT, allow_none=True)
    w.image_picker.changed.connect(w._on_image_changed)
    w.scribble_picker.changed.connect(w._on_scribbles_changed)
    layers = QGridLayout()
    layers.addWidget(QLabel("Image"), 0, 0)
    layers.addWidget(w.image_picker, 0, 1, 1, 2)
    layers.addWidget(QLabel("Scribbles"), 1, 0)
    layers.addWidget(w.scribble_picker, 1, 1)
    layers.addWidget(
        _button("New scribble layer", lambda: w.classes.new_scribble_layer(), "An empty Labels layer on the image"),
        1,
        2,
    )
    layers.addWidget(QLabel("Ground truth"), 2, 0)
    layers.addWidget(w.gt_picker, 2, 1, 1, 2)
    w.gt_picker.setToolTip("Optional: dense labels for Dice in the plot and for 'Estimate bounds'")
    # Shown for one frame of a 4D cine: open another frame as an image layer of its own.
    w.frame_label = QLabel("Cine frame")
    w.frame_box = QSpinBox()
    w.frame_box.setToolTip("The time frame of the cine file to open (0-based)")
    w.open_frame_button = _button(
        "Open frame", lambda: w.open_frame(w.frame_box.value()), "Open this frame of the cine as a new image layer"
    )
    w.predict_cine_button = _button(
        "Predict all frames",
        lambda: w.model.predict_cine(),
        "Segment every frame of the cine with the current model into one 4D prediction layer, shown over the "
        "cine, and report end-diastole and end-systole (the frames of the largest and smallest LV) with the "
        "volumes, ejection fractions and myocardial mass",
    )
    layers.addWidget(w.frame_label, 3, 0)
    layers.addWidget(w.frame_box, 3, 1)
    layers.addWidget(w.open_frame_button, 3, 2)
    layers.addWidget(w.predict_cine_button, 4, 1, 1, 2)
    w.train_all = QCheckBox("train on every painted image")
    w.train_all.setToolTip(
        "Train also on the other open images that have a scribble layer of their own with strokes (for files: "
        "the same file and frame; otherwise the same shape and scale): one model learns from all of them. The "
        "previews, Dice, Absent ticks and bounds edited during training concern the picked image; the size "
        "bounds in mm² apply to each image with its own pixel size."
    )
    layers.addWidget(w.train_all, 5, 0, 1, 3)
    layers_box = QGroupBox("Layers")
    layers_box.setLayout(layers)

    w.table = ClassTable()
    w.table.setMinimumHeight(150)
    w.table.changed.connect(w._on_bounds_edited)
    w.table.colors_changed.connect(lambda: w.classes.apply_colors())
    w.table.class_selected.connect(lambda row: w.classes.on_class_selected(row))
    w.margin = FloatField(0.1, maximum=0.9, single_step=0.05, tooltip="± share of the true size (0.1 = ±10 %)")
    row1 = QHBoxLayout()
    row1.addWidget(_button("Add class", lambda: w.classes.add_class()))
    row1.addWidget(_button("Remove class", lambda: w.classes.remove_class()))
    row1.addWidget(
        _button("Box from rectangle", lambda: w.classes.box_from_rectangle(), "Centroid box of the selected class")
    )
    row2 = QHBoxLayout()
    row2.addWidget(
        _button("Estimate bounds", lambda: w.classes.estimate_bounds(), "From the ground-truth layer, ± margin")
    )
    row2.addWidget(QLabel("margin"))
    row2.addWidget(w.margin)
    w.stroke_boxes = QCheckBox("centroid near the strokes")
    w.stroke_boxes.setChecked(True)  # the centroid prior measured on ACDC: see benchmarks/interactive.py
    w.stroke_boxes.setToolTip(
        "A class without a typed centroid box keeps its centre, on every slice you painted it, inside the "
        "bounding box of its strokes there. Paint strokes through the middle of each structure; untick for "
        "strokes along one edge."
    )
    row3 = QHBoxLayout()
    row3.addWidget(
        _button(
            "Cardiac sizes",
            lambda: w.classes.cardiac_sizes(),
            "Short-axis cine MRI: the slice-area ranges (mm²) of ACDC's 100 patients, 1st–99th percentile "
            "widened 10 %, into the rows named RV, myocardium and LV",
        )
    )
    row3.addWidget(w.stroke_boxes)
    classes = QVBoxLayout()
    classes.addWidget(w.table)
    classes.addLayout(row1)
    classes.addLayout(row2)
    classes.addLayout(row3)
    classes_box = QGroupBox("Classes (row c paints label c + 1)")
    classes_box.setLayout(classes)

    w.settings = SettingsForm()
    settings_box = QCollapsible("Training settings")
    settings_box.addWidget(w.settings)

    w.train_button = _button("Train", w.train)
    w.pause_button = _button("Pause", w.runner.toggle_pause)
    w.stop_button = _button("Stop", w.stop, "Stops after the current step")
    w.predict_button = _button("Predict volume", lambda: w.model.predict())
    w.new_model_button = _button("New model", lambda: w.model.new())
    w.save_button = _button("Save model…", lambda: w.model.save_dialog())
    w.load_button = _button("Load model…", lambda: w.model.load_dialog())
    w.export_button = _button("Export prediction…", lambda: w.model.export_dialog())
    w.measure_button = _button(
        "Measurements…",
        lambda: w.model.export_measurements_dialog(),
        "Export as CSV the prediction's class volumes (mL) as it is now, edits included; for all frames of a cine "
        "or two frames of one heart also the end-diastolic / end-systolic volumes, ejection fractions and mass",
    )
    run = QGridLayout()
    for i, b in enumerate((w.train_button, w.pause_button, w.stop_button)):
        run.addWidget(b, 0, i)
    for i, b in enumerate((w.predict_button, w.new_model_button, w.export_button)):
        run.addWidget(b, 1, i)
    for i, b in enumerate((w.save_button, w.load_button, w.measure_button)):
        run.addWidget(b, 2, i)
    w.largest_component = QCheckBox("remove islands")
    w.largest_component.setChecked(True)  # measured on ACDC: see benchmarks/interactive.py (lcc@, marked@)
    w.largest_component.setToolTip(
        "Predict volume clears each class from the slices your strokes (or Absent ticks) say it is not on, "
        "then keeps, per class, the connected objects your strokes of that class touch, or its "
        "largest object where none does (for a class named LV, the one its myocardium rings); the rest "
        "becomes background (3D; per image for a PNG folder). "
        "Right for one heart, wrong for many cells."
    )
    run.addWidget(w.largest_component, 3, 0)
    w.lv_hull = QCheckBox("convex LV cavity")
    w.lv_hull.setChecked(True)  # measured on ACDC: see benchmarks/interactive.py (hull@)
    w.lv_hull.setToolTip(
        "With classes named LV and myocardium: on every slice the myocardium inside the LV cavity's convex "
        "hull joins the cavity (papillary muscles and trabeculae, counted in the cavity by ACDC's experts). "
        "Untick where your convention counts them as myocardium."
    )
    run.addWidget(w.lv_hull, 3, 1)
    w.tta = QCheckBox("average 8 flips")
    w.tta.setChecked(True)  # measured on ACDC: see benchmarks/interactive.py --tta (tta@)
    w.tta.setToolTip(
        "Predict volume and Predict all frames average the network's probabilities over the image mirrored "
        "and turned by quarter turns, all eight ways (test-time augmentation, the flips and turns training "
        "draws): fewer stray pixels and smoother outlines, most after a short press, at eight times the "
        "prediction time (for an ACDC volume on two CPU cores about a second more with bf16, up to 6 s without). "
        "Previews do not average, nor does a model trained without augmentation."
    )
    run.addWidget(w.tta, 3, 2)
    w.dark_myo = QCheckBox("dark myocardium")
    w.dark_myo.setChecked(True)  # measured on ACDC: see benchmarks/postprocess_study.py --myo-brightness
    w.dark_myo.setToolTip(
        "With a class named myocardium and strokes of it: predicted myocardium brighter than 99 % of the "
        "pixels under its strokes goes to the nearest other class (in bright-blood cine MRI those are the "
        "cavities' rims and trabeculae). On an image without myocardium strokes (a class named LV needed), "
        "brighter than the threshold between the predicted wall and LV cavity. "
        "Untick for images where the wall is not darker than the blood, "
        "and for the end-systole of a hypertrophic heart (measured: the LV then comes out too large)."
    )
    run.addWidget(w.dark_myo, 4, 0)
    w.septum_wall = QCheckBox("wall ≤ 1.5 × septum")
    w.septum_wall.setChecked(True)  # measured on ACDC: see benchmarks/postprocess_study.py --septum
    w.septum_wall.setToolTip(
        "With classes named RV, myocardium and LV: the septum's thickness is measured on the prediction "
        "(between the two cavities, where both its borders are blood) and the myocardium farther than 1.5 "
        "times that from the LV cavity becomes background: the outer wall no longer grows into the tissue "
        "around the heart. A thick (hypertrophic) septum raises the limit with it. Untick for hearts "
        "whose free wall is much thicker than their septum."
    )
    run.addWidget(w.septum_wall, 4, 1, 1, 2)  # two columns: the label is wider than a button
    w.max_wall = FloatField(
        0.0,
        maximum=100.0,
        single_step=1.0,
        tooltip="With classes named LV and myocardium and an image with a voxel size: the myocardium farther "
        "than this from the LV cavity becomes background on every slice. State the wall you expect: about "
        "12 mm at end-diastole without hypertrophy, more at end-systole or with hypertrophy. 0 = off.",
    )
    w.max_wall.setSpecialValueText("off")
    run.addWidget(QLabel("max wall thickness (mm)"), 5, 0)
    run.addWidget(w.max_wall, 5, 1)
    w.progress_bar = QProgressBar()
    w.progress_bar.setRange(0, 1)
    w.progress_bar.setValue(0)
    w.progress_bar.setFormat("step %v of %m")
    w.status = QLabel("Pick an image and a scribble layer, then press Train.")
    w.status.setWordWrap(True)
    w.plot = LivePlot()

    content = QWidget()
    layout = QVBoxLayout(content)
    for box in (layers_box, classes_box, settings_box):
        layout.addWidget(box)
    layout.addLayout(run)
    layout.addWidget(w.progress_bar)
    layout.addWidget(w.status)
    layout.addWidget(w.plot, 1)
    scroll = QScrollArea()  # the dock may be shorter than the widget
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setWidget(content)
    outer = QVBoxLayout(w)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(scroll)
    w.setMinimumWidth(480)
