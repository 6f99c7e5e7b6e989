"""Volumes and scribbles → training slices: normalise, crop, resize, bound, augment.

Conventions (the one place they are defined):

* Scribble encoding: ``0`` = not annotated (:data:`NOT_ANNOTATED`), class ``c`` painted as
  ``c + 1``. Dense labels are class indices (0 = background).
* Arrays are in napari's (Z, Y, X) order; one slice is (H, W) = (Y, X).
* Per-slice bounds: sizes ``(N, K, 2)`` in pixels, centroids ``(N, K, 2, 2)`` as
  ``[[row_lo, row_hi], [col_lo, col_hi]]`` in pixel coordinates; ``NaN`` = no bound.
  :class:`SliceGeometry` maps them between a source slice and the network's grid.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from napari_wss.config import ClassPrior
from napari_wss.errors import InputError

log = logging.getLogger(__name__)

NOT_ANNOTATED = 0
"""Scribble value of a pixel nobody painted; class ``c`` is stored as ``c + 1``."""


# --------------------------------------------------------------------------------------------
# Scribble encoding


def labels_to_scribbles(labels: np.ndarray) -> np.ndarray:
    """Dense class labels → scribble encoding (every pixel annotated)."""
    return (np.asarray(labels).astype(np.int64) + 1).astype(np.uint8)


def scribbles_to_labels(scribbles: np.ndarray, fill: int = -1) -> np.ndarray:
    """Scribble encoding → class indices, with ``fill`` where nothing was painted."""
    s = np.asarray(scribbles).astype(np.int64)
    return np.where(s == NOT_ANNOTATED, fill, s - 1)


def check_scribbles(scribbles: np.ndarray, num_classes: int, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Validate a scribble array and return it as uint8.

    Raises:
        InputError: wrong shape, non-integer, negative values or values beyond ``num_classes``.
    """
    s = np.asarray(scribbles)
    if shape is not None and s.shape != tuple(shape):
        raise InputError(f"scribbles have shape {s.shape} but the image has shape {tuple(shape)}")
    if s.dtype.kind == "f":
        if not np.all(np.isfinite(s)) or np.any(s != np.round(s)):
            raise InputError("scribble values must be whole numbers (0 = not annotated, class c = c + 1)")
    elif s.dtype.kind not in "iub":
        raise InputError(f"scribbles must hold integers, got dtype {s.dtype}")
    if s.size and s.min() < 0:
        raise InputError(f"scribble values must be >= 0, found {s.min()}")
    if s.size and s.max() > num_classes:
        raise InputError(
            f"scribble value {int(s.max())} is beyond the {num_classes} classes "
            f"(values are 0 = not annotated, 1..{num_classes} = class 0..{num_classes - 1})"
        )
    return s.astype(np.uint8)


def check_labels(labels: np.ndarray, num_classes: int, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Validate a dense label array (class indices) and return it as uint8."""
    lab = np.asarray(labels)
    if shape is not None and lab.shape != tuple(shape):
        raise InputError(f"labels have shape {lab.shape} but the image has shape {tuple(shape)}")
    if lab.dtype.kind == "f" and (not np.all(np.isfinite(lab)) or np.any(lab != np.round(lab))):
        raise InputError("label values must be whole numbers")
    if lab.size and (lab.min() < 0 or lab.max() >= num_classes):
        raise InputError(f"label values must be in 0..{num_classes - 1}, found {lab.min()}..{lab.max()}")
    return lab.astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Intensities


@dataclass(frozen=True)
class Normalization:
    """Per-volume robust intensity scaling: percentiles ``low``/``high`` → 0/1, clipped."""

    low: float = 1.0
    high: float = 99.0

    def __call__(self, volume: np.ndarray) -> np.ndarray:
        v = np.asarray(volume)
        if v.dtype.kind not in "uifb":
            raise InputError(f"image values must be numbers, got dtype {v.dtype}")
        v = v.astype(np.float32, copy=False)
        if v.size == 0:
            raise InputError("the image is empty")
        finite = np.isfinite(v)
        if not finite.all():
            bad = int((~finite).sum())
            raise InputError(f"the image contains {bad} NaN or infinite values; fix or mask them before training")
        lo, hi = np.percentile(v, [self.low, self.high])
        if hi <= lo:
            lo, hi = float(v.min()), float(v.max())
        if hi <= lo:
            raise InputError(f"the image is constant (every value is {lo:g}): there is nothing to segment")
        return np.clip((v - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)

    def to_dict(self) -> dict[str, float]:
        return {"low": self.low, "high": self.high}


# --------------------------------------------------------------------------------------------
# Geometry: source slice <-> network grid


@dataclass(frozen=True)
class SliceGeometry:
    """A crop box of the source slice resized to ``size × size`` for the network.

    ``box`` = ``(row0, row1, col0, col1)`` in source pixels (end exclusive); it may extend past the
    image, the outside being zero-padded. Pixel centres map as
    ``u = (r - row0 + 0.5) · size / (row1 - row0) - 0.5``.
    """

    source_shape: tuple[int, int]
    box: tuple[int, int, int, int]
    size: int

    @classmethod
    def full(cls, source_shape: tuple[int, int], size: int) -> SliceGeometry:
        h, w = source_shape
        return cls((int(h), int(w)), (0, int(h), 0, int(w)), int(size))

    @property
    def is_full(self) -> bool:
        """Whether the box is the whole slice (no crop)."""
        h, w = self.source_shape
        return self.box == (0, h, 0, w)

    @property
    def scale(self) -> tuple[float, float]:
        """Network pixels per source pixel along rows and columns."""
        r0, r1, c0, c1 = self.box
        return self.size / (r1 - r0), self.size / (c1 - c0)

    def to_network_points(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sr, sc = self.scale
        r0, _, c0, _ = self.box
        return (rows - r0 + 0.5) * sr - 0.5, (cols - c0 + 0.5) * sc - 0.5

    def to_source_points(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sr, sc = self.scale
        r0, _, c0, _ = self.box
        return (rows + 0.5) / sr - 0.5 + r0, (cols + 0.5) / sc - 0.5 + c0

    def bounds_to_network(self, size_bounds: np.ndarray, centroid_bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Source-pixel bounds → network-pixel bounds (sizes scale by area, boxes by position)."""
        sr, sc = self.scale
        sizes = np.asarray(size_bounds, dtype=np.float32) * (sr * sc)
        cen = np.array(centroid_bounds, dtype=np.float32, copy=True)
        cen[..., 0, :], cen[..., 1, :] = self.to_network_points(cen[..., 0, :], cen[..., 1, :])
        return sizes.astype(np.float32), cen

    def crop(self, stack: np.ndarray) -> np.ndarray:
        """Cut the box out of ``(N, H, W)`` slices, zero-padding where it leaves the image."""
        r0, r1, c0, c1 = self.box
        h, w = self.source_shape
        out = np.zeros((stack.shape[0], r1 - r0, c1 - c0), dtype=stack.dtype)
        sr0, sr1, sc0, sc1 = max(r0, 0), min(r1, h), max(c0, 0), min(c1, w)
        out[:, sr0 - r0 : sr1 - r0, sc0 - c0 : sc1 - c0] = stack[:, sr0:sr1, sc0:sc1]
        return out

    def image_to_network(self, stack: np.ndarray) -> np.ndarray:
        """``(N, H, W)`` float images → ``(N, size, size)`` (area-averaged when shrinking)."""
        return resize_stack(self.crop(stack), (self.size, self.size), labels=False)

    def labels_to_network(self, stack: np.ndarray) -> np.ndarray:
        """``(N, H, W)`` dense labels → ``(N, size, size)`` by majority vote."""
        return resize_labels(self.crop(stack), (self.size, self.size))

    def scribbles_to_network(self, stack: np.ndarray) -> np.ndarray:
        """``(N, H, W)`` scribbles → ``(N, size, size)``, keeping thin strokes when shrinking."""
        return resize_labels(self.crop(stack), (self.size, self.size), scribbles=True)

    def probs_to_source(self, probs: Tensor) -> Tensor:
        """``(N, K, size, size)`` probabilities → ``(N, K, H, W)`` on the source grid.

        Outside the box the background (class 0) gets probability 1.
        """
        r0, r1, c0, c1 = self.box
        h, w = self.source_shape
        resized = F.interpolate(probs, size=(r1 - r0, c1 - c0), mode="bilinear", align_corners=False)
        if (r0, r1, c0, c1) == (0, h, 0, w):
            return resized
        out = probs.new_zeros((probs.shape[0], probs.shape[1], h, w))
        out[:, 0] = 1.0
        sr0, sr1, sc0, sc1 = max(r0, 0), min(r1, h), max(c0, 0), min(c1, w)
        out[:, :, sr0:sr1, sc0:sc1] = resized[:, :, sr0 - r0 : sr1 - r0, sc0 - c0 : sc1 - c0]
        return out

    def labels_to_source(self, labels: np.ndarray) -> np.ndarray:
        """``(N, size, size)`` class maps → ``(N, H, W)`` (majority vote; background outside the box)."""
        r0, r1, c0, c1 = self.box
        h, w = self.source_shape
        resized = resize_stack(labels, (r1 - r0, c1 - c0), labels=True)
        out = np.zeros((labels.shape[0], h, w), dtype=labels.dtype)
        sr0, sr1, sc0, sc1 = max(r0, 0), min(r1, h), max(c0, 0), min(c1, w)
        out[:, sr0:sr1, sc0:sc1] = resized[:, sr0 - r0 : sr1 - r0, sc0 - c0 : sc1 - c0]
        return out

    def to_dict(self) -> dict[str, object]:
        return {"source_shape": list(self.source_shape), "box": list(self.box), "size": self.size}

    @classmethod
    def from_dict(cls, d: dict) -> SliceGeometry:  # type: ignore[type-arg]
        return cls(tuple(d["source_shape"]), tuple(d["box"]), int(d["size"]))  # type: ignore[arg-type]


def resize_stack(stack: np.ndarray, shape: tuple[int, int], *, labels: bool) -> np.ndarray:
    """Resize ``(N, H, W)`` slices: bilinear with antialiasing for images, majority vote for labels."""
    stack = np.asarray(stack)
    if stack.shape[1:] == tuple(shape):
        return stack.copy()
    if labels:
        return resize_labels(stack, shape)
    t = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32))[:, None]
    out = F.interpolate(t, size=shape, mode="bilinear", align_corners=False, antialias=True)
    return out[:, 0].numpy()


def resize_labels(
    stack: np.ndarray, shape: tuple[int, int], *, scribbles: bool = False, min_share: float = 0.0
) -> np.ndarray:
    """Resize integer maps ``(N, H, W)`` by the area share of each value in every target pixel.

    Dense labels take the value covering most of the pixel. With ``scribbles=True`` a target
    pixel is annotated whenever any painted pixel falls in it (the most frequent painted value
    wins), so one-pixel strokes survive shrinking instead of vanishing as with nearest sampling;
    ``min_share`` > 0 asks that painted pixels cover at least that share of the target pixel
    (thinner, purer strokes: a shrunk stroke no longer spills onto its neighbours' pixels).
    """
    if not 0.0 <= min_share <= 1.0:
        raise ValueError(f"min_share must lie in [0, 1], got {min_share:g}")
    stack = np.asarray(stack)
    if stack.shape[1:] == tuple(shape):
        return stack.copy()
    values = np.unique(stack)
    out = np.empty((stack.shape[0], *shape), dtype=stack.dtype)
    codes = torch.from_numpy(values.astype(np.int64))[None, :, None, None]
    chunk = max(1, 2**24 // max(1, len(values) * stack.shape[1] * stack.shape[2]))  # bounds the one-hot's memory
    for i in range(0, stack.shape[0], chunk):
        src = torch.from_numpy(np.ascontiguousarray(stack[i : i + chunk]).astype(np.int64))
        share = F.interpolate((src[:, None] == codes).float(), size=shape, mode="area")
        if scribbles and values[0] == NOT_ANNOTATED and len(values) > 1:
            painted = share[:, 1:]
            best = painted.argmax(1) + 1
            covered = painted.sum(1)
            enough = covered >= min_share - 1e-6 if min_share > 0 else covered > 0
            pick = torch.where(enough, best, torch.zeros_like(best))
        else:
            pick = share.argmax(1)
        out[i : i + chunk] = values[pick.numpy()]
    return out


def crop_around(
    scribbles: np.ndarray, *, margin: float = 0.35, min_side: int = 32, background_value: int = 1
) -> tuple[int, int, int, int] | None:
    """A square box around the foreground scribbles of a volume, widened by ``margin`` of its side.

    Background strokes are ignored (they may be anywhere). Returns ``None`` when no foreground is
    painted. The box may extend past the image (it is zero-padded then).
    """
    fg = np.asarray(scribbles) > background_value
    if not fg.any():
        return None
    rows = np.flatnonzero(fg.any(axis=(0, 2)))
    cols = np.flatnonzero(fg.any(axis=(0, 1)))
    cr, cc = float(rows[0] + rows[-1] + 1) / 2, float(cols[0] + cols[-1] + 1) / 2
    extent = max(int(rows[-1] + 1 - rows[0]), int(cols[-1] + 1 - cols[0]), 1)
    side = max(math.ceil(extent * (1 + 2 * margin)), min_side)
    r0, c0 = math.floor(cr - side / 2 + 0.5), math.floor(cc - side / 2 + 0.5)
    return r0, r0 + side, c0, c0 + side


def stroke_boxes(
    scribbles: np.ndarray, num_classes: int, *, margin: float | Sequence[float] = 0.0, min_half: float = 0.0
) -> np.ndarray:
    """Per-slice centroid boxes from the strokes: each class's stroke bounding box on each slice.

    On ACDC's real scribbles the true centroid lies inside its class's stroke bounding box on 95 %
    of slices (``benchmarks/acdc_pack.centroid_margins``), so the box is a prior the strokes
    already state. ``margin`` (pixels, one value or one per class) widens every side;
    ``min_half`` widens a box to at least ``± min_half`` about its middle: a few pixels of
    stroke on a small structure give a box only a few pixels wide (measured on five hypertrophic
    end-systoles and not adopted by the widget; docs/measurements.md, "Absence and small structures").
    Background strokes give no box.

    Args:
        scribbles: ``(N, H, W)`` in the scribble encoding (class ``c`` painted as ``c + 1``).
        num_classes: K, the background included.

    Returns:
        ``(N, K, 2, 2)`` float32 ``[[row_lo, row_hi], [col_lo, col_hi]]``, NaN where a class has no stroke.
    """
    scr = np.asarray(scribbles)
    if scr.ndim != 3:
        raise InputError(f"expected scribbles of shape (N, H, W), got {scr.shape}")
    margins = np.broadcast_to(np.asarray(margin, dtype=np.float32), (num_classes,))
    if not (np.all(np.isfinite(margins)) and np.all(margins >= 0) and math.isfinite(min_half) and min_half >= 0):
        raise InputError(f"stroke-box margins must be finite and >= 0, got {margin!r} and {min_half!r}")
    n, h, w = scr.shape
    out = np.full((n, num_classes, 2, 2), np.nan, dtype=np.float32)
    rows_idx, cols_idx = np.arange(h), np.arange(w)
    for c in range(1, num_classes):
        mask = scr == c + 1
        rows, cols = mask.any(axis=2), mask.any(axis=1)  # (N, H), (N, W)
        has = rows.any(axis=1)
        if not has.any():
            continue
        lo = np.stack([np.where(rows, rows_idx, h).min(1), np.where(cols, cols_idx, w).min(1)], axis=1)
        hi = np.stack([np.where(rows, rows_idx, -1).max(1), np.where(cols, cols_idx, -1).max(1)], axis=1)
        lo, hi = lo[has] - margins[c], hi[has] + margins[c]
        mid, narrow = (lo + hi) / 2, (hi - lo) / 2 < min_half
        out[has, c, :, 0] = np.where(narrow, mid - min_half, lo)
        out[has, c, :, 1] = np.where(narrow, mid + min_half, hi)
    return out


# --------------------------------------------------------------------------------------------
# Priors → per-slice bounds


def bounds_from_priors(
    priors: Sequence[ClassPrior],
    n_slices: int,
    shape: tuple[int, int],
    *,
    scribbles: np.ndarray | None = None,
    absent_from_scribbles: bool = True,
    absent: Sequence[tuple[int, int]] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """Per-slice bounds in source pixels from the class table.

    Rules (documented in the README):

    * a class's size and centroid bounds apply on every slice where it is present;
    * ``absent`` lists ``(slice, class)`` pairs known to be empty: their size bound becomes
      ``(0, 0)`` and their centroid bound is dropped;
    * with ``absent_from_scribbles``, a slice that has scribbles but no stroke of class ``c``
      marks ``c`` absent there (on ACDC's real scribbles a present structure is scribbled on
      2485 of 2487 slices checked, patients 1–49);
    * on a slice with no scribble at all, lower size bounds are dropped: nothing says the
      structure is there (upper bounds and centroid boxes still apply).

    Returns:
        ``(size_bounds (N, K, 2), centroid_bounds (N, K, 2, 2))`` float32 with ``NaN`` for no bound.
    """
    k = len(priors)
    for p in priors:
        p.check_fits(shape)
    sizes = np.full((n_slices, k, 2), np.nan, dtype=np.float32)
    cents = np.full((n_slices, k, 2, 2), np.nan, dtype=np.float32)
    for c, p in enumerate(priors):
        if p.size is not None:
            sizes[:, c] = p.size
        if p.centroid is not None:
            cents[:, c] = p.centroid
    if scribbles is not None:
        any_scribble = (np.asarray(scribbles).reshape(n_slices, -1) != NOT_ANNOTATED).any(axis=1)
        sizes[~any_scribble, :, 0] = np.nan
    missing = absent_classes(n_slices, k, scribbles=scribbles if absent_from_scribbles else None, absent=absent)
    sizes[missing] = 0.0
    cents[missing] = np.nan
    return sizes, cents


def absent_classes(
    n_slices: int, num_classes: int, *, scribbles: np.ndarray | None = None, absent: Sequence[tuple[int, int]] = ()
) -> np.ndarray:
    """``(N, K)`` booleans: where a class is known not to be, by the rules of :func:`bounds_from_priors`.

    A slice with scribbles but no stroke of foreground class ``c`` lacks ``c`` (background is
    always somewhere on a slice); ``absent`` adds ``(slice, class)`` pairs (the class table's ticks).
    """
    out = np.zeros((n_slices, num_classes), dtype=bool)
    if scribbles is not None:
        painted = np.asarray(scribbles).reshape(n_slices, -1)
        any_scribble = (painted != NOT_ANNOTATED).any(axis=1)
        has_class = np.stack([(painted == c + 1).any(axis=1) for c in range(num_classes)], axis=1)
        out = any_scribble[:, None] & ~has_class
        out[:, 0] = False
    for z, c in absent:
        if not (0 <= z < n_slices and 0 <= c < num_classes):
            raise InputError(
                f"an absent tick names slice {z} and class {c}, but there are {n_slices} slices and "
                f"{num_classes} classes"
            )
        out[z, c] = True
    return out


def bounds_from_labels(
    labels: np.ndarray, num_classes: int, *, margin: float = 0.1, centroid_margin: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Tight per-slice bounds from dense labels: true size ± ``margin`` (the seed's oracle, ±10 %).

    Centroid boxes are the true centroid ± ``centroid_margin`` (a fraction of the slice side); None
    leaves centroids unbounded. Absent classes get size ``(0, 0)``.
    """
    lab = np.asarray(labels)
    n, h, w = lab.shape
    onehot = lab[:, None] == np.arange(num_classes)[None, :, None, None]
    true = onehot.sum(axis=(2, 3)).astype(np.float32)
    sizes = np.stack([true * (1 - margin), true * (1 + margin)], axis=-1)
    cents = np.full((n, num_classes, 2, 2), np.nan, dtype=np.float32)
    if centroid_margin is not None:
        rows = np.arange(h, dtype=np.float32)[None, None, :, None]
        cols = np.arange(w, dtype=np.float32)[None, None, None, :]
        mass = np.maximum(true, 1.0)
        cr = (onehot * rows).sum(axis=(2, 3)) / mass
        cc = (onehot * cols).sum(axis=(2, 3)) / mass
        dr, dc = centroid_margin * h, centroid_margin * w
        cents[..., 0, 0], cents[..., 0, 1] = cr - dr, cr + dr
        cents[..., 1, 0], cents[..., 1, 1] = cc - dc, cc + dc
        cents[true == 0] = np.nan
    return sizes.astype(np.float32), cents


# --------------------------------------------------------------------------------------------
# Slices ready for training


@dataclass
class SliceDataset:
    """Slices at network resolution, with what supervises them.

    Attributes:
        images: ``(N, S, S)`` float32 in [0, 1].
        scribbles: ``(N, S, S)`` uint8 scribble encoding, or None.
        labels: ``(N, S, S)`` uint8 dense labels, or None.
        size_bounds: ``(N, K, 2)`` float32 in network pixels (NaN = none).
        centroid_bounds: ``(N, K, 2, 2)`` float32 in network pixels (NaN = none).
        volume: ``(N,)`` index of the volume each slice came from.
        slice: ``(N,)`` index of the slice within its volume.
        ruled_out: ``(N, S, S)`` uint8, class c written as c + 1 where c is known not to be
            (0 = nothing known), or None; see :func:`rule_out_brighter`.
    """

    images: np.ndarray
    scribbles: np.ndarray | None
    labels: np.ndarray | None
    size_bounds: np.ndarray
    centroid_bounds: np.ndarray
    volume: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    slice: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    ruled_out: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        if not len(self.volume):
            self.volume = np.zeros(n, dtype=np.int32)
        if not len(self.slice):
            self.slice = np.arange(n, dtype=np.int32)
        if self.images.ndim != 3 or self.images.shape[1] != self.images.shape[2]:
            raise ValueError(f"images must be (N, S, S), got {self.images.shape}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.size_bounds.shape[1])

    @property
    def side(self) -> int:
        return int(self.images.shape[1])

    def subset(self, index: np.ndarray | Sequence[int]) -> SliceDataset:
        idx = np.asarray(index)
        return SliceDataset(
            self.images[idx],
            None if self.scribbles is None else self.scribbles[idx],
            None if self.labels is None else self.labels[idx],
            self.size_bounds[idx],
            self.centroid_bounds[idx],
            self.volume[idx],
            self.slice[idx],
            None if self.ruled_out is None else self.ruled_out[idx],
        )

    @classmethod
    def concat(cls, parts: Sequence[SliceDataset]) -> SliceDataset:
        def cat(name: str) -> np.ndarray | None:
            arrays = [getattr(p, name) for p in parts]
            return None if any(a is None for a in arrays) else np.concatenate(arrays)

        return cls(
            np.concatenate([p.images for p in parts]),
            cat("scribbles"),
            cat("labels"),
            np.concatenate([p.size_bounds for p in parts]),
            np.concatenate([p.centroid_bounds for p in parts]),
            np.concatenate([p.volume for p in parts]),
            np.concatenate([p.slice for p in parts]),
            cat("ruled_out"),
        )


def rule_out_brighter(data: SliceDataset, cls: int, percentile: float) -> SliceDataset:
    """``data`` with class ``cls`` ruled out of every pixel brighter than ``percentile`` of the
    pixels under its own strokes in the same volume (``data.volume``); its strokes stay its own.

    The training side of the dark myocardium (``postprocess.limit_myocardium_brightness``): in
    bright-blood cine MRI the wall is darker than the blood, so a wall pixel brighter than almost
    every pixel its strokes cover is a cavity's rim, a trabecula or fat. A volume without strokes
    of ``cls`` gets nothing ruled out. Ruled-out maps already there are kept where this rules out
    nothing. ``data`` is not modified.
    """
    if data.scribbles is None:
        raise InputError("ruling a class out by brightness needs scribbles of it")
    if not 0 < percentile <= 100:
        raise InputError(f"the brightness percentile must be in (0, 100], got {percentile}")
    out = np.zeros(data.images.shape, np.uint8) if data.ruled_out is None else data.ruled_out.copy()
    own = data.scribbles == cls + 1
    for v in np.unique(data.volume):
        rows = data.volume == v
        images, mine = data.images[rows], own[rows]
        if not mine.any():
            continue
        bright = (images > np.percentile(images[mine], percentile)) & ~mine
        out[rows] = np.where(bright, np.uint8(cls + 1), out[rows])
    return replace(data, ruled_out=out)


def prepare_volume(
    image: np.ndarray,
    *,
    num_classes: int,
    size: int,
    scribbles: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    size_bounds: np.ndarray | None = None,
    centroid_bounds: np.ndarray | None = None,
    box: tuple[int, int, int, int] | None = None,
    normalization: Normalization | None = None,
    volume_index: int = 0,
) -> tuple[SliceDataset, SliceGeometry]:
    """One (Z, Y, X) or (Y, X) volume → network-resolution slices and the geometry to map back.

    Bounds are given in source pixels (see :func:`bounds_from_priors`) and returned in network
    pixels. Scribbles and labels are validated against the class count and the image shape.
    """
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[None]
        scribbles = None if scribbles is None else np.asarray(scribbles)[None]
        labels = None if labels is None else np.asarray(labels)[None]
    if img.ndim != 3:
        raise InputError(f"expected a 2D image or a 3D (Z, Y, X) volume, got {img.ndim} dimensions {img.shape}")
    n, h, w = img.shape
    norm = normalization or Normalization()
    geom = SliceGeometry((h, w), box, size) if box is not None else SliceGeometry.full((h, w), size)
    images = geom.image_to_network(norm(img))
    scr = None
    if scribbles is not None:
        scr = geom.scribbles_to_network(check_scribbles(scribbles, num_classes, img.shape))
    lab = None
    if labels is not None:
        lab = geom.labels_to_network(check_labels(labels, num_classes, img.shape))
    if size_bounds is None:
        size_bounds = np.full((n, num_classes, 2), np.nan, dtype=np.float32)
    if centroid_bounds is None:
        centroid_bounds = np.full((n, num_classes, 2, 2), np.nan, dtype=np.float32)
    sb, cb = geom.bounds_to_network(size_bounds, centroid_bounds)
    ds = SliceDataset(
        images.astype(np.float32),
        scr,
        lab,
        sb,
        cb,
        np.full(n, volume_index, dtype=np.int32),
        np.arange(n, dtype=np.int32),
    )
    return ds, geom


# --------------------------------------------------------------------------------------------
# Batches on the device, augmented with torch ops


@dataclass
class Batch:
    images: Tensor  # (B, 1, S, S) float32
    scribbles: Tensor | None  # (B, S, S) uint8
    labels: Tensor | None  # (B, S, S) long
    size_bounds: Tensor  # (B, K, 2)
    centroid_bounds: Tensor  # (B, K, 2, 2)
    index: Tensor  # (B,) dataset rows
    ruled_out: Tensor | None = None  # (B, S, S) uint8, class c ruled out written as c + 1


class DeviceSlices:
    """A :class:`SliceDataset` held on the device; batches are drawn and augmented there.

    Keeping everything on the device means a step never waits for a loader: indexing, flips,
    rotations and intensity jitter are a handful of tensor ops on the whole batch.

    With ``shard=(rank, world_size)`` every process draws the same global permutation (same seed)
    and keeps its own share of each global batch of ``world_size · batch_size`` slices, as a
    distributed sampler would; augmentation draws from a per-rank stream.
    """

    def __init__(
        self, data: SliceDataset, device: torch.device, *, seed: int = 0, shard: tuple[int, int] = (0, 1)
    ) -> None:
        rank, world = shard
        if not 0 <= rank < world:
            raise ValueError(f"shard must be (rank, world_size) with 0 <= rank < world_size, got {shard}")
        self.data = data
        self.device = device
        self.rank, self.world = rank, world
        self.images = torch.from_numpy(data.images).to(device)
        self.scribbles = None if data.scribbles is None else torch.from_numpy(data.scribbles).to(device)
        self.labels = None if data.labels is None else torch.from_numpy(data.labels).to(device)
        self.size_bounds = torch.from_numpy(data.size_bounds).to(device)
        self.centroid_bounds = torch.from_numpy(data.centroid_bounds).to(device)
        self.ruled_out = None if data.ruled_out is None else torch.from_numpy(data.ruled_out).to(device)
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.augment_generator = torch.Generator(device=device).manual_seed(seed + 7919 * (rank + 1))
        self.patch_generator = torch.Generator(device=device).manual_seed(seed + 104729 * (rank + 1))
        self._focus: Tensor | None = None  # focus_boxes(data), computed on the first windowed batch
        self._order: Tensor | None = None
        self._cursor = 0

    def __len__(self) -> int:
        return len(self.data)

    def set_bounds(self, size_bounds: np.ndarray, centroid_bounds: np.ndarray) -> None:
        """Replace the bounds (network pixels) used from the next batch on."""
        if size_bounds.shape != tuple(self.size_bounds.shape) or centroid_bounds.shape != tuple(
            self.centroid_bounds.shape
        ):
            raise InputError(
                f"new bounds have shapes {size_bounds.shape} and {centroid_bounds.shape}, expected "
                f"{tuple(self.size_bounds.shape)} and {tuple(self.centroid_bounds.shape)}"
            )
        self.size_bounds = torch.from_numpy(np.asarray(size_bounds, dtype=np.float32)).to(self.device)
        self.centroid_bounds = torch.from_numpy(np.asarray(centroid_bounds, dtype=np.float32)).to(self.device)

    def _next_index(self, batch_size: int) -> Tensor:
        """Epoch-wise shuffling without replacement (a new permutation when one runs out)."""
        n = len(self)
        parts = []
        need = batch_size
        while need > 0:
            if self._order is None or self._cursor >= n:
                self._order = torch.randperm(n, device=self.device, generator=self.generator)
                self._cursor = 0
            take = min(need, n - self._cursor)
            parts.append(self._order[self._cursor : self._cursor + take])
            self._cursor += take
            need -= take
        return torch.cat(parts)

    def batch(self, batch_size: int, *, augment: bool, rotate: float = 0.0, zoom: float = 0.0, patch: int = 0) -> Batch:
        """The next ``batch_size`` slices; with ``patch`` > 0 (and below the side), a random
        ``patch × patch`` window of each (:meth:`windows`), cut before augmentation."""
        idx = self._next_index(batch_size * self.world)[self.rank :: self.world]
        b = self.windows(idx, patch, self.patch_generator)
        return augment_batch(b, self.augment_generator, rotate=rotate, zoom=zoom) if augment else b

    def windows(self, idx: Tensor, patch: int, generator: torch.Generator) -> Batch:
        """Rows ``idx`` as a batch, each cut to a random ``patch``-sided window (:func:`window_origins`;
        0 or the whole side = whole slices). Size bounds stay, centroid boxes move with the window;
        a window that cuts the slice's painted structures drops their lower bounds and boxes."""
        images = self.images[idx].unsqueeze(1)
        maps = [
            None if self.scribbles is None else self.scribbles[idx],
            None if self.labels is None else self.labels[idx].long(),
            None if self.ruled_out is None else self.ruled_out[idx],
        ]
        centroids = self.centroid_bounds[idx]
        sizes = self.size_bounds[idx]
        if 0 < patch < images.shape[-1]:
            if self._focus is None:
                self._focus = torch.from_numpy(focus_boxes(self.data)).to(self.device)
            origin, holds = window_origins(self._focus[idx], images.shape[-1], patch, generator)
            rows = origin[:, :1] + torch.arange(patch, device=idx.device)  # (B, P)
            cols = origin[:, 1:] + torch.arange(patch, device=idx.device)
            pick = torch.arange(len(idx), device=idx.device)[:, None, None], rows[:, :, None], cols[:, None, :]
            images = images[:, 0][pick].unsqueeze(1)
            maps = [None if m is None else m[pick] for m in maps]
            centroids = centroids - origin.to(centroids.dtype)[:, None, :, None]
            # A window that cuts the painted structures may hold only part of each: its lower size
            # bounds and centroid boxes no longer apply; upper bounds (absence included) still do.
            cut = ~holds
            sizes[cut, :, 0] = float("nan")
            centroids[cut] = float("nan")
        return Batch(images, maps[0], maps[1], sizes, centroids, idx, maps[2])


def focus_boxes(data: SliceDataset) -> np.ndarray:
    """``(N, 4)`` int64 ``(row_lo, row_hi, col_lo, col_hi)`` (inclusive) of each slice's painted
    structures: its foreground strokes, else its dense labels' foreground; ``-1`` where it has neither."""
    out = np.full((len(data), 4), -1, dtype=np.int64)
    fg = np.zeros(data.images.shape, dtype=bool)
    if data.scribbles is not None:
        fg |= data.scribbles > 1  # background strokes may be anywhere
    if data.labels is not None:
        unpainted = ~fg.any(axis=(1, 2))
        fg[unpainted] = data.labels[unpainted] > 0
    rows, cols = fg.any(axis=2), fg.any(axis=1)
    has = rows.any(axis=1)
    if has.any():
        out[has, 0] = rows[has].argmax(1)
        out[has, 1] = rows.shape[1] - 1 - rows[has, ::-1].argmax(1)
        out[has, 2] = cols[has].argmax(1)
        out[has, 3] = cols.shape[1] - 1 - cols[has, ::-1].argmax(1)
    return out


FOCUSED_SHARE = 1 / 3
"""Share of training windows placed to hold their slice's painted structures; the rest fall
anywhere on the slice, so the network also sees what lies far from the structures (nnU-Net draws
a third of its patches around the foreground for the same reason)."""


def window_origins(
    focus: Tensor, side: int, patch: int, generator: torch.Generator, focused_share: float = FOCUSED_SHARE
) -> tuple[Tensor, Tensor]:
    """Top-left corners of random ``patch``-sided windows in ``side``-sided slices.

    A share ``focused_share`` of the windows hold their slice's ``focus`` box (rows and columns
    inclusive, as :func:`focus_boxes`) wherever that fits, drawn uniformly among the corners that
    keep it inside (where the box is longer than the window along an axis, the window is centred on
    it there); the others, and those of slices without a box (``-1``), fall uniformly anywhere.

    Returns:
        ``(B, 2)`` corners and ``(B,)`` booleans: whether the window holds the whole box (always
        true without one).
    """
    span = side - patch
    lo = focus[:, 0::2]  # (B, 2): row_lo, col_lo
    hi = focus[:, 1::2]
    has = (lo >= 0).all(1, keepdim=True)
    u = torch.rand((focus.shape[0], 3), device=focus.device, generator=generator)
    focused = has & (u[:, :1] < focused_share)
    first = (hi - patch + 1).clamp(0, span)  # the smallest corner that keeps hi inside
    last = lo.clamp(0, span)  # the largest that keeps lo inside
    centred = (torch.div(lo + hi + 1 - patch, 2, rounding_mode="floor")).clamp(0, span)
    fits = first <= last
    first = torch.where(focused & fits, first, torch.where(focused, centred, torch.zeros_like(first)))
    last = torch.where(focused & fits, last, torch.where(focused, centred, torch.full_like(last, span)))
    origin = first + (u[:, 1:] * (last - first + 1).to(u.dtype)).long().clamp_max(last - first)
    holds = ~has[:, 0] | ((origin <= lo) & (origin + patch > hi)).all(1)
    return origin, holds


def _where_b(mask: Tensor, a: Tensor, b: Tensor) -> Tensor:
    return torch.where(mask.view(-1, *([1] * (a.ndim - 1))), a, b)


def augment_batch(batch: Batch, generator: torch.Generator, *, rotate: float = 0.0, zoom: float = 0.0) -> Batch:
    """Random flips, 90° rotations and intensity jitter, each image its own draw.

    Geometric transforms move the pixels of images, scribbles, labels and ruled-out maps together and map the
    centroid boxes with them (flips and quarter turns leave the sizes unchanged). Intensity: a
    gamma in [0.7, 1.4], a contrast scale in [0.9, 1.1], a shift in [−0.05, 0.05] and Gaussian
    noise with σ in [0, 0.03].
    torchvision is not used: no build of it imports beside the CPU torch wheel we install.

    ``rotate`` (degrees) and ``zoom`` (a fraction) add a rotation by an angle drawn from
    [−rotate, rotate] and a scaling by a factor from [1 − zoom, 1 + zoom] about the image centre:
    the image is resampled bilinearly, scribbles and labels by nearest neighbour, pixels brought in
    from outside are 0 (not annotated, background); size bounds scale with the area (factor²) and
    each centroid box becomes the bounding box of its transformed corners. 0 and 0 (the default)
    leave the random stream as it was without them.
    """
    x = batch.images
    bsz, _, s, s2 = x.shape
    dev = x.device
    u = torch.rand((bsz, 7), device=dev, generator=generator)
    maps = [batch.images, batch.scribbles, batch.labels, batch.ruled_out]
    cen = batch.centroid_bounds.clone()

    def apply(fn) -> None:  # type: ignore[no-untyped-def]
        for i, m in enumerate(maps):
            if m is not None:
                maps[i] = fn(m)

    last = s - 1
    flip_r = u[:, 0] < 0.5
    apply(lambda m: _where_b(flip_r, m.flip(-2), m))
    rows = cen[..., 0, :]
    cen[..., 0, :] = torch.where(flip_r.view(-1, 1, 1), (last - rows).flip(-1), rows)
    flip_c = u[:, 1] < 0.5
    apply(lambda m: _where_b(flip_c, m.flip(-1), m))
    cols = cen[..., 1, :]
    cen[..., 1, :] = torch.where(flip_c.view(-1, 1, 1), (last - cols).flip(-1), cols)
    if s == s2:
        # One counter-clockwise quarter turn maps pixel (r, c) to (S-1-c, r).
        rot = u[:, 2] < 0.5
        apply(lambda m: _where_b(rot, m.rot90(1, dims=(-2, -1)), m))
        rows, cols = cen[..., 0, :].clone(), cen[..., 1, :].clone()
        turned = torch.stack(((last - cols).flip(-1), rows), dim=-2)
        cen = torch.where(rot.view(-1, 1, 1, 1), turned, cen)
    img = batch.images if maps[0] is None else maps[0]
    gamma = 0.7 + 0.7 * u[:, 3]
    scale = 0.9 + 0.2 * u[:, 4]
    shift = -0.05 + 0.1 * u[:, 5]
    sigma = 0.03 * u[:, 6]
    noise = torch.randn(img.shape, device=dev, generator=generator)
    sizes = batch.size_bounds
    if rotate > 0 or zoom > 0:
        a = torch.rand((bsz, 2), device=dev, generator=generator) * 2 - 1
        angle = torch.deg2rad(a[:, 0] * rotate)
        factor = 1 + a[:, 1] * zoom
        img, maps[1:], cen = _rotate_zoom(img, maps[1:], cen, angle, factor)
        sizes = sizes * (factor**2).view(-1, 1, 1)
    view = (-1, 1, 1, 1)
    img = img.clamp_min(0).pow(gamma.view(view)) * scale.view(view) + shift.view(view) + sigma.view(view) * noise
    return Batch(img, maps[1], maps[2], sizes, cen, batch.index, maps[3])


def _rotate_zoom(
    img: Tensor, label_maps: list[Tensor | None], cen: Tensor, angle: Tensor, factor: Tensor
) -> tuple[Tensor, list[Tensor | None], Tensor]:
    """Pixel (r, c) goes to ``factor · R(angle) · ((r, c) − centre) + centre``, per image;
    ``label_maps`` (scribbles, labels, ruled-out maps, each may be None) by nearest neighbour."""
    bsz, _, h, w = img.shape
    cos, sin = torch.cos(angle), torch.sin(angle)
    # grid_sample wants, for every output pixel, where to read: the inverse map R(−angle) / factor,
    # written in its normalised (x = column, y = row) coordinates, where a row step is 2/h, a column 2/w.
    theta = torch.zeros((bsz, 2, 3), device=img.device, dtype=img.dtype)
    theta[:, 0, 0] = cos / factor
    theta[:, 0, 1] = -sin / factor * (h / w)
    theta[:, 1, 0] = sin / factor * (w / h)
    theta[:, 1, 1] = cos / factor
    grid = F.affine_grid(theta, [bsz, 1, h, w], align_corners=False)

    def nearest(m: Tensor | None) -> Tensor | None:
        if m is None:
            return None
        out = F.grid_sample(m[:, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
        return out[:, 0].to(m.dtype)  # nearest sampling returns the stored whole numbers

    img = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    centre = torch.tensor([(h - 1) / 2, (w - 1) / 2], device=cen.device, dtype=cen.dtype)
    dr = cen[..., 0, :, None] - centre[0]  # (B, K, 2, 1): the box's rows lo, hi
    dc = cen[..., 1, None, :] - centre[1]  # (B, K, 1, 2): its columns; together the four corners
    f, c_, s_ = factor.view(-1, 1, 1, 1), cos.view(-1, 1, 1, 1), sin.view(-1, 1, 1, 1)
    new_r = (f * (c_ * dr - s_ * dc)).flatten(-2) + centre[0]
    new_c = (f * (s_ * dr + c_ * dc)).flatten(-2) + centre[1]
    box = torch.stack(
        [torch.stack([new_r.amin(-1), new_r.amax(-1)], -1), torch.stack([new_c.amin(-1), new_c.amax(-1)], -1)], -2
    )
    return img, [nearest(m) for m in label_maps], box
