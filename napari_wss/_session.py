"""What the widget does between the layers and the core, without Qt (tests drive it directly).

* :func:`check_inputs` turns the picked layers' arrays into a ``(Z, Y, X)`` image and scribbles and
  says in plain words what is missing (numpy only, so the widget answers before torch loads).
* :func:`build_job` prepares the network-resolution slices and the geometry to map back.
* :func:`run_training` wraps :func:`napari_wss.training.train` (the one training loop) for the
  worker thread: it forwards bound updates, computes time-throttled previews and maps them back
  to the image grid *in the worker*, leaves a core to the GUI on the CPU, and stops cleanly
  between two steps (closing ``train`` so it frees GPU memory in its ``finally``).
* :func:`estimate_bounds` (from :mod:`napari_wss._bounds`) gives per-class size ranges and
  centroid boxes from a labelled layer.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_wss._bounds import Estimate, background_in_box, estimate_bounds
from napari_wss.config import ClassPrior, Mode, Penalty, TrainConfig
from napari_wss.errors import InputError

if TYPE_CHECKING:
    from napari_wss.data import SliceDataset, SliceGeometry
    from napari_wss.training import BoundsUpdate, TrainEvent, TrainState

log = logging.getLogger(__name__)

__all__ = [
    "BoundsMessage",
    "Estimate",
    "OtherImage",
    "Progress",
    "RunControl",
    "TrainJob",
    "WorkerCrash",
    "as_volume",
    "background_in_box",
    "build_job",
    "check_inputs",
    "estimate_bounds",
    "network_bounds",
    "run_training",
]

PREVIEW_ALL_UP_TO = 24
"""Volumes with at most this many slices are previewed whole; larger ones on 16 + the current slice."""


# --------------------------------------------------------------------------------------------
# Inputs


def as_volume(data: Any, what: str) -> np.ndarray:
    """A layer's data as ``(Z, Y, X)`` (a 2D image is one slice)."""
    arr = np.asarray(data)
    if arr.ndim == 2:
        return arr[None]
    if arr.ndim == 4:
        raise InputError(
            f"{what} must be a 2D image or a 3D (Z, Y, X) volume, got 4 dimensions {arr.shape}: for a cine "
            "sequence pick one time frame (right-click the layer > Split Stack, or open the file with napari-wss, "
            "which opens its first frame)"
        )
    if arr.ndim != 3:
        raise InputError(f"{what} must be a 2D image or a 3D (Z, Y, X) volume, got {arr.ndim} dimensions {arr.shape}")
    return arr


def check_inputs(
    image: Any,
    scribbles: Any,
    priors: Sequence[ClassPrior],
    config: TrainConfig,
    *,
    image_name: str = "image",
    scribble_name: str = "scribbles",
    image_affine: Any = None,
    scribble_affine: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Validate what the user picked; return ``(image, scribbles)`` as ``(Z, Y, X)``.

    ``image_affine`` / ``scribble_affine`` are the layers' NIfTI affines (``metadata["affine"]``)
    when they came from files; scribbles from a file on another grid are refused.

    Raises:
        InputError: no image, no scribble layer, shapes or grids that differ, nothing painted,
            values beyond the class table, a class with neither scribbles nor bounds, bounds that
            do not fit.
    """
    if image is None:
        raise InputError("no image is chosen: open an image (File > Open) and pick it in 'Image'")
    if scribbles is None:
        raise InputError("no scribble layer is chosen: press 'New scribble layer' and paint a few strokes")
    img = as_volume(image, f"image '{image_name}'")
    if img.dtype.kind not in "uif":
        raise InputError(f"image '{image_name}' must hold numbers (a greyscale image), got dtype {img.dtype}")
    scr = np.asarray(scribbles)
    if scr.ndim == 2 and img.shape[0] == 1:
        scr = scr[None]
    if scr.shape != img.shape:
        raise InputError(
            f"scribble layer '{scribble_name}' has shape {scr.shape} but image '{image_name}' has shape "
            f"{img.shape}: press 'New scribble layer' to make one that fits"
        )
    if image_affine is not None and scribble_affine is not None:
        from napari_wss.io import affines_match

        if not affines_match(image_affine, scribble_affine):
            raise InputError(
                f"scribble layer '{scribble_name}' was read from a file on another grid than image '{image_name}' "
                "(their affines differ): resample it onto the image, or press 'New scribble layer'"
            )
    k = len(priors)
    if scr.dtype.kind not in "iub":
        raise InputError(f"scribble layer '{scribble_name}' must hold whole numbers, got dtype {scr.dtype}")
    if scr.size and scr.min() < 0:
        raise InputError(
            f"scribble layer '{scribble_name}' holds negative labels (down to {int(scr.min())}): erase them; "
            "0 = not annotated, label c + 1 paints class c"
        )
    counts = np.bincount(scr.reshape(-1).astype(np.int64), minlength=k + 1)
    if counts[1:].sum() == 0:
        raise InputError(f"no scribbles are painted on '{scribble_name}': paint a few strokes of each class first")
    if len(counts) > k + 1:
        raise InputError(
            f"scribble layer '{scribble_name}' uses label {len(counts) - 1} but only {k} classes are defined "
            f"(label c + 1 paints class c): add classes or erase those strokes"
        )
    bounded = config.uses_priors
    for c, prior in enumerate(priors):
        has_bound = prior.size is not None or prior.centroid is not None
        if counts[c + 1] == 0 and not (bounded and has_bound):
            hint = "give it size bounds, paint it or remove it"
            if has_bound and not bounded:
                hint = "choose a penalty (the bounds are ignored with 'none'), paint it or remove it"
            raise InputError(f"class '{prior.name}' has neither scribbles nor bounds: {hint}")
    for prior in priors:
        prior.check_fits(img.shape[1:])
    return img, scr


def describe_inferred_absence(scribbles: np.ndarray, class_names: Sequence[str], limit: int = 6) -> str:
    """One sentence naming, per class, the painted slices that have no stroke of it — where
    training and Predict volume take it as absent — or "" when every class is painted on every
    painted slice. One stroke on a fresh slice (a correction) makes the others absent there; this
    says so before it surprises anyone. Slices are the image's z indices, as napari shows them."""
    from napari_wss.data import absent_classes

    marks = np.asarray(scribbles)
    marks = marks.reshape(-1, *marks.shape[-2:])
    absent = absent_classes(marks.shape[0], len(class_names), scribbles=marks)
    parts = []
    for c, name in enumerate(class_names):
        where = np.flatnonzero(absent[:, c])
        if where.size:
            shown = ", ".join(str(z) for z in where[:limit]) + (
                f" and {where.size - limit} more" if where.size > limit else ""
            )
            parts.append(f"{name} on {'slice' if where.size == 1 else 'slices'} {shown}")
    if not parts:
        return ""
    return f"Taken as absent where a painted slice has no stroke of it: {'; '.join(parts)}."


def mode_for(penalty: Penalty) -> Mode:
    """Scribbles + bounds, or scribbles alone when the penalty is 'none'."""
    return Mode.PARTIAL if Penalty(penalty) == Penalty.NONE else Mode.CONSTRAINED


# --------------------------------------------------------------------------------------------
# The job


@dataclass
class TrainJob:
    """Everything one training run needs, at network resolution, and the way back."""

    data: SliceDataset
    geometry: SliceGeometry
    config: TrainConfig
    class_names: tuple[str, ...]
    priors: tuple[ClassPrior, ...]
    scribbles: np.ndarray  # (Z, Y, X) source, a copy: the bounds rules read it, nobody writes it
    labels: np.ndarray | None  # (Z, Y, X) source ground truth for Dice, or None
    absent: tuple[tuple[int, int], ...] = ()
    islands: str | None = None  # previews remove islands as Predict volume does: "volume", "slice" or None
    lv_hull: bool = False  # previews make the LV cavity convex as Predict volume does (classes found by name)
    max_wall: tuple[float, tuple[float, float]] | None = None  # (mm, in-plane spacing): the wall-thickness limit
    stroke_boxes: float | None = None  # classes without a typed box: per-slice boxes from their strokes (the floor)
    others: tuple[str, ...] = ()  # the names of the other painted images trained with the picked one
    others_bounds: tuple[np.ndarray, np.ndarray] | None = None  # their rows' bounds in network px, kept as built
    others_geometry: tuple[SliceGeometry, ...] = ()  # how each of them maps to the network (its own crop)
    myo_ceiling: float | str | None = None  # previews: myocardium brighter than this (or FROM_PREDICTION) goes
    image: np.ndarray | None = None  # the picked image as given (previews read its intensities for that)
    septum: tuple[float, tuple[float, float]] | None = None  # (factor, in-plane spacing): the wall from the septum

    @property
    def n_slices(self) -> int:
        return int(self.scribbles.shape[0])

    @property
    def source_shape(self) -> tuple[int, int]:
        return int(self.scribbles.shape[1]), int(self.scribbles.shape[2])


def build_job(
    image: np.ndarray,
    scribbles: np.ndarray,
    priors: Sequence[ClassPrior],
    config: TrainConfig,
    *,
    labels: np.ndarray | None = None,
    absent: Sequence[tuple[int, int]] = (),
    crop: bool = False,
    islands: str | None = None,
    lv_hull: bool = False,
    max_wall: tuple[float, tuple[float, float]] | None = None,
    stroke_boxes: float | None = None,
    others: Sequence[OtherImage] = (),
    myo_ceiling: float | str | None = None,
    septum: tuple[float, tuple[float, float]] | None = None,
) -> TrainJob:
    """Slices at network resolution with their bounds (source pixels → network pixels).

    ``crop`` trains on a square around the foreground scribbles (faster on a CPU, finer for small
    structures); predictions outside it are background. ``islands`` (``"volume"`` or ``"slice"``):
    previews clear each class from the slices training keeps it off (strokes without it, Absent
    ticks; :func:`~napari_wss.postprocess.clear_absent`), and those that show every slice keep,
    per class, the objects its strokes touch (its largest where they touch none; the LV, the one its
    myocardium rings), as Predict volume does (:func:`~napari_wss.postprocess.keep_largest_component`).
    ``lv_hull``: previews then hand the myocardium inside the LV cavity's convex hull to the cavity
    (:func:`~napari_wss.postprocess.fill_lv_hull`; refused unless classes are named LV and myocardium).
    ``max_wall`` = (mm, in-plane spacing in mm): previews then drop the myocardium farther than that
    from the LV cavity (:func:`~napari_wss.postprocess.limit_wall_thickness`), as Predict volume does.
    ``stroke_boxes`` (a share of the trained region's side, e.g. 0.05): a class without a typed
    centroid box gets, on every slice it is painted on, the bounding box of its strokes there,
    at least ± that share wide (:func:`~napari_wss.data.stroke_boxes`); None = no such boxes.
    ``myo_ceiling``: previews then hand the myocardium brighter than that to its nearest other class
    (:func:`~napari_wss.postprocess.limit_myocardium_brightness`), as Predict volume does.
    ``septum`` = (factor, in-plane spacing): previews then drop the myocardium farther from the LV
    cavity than factor times the septum they show (:func:`~napari_wss.postprocess.limit_wall_to_septum`;
    refused unless classes are named RV, myocardium and LV), as Predict volume does.
    ``others``: more painted images trained with this one (one model for all, their slices after
    this image's), each with the priors in its own pixels, cropped around its own strokes when
    ``crop``; their absence comes from their strokes, and their bounds stay as built (edits
    mid-run, previews, Dice and the Absent ticks concern this image). The press then runs
    ``config.steps`` per image.
    """
    from napari_wss import data
    from napari_wss.postprocess import LARGEST_COMPONENT, lv_hull_classes, septum_classes

    if islands not in (None, *LARGEST_COMPONENT):
        raise InputError(f"islands must be one of {LARGEST_COMPONENT} or None, got {islands!r}")

    img = as_volume(image, "image")
    scr = np.array(as_volume(scribbles, "scribbles"), dtype=np.uint8, copy=True)
    lab = None
    if labels is not None:
        lab = data.check_labels(as_volume(labels, "ground truth"), len(priors), img.shape)

    def prepare(
        img: np.ndarray, scr: np.ndarray, priors: Sequence[ClassPrior], absent: Sequence[tuple[int, int]], **kw: Any
    ) -> tuple[data.SliceDataset, SliceGeometry]:
        box = data.crop_around(scr) if crop else None
        sizes, cents = _source_bounds(priors, scr, absent, box, stroke_boxes)
        return data.prepare_volume(
            img,
            num_classes=len(priors),
            size=config.size,
            scribbles=scr,
            size_bounds=sizes,
            centroid_bounds=cents,
            box=box,
            **kw,
        )

    ds, geometry = prepare(img, scr, priors, absent, labels=lab)
    names = tuple(p.name for p in priors)
    if lv_hull or max_wall is not None:
        lv_hull_classes(names)
    if septum is not None:
        septum_classes(names)
    config = config.with_(preview_every=0)
    others_bounds, others_geometry = None, ()
    if others:
        # The loss reads labels only under full supervision, which the widget does not train; Dice uses ``lab``.
        parts = [replace(ds, labels=None)]
        geometries: list[SliceGeometry] = []
        for i, other in enumerate(others, start=1):
            if [p.name for p in other.priors] != list(names):
                raise InputError(f"image '{other.name}' was given other classes than the picked image")
            o_img, o_scr = as_volume(other.image, f"image '{other.name}'"), as_volume(other.scribbles, "scribbles")
            part, o_geometry = prepare(o_img, np.asarray(o_scr, dtype=np.uint8), other.priors, (), volume_index=i)
            parts.append(part)
            geometries.append(o_geometry)
        ds = data.SliceDataset.concat(parts)
        n = len(parts[0])
        others_bounds = (ds.size_bounds[n:].copy(), ds.centroid_bounds[n:].copy())
        others_geometry = tuple(geometries)
        # A press's steps per image: the measured setting (benchmarks/interactive.py --joint-frames; one
        # press's steps spread over two ACDC frames scored median 0.840 against 0.866 with twice them).
        config = config.with_(steps=config.steps * len(parts))
    return TrainJob(
        ds,
        geometry,
        config,
        names,
        tuple(priors),
        scr,
        lab,
        tuple(absent),
        islands,
        lv_hull,
        max_wall,
        stroke_boxes,
        tuple(o.name for o in others),
        others_bounds,
        others_geometry,
        myo_ceiling,
        img if myo_ceiling is not None else None,
        septum,
    )


@dataclass(frozen=True)
class OtherImage:
    """Another painted image to train with the picked one: its arrays (checked by
    :func:`check_inputs`) and the class table's priors in its own pixels."""

    name: str
    image: np.ndarray
    scribbles: np.ndarray
    priors: tuple[ClassPrior, ...]


def _source_bounds(
    priors: Sequence[ClassPrior],
    scribbles: np.ndarray,
    absent: Sequence[tuple[int, int]],
    box: tuple[int, int, int, int] | None,
    stroke_floor: float | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-slice size and centroid bounds in source pixels, as the network's view ``box`` sees them.
    Absent ticks on slices this image does not have are not its: the class table keeps one set of
    ticks, and they stay when another image (a frame with fewer slices) is trained."""
    from napari_wss import data

    n, h, w = scribbles.shape
    absent = [(z, c) for z, c in absent if 0 <= z < n]
    sizes, cents = data.bounds_from_priors(priors, n, (h, w), scribbles=scribbles, absent=absent)
    if stroke_floor is not None:
        if not 0 <= stroke_floor < 0.5:
            raise InputError(f"the stroke boxes' floor must be a share of the side in [0, 0.5), got {stroke_floor:g}")
        side = max(h, w) if box is None else box[1] - box[0]
        strokes = data.stroke_boxes(scribbles, len(priors), min_half=stroke_floor * side)
        typed = np.array([p.centroid is not None for p in priors])
        # (N, K): painted there, no box typed, not ticked absent
        fill = ~typed[None, :] & ~np.isnan(strokes[..., 0, 0]) & ~(sizes[..., 1] == 0)
        cents[fill] = strokes[fill]
    return background_in_box(sizes, (h, w), box), cents


def network_bounds(job: TrainJob, priors: Sequence[ClassPrior], absent: Sequence[tuple[int, int]]) -> BoundsUpdate:
    """New bounds for a running job, in network pixels (send them into the training generator)."""
    from napari_wss import training

    if len(priors) != len(job.priors):
        raise InputError(
            f"the class table has {len(priors)} classes but the running training has {len(job.priors)}: "
            "stop it to change the classes"
        )
    full = (0, job.source_shape[0], 0, job.source_shape[1])
    box = None if job.geometry.box == full else job.geometry.box
    sizes, cents = _source_bounds(priors, job.scribbles, absent, box, job.stroke_boxes)
    sb, cb = job.geometry.bounds_to_network(sizes, cents)
    if job.others_bounds is not None:  # the other images' rows keep the bounds they were built with
        sb, cb = np.concatenate([sb, job.others_bounds[0]]), np.concatenate([cb, job.others_bounds[1]])
    return training.BoundsUpdate(sb, cb)


# --------------------------------------------------------------------------------------------
# The worker's generator


@dataclass
class RunControl:
    """Shared between the GUI thread (writes) and the worker (reads); plain attributes suffice."""

    stop: threading.Event = field(default_factory=threading.Event)
    preview_interval: float = 0.25  # seconds between previews, at least (aim: >= 2 overlay refreshes/s)
    preview_share: float = 0.35  # previews may take at most about this share of the worker's time
    current_slice: int = 0
    torch_threads: int | None = None  # None: leave one core to the GUI when training on the CPU
    nice: int = 10  # the worker thread's OS priority is lowered by this much (Linux); 0 = unchanged


@dataclass(frozen=True)
class BoundsMessage:
    """A :class:`~napari_wss.training.BoundsUpdate` tagged with a version the events echo back."""

    update: BoundsUpdate
    version: int


@dataclass(frozen=True)
class Progress:
    """One training step as the GUI sees it.

    Attributes:
        event: the core's event (sizes and bounds in network pixels).
        frame: ``(P, H, W)`` uint8 predicted class labels of slices ``rows`` on the image grid, or None.
        rows: the slice indices of ``frame``.
        dice: ``(K,)`` Dice of ``frame`` against the ground truth, when there is one.
        bounds_version: the version of the bounds this step trained with (0 = the initial ones).
    """

    event: TrainEvent
    frame: np.ndarray | None = None
    rows: np.ndarray | None = None
    dice: np.ndarray | None = None
    bounds_version: int = 0


def preview_rows(n: int, current: int) -> np.ndarray:
    if n <= PREVIEW_ALL_UP_TO:
        return np.arange(n)
    spread = np.linspace(0, n - 1, 15).round().astype(int)
    return np.unique(np.append(spread, min(max(int(current), 0), n - 1)))


def _lower_priority(nice: int) -> int | None:
    """Lower this thread's scheduling priority (Linux): the GUI thread and the OpenGL rasteriser
    get the CPU first when they need it, training takes the rest. Returns the previous niceness."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return None
    try:
        tid = threading.get_native_id()
        previous = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(previous + nice, 19))
    except OSError:  # not Linux-like per-thread priorities: leave it
        return None
    return previous


def _restore_priority(previous: int | None) -> None:
    """Undo :func:`_lower_priority` where allowed (raising priority back may need privileges;
    the pool thread then stays lower until it expires, which only makes later work yield sooner)."""
    if previous is None:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), previous)
    except OSError:
        log.debug("could not restore the worker thread's priority", exc_info=True)


def _cpu_threads(device: str, wanted: int | None) -> int | None:
    if wanted is not None:
        return wanted
    if device not in ("auto", "cpu"):
        return None
    import torch

    if device == "auto" and torch.cuda.is_available():
        return None
    return max(1, min(torch.get_num_threads(), (os.cpu_count() or 2) - 1))


class WorkerCrash(Exception):
    """An unexpected error in the worker, re-raised as a non-RuntimeError.

    superqt's generator worker swallows a ``RuntimeError`` (it takes it for a deleted Qt object)
    and then emits neither ``errored`` nor ``finished``; torch raises ``RuntimeError`` for most
    of its failures, so they are wrapped to reach the GUI.
    """


def run_training(
    job: TrainJob, state: TrainState | None, control: RunControl
) -> Generator[Progress, BoundsMessage | None, TrainState]:
    """Train ``job`` (continuing ``state`` when given) and yield a :class:`Progress` per step.

    Runs in the worker thread. Returns the :class:`TrainState` (also when stopped early), whose
    model is back on the CPU. An :class:`InputError` (e.g. a diverging loss) passes through;
    any other error arrives as :class:`WorkerCrash` with the original as its cause.
    """
    try:
        return (yield from _train_steps(job, state, control))
    except InputError:
        raise
    except Exception as exc:
        raise WorkerCrash(f"{type(exc).__name__}: {exc}") from exc


def _train_steps(
    job: TrainJob, state: TrainState | None, control: RunControl
) -> Generator[Progress, BoundsMessage | None, TrainState]:
    import torch

    from napari_wss import metrics, training
    from napari_wss.postprocess import (
        clear_absent,
        enclosures,
        heart_rules,
        keep_largest_component,
        limit_myocardium_brightness,
    )

    training.after_warm_up()  # the widget's background warm-up, if still running, ends first
    if state is None:
        state = training.TrainState.create(job.config, job.class_names, priors=job.priors)
    state.priors = job.priors
    state.geometry = job.geometry
    previous_threads = torch.get_num_threads()
    previous_nice = _lower_priority(control.nice)
    threads = _cpu_threads(job.config.device, control.torch_threads)
    if threads is not None:
        torch.set_num_threads(threads)
    # Previews are made here, on a clock, not every N steps inside train().
    gen = training.train(job.data, job.config, state=state, preview_index=np.zeros(0, dtype=np.int64))
    version = 0
    next_preview = 0.0
    interval = control.preview_interval
    previews = 0
    final_step = state.step + job.config.steps
    message: BoundsMessage | None = None
    # (N, K) the classes training keeps off each slice (an upper size bound of 0: strokes without
    # them, Absent ticks); with islands removed the previews clear them as Predict volume does.
    absent = job.data.size_bounds[..., 1] == 0
    try:
        while not control.stop.is_set():
            try:
                event = gen.send(message.update if message is not None else None)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            if message is not None:
                version = message.version
                absent = message.update.size_bounds[..., 1] == 0
            now = time.perf_counter()
            frame = rows = dice = None
            if now >= next_preview or event.step >= final_step:
                rows = preview_rows(job.n_slices, control.current_slice)
                probs = training.predict_slices(
                    state.model,
                    job.data.images[rows],
                    batch_size=8,
                    temperature=job.config.temperature,
                    amp=job.config.amp,
                    # this volume's batch-norm statistics, not lagging averages (nor other images')
                    calibrate_on=job.data.images[: job.n_slices],
                )
                small = probs.argmax(1).to(torch.uint8).cpu().numpy()
                frame = job.geometry.labels_to_source(small)
                if job.islands is not None:
                    frame = clear_absent(frame, absent[rows])
                    if len(rows) == job.n_slices:  # 3D objects need every slice
                        frame = keep_largest_component(
                            frame,
                            len(job.class_names),
                            per_slice=job.islands == "slice",
                            scribbles=job.scribbles,
                            enclosed=enclosures(job.class_names),
                        )
                if job.myo_ceiling is not None and job.image is not None:
                    frame = limit_myocardium_brightness(frame, job.image[rows], job.myo_ceiling, job.class_names)
                mm, yx = job.max_wall if job.max_wall is not None else (None, None)  # per slice: any rows
                factor, septum_yx = job.septum if job.septum is not None else (None, None)
                frame = heart_rules(
                    frame,
                    job.class_names,
                    lv_hull=job.lv_hull,
                    max_wall_mm=mm,
                    spacing_yx=yx or septum_yx,
                    septum_factor=factor,
                )
                if job.labels is not None:
                    dice = metrics.dice_per_class(frame, job.labels[rows], len(job.class_names))
                cost = time.perf_counter() - now
                # The first preview pays one-off warm-up (CUDA kernels, cuDNN plans): not a rate.
                if previews:
                    interval = max(control.preview_interval, cost / control.preview_share - cost)
                previews += 1
                next_preview = time.perf_counter() + interval
            message = yield Progress(event, frame, rows, dice, version)
        return state
    finally:
        gen.close()  # train's finally: weights to the CPU, GPU memory released
        torch.set_num_threads(previous_threads)
        _restore_priority(previous_nice)
