"""The widget's layer and class actions: new scribble layer, class colours and selection,
"Estimate bounds" from a labelled layer, a centroid box from a drawn rectangle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from napari.layers import Labels, Shapes
from napari.utils import notifications

from napari_wss import _layers
from napari_wss._qt.runner import user_errors
from napari_wss.errors import InputError

if TYPE_CHECKING:
    from napari_wss._widget import WssWidget


class ClassActions:
    """What the class and layer buttons do; ``w`` is the widget (its table, pickers, viewer)."""

    def __init__(self, widget: WssWidget) -> None:
        self.w = widget

    def on_class_selected(self, row: int) -> None:
        layer = self.w.scribble_layer()
        if layer is None:
            return
        layer.selected_label = row + 1
        if self.w.viewer.layers.selection.active is not layer:
            self.w.viewer.layers.selection.active = layer
        if layer.mode == "pan_zoom":
            layer.mode = "paint"

    def apply_colors(self) -> None:
        colors = self.w.table.colors()
        layer = self.w.scribble_layer()
        if layer is not None and layer is not self.w.prediction_layer:
            layer.colormap = _layers.scribble_colormap(colors)
        if self.w.prediction_layer is not None:
            self.w.prediction_layer.colormap = _layers.label_colormap(colors)
        self.w.plot.set_colors(colors)

    def add_class(self) -> None:
        with user_errors():
            if self.w.runner.running:
                raise InputError("stop the training before changing the classes")
            self.w.table.add_class()

    def remove_class(self) -> None:
        with user_errors():
            if self.w.runner.running:
                raise InputError("stop the training before changing the classes")
            self.w.table.remove_class()

    def new_scribble_layer(self) -> Labels | None:
        """An empty scribble layer on the image's grid, coloured like the class table."""
        with user_errors():
            image = self.w.image_layer()
            if image is None:
                raise InputError("no image is chosen: open an image first, then make a scribble layer for it")
            keys = ("affine", "spacing", "source_path", "frame", "frames")
            meta = {k: image.metadata[k] for k in keys if k in image.metadata}
            meta["wss"] = _layers.wss_meta(_layers.ROLE_SCRIBBLES, class_names=self.w.table.names())
            cine = _layers.cine_frame(meta)
            layer = self.w.viewer.add_labels(
                np.zeros(image.data.shape, dtype=np.uint8),
                name="scribbles" if cine is None else f"scribbles [frame {cine[0]}]",
                scale=image.scale,
                translate=image.translate,
                metadata=meta,
                colormap=_layers.scribble_colormap(self.w.table.colors()),
            )
            self.w.scribble_picker.set_layer(layer)
            layer.mode = "paint"
            layer.brush_size = 3
            layer.selected_label = max(self.w.table.currentRow(), 0) + 1
            return layer
        return None

    def estimate_bounds(self) -> None:
        """Per-class size ranges and centroid boxes from the ground-truth layer ± margin."""
        with user_errors():
            ref = self.w.gt_picker.layer()
            if ref is None:
                raise InputError("choose a labelled layer in 'Ground truth' first (class 0 = background)")
            from napari_wss import _session

            est = _session.estimate_bounds(ref.data, self.w.table.rowCount(), margin=self.w.margin.value())
            scale = self.w.area_per_pixel()
            for row in range(self.w.table.rowCount()):
                if est.sizes[row] is not None:  # the background and unseen classes keep their cells
                    self.w.table.set_bounds(row, est.sizes[row], est.centroids[row], scale=scale)
            self.w.table.set_absent_pairs(sorted(set(self.w.table.absent_pairs()) | set(est.absent)))
            notifications.show_info(
                f"Bounds estimated from '{ref.name}' on {est.labelled_slices} slices, ± {self.w.margin.value():g}."
            )

    def cardiac_sizes(self) -> None:
        """The textbook slice-area ranges of the RV, myocardium and LV into their rows (mm²)."""
        with user_errors():
            from napari_wss.metrics import CARDIAC_AREA_MM2, cardiac_size_ranges

            if self.w.image_layer() is None:
                raise InputError("no image is chosen: the cardiac sizes are areas on its slices")
            if self.w.spacing_yx() is None:
                raise InputError(
                    "the cardiac sizes are in mm² but the image has no pixel spacing: open it from a NIfTI "
                    "file or set its scale, or type the sizes in pixels"
                )
            ranges = cardiac_size_ranges(self.w.table.names())
            self.w.table.set_sizes(ranges)
            said = ", ".join(f"{key} {lo:g}–{hi:g}" for key, (lo, hi) in CARDIAC_AREA_MM2.items())
            notifications.show_info(
                f"Short-axis slice areas of ACDC's 100 patients (1st–99th percentile, widened 10 %), mm²: {said}."
            )

    def box_from_rectangle(self) -> None:
        """The selected class's centroid box from the last rectangle of a Shapes layer."""
        with user_errors():
            row = self.w.table.currentRow()
            if row < 0:
                raise InputError("select a class row first, then draw its box")
            image = self.w.image_layer()
            if image is None:
                raise InputError("no image is chosen: the box is measured in its pixels")
            active = self.w.viewer.layers.selection.active
            shapes = active if isinstance(active, Shapes) else None
            if shapes is None:
                shapes = next((ly for ly in self.w.viewer.layers if ly.name == "centroid boxes"), None)
            if shapes is None or not len(shapes.data):
                if shapes is None:
                    shapes = self.w.viewer.add_shapes(
                        name="centroid boxes", edge_color="yellow", face_color="transparent"
                    )
                self.w.viewer.layers.selection.active = shapes
                shapes.mode = "add_rectangle"
                notifications.show_info(
                    "Draw a rectangle where the centre may lie, then press 'Box from rectangle' again."
                )
                return
            corners = np.asarray(shapes.data[-1], dtype=float)
            pts = np.array([image.world_to_data(shapes.data_to_world(c)) for c in corners])[:, -2:]
            (r0, c0), (r1, c1) = pts.min(axis=0), pts.max(axis=0)
            self.w.table.set_centroid_text(row, ((round(r0, 1), round(r1, 1)), (round(c0, 1), round(c1, 1))))
