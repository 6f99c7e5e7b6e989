"""Predict volume's post-processing, studied off the clock on saved predictions.

``interactive.py --save-predictions DIR`` writes, per volume, Predict volume's output after the
press with its islands removed (``pred``), the expert mask, the strokes and the voxel size. This
script scores variants of the post-processing on them, with no training: the LV cavity made convex
(``fill_lv_hull``, the widget's default) and, on top, the myocardium limited to a wall thickness
(``limit_wall_thickness``) at each bound given — one per frame, since the wall thickens in systole —
and, with ``--myo-brightness``, the myocardium kept no brighter than a percentile of the intensities
under its own strokes (``limit_myocardium_brightness``, before the convex cavity). With ``--septum``,
the widget's default output (dark myocardium at the 99th percentile, convex cavity) and, on top, the
wall limited to each factor times the septum's thickness measured on that output
(``limit_wall_to_septum``), compared with the default.

    python benchmarks/interactive.py --volumes 10 --phase both --budgets 60 --save-predictions /tmp/preds
    python benchmarks/postprocess_study.py /tmp/preds --wall-ed 8,10,12,15,20 --wall-es 12,15,18,20
    python benchmarks/postprocess_study.py /tmp/preds --myo-brightness 95,99,99.5,100
    python benchmarks/postprocess_study.py /tmp/preds --septum 1.25,1.5,2,2.5
    python benchmarks/acdc_quality.py --folds 5 --rows full --save-predictions /tmp/cohort ...
    python benchmarks/postprocess_study.py /tmp/cohort/full_fold5 --lv-per-patient

Prints, per frame and variant, the median mean Dice, how many volumes went up and down against
the islands-only output (and against the convex cavity alone), the per-class medians and volume
ratios, the mean mL of predicted myocardium on the expert's background, RV and LV, and (with both
frames of a patient) the clinical agreement: LV / RV EDV and EF, myocardial mass against the
expert's. ``--lv-per-patient`` prints instead, per patient, the saved LV volumes and ejection
fraction against the expert's and how much predicted LV lies on the expert's RV.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from acdc_pack import CLINICAL_INDICES, NAMES, K

from napari_wss.metrics import agreement, cardiac_indices, class_volumes_ml, score_volume
from napari_wss.postprocess import (
    FROM_PREDICTION,
    MYO_BRIGHTNESS_PERCENTILE,
    fill_lv_hull,
    limit_myocardium_brightness,
    limit_wall_thickness,
    limit_wall_to_septum,
    myocardium_ceiling,
)


def variants(
    saved: dict[str, np.ndarray],
    walls: list[float],
    brightness: list[float],
    septum: list[float],
    from_prediction: bool = False,
) -> list[np.ndarray]:
    """Islands removed (as saved), + the convex LV cavity, + each wall-thickness limit, and each
    brightness percentile applied before the convex cavity; with ``septum``, the widget's default
    output and that output with the wall limited to each factor times its septum; with
    ``from_prediction``, the rules that need no strokes (convex cavity, wall <= 1.5 x septum) without
    and with the myocardium first kept under the prediction's own wall / blood threshold."""
    pred, spacing = saved["pred"], saved["spacing"]
    hull = fill_lv_hull(pred, NAMES)
    out = [pred, hull, *(limit_wall_thickness(hull, NAMES, mm, tuple(spacing[1:])) for mm in walls)]
    for pct in [*brightness, *([MYO_BRIGHTNESS_PERCENTILE] if septum else [])]:
        ceiling = myocardium_ceiling(saved["image"], saved["scribbles"], NAMES, pct)
        dark = pred if ceiling is None else limit_myocardium_brightness(pred, saved["image"], ceiling, NAMES)
        out.append(fill_lv_hull(dark, NAMES))
    default = out[-1]
    out += [limit_wall_to_septum(default, NAMES, tuple(spacing[1:]), k) for k in septum]
    if from_prediction:
        dark = limit_myocardium_brightness(pred, saved["image"], FROM_PREDICTION, NAMES)
        out += [limit_wall_to_septum(fill_lv_hull(x, NAMES), NAMES, tuple(spacing[1:])) for x in (pred, dark)]
    return out


def variant_name(i: int, walls: list[str], brightness: list[float], septum: list[float]) -> str:
    """Name of variant ``i``; ``walls`` = its bound(s) as text (one per frame for the clinical rows)."""
    if i < 2:
        return ("islands", "convex LV")[i]
    if i < 2 + len(walls):
        return f"convex LV + wall <= {walls[i - 2]} mm"
    i -= 2 + len(walls)
    if i < len(brightness):
        return f"myocardium <= its strokes' p{brightness[i]:g}, convex LV"
    if septum and i == len(brightness):
        return f"default: myocardium <= its strokes' p{MYO_BRIGHTNESS_PERCENTILE:g}, convex LV"
    i -= len(brightness) + (1 if septum else 0)
    if i < len(septum):
        return f"default + wall <= {septum[i]:g} x septum"
    stroke_free = ("no strokes: convex LV, wall <= 1.5 x septum", "no strokes: + dark myocardium from the prediction")
    return stroke_free[i - len(septum)]


def lv_per_patient(files: list[Path]) -> None:
    """One line per patient with both frames saved: LV EDV, ESV (mL) and EF (%) of the saved
    prediction and of the expert, the EF error, and each frame's predicted LV on the expert's RV (mL)."""
    lv, rv = NAMES.index("LV"), NAMES.index("RV")
    frames: dict[int, dict[str, tuple[np.ndarray, np.ndarray, float]]] = {}
    for f in files:
        patient, phase = int(f.stem.split("_")[0]), f.stem.split("_")[1]
        d = np.load(f)
        pred, gt, spacing = d["pred"], d["gt"], d["spacing"]
        on_rv = ((pred == lv) & (gt == rv)).sum() * float(np.prod(spacing)) / 1000.0
        frames.setdefault(patient, {})[phase] = (
            class_volumes_ml(pred, K, spacing),
            class_volumes_ml(gt, K, spacing),
            on_rv,
        )
    for patient, f in sorted(frames.items()):
        if {"ED", "ES"} <= set(f):
            got = cardiac_indices(f["ED"][0], f["ES"][0], NAMES)
            ref = cardiac_indices(f["ED"][1], f["ES"][1], NAMES)
            row: dict[str, object] = {"patient": patient}
            row.update({k: [round(got[k], 1), round(ref[k], 1)] for k in ("LV EDV", "LV ESV", "LV EF")})
            row["EF error"] = round(got["LV EF"] - ref["LV EF"], 1)
            row["LV on expert RV (ED, ES)"] = [round(f["ED"][2], 1), round(f["ES"][2], 1)]
            print(json.dumps(row))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("preds", type=Path, help="the folder interactive.py --save-predictions wrote")
    ap.add_argument("--wall-ed", default="12", help="wall-thickness bounds (mm) for end-diastolic frames")
    ap.add_argument("--wall-es", default="15", help="... and for end-systolic frames (as many as --wall-ed)")
    ap.add_argument(
        "--myo-brightness", default="", help="percentiles of the myocardium strokes' intensity to cap it at (e.g. 99)"
    )
    ap.add_argument(
        "--septum",
        default="",
        help="factors of the septum's thickness to limit the default output's wall to (e.g. 1.5)",
    )
    ap.add_argument(
        "--from-prediction",
        action="store_true",
        help="add the stroke-free rules: convex LV + wall <= 1.5 x septum, without and with the myocardium first "
        "kept under the prediction's own wall / blood threshold",
    )
    ap.add_argument(
        "--lv-per-patient",
        action="store_true",
        help="only print, per patient, the saved predictions' LV volumes and ejection fraction against the "
        "expert's, and how much of the predicted LV lies on the expert's RV",
    )
    args = ap.parse_args()
    if args.lv_per_patient:
        lv_per_patient(sorted(args.preds.glob("*_E[DS].npz")))
        return
    brightness = [float(x) for x in args.myo_brightness.split(",") if x]
    septum = [float(x) for x in args.septum.split(",") if x]
    walls = {"ED": [float(x) for x in args.wall_ed.split(",")], "ES": [float(x) for x in args.wall_es.split(",")]}
    if len(walls["ED"]) != len(walls["ES"]):
        raise SystemExit("give as many --wall-es bounds as --wall-ed bounds (they are paired)")
    n_variants = 2 + len(walls["ED"]) + len(brightness) + (1 + len(septum) if septum else 0) + 2 * args.from_prediction
    files = sorted(args.preds.glob("*_E[DS].npz"))
    if not files:
        raise SystemExit(f"no <patient>_<ED|ES>.npz files in {args.preds}")
    dice: dict[tuple[str, int], list[np.ndarray]] = {}  # (phase, variant index) -> per-volume class Dice
    ratio: dict[tuple[str, int], list[np.ndarray]] = {}
    spill: dict[tuple[str, int], list[np.ndarray]] = {}  # predicted myocardium (mL) on expert background, RV, LV
    volumes: dict[tuple[int, str], list[np.ndarray]] = {}  # (patient, phase) -> per-variant mL (+ expert's last)
    for f in files:
        patient, phase = int(f.stem.split("_")[0]), f.stem.split("_")[1]
        d = np.load(f)
        gt, spacing = d["gt"], d["spacing"]
        ref = class_volumes_ml(gt, K, spacing)
        mls = []
        for i, lab in enumerate(variants(dict(d), walls[phase], brightness, septum, args.from_prediction)):
            dice.setdefault((phase, i), []).append(score_volume(lab, gt, K, spacing).dice[1:])
            ml = class_volumes_ml(lab, K, spacing)
            ratio.setdefault((phase, i), []).append(ml[1:] / ref[1:])
            voxel_ml = float(np.prod(spacing)) / 1000
            myo = lab == NAMES.index("myocardium")
            spill.setdefault((phase, i), []).append(
                np.array([(myo & (gt == NAMES.index(c))).sum() for c in ("background", "RV", "LV")]) * voxel_ml
            )
            mls.append(ml)
        volumes[(patient, phase)] = [*mls, ref]
    for phase in ("ED", "ES"):
        base = np.array([x.mean() for x in dice.get((phase, 0), [])])
        convex = np.array([x.mean() for x in dice.get((phase, 1), [])])
        default_i = 2 + len(walls[phase]) + len(brightness)
        for i in range(n_variants):
            if (phase, i) not in dice:
                continue
            per = np.array(dice[(phase, i)])
            mean = per.mean(axis=1)
            row = {
                "phase": phase,
                "variant": variant_name(i, [f"{mm:g}" for mm in walls[phase]], brightness, septum),
                "volumes": len(mean),
                "median": round(float(np.median(mean)), 4),
                "mean": round(float(mean.mean()), 4),
                "up": int((mean > base + 1e-9).sum()),
                "down": int((mean < base - 1e-9).sum()),
                "largest_drop": round(float((mean - base).min()), 4),
                "up_vs_convex": int((mean > convex + 1e-9).sum()),
                "down_vs_convex": int((mean < convex - 1e-9).sum()),
                "RV/myo/LV": np.median(per, axis=0).round(4).tolist(),
                "volume/expert": np.median(np.array(ratio[(phase, i)]), axis=0).round(2).tolist(),
                "myo_on_expert_bg/RV/LV_mL": np.mean(spill[(phase, i)], axis=0).round(2).tolist(),
            }
            if septum and i > default_i:
                default = np.array([x.mean() for x in dice[(phase, default_i)]])
                row["up_vs_default"] = int((mean > default + 1e-9).sum())
                row["down_vs_default"] = int((mean < default - 1e-9).sum())
                row["largest_drop_vs_default"] = round(float((mean - default).min()), 4)
                row["largest_gain_vs_default"] = round(float((mean - default).max()), 4)
            if args.from_prediction and i == n_variants - 1:  # the prediction's ceiling against none
                plain = np.array([x.mean() for x in dice[(phase, i - 1)]])
                row["up_vs_stroke_free"] = int((mean > plain + 1e-9).sum())
                row["down_vs_stroke_free"] = int((mean < plain - 1e-9).sum())
                row["largest_drop_vs_stroke_free"] = round(float((mean - plain).min()), 4)
                row["largest_gain_vs_stroke_free"] = round(float((mean - plain).max()), 4)
            print(json.dumps(row), flush=True)
    patients = sorted({p for p, ph in volumes if (p, "ES") in volumes and ph == "ED"})
    if not patients:
        return
    pairs = [(volumes[(p, "ED")], volumes[(p, "ES")]) for p in patients]
    expert = [cardiac_indices(ed[-1], es[-1], NAMES) for ed, es in pairs]
    for i in range(n_variants):
        measured = [cardiac_indices(ed[i], es[i], NAMES) for ed, es in pairs]
        name = variant_name(i, [f"{a:g}/{b:g}" for a, b in zip(walls["ED"], walls["ES"])], brightness, septum)
        clinical = {k: agreement([m[k] for m in measured], [e[k] for e in expert]).summary() for k in CLINICAL_INDICES}
        print(json.dumps({"clinical": name, "patients": len(patients), **clinical}), flush=True)


if __name__ == "__main__":
    main()
