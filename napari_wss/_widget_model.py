"""The widget's model buttons: Predict volume, Predict all frames (of a cine), New model, Save / Load
model, Export prediction.

Each ``*_dialog`` method asks for a file and calls the plain method, which tests call directly.
Prediction runs in a worker thread; a model is saved as one checkpoint file (weights, config,
class names and bounds) by :func:`napari_wss.training.save_checkpoint`.
"""

from __future__ import annotations

import weakref
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image, Labels
from napari.utils import notifications
from qtpy.QtWidgets import QFileDialog

from napari_wss import _layers
from napari_wss._qt.runner import notify_error, user_errors
from napari_wss.errors import InputError

if TYPE_CHECKING:
    from napari_wss._widget import WssWidget

MODEL_FILTER = "napari-wss model (*.pt);;All files (*)"
LABELS_FILTER = "NIfTI labels (*.nii.gz *.nii);;PNG labels (*.png)"
CSV_FILTER = "CSV table (*.csv);;All files (*)"


class ModelActions:
    def __init__(self, widget: WssWidget) -> None:
        self.w = widget
        self.predict_worker: Any = None
        self.saved: tuple[Any, int] | None = None  # (weak reference to the state, its step) last written or read

    def sync(self, running: bool) -> None:
        w = self.w
        has_model = w.state is not None
        busy = running or self.predict_worker is not None
        w.predict_button.setEnabled(has_model and not busy)
        w.predict_cine_button.setEnabled(has_model and not busy)
        w.save_button.setEnabled(has_model and not busy)
        w.new_model_button.setEnabled(has_model and not busy)
        w.load_button.setEnabled(not busy)
        w.export_button.setEnabled(w.prediction_layer is not None and not busy)
        w.measure_button.setEnabled(w.prediction_layer is not None and not busy)

    def islands(self, image: Any) -> str | None:
        """How Predict volume and the previews remove islands on ``image``: per image for a stack of
        separate images, in 3D otherwise, or not at all (the checkbox unticked)."""
        if not self.w.largest_component.isChecked():
            return None
        return "slice" if _layers.is_stack(image.metadata) else "volume"

    def lv_hull(self, class_names: Any) -> bool:
        """Whether Predict volume and the previews make the LV cavity convex: the box ticked and
        the classes named LV and myocardium (:func:`~napari_wss.postprocess.fill_lv_hull`)."""
        from napari_wss.metrics import cardiac_classes

        found = cardiac_classes(list(class_names))
        return self.w.lv_hull.isChecked() and "LV" in found and "myocardium" in found

    def myo_ceiling(self, pixels: np.ndarray, strokes: np.ndarray | None, class_names: Any) -> float | str | None:
        """The brightest the myocardium may be in Predict volume and the previews, with the box
        ticked and a class named myocardium: from its ``strokes`` on the image ``pixels`` (same
        shape; :func:`~napari_wss.postprocess.myocardium_ceiling`), or without such strokes and with
        a class named LV, ``FROM_PREDICTION`` (the prediction's own wall / blood threshold); None
        otherwise."""
        from napari_wss.metrics import cardiac_classes
        from napari_wss.postprocess import FROM_PREDICTION, myocardium_ceiling

        names = list(class_names)
        found = cardiac_classes(names)
        if not self.w.dark_myo.isChecked() or "myocardium" not in found:
            return None
        ceiling = None if strokes is None else myocardium_ceiling(pixels, strokes, names)
        if ceiling is None and "LV" in found:
            return FROM_PREDICTION
        return ceiling

    def septum_rule(self, class_names: Any) -> tuple[float, tuple[float, float]] | None:
        """(factor, in-plane spacing) of the wall limit from the septum in Predict volume and the
        previews: the box ticked and classes named RV, myocardium and LV; the spacing in mm, (1, 1)
        (pixels) for an image without one. None otherwise."""
        from napari_wss.metrics import cardiac_classes
        from napari_wss.postprocess import SEPTUM_FACTOR

        if not self.w.septum_wall.isChecked() or not {"RV", "myocardium", "LV"} <= set(
            cardiac_classes(list(class_names))
        ):
            return None
        spacing = self.w.spacing_zyx()
        return SEPTUM_FACTOR, (1.0, 1.0) if spacing is None else (spacing[1], spacing[2])

    def predict_options(self, class_names: Any) -> dict[str, Any]:
        """Predict volume's options as ticked (:func:`~napari_wss.training.predict_volume`'s ``tta`` and
        heart rules ``lv_hull``, ``septum_factor``, ``max_wall_mm`` and the in-plane ``spacing_yx`` they measure in)."""
        names = list(class_names)
        wall, septum = self.wall_limit(names), self.septum_rule(names)
        spacing = wall[1] if wall is not None else None if septum is None else septum[1]
        return {
            "lv_hull": self.lv_hull(names),
            "septum_factor": None if septum is None else septum[0],
            "max_wall_mm": None if wall is None else wall[0],
            "spacing_yx": spacing,
            # a model trained without flips and turns has not learnt the other orientations
            "tta": 8 if self.w.tta.isChecked() and self.w.state.config.augment else 1,
        }

    def wall_limit(self, class_names: Any) -> tuple[float, tuple[float, float]] | None:
        """(mm, in-plane spacing) of the wall-thickness limit, or None when it is off (0). Set, it
        needs classes named LV and myocardium and an image with a voxel size: refused otherwise."""
        from napari_wss.postprocess import lv_hull_classes

        mm = float(self.w.max_wall.value())
        if mm <= 0:
            return None
        lv_hull_classes(list(class_names))
        spacing = self.w.spacing_zyx()
        if spacing is None:
            raise InputError("the maximum wall thickness needs an image with a voxel size (NIfTI): set it to off")
        return mm, (spacing[1], spacing[2])

    def geometry_for(self, image: Any, strokes: np.ndarray | None) -> Any:
        """How ``image`` (with ``strokes``, the scribble layer's on its grid, or None) maps to the
        network: its own crop when the last Train press learnt it as one of the other painted
        images, else where :func:`~napari_wss.training.prediction_geometry` puts it (the model's
        box on the trained grid; on another, around the image's own strokes). A warning says when
        a model trained on a crop can only see the image as a whole slice."""
        from napari_wss.training import prediction_geometry

        job, shape = self.w.job, tuple(np.shape(image.data)[-2:])
        if job is not None and image.name in job.others:
            geometry = job.others_geometry[job.others.index(image.name)]
            if geometry.source_shape == shape:
                return geometry
        geometry, caution = prediction_geometry(self.w.state, shape, strokes)
        if caution is not None:
            notifications.show_warning(f"'{image.name}': {caution}")
        return geometry

    def _guard(self) -> None:
        if self.w.runner.running:
            raise InputError("training is running: stop it first")

    # ---------------------------------------------------------------- predict
    def predict(self) -> Any:
        """Segment the whole image with the current model (in a worker); returns the worker."""
        from napari_wss.training import predict_volume

        with user_errors():
            self._guard()
            w = self.w
            if w.state is None:
                raise InputError("there is no model yet: press Train or Load model first")
            image = w.image_layer()
            if image is None:
                raise InputError("no image is chosen: pick the image to segment")
            _layers.check_segmentable(image)  # before its prediction layer is made
            from napari.qt.threading import create_worker

            data = np.asarray(image.data)
            device = w.settings.device.currentText()
            keep = self.islands(image)
            strokes = _strokes_on(image, w.scribble_layer())
            marks = strokes if keep else None
            absent = None
            if marks is not None:  # the painted image: what the strokes and ticks say is not there goes too
                from napari_wss.data import absent_classes

                n, k = (marks.shape[0] if marks.ndim == 3 else 1), w.state.num_classes
                ticks = [(z, c) for z, c in w.table.absent_pairs() if z < n and c < k]  # the model's classes
                absent = absent_classes(n, k, scribbles=marks, absent=ticks)
            worker = create_worker(
                predict_volume,
                w.state,
                data,
                geometry=self.geometry_for(image, strokes),
                device=device,
                myo_ceiling=self.myo_ceiling(data, strokes, w.state.class_names),
                largest_component=keep,
                scribbles=marks,
                absent=absent,
                **self.predict_options(w.state.class_names),
                _start_thread=False,
                _connect={"errored": lambda exc: notify_error(exc, "Prediction")},
            )
            worker.returned.connect(lambda labels: self._on_predicted(image, labels))
            worker.finished.connect(self._on_predict_finished)
            self.predict_worker = worker
            w.status.setText(f"Predicting {image.name}…")
            w.ensure_prediction_layer(image)
            self.sync(False)
            worker.start()
            return worker
        return None

    def _on_predicted(self, image: Any, labels: np.ndarray) -> None:
        """Show ``image``'s prediction in its own layer, whatever image is picked by now."""
        if image not in self.w.viewer.layers:
            self.w.status.setText(f"'{image.name}' was closed before its prediction was ready: nothing is shown.")
            return
        self.w.show_labels(None, labels, image=image)
        text = "Predicted the whole volume."
        spacing = self.w.spacing_zyx(image)
        layer = self.w.prediction_layer
        if spacing is not None and labels.ndim == 3 and layer is not None:
            text += f" {self._measure(layer, labels, spacing)}"
        self.w.status.setText(text)

    def _measure(self, layer: Any, labels: np.ndarray, spacing: tuple[float, float, float]) -> str:
        """Volumes of the prediction in mL (kept in the layer's metadata) and, when the viewer holds
        exactly one other prediction of the same grid (the same heart's other frame), the
        ejection fractions of the two."""
        from napari_wss.metrics import class_volumes_ml, describe_volumes, two_frame_indices

        names = self.w.table.names()
        ml = class_volumes_ml(labels, len(names), spacing)
        layer.metadata["volumes_ml"] = {n: float(v) for n, v in zip(names, ml)}
        text = f"Volumes: {describe_volumes(ml, names)}."
        other = self._other_frame(layer, names)
        if other is not None:  # its labels as they are now: edits count
            other_ml = class_volumes_ml(np.asarray(other.data), len(names), spacing)
            indices = two_frame_indices(ml, other_ml, names)
            efs = [f"{k} {v:.1f} %" for k, v in indices.items() if k.endswith("EF") and np.isfinite(v)]
            if efs:
                text += f" With '{other.name}' as the other frame: {', '.join(efs)}."
        return text

    def _other_frame(self, layer: Any, names: list[str]) -> Any:
        """The one other prediction of Predict volume on ``layer``'s grid made from another image
        (the same heart's other frame), or None when there is none or more than one."""
        source = layer.metadata.get(_layers.PREDICTED_FROM)
        others = [
            other
            for other in self.w.viewer.layers
            if other is not layer
            and isinstance(other.metadata, dict)
            and list(other.metadata.get("volumes_ml", {})) == list(names)
            and other.metadata.get(_layers.PREDICTED_FROM) != source
            and other.data.shape == layer.data.shape
            and _same_grid(layer, other)
        ]
        return others[0] if len(others) == 1 else None

    def predict_cine(self) -> Any:
        """Segment every frame of the picked frame's cine file (in a worker) into one 4D prediction
        layer, shown over a 4D image of the cine, with the same clean-up as Predict volume (the
        strokes belong to one frame, so each class keeps its largest object, the LV the one its
        myocardium rings); returns the worker.
        The status line then names end-diastole and end-systole (the frames of the largest and
        smallest LV) and gives the indices of the two."""
        with user_errors():
            self._guard()
            w = self.w
            if w.state is None:
                raise InputError("there is no model yet: press Train or Load model first")
            image = w.image_layer()
            cine = None if image is None else _layers.cine_frame(image.metadata)
            if image is None or cine is None:
                raise InputError("the picked image is not a frame of a 4D cine file: Predict volume segments it")
            from napari.qt.threading import create_worker

            strokes = _strokes_on(image, w.scribble_layer())  # this frame's, for every frame
            worker = create_worker(
                _predict_frames,
                w.state,
                image.metadata["source_path"],
                np.shape(image.data),
                geometry=self.geometry_for(image, strokes),
                device=w.settings.device.currentText(),
                myo_ceiling=self.myo_ceiling(np.asarray(image.data), strokes, w.state.class_names),
                largest_component=self.islands(image),
                **self.predict_options(w.state.class_names),
                _start_thread=False,
                _connect={"errored": lambda exc: notify_error(exc, "Prediction")},
            )
            worker.yielded.connect(lambda at: w.status.setText(f"Predicting frame {at[0] + 1} of {at[1]}…"))
            worker.returned.connect(lambda result: self._on_cine_predicted(image, *result))
            worker.finished.connect(self._on_predict_finished)
            self.predict_worker = worker
            w.status.setText(f"Reading the {cine[1]} frames of {Path(image.metadata['source_path']).name}…")
            self.sync(False)
            worker.start()
            return worker
        return None

    def _on_cine_predicted(self, image: Any, frames: np.ndarray, labels: np.ndarray, step: float) -> None:
        """Show the cine and its labels as 4D layers (made once per cine, then refilled), go to
        end-diastole and report the volume curve's phases and indices."""
        from napari_wss.metrics import cine_indices, class_volumes_ml

        w = self.w
        viewer = w.viewer
        source = image.metadata["source_path"]
        stem = image.name.split(" [frame ")[0]
        meta = {k: image.metadata[k] for k in ("affine", "spacing", "source_path") if k in image.metadata}
        meta["frame_step"] = step
        place = {"scale": (1.0, *image.scale), "translate": (0.0, *image.translate)}
        names = list(w.state.class_names)

        def of_cine(layer: Any, kind: type, shape: tuple[int, ...]) -> bool:
            m = layer.metadata if isinstance(layer, kind) else None
            return bool(m) and m.get("cine_of") == source and layer.data.shape == shape

        movie = next((lay for lay in viewer.layers if of_cine(lay, Image, frames.shape)), None)
        if movie is None:  # the frames under their labels: each frame's prediction lies on its own frame
            movie = viewer.add_image(
                frames, name=f"{stem} [all frames]", colormap="gray", metadata={**meta, "cine_of": source}, **place
            )
        ours = [lay for lay in viewer.layers if of_cine(lay, Labels, labels.shape)]
        kept = [lay.name for lay in ours if lay.metadata.get(_layers.EDITED)]  # painted on: never refilled
        layer = next((lay for lay in ours if not lay.metadata.get(_layers.EDITED)), None)
        if layer is None:
            kwargs = _layers.labels_kwargs(
                f"{stem} prediction [all frames]{' (new)' if kept else ''}",
                _layers.ROLE_PREDICTION,
                class_names=names,
                scale=place["scale"],
                metadata={**meta, "cine_of": source},
            )
            layer = viewer.add_layer(Labels(labels, translate=place["translate"], **kwargs))
            _layers.watch_edits(layer)
            if kept:
                notifications.show_info(f"'{kept[0]}' has your edits and is kept; the frames go to '{layer.name}'.")
        else:
            layer.data = labels
        layer.colormap = _layers.label_colormap(w.table.colors())
        spacing = tuple(float(s) for s in image.metadata["spacing"])
        ml = np.stack([class_volumes_ml(frame, len(names), spacing) for frame in labels])
        layer.metadata["frame_volumes_ml"] = [{n: float(v) for n, v in zip(names, row)} for row in ml]
        indices, ed, es = cine_indices(ml, names)
        w.plot.show_volumes(ml, ed, es, names, w.table.colors())
        text = f"Predicted all {len(labels)} frames into '{layer.name}'."
        if ed is not None:
            viewer.dims.set_current_step(0, ed)
            text += f" End-diastole = frame {ed}, end-systole = frame {es} (largest and smallest ventricle)"
            text += f": {describe_indices(indices)}. Showing end-diastole."
        w.status.setText(text)

    def _on_predict_finished(self) -> None:
        self.predict_worker = None
        self.sync(self.w.runner.running)

    # ---------------------------------------------------------------- model files
    def new(self) -> None:
        with user_errors():
            self.keep_unsaved()
            self.w.state = None
            self.w.job = None  # its images' crops belonged to the model let go
            notifications.show_info("The next Train starts a new model.")
        self.sync(self.w.runner.running)

    def keep_unsaved(self) -> None:
        """Before New model, Load model or a new class count lets the current model go: when it has
        trained steps no Save model… wrote, write it to the temporary folder (the last five are
        kept) and say where. If that fails the model stays and the error says so."""
        state = self.w.state
        if (
            state is None
            or state.step == 0
            or (self.saved and self.saved[0]() is state and self.saved[1] == state.step)
        ):
            return
        import tempfile
        import time

        from napari_wss.training import save_checkpoint

        folder = Path(tempfile.gettempdir()) / "napari-wss"
        stem = f"unsaved-model-{time.strftime('%Y%m%d-%H%M%S')}-{state.step}"
        path, n = folder / f"{stem}.pt", 1
        while path.exists():  # two in one second: never over an earlier one
            n += 1
            path = folder / f"{stem}-{n}.pt"
        try:
            priors = tuple(self.w.priors())
        except InputError:  # a table mid-edit: the file keeps the bounds the model was trained with
            priors = ()
        if len(priors) == state.num_classes:  # not after a class was added or removed
            state.priors = priors
        try:
            folder.mkdir(exist_ok=True)
            save_checkpoint(state, path)
        except (OSError, InputError) as exc:
            raise InputError(
                f"the current model ({state.step} steps) is not saved and could not be kept ({exc}): save it first"
            ) from exc
        for old in sorted(folder.glob("unsaved-model-*.pt"), key=lambda p: p.stat().st_mtime)[:-5]:
            old.unlink(missing_ok=True)
        notifications.show_info(
            f"The model you had ({state.step} steps, not saved) is kept in {path}: Load model… brings it back."
        )

    def save(self, path: str | Path) -> Path | None:
        with user_errors():
            self._guard()
            if self.w.state is None:
                raise InputError("there is no model to save yet: press Train first")
            from napari_wss.training import save_checkpoint

            self.w.state.priors = tuple(self.w.priors())
            written = save_checkpoint(self.w.state, path)
            self.saved = (weakref.ref(self.w.state), self.w.state.step)
            notifications.show_info(f"Model saved to {written}.")
            return written
        return None

    def load(self, path: str | Path) -> Any:
        """Load a checkpoint for the classes in the table; Train continues it, Predict applies it."""
        with user_errors():
            self._guard()
            from napari_wss.training import load_checkpoint

            w = self.w
            state = load_checkpoint(path, num_classes=w.table.rowCount())
            self.keep_unsaved()
            w.state, w.job = state, None
            self.saved = (weakref.ref(state), state.step)
            w.settings.set_config(state.config)
            for row, name in enumerate(state.class_names):
                if w.table.names()[row] != name:
                    w.table.item(row, 0).setText(name)
            notifications.show_info(
                f"Loaded {Path(path).name}: {state.num_classes} classes, {state.step} steps trained. "
                "Train continues it; Predict volume applies it."
            )
            self.sync(w.runner.running)
            return state
        return None

    def export(self, path: str | Path) -> list[str]:
        """Write the prediction layer through the plugin's writer (NIfTI on the image's affine, or PNG)."""
        with user_errors():
            layer = self._chosen_prediction("export")
            written = layer.save(str(path), plugin="napari-wss")
            if written:
                notifications.show_info(
                    f"Prediction saved to {', '.join(written[:3])}{' …' if len(written) > 3 else ''}"
                )
            return list(written)
        return []

    def _chosen_prediction(self, verb: str) -> Any:
        """The prediction selected in the layer list (a cine's, another frame's), else the widget's."""
        chosen = self.w.viewer.layers.selection.active
        is_prediction = isinstance(chosen, Labels) and _layers.role_of(chosen.metadata) == _layers.ROLE_PREDICTION
        layer = chosen if is_prediction else self.w.prediction_layer
        if layer is None or layer not in self.w.viewer.layers:
            raise InputError(f"there is no prediction to {verb} yet: press Train or Predict volume first")
        return layer

    def export_measurements(self, path: str | Path) -> Path | None:
        """Write the chosen prediction's measurements as CSV rows (item, value, unit), from its labels
        as they are now (edits included): every class's volume in mL; for a cine's 4D prediction
        every frame's, the end-diastolic and end-systolic frames and the cardiac indices; for a
        frame with one other frame's prediction on its grid, both frames' volumes and the indices
        of the two (end-diastole = the larger LV)."""
        from napari_wss import io
        from napari_wss.metrics import cine_items, class_volumes_ml, index_items, two_frame_indices, volume_items

        with user_errors():
            layer = self._chosen_prediction("measure")
            spacing = layer.metadata.get("spacing")
            if spacing is None:
                raise InputError(f"'{layer.name}' has no voxel size in mm (volumes need a NIfTI image)")
            spacing = tuple(float(v) for v in spacing)
            names = list(layer.metadata.get("class_names") or self.w.table.names())

            def volumes(lay: Any) -> np.ndarray:
                data = np.asarray(lay.data)
                if data.size and (data.min() < 0 or data.max() >= len(names)):
                    raise InputError(
                        f"'{lay.name}' holds labels outside 0..{len(names) - 1} ({', '.join(names)}): "
                        "paint it with the class labels only"
                    )
                frames = data if data.ndim == 4 else data[None]
                return np.stack([class_volumes_ml(frame, len(names), spacing) for frame in frames])

            ml = volumes(layer)
            if layer.data.ndim == 4:
                items = cine_items(ml, names)
            else:
                items = volume_items(layer.name, ml[0], names)
                other = self._other_frame(layer, names)
                if other is not None:
                    other_ml = volumes(other)[0]
                    items += volume_items(other.name, other_ml, names)
                    items += index_items(two_frame_indices(ml[0], other_ml, names))
            image = self.w.image_layer()
            source = image.metadata.get("source_path") if image is not None else None
            written = io.write_csv(path, ("item", "value", "unit"), items, source=source)
            notifications.show_info(f"Measurements of '{layer.name}' saved to {written}")
            return written
        return None

    # ---------------------------------------------------------------- dialogs
    def _ask(self, save: bool, title: str, filters: str, suggestion: str = "") -> str:
        ask = QFileDialog.getSaveFileName if save else QFileDialog.getOpenFileName
        path, _ = ask(self.w, title, suggestion, filters)
        return path

    def save_dialog(self) -> None:
        path = self._ask(True, "Save model", MODEL_FILTER, "model.pt")
        if path:
            self.save(path)

    def load_dialog(self) -> None:
        path = self._ask(False, "Load model", MODEL_FILTER)
        if path:
            self.load(path)

    def export_dialog(self) -> None:
        image = self.w.image_layer()
        source = image.metadata.get("source_path") if image is not None else None
        suggestion = str(Path(source).with_name(Path(source).name.split(".")[0] + "_pred.nii.gz")) if source else ""
        path = self._ask(True, "Export prediction", LABELS_FILTER, suggestion or "prediction.nii.gz")
        if path:
            self.export(path)

    def export_measurements_dialog(self) -> None:
        image = self.w.image_layer()
        source = image.metadata.get("source_path") if image is not None else None
        name = Path(source).name.split(".")[0] + "_measurements.csv" if source else "measurements.csv"
        path = self._ask(True, "Export measurements", CSV_FILTER, str(Path(source).with_name(name)) if source else name)
        if path:
            self.export_measurements(path)


def _predict_frames(
    state: Any, source: str, shape: tuple[int, ...], **options: Any
) -> Generator[tuple[int, int], None, tuple[np.ndarray, np.ndarray, float]]:
    """The worker of Predict all frames: read the cine once, then predict frame by frame (yielding
    (frame, frames) before each); returns the frames, their labels ``(T, Z, Y, X)`` and the time step."""
    from napari_wss import io
    from napari_wss.training import predict_volume

    frames, step = io.read_nifti_frames(source)
    if frames[0].data.shape != tuple(shape):
        raise InputError(
            f"{Path(source).name} now holds frames of shape {frames[0].data.shape}, not the open frame's "
            f"{tuple(shape)}: the file changed on disk; open it again"
        )
    labels = []
    for t, vol in enumerate(frames):
        yield t, len(frames)
        labels.append(np.asarray(predict_volume(state, vol.data, **options)))
    return np.stack([vol.data for vol in frames]), np.stack(labels), step


def describe_indices(indices: dict[str, float]) -> str:
    """The cardiac indices in one line: ``LV EDV 150.2 mL, ESV 60.1 mL, EF 60.0 %; RV …; myocardial mass 120.3 g``."""
    parts = []
    for cav in ("LV", "RV"):
        if f"{cav} EDV" in indices:
            values = [f"EDV {indices[f'{cav} EDV']:.1f} mL", f"ESV {indices[f'{cav} ESV']:.1f} mL"]
            ef = indices[f"{cav} EF"]
            values.append(f"EF {ef:.1f} %" if np.isfinite(ef) else "EF –")
            parts.append(f"{cav} " + ", ".join(values))
    if "myo mass" in indices:
        parts.append(f"myocardial mass {indices['myo mass']:.1f} g")
    return "; ".join(parts)


def _other_file_grid(a: Any, b: Any) -> bool:
    """Whether two layers read from files (both with a NIfTI affine) lie on different grids."""
    fa, fb = _layers.file_affine(a), _layers.file_affine(b)
    if fa is None or fb is None:
        return False
    from napari_wss.io import affines_match

    return not affines_match(np.asarray(fa), np.asarray(fb))


def _same_grid(a: Any, b: Any) -> bool:
    """Whether two layers lie on the same voxel grid: the same file affine, or without one the
    same scale."""
    if _layers.file_affine(a) is None or _layers.file_affine(b) is None:
        return bool(np.allclose(a.scale, b.scale))
    return not _other_file_grid(a, b)


def _strokes_on(image: Any, scribbles: Any) -> np.ndarray | None:
    """A copy of the scribble layer's strokes when they lie on ``image``'s grid (same shape and,
    for layers read from files, the same affine), else None: the cut then keeps each class's
    largest component. A copy, so painting on while the worker predicts changes nothing there."""
    if scribbles is None:
        return None
    marks = np.asarray(scribbles.data)
    if marks.shape != np.shape(image.data) or not np.issubdtype(marks.dtype, np.integer):
        return None
    if _other_file_grid(image, scribbles):
        return None
    return marks.copy()
