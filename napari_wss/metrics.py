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

from napari_wss.errors import InputError


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


# --------------------------------------------------------------------------------------------
# Clinical indices: what a cardiac study reports from the masks


MYOCARDIUM_DENSITY_G_PER_ML = 1.05  # the usual convention for myocardial mass from cine MRI

# Short-axis cine MRI: the area (mm²) of each structure on a slice where it is present, 1st–99th
# percentile over both phases of ACDC's 100 training patients (1558 RV, 1828 myocardium, 1808 LV
# slices), widened by CARDIAC_WIDEN on each side: the rule the interactive benchmarks used for a
# user's textbook knowledge. benchmarks/cardiac_ranges.py computes them from the masks and fails if
# these differ. The widget's "Cardiac sizes" and the CLI's --cardiac-sizes state them.
CARDIAC_WIDEN = 0.1
CARDIAC_AREA_MM2: dict[str, tuple[float, float]] = {
    "RV": (38.0, 5238.0),
    "myocardium": (250.0, 3949.0),
    "LV": (40.0, 4768.0),
}

_ALIASES = {
    "LV": ("lv", "left ventricle", "lv cavity", "lv blood pool"),
    "RV": ("rv", "right ventricle", "rv cavity", "rv blood pool"),
    "myocardium": ("myocardium", "myo", "lv myocardium", "myocardium (lv)"),
}


def class_volumes_ml(labels: np.ndarray, num_classes: int, spacing: Sequence[float]) -> np.ndarray:
    """``(K,)`` volume of every class in mL (voxel count × voxel volume in mm³ / 1000).

    ``spacing`` is the (z, y, x) voxel size in mm of the ``(Z, Y, X)`` label map.
    """
    labels = np.asarray(labels)
    if labels.ndim != 3 or len(spacing) != 3:
        raise ValueError(f"expected a (Z, Y, X) label map and a 3-value spacing, got {labels.shape} and {spacing}")
    counts = np.bincount(labels.ravel().astype(np.int64), minlength=num_classes)[:num_classes]
    return counts * float(np.prod([float(s) for s in spacing])) / 1000.0


def ejection_fraction(edv: float, esv: float) -> float:
    """(EDV − ESV) / EDV in %; NaN when the end-diastolic volume is not positive."""
    return 100.0 * (edv - esv) / edv if edv > 0 else float("nan")


def cardiac_classes(names: Sequence[str]) -> dict[str, int]:
    """Indices of the LV cavity, RV cavity and myocardium among class names (case-insensitive;
    ``LV``, ``left ventricle``, ``myo``, …); classes not found are left out."""
    low = [n.strip().lower() for n in names]
    found = {key: next((low.index(a) for a in aliases if a in low), None) for key, aliases in _ALIASES.items()}
    return {key: i for key, i in found.items() if i is not None}


def cardiac_size_ranges(names: Sequence[str]) -> dict[int, tuple[float, float]]:
    """``{class index: (min, max) mm²}`` of :data:`CARDIAC_AREA_MM2` for the classes named RV,
    myocardium and LV (or an alias, :func:`cardiac_classes`); refused in one line when none is."""
    rows = cardiac_classes(names)
    if not rows:
        raise InputError(
            f"the cardiac sizes are for classes named RV, myocardium or LV; the classes are {', '.join(names)}"
        )
    return {row: CARDIAC_AREA_MM2[key] for key, row in rows.items()}


def cardiac_indices(ed_ml: np.ndarray, es_ml: np.ndarray | None, names: Sequence[str]) -> dict[str, float]:
    """The indices a cardiac MRI report gives, from per-class volumes in mL (``class_volumes_ml``)
    at end-diastole and, when known, end-systole: LV / RV end-diastolic and end-systolic volumes
    (mL), stroke volumes (EDV − ESV, mL), ejection fractions (%), and the myocardial mass at
    end-diastole (g). Only the indices whose classes are among ``names`` are returned."""
    idx = cardiac_classes(names)
    out: dict[str, float] = {}
    for cav in ("LV", "RV"):
        if cav in idx:
            out[f"{cav} EDV"] = float(ed_ml[idx[cav]])
            if es_ml is not None:
                out[f"{cav} ESV"] = float(es_ml[idx[cav]])
                out[f"{cav} SV"] = out[f"{cav} EDV"] - out[f"{cav} ESV"]
                out[f"{cav} EF"] = ejection_fraction(out[f"{cav} EDV"], out[f"{cav} ESV"])
    if "myocardium" in idx:
        out["myo mass"] = float(ed_ml[idx["myocardium"]]) * MYOCARDIUM_DENSITY_G_PER_ML
    return out


def two_frame_indices(a_ml: np.ndarray, b_ml: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """Cardiac indices from two frames of one heart whose phases are not labelled: end-diastole is
    the frame with the larger LV volume (the RV's when there is no LV class), as its definition says."""
    return cine_indices(np.stack([a_ml, b_ml]), names)[0]


def cine_phases(ml: np.ndarray, names: Sequence[str]) -> tuple[int, int] | None:
    """(end-diastole, end-systole) frame numbers of a cine from its per-frame class volumes
    ``(T, K)`` in mL: the frames of the largest and the smallest LV volume (the RV's when there is
    no LV class), the first of equals for end-diastole and another frame for end-systole when there
    are two or more. None without a ventricle class."""
    idx = cardiac_classes(names)
    cav = idx.get("LV", idx.get("RV"))
    if cav is None:
        return None
    curve = np.asarray(ml, dtype=float)[:, cav]
    ed = int(np.argmax(curve))
    if len(curve) == 1:
        return ed, ed
    others = np.delete(np.arange(len(curve)), ed)
    return ed, int(others[np.argmin(curve[others])])


def cine_indices(ml: np.ndarray, names: Sequence[str]) -> tuple[dict[str, float], int | None, int | None]:
    """:func:`cardiac_indices` of a cine from its per-frame class volumes ``(T, K)`` in mL, with
    end-diastole and end-systole found by :func:`cine_phases`; also returns those frame numbers
    ({} and None, None without a ventricle class)."""
    phases = cine_phases(ml, names)
    if phases is None:
        return {}, None, None
    ed, es = phases
    return cardiac_indices(ml[ed], ml[es], names), ed, es


INDEX_UNITS = {"EDV": "mL", "ESV": "mL", "SV": "mL", "EF": "%", "mass": "g"}  # by an index name's last word


def index_items(indices: dict[str, float]) -> list[tuple[str, float, str]]:
    """Cardiac indices as ``(item, value, unit)`` rows, e.g. ``("LV EF", 55.4, "%")``."""
    return [(key, float(value), INDEX_UNITS[key.split()[-1]]) for key, value in indices.items()]


def volume_items(label: str, ml: np.ndarray, names: Sequence[str]) -> list[tuple[str, float, str]]:
    """Every foreground class's volume as ``(item, value, unit)`` rows, the item ``"<label> <class>"``."""
    return [(f"{label} {n}".strip(), float(v), "mL") for n, v in zip(names[1:], ml[1:])]


def cine_items(ml: np.ndarray, names: Sequence[str]) -> list[tuple[str, float, str]]:
    """A cine's report as ``(item, value, unit)`` rows from its per-frame volumes ``(T, K)``: every
    frame's class volumes, then (with a ventricle class) the end-diastolic and end-systolic frame
    numbers and :func:`cine_indices`."""
    items = [row for t, frame in enumerate(ml) for row in volume_items(f"frame {t}", frame, names)]
    indices, ed, es = cine_indices(ml, names)
    if indices:
        items += [("end-diastole frame", float(ed), "frame"), ("end-systole frame", float(es), "frame")]
        items += index_items(indices)
    return items


def describe_volumes(ml: np.ndarray, names: Sequence[str]) -> str:
    """One line for the user from ``class_volumes_ml``: every foreground class's volume in mL (and
    the myocardial mass), e.g. ``RV 182.6 mL · myocardium 82.0 mL (86.1 g) · LV 156.8 mL``."""
    myo = cardiac_classes(names).get("myocardium")
    parts = [
        f"{n} {v:.1f} mL" + (f" ({v * MYOCARDIUM_DENSITY_G_PER_ML:.1f} g)" if c == myo else "")
        for c, (n, v) in enumerate(zip(names, ml))
        if c > 0
    ]
    return " · ".join(parts)


@dataclass(frozen=True)
class Agreement:
    """Agreement of a measured quantity with its reference over cases (Bland–Altman and
    correlation, as the ACDC challenge reports its clinical indices)."""

    n: int
    bias: float  # mean of (measured − reference)
    sd: float  # standard deviation of the differences (ddof 1)
    mae: float  # mean absolute difference
    r: float  # Pearson correlation

    @property
    def limits(self) -> tuple[float, float]:
        """95 % limits of agreement, bias ± 1.96 SD."""
        return self.bias - 1.96 * self.sd, self.bias + 1.96 * self.sd

    def summary(self) -> dict[str, object]:
        """The figures as a report prints them (JSON-ready; values in the quantity's unit)."""
        lo, hi = self.limits
        return {
            "n": self.n,
            "bias": round(self.bias, 1),
            "sd": round(self.sd, 1),
            "loa": [round(lo, 1), round(hi, 1)],
            "mae": round(self.mae, 1),
            "r": round(self.r, 3),
        }


def agreement(measured: Sequence[float], reference: Sequence[float]) -> Agreement:
    """Bias, SD, MAE and Pearson r of paired values; pairs with a NaN are left out."""
    m, r = np.asarray(measured, dtype=float), np.asarray(reference, dtype=float)
    if m.shape != r.shape:
        raise ValueError(f"{m.shape} measured values against {r.shape} references")
    keep = np.isfinite(m) & np.isfinite(r)
    m, r = m[keep], r[keep]
    n = int(m.size)
    if n == 0:
        return Agreement(0, float("nan"), float("nan"), float("nan"), float("nan"))
    d = m - r
    sd = float(d.std(ddof=1)) if n > 1 else float("nan")
    corr = float(np.corrcoef(m, r)[0, 1]) if n > 1 and m.std() > 0 and r.std() > 0 else float("nan")
    return Agreement(n, float(d.mean()), sd, float(np.abs(d).mean()), corr)
