"""Bounds helpers of the widget (numpy + the core's data module; no Qt).

* :func:`estimate_bounds`: per-class size ranges and centroid boxes from a labelled layer ± margin
  (the widget's "Estimate bounds").
* :func:`background_in_box`: the background's size bounds as the network sees them in a crop box.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_wss.errors import InputError


def _as_volume(data: Any, what: str) -> np.ndarray:
    arr = np.asarray(data)
    if arr.ndim == 2:
        return arr[None]
    if arr.ndim != 3:
        raise InputError(f"{what} must be a 2D image or a 3D (Z, Y, X) volume, got {arr.ndim} dimensions {arr.shape}")
    return arr


def background_in_box(sizes: np.ndarray, shape: tuple[int, int], box: tuple[int, int, int, int] | None) -> np.ndarray:
    """Background size bounds (class 0, source px) as seen inside a crop ``box``.

    The network only sees the box: the slice's background outside it is not counted, and the box's
    zero-padded part beyond the image is background too. So the background inside the box is the
    slice's background + (box area - slice area); the bounds shift by that (never below 0).
    Foreground classes lie inside the box by construction and keep their bounds.
    """
    if box is None:
        return sizes
    r0, r1, c0, c1 = box
    shift = float((r1 - r0) * (c1 - c0) - shape[0] * shape[1])
    out = np.array(sizes, dtype=np.float32, copy=True)
    out[:, 0] = np.maximum(out[:, 0] + shift, 0.0)  # NaN (no bound) stays NaN
    return out


@dataclass(frozen=True)
class Estimate:
    """Per-class bounds from a labelled layer (source pixels) and the (slice, class) pairs absent."""

    sizes: tuple[tuple[float, float] | None, ...]
    centroids: tuple[tuple[tuple[float, float], tuple[float, float]] | None, ...]
    absent: tuple[tuple[int, int], ...]
    labelled_slices: int


def estimate_bounds(labels: Any, num_classes: int, *, margin: float = 0.1) -> Estimate:
    """Size ranges and centroid boxes over the labelled slices, widened by ``margin`` (±10 % default).

    A slice counts as labelled when it holds any foreground label; on such slices, a class with no
    pixel is marked absent. Sizes: the smallest true area × (1 − margin) to the largest × (1 +
    margin). Centroid boxes: the span of the per-slice centroids ± ``margin`` of the slice side.
    The background gets no bound (``None``): it is whatever the structures leave, and a bound on it
    would be about the whole slice, not about what the user knows.
    """
    from napari_wss import data

    if not 0 <= margin < 1:
        raise InputError(f"the margin must be in [0, 1), got {margin:g}")
    lab = data.check_labels(_as_volume(labels, "the labelled layer"), num_classes)
    labelled = (lab > 0).reshape(lab.shape[0], -1).any(axis=1)
    if not labelled.any():
        raise InputError("the labelled layer holds no foreground label: label a few structures first")
    sizes, cents = data.bounds_from_labels(lab[labelled], num_classes, margin=margin, centroid_margin=margin)
    present = sizes[:, :, 1] > 0
    out_sizes: list[tuple[float, float] | None] = []
    out_cents: list[tuple[tuple[float, float], tuple[float, float]] | None] = []
    for c in range(num_classes):
        if c == 0 or not present[:, c].any():
            out_sizes.append(None)
            out_cents.append(None)
            continue
        s = sizes[present[:, c], c]
        out_sizes.append((float(math.floor(s[:, 0].min())), float(math.ceil(s[:, 1].max()))))
        box = cents[present[:, c], c]
        out_cents.append(
            (
                (float(np.floor(box[:, 0, 0].min())), float(np.ceil(box[:, 0, 1].max()))),
                (float(np.floor(box[:, 1, 0].min())), float(np.ceil(box[:, 1, 1].max()))),
            )
        )
    slices = np.flatnonzero(labelled)
    absent = tuple((int(slices[i]), c) for i, c in zip(*np.nonzero(~present)) if c > 0)
    return Estimate(tuple(out_sizes), tuple(out_cents), absent, int(labelled.sum()))
