"""The packed ACDC set (see acdc_prep.py): loading, folds, user-statable priors, 3D scoring.

Shared by the quality, interactive and GPU benchmark scripts. Priors are derived only from the
training folds (never the test masks) and from the scribbles themselves:

* size: per class, the 1st–99th percentile of the slice areas (mm²) where the structure is
  present in the training folds' masks, widened by 10 % on each side; converted per volume to
  pixels with its spacing, then to the network grid;
* absent: a slice that has scribbles but no stroke of class c has c absent (size [0, 0]);
  ACDC's scribbles mark a present structure on 2485 of 2487 slices checked;
* centroid: the bounding box of the class's own scribbles on the slice, widened per class by the
  95th percentile (over training slices) of how far the true centroid lies outside that box.
"""

from __future__ import annotations

import argparse
import io
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from napari_wss.data import (
    NOT_ANNOTATED,
    SliceDataset,
    absent_classes,
    bounds_from_labels,
    resize_labels,
    stroke_boxes,
)
from napari_wss.metrics import agreement, cardiac_indices, class_volumes_ml, dice_per_slice, score_volume
from napari_wss.postprocess import enclosures, keep_largest_component

FOLDS = [range(1, 21), range(21, 41), range(41, 61), range(61, 81), range(81, 101)]
CLASSES = ("background", "RV", "myocardium", "LV")
K = len(CLASSES)
DEFAULT_PACK = Path(__file__).resolve().parents[1] / ".carry" / "acdc256.npz"


@dataclass
class Pack:
    images: np.ndarray  # (N, S, S) float32 [0, 1]
    labels: np.ndarray  # (N, S, S) uint8
    scribbles: np.ndarray  # (N, S, S) uint8
    volume: np.ndarray  # (N,)
    shapes: np.ndarray  # (V, 3) source (Z, H, W)
    spacings: np.ndarray  # (V, 3) (dz, dy, dx) mm
    patients: np.ndarray  # (V,)
    phases: np.ndarray  # (V,)
    gt: list[np.ndarray]  # V source-grid masks

    @property
    def side(self) -> int:
        return int(self.images.shape[1])

    def slices_of(self, volumes: np.ndarray) -> np.ndarray:
        return np.flatnonzero(np.isin(self.volume, volumes))

    def fold_volumes(self, fold: int) -> tuple[np.ndarray, np.ndarray]:
        """(train volumes, test volumes) for fold 1..5 (patients 1–20, 21–40, ...)."""
        test = np.isin(self.patients, list(FOLDS[fold - 1]))
        return np.flatnonzero(~test), np.flatnonzero(test)

    def resized(self, size: int, scribble_share: float = 0.0) -> Pack:
        """The same pack at a smaller network size (CPU budgets).

        ``scribble_share``: the share of a shrunk pixel that strokes must cover for it to stay
        annotated (0: any stroke pixel does; see :func:`napari_wss.data.resize_labels`).
        """
        if size == self.side:
            return self
        imgs = F.interpolate(torch.from_numpy(self.images)[:, None], size=(size, size), mode="area")[:, 0].numpy()
        return Pack(
            imgs,
            resize_labels(self.labels, (size, size)),
            resize_labels(self.scribbles, (size, size), scribbles=True, min_share=scribble_share),
            self.volume,
            self.shapes,
            self.spacings,
            self.patients,
            self.phases,
            self.gt,
        )


def add_augmentation_args(ap: argparse.ArgumentParser) -> None:
    """``--rotate`` / ``--zoom``, the augmentation beyond flips and quarter turns (off by default)."""
    ap.add_argument("--rotate", type=float, default=0.0, help="augmentation: turn slices by up to ± this (degrees)")
    ap.add_argument("--zoom", type=float, default=0.0, help="augmentation: scale slices by 1 ± up to this")


def load_pack(path: Path = DEFAULT_PACK) -> Pack:
    if not Path(path).is_file():
        raise SystemExit(f"{path} not found: build it first with `python benchmarks/acdc_prep.py --out {path}`")
    d = np.load(path)
    raw, offs = d["jpeg"], d["jpeg_offsets"]
    images = np.stack(
        [np.asarray(Image.open(io.BytesIO(raw[offs[i] : offs[i + 1]].tobytes()))) for i in range(len(offs) - 1)]
    ).astype(np.float32)
    shapes = d["shapes"]
    sizes = np.prod(shapes, axis=1)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    flat = d["gt_flat"]  # each d[...] access decompresses the array again: read it once
    gt = [flat[starts[v] : starts[v + 1]].reshape(shapes[v]) for v in range(len(shapes))]
    return Pack(
        images / 255.0,
        d["labels"],
        d["scribbles"],
        d["volume"].astype(np.int64),
        shapes,
        d["spacings"],
        d["patients"],
        d["phases"],
        gt,
    )


def slice_positions(pack: Pack, slices: np.ndarray) -> np.ndarray:
    """Where each slice lies along its volume's long axis: 0 at the first slice, 1 at the last.

    ACDC stores every stack base first (all 200 volumes: the first third of the slices holds more
    heart than the last), as short-axis stacks are planned; so 0 is the base, 1 the apex.
    """
    vols = pack.volume[slices]
    first = np.searchsorted(pack.volume, vols)  # pack.volume is sorted: volumes are stored in turn
    return (slices - first) / np.maximum(pack.shapes[vols, 0] - 1, 1)


def position_bins(positions: np.ndarray, bins: int) -> np.ndarray:
    """The bin (0 .. bins-1, equal widths) of each relative position."""
    return np.minimum((np.asarray(positions) * bins).astype(int), bins - 1)


def area_ranges_mm2(pack: Pack, volumes: np.ndarray, widen: float = 0.1, bins: int = 1) -> np.ndarray:
    """Per-class [p1, p99] of slice areas (mm²) where present, widened by ``widen``.

    ``(K, 2)`` for ``bins=1``; otherwise ``(bins, K, 2)``, one range per stretch of the long axis
    (:func:`slice_positions`): what a reader knows of basal slices is not what they know of apical ones.
    """
    areas: list[list[list[float]]] = [[[] for _ in range(K)] for _ in range(bins)]
    for v in volumes:
        px = pack.spacings[v][1] * pack.spacings[v][2]
        counts = np.stack([(pack.gt[v] == c).sum(axis=(1, 2)) for c in range(K)], axis=1)
        where = position_bins(slice_positions(pack, pack.slices_of(np.array([v]))), bins)
        for c in range(1, K):
            present = counts[:, c] > 0
            for b in range(bins):
                areas[b][c].extend((counts[present & (where == b), c] * px).tolist())
    out = np.full((bins, K, 2), np.nan, dtype=np.float32)
    for b in range(bins):
        for c in range(1, K):
            if not areas[b][c]:
                raise ValueError(f"no training slice holds class {CLASSES[c]} in position bin {b + 1} of {bins}")
            lo, hi = np.percentile(areas[b][c], [1, 99])
            out[b, c] = [lo * (1 - widen), hi * (1 + widen)]
    return out[0] if bins == 1 else out


def centroid_margins(pack: Pack, slices: np.ndarray, quantile: float = 95) -> np.ndarray:
    """``(K,)`` margins (network px) so the true centroid lies in the widened scribble box."""
    boxes = stroke_boxes(pack.scribbles[slices], K)
    _, true_c = bounds_from_labels(pack.labels[slices], K, margin=0.0, centroid_margin=0.0)
    centre = true_c[..., 0]  # (N, K, 2) with zero margin: lo == hi == centroid
    out = np.zeros(K, dtype=np.float32)
    for c in range(1, K):
        ok = ~np.isnan(boxes[:, c, 0, 0]) & ~np.isnan(centre[:, c, 0])
        outside = np.maximum(boxes[ok, c, :, 0] - centre[ok, c], centre[ok, c] - boxes[ok, c, :, 1]).clip(min=0)
        out[c] = np.percentile(outside.max(axis=1), quantile)
    return out


def user_bounds(
    pack: Pack, slices: np.ndarray, ranges_mm2: np.ndarray, margins: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-slice bounds in network pixels from the size ranges (``(K, 2)``, or ``(bins, K, 2)`` by
    position along the long axis), scribbles and centroid margins."""
    n = len(slices)
    scr = pack.scribbles[slices]
    vols = pack.volume[slices]
    px_mm2 = pack.spacings[vols, 1] * pack.spacings[vols, 2]  # source pixel area
    src_px = pack.shapes[vols, 1] * pack.shapes[vols, 2]
    to_net = (pack.side * pack.side) / src_px
    sizes = np.full((n, K, 2), np.nan, dtype=np.float32)
    if ranges_mm2.ndim == 3:
        per_slice = ranges_mm2[position_bins(slice_positions(pack, slices), len(ranges_mm2))]
    else:
        per_slice = np.broadcast_to(ranges_mm2, (n, *ranges_mm2.shape))
    sizes[:, 1:] = per_slice[:, 1:] / px_mm2[:, None, None] * to_net[:, None, None]
    any_scr = (scr.reshape(n, -1) != NOT_ANNOTATED).any(axis=1)
    missing = absent_classes(n, K, scribbles=scr)
    sizes[missing] = 0.0
    sizes[~any_scr, :, 0] = np.nan
    cents = np.full((n, K, 2, 2), np.nan, dtype=np.float32)
    if margins is not None:
        cents = stroke_boxes(scr, K, margin=margins)
        cents[missing] = np.nan
    return sizes, cents


def dataset(pack: Pack, slices: np.ndarray, sizes: np.ndarray, cents: np.ndarray) -> SliceDataset:
    return SliceDataset(
        pack.images[slices],
        pack.scribbles[slices],
        pack.labels[slices],
        sizes.astype(np.float32),
        cents.astype(np.float32),
        pack.volume[slices].astype(np.int32),
        np.zeros(len(slices), dtype=np.int32),
    )


@torch.no_grad()
def predict_test_volumes(
    model: torch.nn.Module, pack: Pack, volumes: np.ndarray, batch: int = 32, tta: int = 1
) -> list[np.ndarray]:
    """Source-grid label volumes: network probabilities (averaged over ``tta`` symmetries, see
    ``predict_slices``) resized back bilinearly, then arg-max."""
    from napari_wss.training import predict_slices

    out = []
    for v in volumes:
        idx = np.flatnonzero(pack.volume == v)
        probs = predict_slices(model, pack.images[idx], batch_size=batch, tta=tta)
        h, w = pack.shapes[v][1:]
        full = F.interpolate(probs, size=(int(h), int(w)), mode="bilinear", align_corners=False)
        out.append(full.argmax(1).to(torch.uint8).cpu().numpy())
    return out


def source_image(pack: Pack, v: int) -> np.ndarray:
    """Volume ``v``'s slices (as packed, [0, 1]) resized back bilinearly to its own grid: the
    intensities post-processing rules read, on the grid the predictions are scored on."""
    idx = np.flatnonzero(pack.volume == v)
    h, w = (int(x) for x in pack.shapes[v][1:])
    img = torch.from_numpy(np.ascontiguousarray(pack.images[idx], dtype=np.float32))[:, None]
    return F.interpolate(img, size=(h, w), mode="bilinear", align_corners=False)[:, 0].numpy()


def source_scribbles(pack: Pack, v: int) -> np.ndarray:
    """Volume ``v``'s packed strokes on its own grid (nearest neighbour)."""
    idx = np.flatnonzero(pack.volume == v)
    h, w = (int(x) for x in pack.shapes[v][1:])
    strokes = torch.from_numpy(pack.scribbles[idx].astype(np.float32))[:, None]
    return F.interpolate(strokes, size=(h, w), mode="nearest")[:, 0].numpy().astype(np.uint8)


POSITIONS = ("base", "mid", "apex")


def position_dice(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, float]:
    """Where along the long axis a prediction fails.

    The slices between the first and last that hold any expert foreground are split into thirds;
    the third with the larger mean heart area is the base, the other end the apex (ACDC does not
    store which end is which). Returns ``(3, 3)`` mean 2D Dice of RV, Myo, LV per third (slices
    where the class is in neither mask are left out) and the share of the slices outside the heart
    on which anything was predicted (false positives above the base / below the apex; NaN when
    there are no such slices).
    """
    area = (gt > 0).sum(axis=(1, 2))
    heart = np.flatnonzero(area)
    out = np.full((3, K - 1), np.nan)
    if heart.size < 3:
        return out, float("nan")
    thirds = np.array_split(np.arange(heart[0], heart[-1] + 1), 3)
    if area[thirds[0]].mean() < area[thirds[2]].mean():
        thirds = thirds[::-1]
    sd = dice_per_slice(pred, gt, K)[:, 1:]
    for i, t in enumerate(thirds):
        seen = ~np.isnan(sd[t])
        out[i] = np.where(seen.any(axis=0), np.nansum(sd[t], axis=0) / np.maximum(seen.sum(axis=0), 1), np.nan)
    outside = np.ones(len(gt), dtype=bool)
    outside[heart[0] : heart[-1] + 1] = False
    fp = float((pred[outside] > 0).any(axis=(1, 2)).mean()) if outside.any() else float("nan")
    return out, fp


def score(pred: np.ndarray, gt: np.ndarray, spacing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = score_volume(pred, gt, K, tuple(spacing))
    return s.dice[1:], s.hd95[1:]


def score_all(
    preds: list[np.ndarray], pack: Pack, volumes: np.ndarray, pool: Executor | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(V, 3)`` Dice and HD95 (mm) of RV, Myo, LV per test volume (a process pool if given)."""
    args = [(p, pack.gt[v], pack.spacings[v]) for p, v in zip(preds, volumes)]
    results = list(pool.map(score, *zip(*args))) if pool is not None else [score(*a) for a in args]
    return np.array([r[0] for r in results]), np.array([r[1] for r in results])


def largest_components(preds: list[np.ndarray]) -> list[np.ndarray]:
    """The predictions with every class cut to its largest 3D connected component (the LV cavity
    to the one its myocardium rings, as Predict volume does without strokes)."""
    return [keep_largest_component(p, K, enclosed=enclosures(NAMES)) for p in preds]


CLINICAL_INDICES = ("LV EDV", "LV EF", "RV EDV", "RV EF", "myo mass")
NAMES = ("background", "RV", "myocardium", "LV")  # ACDC's label values 0-3


def clinical_agreement(preds: list[np.ndarray], pack: Pack, volumes: np.ndarray) -> dict[str, dict[str, object]]:
    """LV / RV EDV and EF and the myocardial mass of the predicted test volumes against the
    expert's, over the patients whose ED and ES frames are both among ``volumes``: bias, SD,
    95 % limits, MAE (mL, %, g) and Pearson r."""
    frames: dict[int, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for p, v in zip(preds, volumes):
        ml = (class_volumes_ml(p, K, pack.spacings[v]), class_volumes_ml(pack.gt[v], K, pack.spacings[v]))
        frames.setdefault(int(pack.patients[v]), {})[str(pack.phases[v])] = ml
    pairs = [f for f in frames.values() if {"ED", "ES"} <= set(f)]
    pred = [cardiac_indices(f["ED"][0], f["ES"][0], NAMES) for f in pairs]
    ref = [cardiac_indices(f["ED"][1], f["ES"][1], NAMES) for f in pairs]
    return {index: agreement([i[index] for i in pred], [i[index] for i in ref]).summary() for index in CLINICAL_INDICES}
