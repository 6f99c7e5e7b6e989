"""The plugin's scenario: train on ONE ACDC volume's own scribbles (+ priors), predict that volume.

For each volume: the clock starts as the user presses Train (normalisation, crop around the
foreground scribbles, resizing, model creation all count). We record the time to the first preview
(the first step plus one prediction of the volume's slices) and the 3D Dice of the whole volume,
predicted on its own grid, after 10, 30 and 60 s of training (evaluation time is excluded from the
clock): as predicted (``dice@``), with each class cut to its largest 3D connected component
(``lcc@``), with the classes the volume's scribbles mark absent cleared from their slices
(``absent@``), and with each class cut to the components its own strokes touch, the largest where
none does (``marked@``), then the LV cavity made convex (``hull@``), and that after clearing the
absent classes first (``held@``: the widget's Predict volume with its defaults from 2026-11-27's
last change; ``marked@`` and ``hull@`` were its output before), and that with the myocardium kept
no brighter than 99 % of the pixels under its strokes before the convex cavity (``dark@``: the
widget's default from 2026-11-29's morning), and that with the wall no farther from the LV cavity
than 1.5 times the septum (``septum@``: the widget's default since). Size ranges come from
the other patients' masks (a user's textbook knowledge), absence and centroid boxes from the
volume's own scribbles (``--oracle-sizes``: each slice's true sizes instead, an upper reference).
At the last budget each class's Dice and volume over the expert's (``myo@``, ``myo_vol@``, …) are
printed for Predict volume's output. ``--corrections`` then simulates the plugin's loop: one
correction stroke per slice along the biggest mistake, a second press continuing the model
(``fix_`` columns, scored at its end). Every row also gives each class's volume in mL (``_mL``,
the expert's ``_ref_mL``); ``--phase both`` runs each patient's ED and ES frame and prints the
clinical indices (LV / RV EDV and EF, myocardial mass) against the expert's, and
``--predict-other-frame`` predicts the patient's other frame with the model trained on this one
(``other_`` columns: one painted frame, both volumes). The defaults are the plugin's (one press of
Train); a run whose steps end before a budget is scored at its end for that budget.

    python benchmarks/interactive.py --volumes 5 --budgets 10,30,60               # CPU, real NIfTI
    python benchmarks/interactive.py --size 128 --steps 1000000 --lr-schedule constant --no-bn-calibration
    python benchmarks/interactive.py --source pack --device cuda --budgets 5,15   # GPU, packed data
    python benchmarks/interactive.py --source pack --device cuda --budgets 5,15 --batch 16 --steps-for-seconds 13.5
    python benchmarks/interactive.py --volumes 1 --budgets 10 --warm-up    # first press after the warm-up
    python benchmarks/interactive.py --volumes 5 --oracle-sizes 0.1 --penalty-warmup 0   # true sizes ± 10 %
    python benchmarks/interactive.py --volumes 5 --budgets 60 --corrections   # + one round of correction strokes
    python benchmarks/interactive.py --volumes 10 --phase both --budgets 60 --corrections   # EF, EDV, mass
    python benchmarks/interactive.py --volumes 10 --phase ED --budgets 60 --predict-other-frame   # ES from ED
    python benchmarks/interactive.py --volumes 10 --phase both --budgets 60 --continue-frames   # ES continues ED
    python benchmarks/interactive.py --volumes 10 --phase both --budgets 120 --joint-frames   # one model, both frames
    python benchmarks/interactive.py --volumes 5 --phase ED --background-loop 5   # background circled 5 mm out
    python benchmarks/interactive.py --volumes 10 --phase ED --budgets 5,10,30,60 --continue-patients   # next heart

Prints one JSON line per volume and the medians.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from acdc_pack import (
    CLINICAL_INDICES,
    DEFAULT_PACK,
    NAMES,
    K,
    add_augmentation_args,
    area_ranges_mm2,
    centroid_margins,
    load_pack,
)

from napari_wss.config import PENALTY_WEIGHTS, TTA_CHOICES, ClassPrior, Penalty, TrainConfig
from napari_wss.data import (
    SliceDataset,
    bounds_from_labels,
    bounds_from_priors,
    crop_around,
    prepare_volume,
    rule_out_brighter,
    stroke_boxes,
)
from napari_wss.metrics import agreement, cardiac_indices, class_volumes_ml, score_volume
from napari_wss.postprocess import (
    MYO_BRIGHTNESS_PERCENTILE,
    clear_absent,
    enclosures,
    fill_lv_hull,
    keep_largest_component,
    limit_myocardium_brightness,
    limit_wall_to_septum,
    myocardium_ceiling,
)
from napari_wss.pseudolabel import pseudo_strokes, with_pseudo_strokes
from napari_wss.training import (
    TrainState,
    calibrate_batchnorm,
    interactive_size,
    predict_slices,
    predict_volume,
    resolve_device,
    train,
    warm_up,
)

SHORT = ("RV", "myo", "LV")  # the per-class columns
ACDC = Path(__file__).resolve().parents[2] / "shared" / "data" / "acdc"


@dataclass(frozen=True)
class Boxes:
    """How the centroid boxes come from the strokes: each class's stroke bounding box widened by
    ``margins`` (source px, per class), and at least ± ``floor`` × the trained region's side."""

    margins: np.ndarray
    floor: float = 0.0


def prepare(image, scribbles, spacing, ranges_mm2, boxes, cfg, crop_margin, oracle=None):  # type: ignore[no-untyped-def]
    """What pressing Train does before the first step: bounds from the priors and the scribbles,
    the crop around the strokes, slices resized to the network. Returns (data, geometry, absent).

    ``oracle`` = (expert mask, margin): train with every slice's true class sizes ± margin instead
    of the textbook ranges (the seed's oracle setting, an upper reference no user has)."""
    priors = [ClassPrior("background")] + [
        ClassPrior.from_mm2(NAMES[c], tuple(ranges_mm2[c]), spacing[1:]) for c in range(1, K)
    ]
    sizes, _ = bounds_from_priors(priors, image.shape[0], image.shape[1:], scribbles=scribbles)
    absent = sizes[..., 1] == 0  # (Z, K): where the scribbles say a class is not
    if oracle is not None:
        sizes, _ = bounds_from_labels(oracle[0], K, margin=oracle[1])
        sizes[:, 0] = np.nan  # no bound on the background, as with the ranges
    box = crop_around(scribbles, margin=crop_margin) if crop_margin >= 0 else None
    side = box[1] - box[0] if box is not None else max(image.shape[1:])
    cents = stroke_boxes(scribbles, K, margin=boxes.margins, min_half=boxes.floor * side)
    cents[absent] = np.nan
    data, geom = prepare_volume(
        image, num_classes=K, size=cfg.size, scribbles=scribbles, size_bounds=sizes, centroid_bounds=cents, box=box
    )
    if cfg.ruled_out_weight > 0:  # --dark-myocardium: the wall kept off pixels brighter than its strokes
        data = rule_out_brighter(data, NAMES.index("myocardium"), MYO_BRIGHTNESS_PERCENTILE)
    return data, geom, absent


def step_rate(data, cfg, seconds: float = 3.0) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Train a throw-away model on ``data`` for about ``seconds`` after its first step.
    Returns (seconds of the first step — the process's one-off set-up on a fresh device —,
    steady steps per second after 10 warm-up steps)."""
    gen = train(data, replace(cfg, steps=10**6, lr_schedule="constant"))
    t0 = time.perf_counter()
    next(gen)
    first = time.perf_counter() - t0
    for _ in range(10):
        next(gen)
    n, t1 = 0, time.perf_counter()
    while time.perf_counter() - t1 < seconds:
        next(gen)
        n += 1
    gen.close()
    return first, n / (time.perf_counter() - t1)


def held(
    pred: np.ndarray,
    absent: np.ndarray,
    scribbles: np.ndarray,
    image: np.ndarray | None = None,
    spacing: np.ndarray | None = None,
) -> np.ndarray:
    """Predict volume's output with the widget's defaults up to 2026-11-28: the classes the strokes
    mark absent cleared, each class cut to the objects its strokes touch, the LV cavity made convex.
    Given ``image``, also its *dark myocardium* before the cavity (the default since 2026-11-29): the
    myocardium brighter than 99 % of the pixels under its strokes goes to its nearest other class.
    Given ``spacing`` (z, y, x mm) too, last the wall limited to 1.5 times the septum (the default
    since 2026-11-29's second session). An LV cavity its strokes do not mark keeps the component its
    myocardium rings (the widget since 2026-11-29's fifth session)."""
    cut = keep_largest_component(clear_absent(pred, absent), K, scribbles=scribbles, enclosed=enclosures(NAMES))
    ceiling = None if image is None else myocardium_ceiling(image, scribbles, NAMES)
    out = fill_lv_hull(cut if ceiling is None else limit_myocardium_brightness(cut, image, ceiling, NAMES), NAMES)
    return out if spacing is None else limit_wall_to_septum(out, NAMES, tuple(spacing[1:]))


def score_frame(state, image, geom, absent, scribbles, gt, spacing, tta=1) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Mean Dice: as predicted (``dice``); each class cut to its largest 3D component (``lcc``);
    classes the scribbles mark absent cleared from their slices (``absent``); each class cut to
    the 3D components its own strokes touch, the largest where none does (``marked``: the
    plugin's Predict volume). Then, for Predict volume's output, each class's Dice, its volume
    over the expert's (``_vol``) and its volume in mL (``_mL``). ``tta`` > 1: also ``tta``, the
    ``septum`` variant predicted with that many symmetries averaged, and ``tta_s``, that
    prediction's seconds."""
    pred = predict_volume(state, image, geometry=geom, device=next(state.model.parameters()).device)
    variants = {
        "dice": pred,
        "lcc": keep_largest_component(pred, K),
        "absent": clear_absent(pred, absent),
        "marked": keep_largest_component(pred, K, scribbles=scribbles),
    }
    # the LV cavity as its convex hull, taking back the myocardium inside it (papillary muscles)
    variants["hull"] = fill_lv_hull(variants["marked"], NAMES)
    # and the classes the strokes mark absent cleared from those slices first (``held``)
    variants["held"] = held(pred, absent, scribbles)
    variants["dark"] = held(pred, absent, scribbles, image)  # and the myocardium no brighter than its strokes
    variants["septum"] = held(pred, absent, scribbles, image, spacing)  # and the wall within 1.5 x the septum
    extra: dict[str, float] = {}
    if tta > 1:
        t0 = time.perf_counter()
        averaged = predict_volume(state, image, geometry=geom, device=next(state.model.parameters()).device, tta=tta)
        extra["tta_s"] = time.perf_counter() - t0
        variants["tta"] = held(averaged, absent, scribbles, image, spacing)
        extra |= class_columns(variants["tta"], gt, spacing, "tta_")
    out = {k: float(np.nanmean(score_volume(p, gt, K, spacing).dice[1:])) for k, p in variants.items()}
    return (
        out
        | class_columns(variants["marked"], gt, spacing)
        | class_columns(variants["hull"], gt, spacing, "hull_")
        | class_columns(variants["held"], gt, spacing, "held_")
        | class_columns(variants["dark"], gt, spacing, "dark_")
        | class_columns(variants["septum"], gt, spacing, "septum_")
        | extra
    )


def run_volume(  # type: ignore[no-untyped-def]
    image,
    scribbles,
    gt,
    spacing,
    ranges_mm2,
    boxes,
    cfg,
    budgets,
    crop_margin,
    calibrate=True,
    oracle=None,
    state=None,
    joint=None,
    tta=1,
):
    """One press of Train on this volume, scored at the budgets. ``joint`` = (image, scribbles,
    spacing, boxes) of another frame of the patient trained with it in the same press (the widget's
    *train on every painted image*: its own crop and bounds, its slices after this volume's)."""
    start = time.perf_counter()
    truth = None if oracle is None else (gt, oracle)
    data, geom, absent = prepare(image, scribbles, spacing, ranges_mm2, boxes, cfg, crop_margin, truth)
    if joint is not None:
        j_image, j_scribbles, j_spacing, j_boxes = joint
        more, _, _ = prepare(j_image, j_scribbles, j_spacing, ranges_mm2, j_boxes, cfg, crop_margin)
        more.volume[:] = 1
        data = SliceDataset.concat([data, more])
    # train() moves the state's model in place, so state.model is the live network throughout.
    state = TrainState.create(cfg, NAMES) if state is None else state  # given: Train continues that model
    gen = train(data, cfg, state=state)
    first_preview = None
    dice_at: dict[int, dict[str, float]] = {}
    paused = 0.0
    remaining = sorted(budgets)

    def score() -> dict[str, float]:
        return score_frame(state, image, geom, absent, scribbles, gt, spacing, tta)

    for _ in gen:
        if first_preview is None:
            # What the plugin shows first, with the preview's batch-norm re-estimation.
            predict_slices(state.model, data.images, calibrate_on=data.images if calibrate else None)
            first_preview = time.perf_counter() - start
        elapsed = time.perf_counter() - start - paused
        if remaining and elapsed >= remaining[0]:
            if calibrate:
                calibrate_batchnorm(state.model, data.images)  # as every preview does; counted in the clock
            t0 = time.perf_counter()
            dice_at[remaining.pop(0)] = score()
            paused += time.perf_counter() - t0
            if not remaining:
                gen.close()
                break
    done = time.perf_counter() - start - paused
    if remaining:  # the run's steps ended before the last budget: the final model counts for the rest
        final = score()
        dice_at.update({b: final for b in remaining})
    return first_preview, dice_at, {"steps": state.step, "train_s": round(done, 1)}, (state, geom, data, absent)


def rounded(cols: dict[str, float]) -> dict[str, float]:
    """Columns as printed: Dice to 4 decimals, volume ratios (``_vol``) and mL (``_mL``) to 2."""
    return {k: round(x, 2 if k.endswith(("_vol", "_mL")) else 4) for k, x in cols.items()}


def class_columns(pred: np.ndarray, gt: np.ndarray, spacing, prefix: str = "") -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Per class: Dice, volume over the expert's (``_vol``), volume in mL (``_mL``)."""
    dice = score_volume(pred, gt, K, spacing).dice[1:]
    ml, ref = class_volumes_ml(pred, K, spacing)[1:], class_volumes_ml(gt, K, spacing)[1:]
    cols: dict[str, float] = {}
    for n, d, v, r in zip(SHORT, dice, ml, ref):
        cols |= {f"{prefix}{n}": float(d), f"{prefix}{n}_vol": float(v / r) if r > 0 else float("nan")}
        cols[f"{prefix}{n}_mL"] = float(v)
    return cols


def background_loop(scribbles: np.ndarray, gt: np.ndarray, spacing, mm: float) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The scribbles plus, on every slice that has strokes, one background stroke (a one-pixel
    loop) ``mm`` outside the expert's heart (all foreground classes): a user circling the heart
    closely with the background brush instead of painting background far away."""
    from scipy import ndimage

    out = scribbles.copy()
    for z in range(gt.shape[0]):
        if not scribbles[z].any() or not gt[z].any():
            continue
        near = ndimage.distance_transform_edt(gt[z] == 0, sampling=spacing[1:]) <= mm
        loop = near & ~ndimage.binary_erosion(near)
        out[z][loop & (out[z] == 0)] = 1  # background = class 0, painted as 1
    return out


def correction_strokes(pred: np.ndarray, gt: np.ndarray, scribbles: np.ndarray, min_px: int = 20) -> np.ndarray:
    """The scribbles plus one simulated correction stroke on every slice that has strokes: the
    skeleton of the slice's largest wrong region (pixels of one expert class predicted as another,
    at least ``min_px``), painted with the expert's class where nothing is painted yet — a user
    tracing the biggest mistake after a press. Scribble encoding: class c is c + 1."""
    from scipy import ndimage
    from skimage.morphology import skeletonize

    out = scribbles.copy()
    for z in range(pred.shape[0]):
        if not scribbles[z].any():
            continue
        best, best_n, best_c = None, min_px - 1, -1
        for c in range(K):
            regions, n = ndimage.label((gt[z] == c) & (pred[z] != c))
            if n == 0:
                continue
            counts = np.bincount(regions.ravel())[1:]
            if counts.max() > best_n:
                best, best_n, best_c = regions == counts.argmax() + 1, int(counts.max()), c
        if best is not None:
            out[z][skeletonize(best) & (out[z] == 0)] = best_c + 1
    return out


def other_frame(state, geom, scribbles, loaded) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Predict volume on the patient's other frame (ED <-> ES, same grid) with the model trained on
    this frame, as the widget does when the other frame is picked after Train: this frame's strokes
    mark the objects to keep. Returns the ``other_`` columns (mean and per-class Dice, volumes)."""
    image, _, gt, spacing, _ = loaded
    pred = predict_volume(state, image, geometry=geom, device=next(state.model.parameters()).device)
    cut = keep_largest_component(pred, K, scribbles=scribbles if scribbles.shape == image.shape else None)
    cols = class_columns(cut, gt, spacing, prefix="other_")
    return {
        "other_marked": round(float(np.nanmean([cols[f"other_{n}"] for n in SHORT])), 4),
        **rounded(cols),
        **{f"other_{n}_ref_mL": round(float(x), 2) for n, x in zip(SHORT, class_volumes_ml(gt, K, spacing)[1:])},
    }


def transfer_columns(state, image, scribbles, gt, spacing, volume, crop_margin) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Predict volume on a painted heart the model was not trained on (off the clock, before its
    press): in the crop around the heart's own strokes (``before``; the widget's on another grid
    since 2026-11-29, on the trained grid it keeps the trained box) and, as before that, in the
    model's last crop when the grids match, else on the whole slice (``before_old``); both through
    Predict volume's defaults (:func:`held` with the image)."""
    _, _, _, _, ranges_mm2, boxes, cfg = volume
    _, geom, absent = prepare(image, scribbles, spacing, ranges_mm2, boxes, cfg, crop_margin)
    return {
        key: held_dice(state, image, g, absent, scribbles, gt, spacing)
        for key, g in (("before", geom), ("before_old", None))
    }


def held_dice(state, image, geometry, absent, scribbles, gt, spacing) -> float:  # type: ignore[no-untyped-def]
    """Mean 3D Dice (RV, myocardium, LV) of Predict volume's default output (:func:`held` with the
    image and its voxel size) of the model on ``image`` mapped through ``geometry`` (None:
    predict_volume's default)."""
    pred = predict_volume(state, image, geometry=geometry, device=next(state.model.parameters()).device)
    out = held(pred, absent, scribbles, image, spacing)
    return round(float(np.nanmean(score_volume(out, gt, K, spacing).dice[1:])), 4)


def correction_round(state, geom, image, scribbles, gt, spacing, ranges_mm2, boxes, cfg, crop_margin, oracle):  # type: ignore[no-untyped-def]
    """After the press: Predict volume, one simulated correction stroke per slice, a second press
    of the same length continuing the model (as Train does in the plugin: bounds and crop from the
    new strokes), Predict volume again. Returns the row's ``fix`` columns."""
    device = next(state.model.parameters()).device
    before = keep_largest_component(predict_volume(state, image, geometry=geom, device=device), K, scribbles=scribbles)
    fixed = correction_strokes(before, gt, scribbles)
    t0 = time.perf_counter()
    truth = None if oracle is None else (gt, oracle)
    data, geom2, _ = prepare(image, fixed, spacing, ranges_mm2, boxes, cfg, crop_margin, truth)
    for _ in train(data, cfg, state=state):
        pass
    calibrate_batchnorm(state.model, data.images)
    seconds = time.perf_counter() - t0
    pred = predict_volume(state, image, geometry=geom2, device=device)
    after = keep_largest_component(pred, K, scribbles=fixed)
    cols = class_columns(after, gt, spacing, prefix="fix_")
    return {
        "fix_stroke_px": int((fixed != scribbles).sum()),
        "fix_stroke_share": round(float((fixed != scribbles).sum() / max(1, (scribbles > 0).sum())), 3),
        "fix_dice": round(float(np.nanmean(score_volume(pred, gt, K, spacing).dice[1:])), 4),
        "fix_marked": round(float(np.nanmean([cols[f"fix_{n}"] for n in SHORT])), 4),
        **rounded(cols),
        "fix_train_s": round(seconds, 1),
    }


def second_press(state, geom, data, absent, image, scribbles, gt, spacing, cfg, steps, confidence):  # type: ignore[no-untyped-def]
    """After the press, a second press of ``steps`` on a copy of the model, on the press's own
    slices (``data``): on the same strokes (``again_`` columns), and on its own confident
    predictions as strokes (``self_``; see :mod:`napari_wss.pseudolabel`). Each is scored as
    Predict volume's output (:func:`held`)."""
    cols: dict[str, float] = {}
    for prefix in ("again_", "self_"):
        model_state = copy.deepcopy(state)
        t0 = time.perf_counter()
        supervised = data
        if prefix == "self_":
            strokes = pseudo_strokes(model_state.model, data, confidence=confidence)
            supervised = with_pseudo_strokes(data, strokes)
            cols["self_painted_share"] = round(float((strokes > 0).mean()), 3)
        for _ in train(supervised, replace(cfg, steps=steps), state=model_state):
            pass
        cols[f"{prefix}train_s"] = round(time.perf_counter() - t0, 1)
        pred = predict_volume(model_state, image, geometry=geom, device=next(model_state.model.parameters()).device)
        out = held(pred, absent, scribbles)
        cols[f"{prefix}held"] = round(float(np.nanmean(score_volume(out, gt, K, spacing).dice[1:])), 4)
        per_class = class_columns(out, gt, spacing, prefix)
        cols.update(rounded({k: x for k, x in per_class.items() if not k.endswith("_mL")}))
    return cols


def clinical_agreement(rows: list[dict], last: int) -> dict[str, dict[str, object]]:  # type: ignore[type-arg]
    """LV / RV end-diastolic volume and ejection fraction and the myocardial mass from Predict
    volume's output against the expert's (bias, SD, 95 % limits, MAE, r), per source: ``press``
    (each frame trained on its own strokes, when both frames ran; ``press, convex LV``: the same
    predictions with the LV cavity's convex hull filled, ``hull_`` columns; ``absent cleared``: also
    the classes the strokes mark absent cleared from their slices, ``held_``; ``dark myocardium``: also
    the myocardium no brighter than its strokes, ``dark_``; ``septum wall``, ``septum_``; ``symmetries
    averaged``, ``tta_``), ``corrected`` (the same after
    the correction round) and ``ED strokes only`` (ES predicted by the ED frame's model,
    ``--predict-other-frame``)."""
    ed = {r["patient"]: r for r in rows if r["phase"] == "ED"}
    es = {r["patient"]: r for r in rows if r["phase"] == "ES"}

    def ml(row: dict, key: str) -> np.ndarray:  # type: ignore[type-arg]
        return np.array([0.0] + [row[key.format(n)] for n in SHORT])

    press = f"{{}}_mL@{last}s"
    expert: dict[int, dict[str, float]] = {}
    measured: dict[str, dict[int, dict[str, float]]] = {}
    for p, r in ed.items():
        if p in es:
            expert[p] = cardiac_indices(ml(r, "{}_ref_mL"), ml(es[p], "{}_ref_mL"), NAMES)
            measured.setdefault("press", {})[p] = cardiac_indices(ml(r, press), ml(es[p], press), NAMES)
            hull = "hull_" + press  # the same output with the LV cavity made convex (the widget's default)
            measured.setdefault("press, convex LV", {})[p] = cardiac_indices(ml(r, hull), ml(es[p], hull), NAMES)
            cleared = "held_" + press  # and the classes the strokes mark absent cleared from their slices
            measured.setdefault("press, convex LV, absent cleared", {})[p] = cardiac_indices(
                ml(r, cleared), ml(es[p], cleared), NAMES
            )
            dark = "dark_" + press  # and the myocardium no brighter than its strokes (the widget's default)
            if dark.format("RV") in r and dark.format("RV") in es[p]:
                measured.setdefault("press, dark myocardium", {})[p] = cardiac_indices(
                    ml(r, dark), ml(es[p], dark), NAMES
                )
            septum = "septum_" + press  # and the wall within 1.5 x the septum (the widget's default)
            if septum.format("RV") in r and septum.format("RV") in es[p]:
                measured.setdefault("press, septum wall", {})[p] = cardiac_indices(
                    ml(r, septum), ml(es[p], septum), NAMES
                )
            averaged = "tta_" + press  # the same with the symmetries averaged (--tta; the widget's default)
            if averaged.format("RV") in r and averaged.format("RV") in es[p]:
                measured.setdefault("press, symmetries averaged", {})[p] = cardiac_indices(
                    ml(r, averaged), ml(es[p], averaged), NAMES
                )
            if "fix_RV_mL" in r:
                fixed = cardiac_indices(ml(r, "fix_{}_mL"), ml(es[p], "fix_{}_mL"), NAMES)
                measured.setdefault("corrected", {})[p] = fixed
        if "other_RV_mL" in r:
            expert[p] = cardiac_indices(ml(r, "{}_ref_mL"), ml(r, "other_{}_ref_mL"), NAMES)
            one = cardiac_indices(ml(r, press), ml(r, "other_{}_mL"), NAMES)
            measured.setdefault("ED strokes only", {})[p] = one
    if not measured:
        return {}
    out: dict[str, dict[str, object]] = {}
    for src, by_patient in measured.items():
        for index in CLINICAL_INDICES:
            a = agreement([m[index] for m in by_patient.values()], [expert[p][index] for p in by_patient])
            out[f"{src}: {index}"] = a.summary()
    out["per_patient"] = {
        str(p): {"expert": {k: round(x, 1) for k, x in e.items()}}
        | {src: {k: round(x, 1) for k, x in m[p].items()} for src, m in measured.items() if p in m}
        for p, e in expert.items()
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", choices=("nifti", "pack"), default="nifti")
    ap.add_argument("--pack", type=Path, default=DEFAULT_PACK)
    ap.add_argument("--volumes", type=int, default=5, help="how many test volumes (from the --fold's patients)")
    ap.add_argument(
        "--fold",
        type=int,
        default=5,
        choices=range(1, 6),
        help="test patients 20·(F−1)+1 … 20·F, size ranges from the other folds (5: 81–100, abnormal RV; "
        "2: 21–40, hypertrophic)",
    )
    ap.add_argument(
        "--phase",
        choices=("any", "ED", "ES", "both"),
        default="any",
        help="pick among these frames (any: evenly over all; both: --volumes patients, each its ED and ES frame, "
        "and the clinical indices of the pairs: EDV, EF, myocardial mass against the expert's)",
    )
    ap.add_argument("--budgets", default="10,30,60")
    ap.add_argument(
        "--size",
        type=int,
        default=None,
        help="network size (default: the widget's for --device, 96 or 80 on an fp32 CPU)",
    )
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--penalty", default="quadratic", help="the widget's default since 2026-11-27 (log-barrier before)")
    ap.add_argument("--steps", type=int, default=300, help="steps of one press of Train (the plugin's default)")
    ap.add_argument(
        "--steps-for-seconds",
        type=float,
        default=0,
        help="instead of --steps: as many steps as this device runs in this many seconds (measured first)",
    )
    ap.add_argument("--lr-schedule", default="cosine", choices=("constant", "cosine"))
    ap.add_argument("--mode", default="constrained", help="constrained, partial (scribbles only)")
    ap.add_argument("--size-weight", type=float, default=None, help="default: the penalty's (config.PENALTY_WEIGHTS)")
    ap.add_argument("--centroid-weight", type=float, default=None, help="default: the penalty's; 0 = no centroid term")
    ap.add_argument(
        "--absence-weight",
        type=float,
        default=0.3,
        help="the absence term's weight (the widget's default; 0 = absence as a size bound of 0, the library's "
        "default and the widget's before 2026-11-27's last runs)",
    )
    ap.add_argument(
        "--centroid-floor",
        type=float,
        default=0.0,
        metavar="FRAC",
        help="widen each stroke box to at least +- FRAC of the trained region's side (0 = the stroke box as it is)",
    )
    ap.add_argument("--crf-weight", type=float, default=0.0)
    ap.add_argument(
        "--dark-myocardium",
        type=float,
        default=0.0,
        metavar="W",
        help="weight of the training term keeping the myocardium off pixels brighter than 99 %% of those under its "
        "strokes (0 = off)",
    )
    ap.add_argument(
        "--second-press",
        type=int,
        default=0,
        metavar="STEPS",
        help="after the press, STEPS more on the same strokes (again_ columns) and, from the same model, on its "
        "own confident predictions as strokes (self_ columns)",
    )
    ap.add_argument(
        "--pseudo-confidence", type=float, default=0.9, help="with --second-press: the self_ press's threshold"
    )
    ap.add_argument("--entropy-weight", type=float, default=0.0)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument(
        "--penalty-warmup",
        type=int,
        default=100,
        help="steps over which the prior terms grow from 0 (the widget's default; 0 before 2026-11-27's last runs)",
    )
    ap.add_argument(
        "--oracle-sizes",
        type=float,
        default=None,
        metavar="MARGIN",
        help="upper reference: per-slice sizes from the expert mask ± MARGIN (0.1 = the seed's ±10 %%)",
    )
    ap.add_argument(
        "--corrections",
        action="store_true",
        help="after the press: one simulated correction stroke per slice, then a second press (fix_ columns)",
    )
    ap.add_argument(
        "--predict-other-frame",
        action="store_true",
        help="after the press: predict the patient's other frame (ED <-> ES) with the same model (other_ columns); "
        "with --phase both the clinical indices also come from one frame's strokes",
    )
    ap.add_argument(
        "--joint-frames",
        action="store_true",
        help="with --phase both and one budget: one press per patient trains ONE model on both frames' strokes "
        "(twice --steps, the two presses' total; the widget's 'train on every painted image'), then both "
        "frames are scored with it",
    )
    ap.add_argument(
        "--background-loop",
        type=float,
        default=None,
        metavar="MM",
        help="add one background stroke per scribbled slice, a loop MM outside the expert's heart "
        "(a user circling the heart closely; the volume's own background strokes stay)",
    )
    ap.add_argument(
        "--continue-frames",
        action="store_true",
        help="with --phase both: the ES press continues the model of the patient's ED press (Train pressed "
        "again in the widget with the other frame picked) instead of a new model",
    )
    ap.add_argument(
        "--continue-patients",
        action="store_true",
        help="each volume's press continues the model of the previous volume's press (the widget's Train on the "
        "next heart without New model; the first volume starts a new one); before it, that model predicts the "
        "volume in the crop around its strokes (before_ columns: Predict volume on a painted heart not trained on)",
    )
    ap.add_argument(
        "--tta",
        type=int,
        default=1,
        choices=TTA_CHOICES,
        help="also score Predict volume with its probabilities averaged over this many of the square's symmetries "
        "(columns tta@, and tta_s@ its seconds; off the clock like every score)",
    )
    ap.add_argument("--crop-margin", type=float, default=0.35, help="-1 = no crop: the whole slice is resized")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0, help="the training seed (weights, batches, augmentation)")
    ap.add_argument(
        "--warm-up",
        action="store_true",
        help="first run the plugin's background warm-up (one throw-away step; not on the clock)",
    )
    ap.add_argument("--no-augment", action="store_true", help="no flips, rotations or intensity jitter")
    add_augmentation_args(ap)
    ap.add_argument(
        "--no-bn-calibration",
        action="store_true",
        help="predict mid-run with batch norm's running averages (as before re-estimation was added)",
    )
    ap.add_argument(
        "--balanced-ce",
        action="store_true",
        help="every class painted in a batch counts equally in the partial cross-entropy (each stroke pixel "
        "weighted by one over its class's stroke pixels in the batch), instead of every painted pixel",
    )
    ap.add_argument(
        "--mixed-pseudo",
        type=float,
        default=0.0,
        help="weight of the dual-decoder mixed pseudo-label term (Luo et al. 2022 use 0.5; 0 = off)",
    )
    ap.add_argument(
        "--save-predictions",
        metavar="DIR",
        default=None,
        help="write each volume's Predict volume output after the press (with the image, strokes, expert "
        "mask and voxel size) to DIR/<patient>_<phase>.npz, for post-processing studies off the clock",
    )
    args = ap.parse_args()
    if args.size is None:  # the widget's auto size
        args.size = interactive_size(resolve_device(args.device))
    budgets = [int(b) for b in args.budgets.split(",")]
    exclusive = (args.corrections, args.second_press, args.continue_frames, args.predict_other_frame)
    if args.continue_patients and (args.phase not in ("ED", "ES") or args.joint_frames or args.continue_frames):
        ap.error("--continue-patients needs --phase ED or ES, and neither --joint-frames nor --continue-frames")
    if args.joint_frames and (args.phase != "both" or len(budgets) != 1 or any(exclusive) or args.save_predictions):
        ap.error(
            "--joint-frames needs --phase both and one budget, and none of --corrections, --second-press, "
            "--continue-frames, --predict-other-frame, --save-predictions"
        )
    pack = load_pack(args.pack)
    train_vols, test_vols = pack.fold_volumes(args.fold)
    ranges = area_ranges_mm2(pack, train_vols)
    margins_net = centroid_margins(pack, pack.slices_of(train_vols))
    weights = PENALTY_WEIGHTS[Penalty(args.penalty)]
    cfg = TrainConfig(
        mode=args.mode,
        penalty=args.penalty,
        crf_weight=args.crf_weight,
        ruled_out_weight=args.dark_myocardium,
        balanced_ce=args.balanced_ce,
        mixed_pseudo_weight=args.mixed_pseudo,
        absence_weight=args.absence_weight,
        entropy_weight=args.entropy_weight,
        depth=args.depth,
        penalty_warmup=args.penalty_warmup,
        augment=not args.no_augment,
        rotate=args.rotate,
        zoom=args.zoom,
        steps=args.steps,
        lr_schedule=args.lr_schedule,
        batch_size=args.batch,
        lr=args.lr,
        width=args.width,
        size=args.size,
        device=args.device,
        preview_every=0,
        size_weight=weights[0] if args.size_weight is None else args.size_weight,
        centroid_weight=weights[1] if args.centroid_weight is None else args.centroid_weight,
        steps_per_epoch=20,
        seed=args.seed,
    )
    if args.phase in ("ED", "ES"):
        test_vols = [v for v in test_vols if pack.phases[v] == args.phase]
    if args.phase == "both":
        ed = [v for v in test_vols if pack.phases[v] == "ED"]
        patients = [pack.patients[v] for v in ed[:: max(1, len(ed) // args.volumes)][: args.volumes]]
        picks = [v for p in patients for v in test_vols if pack.patients[v] == p]
    else:
        picks = test_vols[:: max(1, len(test_vols) // args.volumes)][: args.volumes]

    def load(v):  # type: ignore[no-untyped-def]
        """(image, scribbles, expert mask, spacing, how its centroid boxes are made) of volume ``v``."""
        if args.source == "pack":
            image, scribbles = pack.images[pack.volume == v], pack.scribbles[pack.volume == v]
            gt = pack.labels[pack.volume == v]
            h, w = pack.shapes[v][1:]
            sp = pack.spacings[v]
            spacing = np.array([sp[0], sp[1] * h / pack.side, sp[2] * w / pack.side])
        else:
            from napari_wss.io import find_acdc_cases, read_nifti

            case = next(
                c for c in find_acdc_cases(ACDC) if c.patient_id == pack.patients[v] and c.phase == pack.phases[v]
            )
            vol = read_nifti(case.image)
            image, spacing = vol.data, np.array(vol.spacing)
            scribbles = read_nifti(case.scribble).data.astype(np.uint8)
            gt = read_nifti(case.gt).data.astype(np.uint8)
        scale = pack.side / np.array(image.shape[1:])  # network px of the full 256 grid per source px
        return image, scribbles, gt, spacing, Boxes(margins_net / scale.mean(), args.centroid_floor)

    sizing = {}
    if args.steps_for_seconds > 0:
        # One press = as many steps as this device runs in the given seconds, measured here on the
        # first volume with a throw-away model (this also pays the process's one-off set-up).
        image, scribbles, _, spacing, boxes = load(picks[0])
        data, _, _ = prepare(image, scribbles, spacing, ranges, boxes, cfg, args.crop_margin)
        cold, rate = step_rate(data, cfg)
        cfg = replace(cfg, steps=max(1, int(rate * args.steps_for_seconds)))
        sizing = {"cold_first_step_s": round(cold, 2), "steps_per_s": round(rate, 1), "steps": cfg.steps}
        print(json.dumps(sizing), flush=True)
    if args.warm_up:
        # What the plugin does when its widget opens: one throw-away step at these shapes.
        sizing["warm_up_s"] = round(warm_up(cfg, K), 2)
        print(json.dumps({"warm_up_s": sizing["warm_up_s"]}), flush=True)
    rows = []
    ed_models = {}  # patient -> the model after its ED press (--continue-frames)
    previous = None  # the model after the last volume's press (--continue-patients)
    partner_rows: dict[int, dict] = {}  # volume -> its row, scored after the joint press (--joint-frames)

    def loaded(v):  # type: ignore[no-untyped-def]
        image, scribbles, gt, spacing, boxes = load(v)
        if args.background_loop is not None:
            scribbles = background_loop(scribbles, gt, spacing, args.background_loop)
        return image, scribbles, gt, spacing, boxes

    def make_row(v, first, dice_at, gt, spacing, info):  # type: ignore[no-untyped-def]
        last = max(dice_at)
        return {
            "patient": int(pack.patients[v]),
            "phase": str(pack.phases[v]),
            "first_preview_s": round(first, 2),
            **{
                f"{k}@{b}s": round(d[k], 4)
                for k in ("dice", "lcc", "absent", "marked", "hull", "held", "dark", "septum", "tta", "tta_s")
                for b, d in dice_at.items()
                if k in d
            },
            # Predict volume at the last budget, per class: Dice, volume / the expert's, volume in mL
            **{
                f"{k}@{last}s": x
                for k, x in rounded(dice_at[last]).items()
                if k.removeprefix("hull_")
                .removeprefix("held_")
                .removeprefix("dark_")
                .removeprefix("septum_")
                .removeprefix("tta_")
                .split("_")[0]
                in SHORT
            },
            **{f"{n}_ref_mL": round(float(x), 2) for n, x in zip(SHORT, class_volumes_ml(gt, K, spacing)[1:])},
            **info,
        }

    for v in picks:
        if v in partner_rows:  # scored with the model of its patient's joint press
            rows.append(partner_rows.pop(v))
            print(json.dumps(rows[-1]), flush=True)
            continue
        image, scribbles, gt, spacing, boxes = loaded(v)
        joint = partner = None
        press = cfg
        if args.joint_frames:
            partner = next(u for u in picks if pack.patients[u] == pack.patients[v] and u != v)
            p_image, p_scribbles, p_gt, p_spacing, p_boxes = loaded(partner)
            joint = (p_image, p_scribbles, p_spacing, p_boxes)
            press = replace(cfg, steps=2 * cfg.steps)  # the two frames' presses in one
        volume = (image, scribbles, gt, spacing, ranges, boxes, press)
        start_from = ed_models.get(pack.patients[v]) if pack.phases[v] == "ES" else None
        before = {}
        if args.continue_patients and rows:
            start_from = previous
            before = transfer_columns(start_from, image, scribbles, gt, spacing, volume, args.crop_margin)
        first, dice_at, info, (state, geom, data, absent) = run_volume(
            *volume,
            budgets,
            args.crop_margin,
            calibrate=not args.no_bn_calibration,
            oracle=args.oracle_sizes,
            state=start_from,
            joint=joint,
            tta=args.tta,
        )
        if partner is not None:
            info["joint_with"] = str(pack.phases[partner])
            _, p_geom, p_absent = prepare(p_image, p_scribbles, p_spacing, ranges, p_boxes, press, args.crop_margin)
            p_score = score_frame(state, p_image, p_geom, p_absent, p_scribbles, p_gt, p_spacing, args.tta)
            p_info = {**info, "joint_with": str(pack.phases[v])}
            partner_rows[partner] = make_row(partner, first, {b: p_score for b in dice_at}, p_gt, p_spacing, p_info)
        if start_from is not None:
            info["continued_from"] = rows[-1]["patient"] if args.continue_patients else "ED"
        info.update(before)
        if args.continue_patients:
            previous = copy.deepcopy(state)
        if args.continue_frames and pack.phases[v] == "ED":
            ed_models[pack.patients[v]] = copy.deepcopy(state)
        if args.save_predictions:
            pred = predict_volume(state, image, geometry=geom, device=next(state.model.parameters()).device)
            out = Path(args.save_predictions) / f"{pack.patients[v]:03d}_{pack.phases[v]}.npz"
            out.parent.mkdir(parents=True, exist_ok=True)
            marked = keep_largest_component(pred, K, scribbles=scribbles)
            np.savez_compressed(out, pred=marked, image=image, scribbles=scribbles, gt=gt, spacing=spacing)
        if args.predict_other_frame:
            other = next(u for u in range(len(pack.patients)) if pack.patients[u] == pack.patients[v] and u != v)
            info.update(other_frame(state, geom, scribbles, load(other)))
        if args.second_press:
            info.update(
                second_press(
                    state,
                    geom,
                    data,
                    absent,
                    image,
                    scribbles,
                    gt,
                    spacing,
                    cfg,
                    args.second_press,
                    args.pseudo_confidence,
                )
            )
        if args.corrections:
            info.update(correction_round(state, geom, *volume, args.crop_margin, args.oracle_sizes))
        last = max(dice_at)
        rows.append(make_row(v, first, dice_at, gt, spacing, info))
        row = rows[-1]
        print(json.dumps(row), flush=True)
    numeric = [k for k, x in rows[0].items() if k not in ("patient", "phase") and isinstance(x, (int, float))]
    med = {k: float(np.median([r[k] for r in rows])) for k in numeric}
    clinical = clinical_agreement(rows, last)
    if clinical:
        print(json.dumps({"clinical": clinical}), flush=True)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() and args.device != "cpu" else "cpu"
    print(
        json.dumps(
            {
                "median": med,
                "device": device,
                "size": args.size,
                "width": args.width,
                "batch": args.batch,
                "volumes": len(rows),
                "source": args.source,
                "steps_per_press": cfg.steps,
                "penalty": str(cfg.penalty.value),
                "penalty_warmup": cfg.penalty_warmup,
                "absence_weight": cfg.absence_weight,
                "centroid_floor": args.centroid_floor,
                "balanced_ce": cfg.balanced_ce,
                "mixed_pseudo_weight": cfg.mixed_pseudo_weight,
                **({"oracle_sizes": args.oracle_sizes} if args.oracle_sizes is not None else {}),
                **sizing,
            }
        )
    )


if __name__ == "__main__":
    main()
