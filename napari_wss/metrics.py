"""Segmentation metrics: Dice and the 95th-percentile Hausdorff distance (HD95, in mm).

Conventions: a class absent from both prediction and reference has no defined score (``NaN``,
left out of means); a class present in only one of them scores Dice 0 and HD95 ``NaN`` (the
distance to nothing is undefined; reports count such cases separately).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice of two boolean masks of any dimension; NaN when both are empty."""
    p, r = np.asarray(pred, dtype=bool), np.asarray(ref, dtype=bool)
    total = int(p.sum()) + int(r.sum())
    if total == 0:
        return float("nan")
    return 2.0 * float(np.logical_and(p, r).sum()) / total


def dice_per_class(pred: np.ndarray, ref: np.ndarray, num_classes: int) -> np.ndarray:
    """``(K,)`` Dice of every class (background included) between two label maps."""
    if pred.shape != ref.shape:
        raise ValueError(f"prediction {pred.shape} and reference {ref.shape} differ in shape")
    return np.array([dice(pred == c, ref == c) for c in range(num_classes)])


def dice_per_slice(pred: np.ndarray, ref: np.ndarray, num_classes: int) -> np.ndarray:
    """``(Z, K)`` Dice per slice of a (Z, Y, X) pair, vectorised over slices."""
    p = pred[:, None] == np.arange(num_classes)[None, :, None, None]
    r = ref[:, None] == np.arange(num_classes)[None, :, None, None]
    inter = (p & r).sum(axis=(2, 3)).astype(np.float64)
    total = (p.sum(axis=(2, 3)) + r.sum(axis=(2, 3))).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 2 * inter / np.maximum(total, 1), np.nan)


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(mask.ndim, 1))


def hd95(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> float:
    """Symmetric 95th-percentile Hausdorff distance between mask surfaces, in the units of spacing.

    Distances from every surface voxel of one mask to the nearest surface voxel of the other
    (Euclidean, anisotropic ``spacing``), pooled both ways, 95th percentile. NaN if either mask is
    empty.
    """
    p, r = np.asarray(pred, dtype=bool), np.asarray(ref, dtype=bool)
    if not p.any() or not r.any():
        return float("nan")
    sp, sr = _surface(p), _surface(r)
    spacing = tuple(float(s) for s in spacing)
    to_r = ndimage.distance_transform_edt(~sr, sampling=spacing)[sp]
    to_p = ndimage.distance_transform_edt(~sp, sampling=spacing)[sr]
    return float(np.percentile(np.concatenate([to_r, to_p]), 95))


@dataclass(frozen=True)
class VolumeScores:
    """Scores of one volume: per class (background excluded from means)."""

    dice: np.ndarray  # (K,)
    hd95: np.ndarray  # (K,) mm
    slice_dice: np.ndarray  # (Z, K)

    def mean_dice(self) -> float:
        return float(np.nanmean(self.dice[1:]))

    def mean_hd95(self) -> float:
        vals = self.hd95[1:]
        return float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")


def score_volume(pred: np.ndarray, ref: np.ndarray, num_classes: int, spacing: Sequence[float]) -> VolumeScores:
    """3D Dice and HD95 per class, plus 2D Dice per slice, of a (Z, Y, X) prediction."""
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.ndim == 2:
        pred, ref = pred[None], ref[None]
        spacing = (1.0, *spacing[-2:])
    d = dice_per_class(pred, ref, num_classes)
    h = np.array([hd95(pred == c, ref == c, spacing) for c in range(num_classes)])
    return VolumeScores(d, h, dice_per_slice(pred, ref, num_classes))
