"""The dock widget "Weakly supervised segmentation": pick layers, state the classes, train live.

It only composes the parts in :mod:`napari_wss._qt` and forwards to the core: the data and the
worker's generator live in :mod:`napari_wss._session`, the training loop in
:func:`napari_wss.training.train`. Layers are touched on the GUI thread only; the user's scribble
layer is only ever read. Torch loads in the background when the widget opens, not with napari.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image, Labels
from napari.utils import notifications
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QWidget

from napari_wss import _layers
from napari_wss._qt.layout import build_layout
from napari_wss._qt.runner import TrainingRunner, notify_error, user_errors
from napari_wss._qt.settings import STROKE_BOX_FLOOR
from napari_wss._widget_classes import ClassActions
from napari_wss._widget_model import ModelActions
from napari_wss.config import INTERACTIVE_SIZE, ClassPrior
from napari_wss.errors import InputError

if TYPE_CHECKING:
    import napari

log = logging.getLogger(__name__)

UI_REFRESH_S = 1.0
"""Without a new preview, the plot and progress bar repaint at most this often (seconds)."""
PANEL_DELAY_MS = 150
"""The plot and progress bar repaint this long after the overlay, in a composite of their own."""


class WssWidget(QWidget):
    """Scribbles + size/centroid bounds → a Residual U-Net trained live on the open image."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.state: Any = None  # napari_wss.training.TrainState once trained or loaded
        self.job: Any = None  # the running / last _session.TrainJob
        self.prediction_layer: Labels | None = None
        self.training_image: Image | None = None  # the image layer the running / last press trains on
        self.absent_note = ""  # the last press's classes taken as absent on painted slices (status line)
        self.prediction_image: Image | None = None  # the image layer the prediction layer belongs to
        self._watched_scribbles: Labels | None = None  # whose paint events refresh the half-ticked Absent cells
        self._absent_timer = QTimer(self)
        self._absent_timer.setSingleShot(True)
        self._absent_timer.setInterval(0)
        self._absent_timer.timeout.connect(self.refresh_inferred_absent)
        self.last_progress: Any = None
        self.frames_shown = 0
        self.bounds_version = 0
        self._first_step = 0
        self._press_started = 0.0  # perf_counter() when the press began (for the time left)
        self._last_ui = 0.0
        self.torch_threads: int | None = None  # None: all cores but one when training on the CPU
        self._panel_item: Any = None
        self._panel_timer = QTimer(self)
        self._panel_timer.setSingleShot(True)
        self._panel_timer.setInterval(PANEL_DELAY_MS)
        self._panel_timer.timeout.connect(self._refresh_panel)
        self.runner = TrainingRunner(self)
        self.runner.progressed.connect(self._on_progress)
        self.runner.ended.connect(self._on_ended)
        self.runner.paused_changed.connect(lambda p: self.pause_button.setText("Resume" if p else "Pause"))
        build_layout(self)
        self.model = ModelActions(self)
        self.classes = ClassActions(self)
        self._on_image_changed(self.image_picker.layer())
        self._on_scribbles_changed(self.scribble_picker.layer())
        self.viewer.dims.events.current_step.connect(self._on_dims)
        self.table.changed.connect(self.refresh_inferred_absent)
        self._sync_buttons()
        try:  # an auto network size is resolved on the warm-up's thread, which imports torch
            auto = not self.settings.size.value()
            warm = (
                self.settings.config(size=INTERACTIVE_SIZE) if auto else self.settings.config(),
                self.table.rowCount(),
            )
        except InputError:  # settings a user cannot have typed yet; the real Train reports them
            warm = None
        _start_warm_up(warm, auto_size=auto)

    # ---------------------------------------------------------------- helpers
    def image_layer(self) -> Image | None:
        return self.image_picker.layer()

    def scribble_layer(self) -> Labels | None:
        return self.scribble_picker.layer()

    def spacing_yx(self, image: Image | None = None) -> tuple[float, float] | None:
        """In-plane pixel spacing (dy, dx) in mm of ``image`` (default: the picked one), or None (sizes in px)."""
        image = image if image is not None else self.image_layer()
        if image is None:
            return None
        spacing = image.metadata.get("spacing") if isinstance(image.metadata, dict) else None
        yx = tuple(float(s) for s in (spacing[-2:] if spacing is not None else image.scale[-2:]))
        return None if yx == (1.0, 1.0) else (yx[0], yx[1])

    def spacing_zyx(self, image: Image | None = None) -> tuple[float, float, float] | None:
        """Voxel size (dz, dy, dx) in mm of ``image`` (default: the picked one) read from a file that
        states it (NIfTI), else None (volumes are then not reported in mL)."""
        image = image if image is not None else self.image_layer()
        meta = image.metadata if image is not None and isinstance(image.metadata, dict) else {}
        spacing = meta.get("spacing")
        if spacing is None or len(spacing) != 3 or image is None or image.ndim != 3:
            return None
        return (float(spacing[0]), float(spacing[1]), float(spacing[2]))

    def area_per_pixel(self, image: Image | None = None) -> float:
        yx = self.spacing_yx(image)
        return 1.0 if yx is None else yx[0] * yx[1]

    def current_slice(self) -> int:
        image = self.image_layer()
        if image is None or image.ndim < 3:
            return 0
        z = round(float(image.world_to_data(self.viewer.dims.point)[0]))
        return int(min(max(z, 0), image.data.shape[0] - 1))

    def priors(self) -> list[ClassPrior]:
        return self.table.priors(self.spacing_yx())

    # ---------------------------------------------------------------- layer slots
    def _on_image_changed(self, layer: Image | None) -> None:
        self.table.set_unit("mm²" if self.spacing_yx() is not None else "px")
        self.table.set_current_slice(self.current_slice())
        self.refresh_inferred_absent()
        cine = None if layer is None else _layers.cine_frame(layer.metadata)
        for part in (self.frame_label, self.frame_box, self.open_frame_button, self.predict_cine_button):
            part.setVisible(cine is not None)
        if cine is not None:
            self.frame_box.setRange(0, cine[1] - 1)
            self.frame_box.setValue(cine[0])

    def open_frame(self, frame: int) -> Image | None:
        """Open frame ``frame`` of the picked image's cine file as an image layer of its own (on the
        same grid) and pick it with that frame's own scribble layer, or none: strokes of another
        frame must not train it. Two predicted frames give the ejection fractions. A frame already
        open is picked, not read again."""
        with user_errors():
            if self.runner.running:
                raise InputError("training is running: stop it before opening another frame")
            image = self.image_layer()
            cine = None if image is None else _layers.cine_frame(image.metadata)
            if image is None or cine is None:
                raise InputError("the picked image is not a frame of a 4D cine file")
            source = image.metadata["source_path"]

            def of_frame(layer: Any, kind: type) -> bool:
                meta = layer.metadata if isinstance(layer, kind) else None
                return _layers.cine_frame(meta) == (frame, cine[1]) and meta.get("source_path") == source

            layer = next((lay for lay in self.viewer.layers if of_frame(lay, Image)), None)
            if layer is None:
                from pathlib import Path

                from napari_wss import io
                from napari_wss._reader import image_layer_data

                volume = io.read_nifti(Path(source), frame=frame)
                data, kwargs, _ = image_layer_data(volume, Path(source), frame=frame, frames=cine[1])
                layer = self.viewer.add_image(data, **kwargs)
            self.image_picker.set_layer(layer)
            own = [
                lab
                for lab in self.viewer.layers
                if of_frame(lab, Labels) and _layers.role_of(lab.metadata) == _layers.ROLE_SCRIBBLES
            ]
            self.scribble_picker.set_layer(own[-1] if own else None)
            return layer
        return None

    def _on_scribbles_changed(self, layer: Labels | None) -> None:
        self._watch_scribbles(layer)
        if layer is None or self.runner.running:
            return
        wss = layer.metadata.get("wss") if isinstance(layer.metadata, dict) else None
        names = list(wss.get("class_names") or []) if isinstance(wss, dict) else []
        if len(names) >= 2 and names != self.table.names():
            priors = [ClassPrior.from_dict(d) for d in wss.get("priors") or []]  # type: ignore[union-attr]
            self.table.set_classes(names, priors=priors or None, scale=self.area_per_pixel())
        self.classes.apply_colors()

    def _on_dims(self, _event: Any = None) -> None:
        z = self.current_slice()
        self.table.set_current_slice(z)
        self.runner.set_current_slice(z)
        self.refresh_inferred_absent()

    def _watch_scribbles(self, layer: Labels | None) -> None:
        old = self._watched_scribbles
        if old is layer:
            return
        if old is not None:
            old.events.paint.disconnect(self._on_scribbles_painted)
            old.events.data.disconnect(self._on_scribbles_painted)
        if layer is not None:
            layer.events.paint.connect(self._on_scribbles_painted)
            layer.events.data.connect(self._on_scribbles_painted)
        self._watched_scribbles = layer
        self.refresh_inferred_absent()

    def _on_scribbles_painted(self, _event: Any = None) -> None:
        # napari may announce a single paint call before writing it: look once the event is handled
        self._absent_timer.start()

    def refresh_inferred_absent(self, _event: Any = None) -> None:
        """Half-tick, in the Absent column, the classes the picked scribbles make absent on the slice
        shown: it has strokes, none of theirs (the rule training and Predict volume apply)."""
        image, layer = self.image_layer(), self.scribble_layer()
        rows: list[int] = []
        if (
            image is not None
            and layer is not None
            and not layer.multiscale
            and layer.data.shape[-2:] == image.data.shape[-2:]
        ):
            plane = None
            if layer.data.ndim == 2 and image.ndim == 2:
                plane = layer.data
            elif layer.data.ndim == 3 and image.ndim == 3 and layer.data.shape[0] == image.data.shape[0]:
                plane = layer.data[self.current_slice()]
            if plane is not None:
                # data.absent_classes's rule on one slice, in numpy: importing the core (torch) here
                # would hold the widget's opening up by 1.5-2.3 s; a GUI test checks both agree
                plane = np.asarray(plane)
                if (plane > 0).any():
                    rows = [c for c in range(1, self.table.rowCount()) if not (plane == c + 1).any()]
        self.table.set_inferred_absent(rows)

    def train(self) -> None:
        """Validate, prepare the slices and start the worker (a no-op with a notification on bad input)."""
        if self.runner.running:
            notifications.show_info("Training is already running.")
            return
        with user_errors():
            self._start()
        self._sync_buttons()

    def _start(self) -> None:
        from napari_wss import _session, training

        image, scribbles = self.image_layer(), self.scribble_layer()
        if scribbles is not None and scribbles is self.prediction_layer:
            raise InputError("the prediction layer cannot be the scribble layer: pick or make another one")
        if image is not None:
            _layers.check_segmentable(image)
        _check_same_frame(image, scribbles)
        config = self.settings.config()
        priors = self.priors()
        img, scr = _session.check_inputs(
            None if image is None else image.data,
            None if scribbles is None else scribbles.data,
            priors,
            config,
            image_name=getattr(image, "name", ""),
            scribble_name=getattr(scribbles, "name", ""),
            image_affine=_layers.file_affine(image),
            scribble_affine=_layers.file_affine(scribbles),
        )
        state = self.state
        if state is not None and state.num_classes != len(priors):
            self.model.keep_unsaved()
            notifications.show_info(f"The class table has {len(priors)} classes now: training a new model.")
            state = None
        if state is not None:
            config = config.with_(width=state.config.width, depth=state.config.depth)
        others = self._other_painted(image, scribbles, config) if self.train_all.isChecked() else []
        job = _session.build_job(
            img,
            scr,
            priors,
            config,
            others=others,
            labels=self._ground_truth(img.shape, len(priors)),
            absent=self.table.absent_pairs(),
            crop=self.settings.crop.isChecked(),
            islands=self.model.islands(image),
            lv_hull=self.model.lv_hull(p.name for p in priors),
            max_wall=self.model.wall_limit(p.name for p in priors),
            stroke_boxes=STROKE_BOX_FLOOR if self.stroke_boxes.isChecked() else None,
            myo_ceiling=self.model.myo_ceiling(img, scr, (p.name for p in priors)),
            septum=self.model.septum_rule(p.name for p in priors),
        )
        if state is None:
            state = training.TrainState.create(job.config, job.class_names, priors=job.priors)
        self.state, self.job, self.last_progress, self._panel_item = state, job, None, None
        self.training_image = image
        self.ensure_prediction_layer(image)
        self.plot.reset(job.class_names, self.table.colors(), self.table.unit)
        with_others = ""
        if job.others:
            names = ", ".join(repr(n) for n in job.others)
            with_others = f" ({names} too; {job.config.steps} steps, {config.steps} per image)"
        self.absent_note = _session.describe_inferred_absence(scr, job.class_names)
        note = f" {self.absent_note}" if self.absent_note else ""
        self.status.setText(f"Training {len(job.data)} slices{with_others} at {config.size} px…{note}")
        self._first_step, self._last_ui, self._press_started = state.step, 0.0, time.perf_counter()
        self.progress_bar.setRange(0, job.config.steps)
        self.progress_bar.setValue(0)
        control = _session.RunControl(current_slice=self.current_slice(), torch_threads=self.torch_threads)
        self.runner.start(job, state, control=control)
        self.destroyed.connect(lambda *_, c=self.runner.control: c.stop.set())

    def _other_painted(self, image: Image | None, scribbles: Labels | None, config: Any) -> list[Any]:
        """The other images that have a scribble layer of their own with strokes, checked as the
        picked pair is, with the class table's priors in their own pixels (*train on every painted
        image*). A scribble layer belongs to the one image on its grid: for layers read from files,
        the same file and frame; otherwise the same shape and scale. One that fits no other image, or
        several, is left out."""
        from napari_wss import _session

        out = []
        for layer in self.viewer.layers:
            if (
                not isinstance(layer, Labels)
                or layer is scribbles
                or layer is self.prediction_layer
                or _layers.role_of(layer.metadata) != _layers.ROLE_SCRIBBLES
                or not np.any(layer.data)
            ):
                continue
            owners = [other for other in self.viewer.layers if _paints(layer, other)]
            if len(owners) != 1 or owners[0] is image:
                continue
            owner = owners[0]
            try:
                o_img, o_scr = _session.check_inputs(
                    owner.data,
                    layer.data,
                    self.table.priors(self.spacing_yx(owner)),
                    config,
                    image_name=owner.name,
                    scribble_name=layer.name,
                    image_affine=_layers.file_affine(owner),
                    scribble_affine=_layers.file_affine(layer),
                )
            except InputError as exc:
                raise InputError(f"{exc} (trained too: 'train on every painted image' is ticked)") from exc
            priors = tuple(self.table.priors(self.spacing_yx(owner)))
            out.append(_session.OtherImage(owner.name, o_img, o_scr, priors))
        return out

    def _ground_truth(self, shape: tuple[int, ...], k: int) -> np.ndarray | None:
        gt = self.gt_picker.layer()
        if gt is None:
            return None
        from napari_wss import _session, data

        try:
            return data.check_labels(_session.as_volume(gt.data, f"'{gt.name}'"), k, shape)
        except InputError as exc:
            notifications.show_warning(f"Dice is not shown: {exc}")
            return None

    def stop(self) -> None:
        self.runner.stop()

    def ensure_prediction_layer(self, image: Image | None = None) -> Labels:
        """The "prediction" layer on ``image``'s grid (default: the picked image): made once, then
        updated in place until the user paints on it (a new one then takes the predictions; theirs
        stays as they left it)."""
        image = image if image is not None else self.image_layer()
        if image is None:
            raise InputError("no image is chosen")
        layer = self.prediction_layer
        alive = layer is not None and layer in self.viewer.layers
        same = alive and layer.data.shape == image.data.shape and self.prediction_image in (None, image)
        edited = same and bool(layer.metadata.get(_layers.EDITED))
        if same and not edited:
            return layer
        # Another image (e.g. the same heart's other frame) gets its own layer: the earlier
        # prediction stays in the viewer. So does one the user has painted on: their edits are kept.
        name = f"{layer.name} (new)" if edited else "prediction" if not alive else f"prediction ({image.name})"
        meta = {k: image.metadata[k] for k in ("affine", "spacing", "source_path") if k in image.metadata}
        meta[_layers.PREDICTED_FROM] = image.name
        kwargs = _layers.labels_kwargs(
            name, _layers.ROLE_PREDICTION, class_names=self.table.names(), scale=image.scale, metadata=meta
        )
        new = Labels(np.zeros(image.data.shape, dtype=np.uint8), translate=image.translate, **kwargs)
        new.colormap = _layers.label_colormap(self.table.colors())
        _layers.watch_edits(new)
        active = self.viewer.layers.selection.active
        self.viewer.add_layer(new)
        if edited:
            notifications.show_info(
                f"'{layer.name}' has your edits and is kept as it is; new predictions go to '{new.name}'."
            )
        layer = new
        scribbles = self.scribble_layer()
        if scribbles is not None and scribbles in self.viewer.layers:  # paint strokes stay on top
            self.viewer.layers.move(self.viewer.layers.index(layer), self.viewer.layers.index(scribbles))
        if active is not None:
            self.viewer.layers.selection.active = active
        self.prediction_layer = layer
        self.prediction_image = image
        return layer

    def show_labels(
        self, rows: np.ndarray | None, labels: np.ndarray, *, image: Image | None = None, thumbnail: bool = True
    ) -> None:
        """Write predicted labels (P, H, W) of slices ``rows`` (None = all) of ``image`` (default: the
        picked one) into its prediction layer."""
        layer = self.ensure_prediction_layer(image)
        target = layer.data if layer.data.ndim == 3 else layer.data[None]
        if rows is None:
            target[...] = labels.reshape(target.shape)
        else:
            target[rows] = labels
        if thumbnail:
            layer.refresh(extent=False, highlight=False)
        else:
            # While training, the layer list is left alone: its row would repaint for every data
            # event, a second window composite per preview (tens of ms under software OpenGL).
            # The canvas listens to the layer itself; the thumbnail catches up when training ends.
            with self.viewer.layers.events.blocker_all():
                layer.refresh(extent=False, thumbnail=False, highlight=False)
        self.frames_shown += 1

    # ---------------------------------------------------------------- training slots
    def _on_progress(self, item: Any) -> None:
        """Every step: record it. A preview goes to the canvas at once; the plot and progress bar
        follow PANEL_DELAY_MS later (or every UI_REFRESH_S without previews).

        Each repaint makes Qt composite the whole window through OpenGL; under software rendering
        that costs tens of ms whatever changed. Two smaller repaints (canvas; panel) keep every
        stall shorter than one large one (benchmarks/gui_responsiveness.py: p99 44 against 60-70 ms
        at 1280 x 800 on a 2-core CPU), and no text or layout change triggers a repaint of its own.
        """
        self.last_progress = item
        ev, job, image = item.event, self.job, self.training_image
        sr, sc = job.geometry.scale
        to_unit = self.area_per_pixel(image) / (sr * sc)
        self.plot.add(
            ev.step,
            {"loss": ev.loss, **ev.parts},
            ev.sizes * to_unit,
            ev.size_bounds * to_unit,
            ev.centroid_violation * 2.0 / (sr + sc),
            item.dice,
        )
        self._panel_item = item
        # The preview belongs to the image being trained, whatever is picked now; none once it is closed.
        if item.frame is not None and image is not None and image in self.viewer.layers:
            self.show_labels(item.rows, item.frame, image=image, thumbnail=False)
            if not self._panel_timer.isActive():
                self._panel_timer.start()
        elif time.perf_counter() - self._last_ui >= UI_REFRESH_S and not self._panel_timer.isActive():
            self._refresh_panel()

    def _refresh_panel(self) -> None:
        """Repaint the plot and the progress bar with the latest step."""
        item = self._panel_item
        if item is None:
            return
        self._last_ui = time.perf_counter()
        ev = item.event
        self.plot.update()
        # The progress bar's own text carries the figures: changing a label's text would re-lay
        # out the dock and repaint it in a pass of its own.
        dice = "" if item.dice is None else f" · Dice {np.nanmean(item.dice[1:]):.3f}"
        bar = self.progress_bar
        bar.setUpdatesEnabled(False)  # QProgressBar.setValue repaints synchronously: a composite of its own
        done = ev.step - self._first_step
        total = self.job.config.steps if self.job is not None else done  # no job: nothing left to time
        left = time_left(time.perf_counter() - self._press_started, done, total)
        bar.setFormat(f"step {ev.step} · loss {ev.loss:.4g} · {ev.slices_per_s:.1f} slices/s{dice}{left}")
        bar.setValue(done)
        bar.setUpdatesEnabled(True)  # = update(): painted with the rest
        self.runner.show_progress(ev.step - self._first_step)

    def _on_ended(self, state: Any) -> None:
        self._panel_timer.stop()
        self._refresh_panel()
        if state is not None:
            self.state = state
        if self.prediction_layer is not None and self.prediction_layer in self.viewer.layers:
            self.prediction_layer.refresh(extent=False)  # the thumbnail catches up
        self.plot.update()
        last = self.last_progress
        if last is not None:
            self.progress_bar.setFormat(f"step {last.event.step} · loss {last.event.loss:.4g}")
            self.progress_bar.setValue(max(last.event.step - self._first_step, 0))
        if state is None:
            self.status.setText("Training stopped on an error (see the notification); nothing you painted changed.")
        else:
            done = f"The model has trained {state.step} steps. Train continues it; Predict volume segments the image."
            self.status.setText(f"{done} {self.absent_note}".strip())
        self._sync_buttons()

    def _on_bounds_edited(self) -> None:
        if not self.runner.running or self.job is None:
            return
        from napari_wss import _session

        try:
            # in the trained image's pixels, whatever image is picked by now
            priors = self.table.priors(self.spacing_yx(self.training_image))
            update = _session.network_bounds(self.job, priors, self.table.absent_pairs())
        except InputError as exc:
            notifications.show_warning(f"The new bounds were not applied: {exc}")
            return
        self.bounds_version = self.runner.send_bounds(update)

    def _sync_buttons(self) -> None:
        running = self.runner.running
        self.train_button.setEnabled(not running)
        self.pause_button.setEnabled(running)
        self.stop_button.setEnabled(running)
        if not running:
            self.pause_button.setText("Pause")
        self.model.sync(running)


def time_left(elapsed_s: float, done: int, total: int) -> str:
    """`` · 1 min 05 s left`` for the progress bar, from the press's pace so far; empty before five
    steps (the first includes one-off set-up) and at the end."""
    if done < 5 or done >= total:
        return ""
    seconds = round(elapsed_s / done * (total - done))
    return f" · {seconds // 60} min {seconds % 60:02d} s left" if seconds >= 60 else f" · {seconds} s left"


def _paints(scribbles: Labels, image: Any) -> bool:
    """Whether a scribble layer was painted on ``image``: a greyscale, single-resolution image of
    its shape whose file (and cine frame) it names, or, when it names none, on the same scale."""
    if not isinstance(image, Image) or image.rgb or image.multiscale or image.data.shape != scribbles.data.shape:
        return False
    source = scribbles.metadata.get("source_path")
    if source is not None:
        same_frame = _layers.cine_frame(scribbles.metadata) == _layers.cine_frame(image.metadata)
        return image.metadata.get("source_path") == source and same_frame
    return image.metadata.get("source_path") is None and bool(np.allclose(image.scale, scribbles.scale))


def _check_same_frame(image: Image | None, scribbles: Labels | None) -> None:
    """Refuse strokes painted on another frame of the same cine than the picked image shows."""
    if image is None or scribbles is None:
        return
    a, b = _layers.cine_frame(image.metadata), _layers.cine_frame(scribbles.metadata)
    if a is not None and b is not None and a != b:
        raise InputError(
            f"scribble layer '{scribbles.name}' was painted on frame {b[0]} but '{image.name}' is frame {a[0]}: "
            "pick that frame's scribbles or press 'New scribble layer'"
        )


_warm_ups: list[threading.Thread] = []


def _start_warm_up(warm: tuple[Any, int] | None, auto_size: bool = False) -> None:
    """Start :func:`_warm_up` on a daemon thread that Python's exit waits for (see :func:`_join_warm_ups`)."""
    _warm_ups[:] = [t for t in _warm_ups if t.is_alive()]
    thread = threading.Thread(target=_warm_up, args=(warm, auto_size), name="napari-wss-warm-up", daemon=True)
    _warm_ups.append(thread)
    thread.start()


@atexit.register
def _join_warm_ups(timeout_s: float = 30.0) -> None:
    """At exit, before Python shuts down: a warm-up still freeing its tensors then would ask for the
    GIL during finalisation, be ended through C++ frames and abort the process (SIGABRT,
    "terminate called without an active exception") -- after napari closed, but still a crash."""
    for thread in _warm_ups:
        thread.join(timeout_s)


def _warm_up(warm: tuple[Any, int] | None, auto_size: bool = False) -> None:
    """Off the GUI thread: import torch and the training code, so the first Train does not freeze,
    then run one throw-away step at the settings' shapes (:func:`napari_wss.training.warm_up`, at a
    lower priority), so it does not pay the device's one-off set-up either. ``auto_size``: the
    settings' network size is *auto*, resolved here for the config's device."""
    try:
        from napari_wss import _session, training

        if warm is None or warm[1] < 2:
            return
        if auto_size:
            config, rows = warm
            warm = (config.with_(size=training.interactive_size(training.resolve_device(config.device))), rows)
        previous = _session._lower_priority(10)
        try:
            log.debug("warm-up took %.2f s", training.warm_up(*warm))
        finally:
            _session._restore_priority(previous)
    except Exception:  # the real Train reports what is wrong
        log.debug("background warm-up failed", exc_info=True)


__all__ = ["WssWidget", "notify_error"]
