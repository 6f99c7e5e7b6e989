"""What scribbles + priors buy on real cardiac MRI: 3D Dice and HD95 per class, by patient fold.

Protocol: a 2D Residual U-Net trained on the slices of four folds (patients 1–20, 21–40, 41–60,
61–80, 81–100; both ED and ES frames), the fifth fold's 40 volumes predicted slice by slice,
resized back to their own grid and scored in 3D against the expert masks (Dice; HD95 in mm).
Priors are what a user could state without the test masks (see acdc_pack.py).

    python benchmarks/acdc_quality.py --folds 1 --rows full,partial --size 128 --width 16 --steps 600
    python benchmarks/acdc_quality.py --folds 1,2,3,4,5 --device cuda --batch 32 --steps 1500
    python benchmarks/acdc_quality.py --folds 5 --rows size+centroid-quad --size 128 --width 16 --batch 8 \
        --steps 1200 --penalty-warmup 150 --second-press 600 --pseudo none,0.9,0.6   # self-training rows

Prints one JSON line per (row, fold) and a table; --out appends the JSON lines to a file.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from acdc_pack import (
    DEFAULT_PACK,
    NAMES,
    POSITIONS,
    K,
    Pack,
    add_augmentation_args,
    area_ranges_mm2,
    centroid_margins,
    clinical_agreement,
    dataset,
    largest_components,
    load_pack,
    position_dice,
    predict_test_volumes,
    score_all,
    source_image,
    source_scribbles,
    user_bounds,
)

from napari_wss.config import PENALTY_WEIGHTS, TTA_CHOICES, Mode, Penalty, TrainConfig
from napari_wss.data import bounds_from_labels, rule_out_brighter
from napari_wss.postprocess import (
    FROM_PREDICTION,
    MYO_BRIGHTNESS_PERCENTILE,
    fill_lv_hull,
    limit_myocardium_brightness,
    limit_wall_to_septum,
)
from napari_wss.pseudolabel import pseudo_strokes, with_pseudo_strokes
from napari_wss.training import train

MYO = NAMES.index("myocardium")

# name: (TrainConfig changes, priors used)
ROWS: dict[str, tuple[dict, str]] = {
    "full": ({"mode": "full", "penalty": "none"}, "none"),
    "partial": ({"mode": "partial", "penalty": "none"}, "none"),
    "size-quad": ({"penalty": "quadratic", "centroid_weight": 0.0}, "size"),
    "size-barrier": ({"penalty": "log-barrier", "centroid_weight": 0.0}, "size"),
    "size+centroid-quad": ({"penalty": "quadratic"}, "size+centroid"),
    "size+centroid-barrier": ({"penalty": "log-barrier"}, "size+centroid"),
    "size+centroid-barrier+crf": ({"penalty": "log-barrier", "crf_weight": 1.0}, "size+centroid"),
    "size+centroid-quad+crf": ({"penalty": "quadratic", "crf_weight": 1.0}, "size+centroid"),
    "oracle-quad": ({"penalty": "quadratic", "centroid_weight": 0.0}, "oracle"),
    "oracle-barrier": ({"penalty": "log-barrier", "centroid_weight": 0.0}, "oracle"),
}


def row_config(
    name: str, base: TrainConfig, crf_weight: float = 0.0, size_scale: float = 1.0
) -> tuple[TrainConfig, str]:
    """The row's config and priors; ``size_scale`` multiplies its size weight (prior rows only)."""
    changes, priors = ROWS[name]
    kind = changes.get("penalty", base.penalty.value)
    size_w, centroid_w = PENALTY_WEIGHTS[Penalty(kind)]
    weights = {} if kind == "none" else {"size_weight": size_w * size_scale, "centroid_weight": centroid_w}
    merged = {"mode": "constrained", **weights, **changes}
    if "crf_weight" in changes and crf_weight:  # --crf-weight overrides the row's
        merged["crf_weight"] = crf_weight
    return base.with_(**merged), priors


def bounds_for(
    pack: Pack, slices: np.ndarray, priors: str, train_vols: np.ndarray, bins: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    if priors == "none":
        return np.full((len(slices), K, 2), np.nan, np.float32), np.full((len(slices), K, 2, 2), np.nan, np.float32)
    if priors == "oracle":
        sizes, cents = bounds_from_labels(pack.labels[slices], K, margin=0.1)
        sizes[:, 0] = np.nan  # the seed bounds the foreground classes only
        return sizes, cents
    ranges = area_ranges_mm2(pack, train_vols, bins=bins)
    margins = centroid_margins(pack, slices) if "centroid" in priors else None
    return user_bounds(pack, slices, ranges, margins)


class DecodersMean(torch.nn.Module):
    """A two-decoder network (``--mixed-pseudo``) scored on the mean of its decoders' probabilities:
    returns the log of that mean, so the softmax that prediction applies gives the mean back."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        main, second = self.model(x, aux=True)
        mean = 0.5 * (F.softmax(main.float(), dim=1) + F.softmax(second.float(), dim=1))
        return torch.log(mean.clamp_min(1e-12))


def _train(data, cfg: TrainConfig, state=None):
    gen = train(data, cfg, class_names=NAMES, state=state)
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


def _score(
    model: torch.nn.Module,
    pack: Pack,
    test_vols: np.ndarray,
    pool: ProcessPoolExecutor | None,
    source: Pack | None = None,
    save_to: Path | None = None,
    tta: int = 1,
) -> dict:
    """The scores of ``model`` on ``test_vols``; ``source`` = the pack at its stored size, whose
    images the brightness rule reads (``pack`` when None); ``save_to``: write each test volume's
    cut prediction there; ``tta``: symmetries the probabilities are averaged over."""
    preds = predict_test_volumes(model, pack, test_vols, tta=tta)
    dice, hd = score_all(preds, pack, test_vols, pool)
    kept = largest_components(preds)
    images = [source_image(source or pack, v) for v in test_vols]
    if save_to is not None:  # for post-processing studies off the clock (postprocess_study.py)
        save_to.mkdir(parents=True, exist_ok=True)
        for k, v, im in zip(kept, test_vols, images):
            np.savez_compressed(
                save_to / f"{pack.patients[v]:03d}_{pack.phases[v]}.npz",
                pred=k,
                image=im,
                scribbles=source_scribbles(pack, v),
                gt=pack.gt[v],
                spacing=pack.spacings[v],
            )
    dice_lcc, hd_lcc = score_all(kept, pack, test_vols, pool)
    hulled = [fill_lv_hull(p, NAMES) for p in kept]  # + the LV cavity's convex hull (papillary muscles)
    dice_hull, _ = score_all(hulled, pack, test_vols, pool)
    # + the wall within 1.5 x the septum measured on each prediction (no strokes needed)
    walled = [limit_wall_to_septum(h, NAMES, tuple(pack.spacings[v][1:])) for h, v in zip(hulled, test_vols)]
    dice_wall, hd_wall = score_all(walled, pack, test_vols, pool)
    # the same after the myocardium is kept no brighter than the prediction's own wall/blood threshold
    # (test volumes have no strokes to take the widget's ceiling from)
    dark = [
        fill_lv_hull(limit_myocardium_brightness(p, im, FROM_PREDICTION, NAMES), NAMES) for p, im in zip(kept, images)
    ]
    darkened = [limit_wall_to_septum(d, NAMES, tuple(pack.spacings[v][1:])) for d, v in zip(dark, test_vols)]
    dice_dark, hd_dark = score_all(darkened, pack, test_vols, pool)
    by_position = [position_dice(p, pack.gt[v]) for p, v in zip(preds, test_vols)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (a class never predicted)
        pos = np.nanmean(np.stack([b[0] for b in by_position]), axis=0)
        outside_fp = np.nanmean([b[1] for b in by_position])
        return {
            "dice": np.nanmean(dice, axis=0).round(4).tolist(),
            "dice_mean": round(float(np.nanmean(dice)), 4),
            "hd95": np.nanmean(hd, axis=0).round(2).tolist(),
            "hd95_mean": round(float(np.nanmean(hd)), 2),
            # the same predictions, each class cut to its largest 3D component
            "lcc_dice": np.nanmean(dice_lcc, axis=0).round(4).tolist(),
            "lcc_dice_mean": round(float(np.nanmean(dice_lcc)), 4),
            "lcc_hd95_mean": round(float(np.nanmean(hd_lcc)), 2),
            # the cut predictions with the LV cavity made convex (the widget's Predict volume default)
            "hull_dice": np.nanmean(dice_hull, axis=0).round(4).tolist(),
            "hull_dice_mean": round(float(np.nanmean(dice_hull)), 4),
            # and the wall limited to 1.5 x the septum (the widget's Predict volume default since 2026-11-29)
            "septum_dice": np.nanmean(dice_wall, axis=0).round(4).tolist(),
            "septum_dice_mean": round(float(np.nanmean(dice_wall)), 4),
            "septum_hd95_mean": round(float(np.nanmean(hd_wall)), 2),
            "septum_clinical": clinical_agreement(walled, pack, test_vols),
            # and the myocardium's bright pixels handed on first (wall / blood threshold of the prediction)
            "dark_dice": np.nanmean(dice_dark, axis=0).round(4).tolist(),
            "dark_dice_mean": round(float(np.nanmean(dice_dark)), 4),
            "dark_hd95_mean": round(float(np.nanmean(hd_dark)), 2),
            "dark_clinical": clinical_agreement(darkened, pack, test_vols),
            # LV / RV EDV and EF, myocardial mass of the cut predictions against the expert's
            "lcc_clinical": clinical_agreement(kept, pack, test_vols),
            # mean 2D Dice of RV, Myo, LV per third of the heart, and false-positive slices outside it
            "slice_dice_by_position": {p: pos[i].round(4).tolist() for i, p in enumerate(POSITIONS)},
            "outside_fp_slices": round(float(outside_fp), 4),
        }


def _record(name: str, fold: int, summary: dict, cfg: TrainConfig, train_s: float, n_test: int) -> dict:
    return {
        "row": name,
        "fold": fold,
        **summary,
        "train_s": round(train_s, 1),
        "steps": cfg.steps,
        "penalty_warmup": cfg.penalty_warmup,
        "crf_weight": cfg.crf_weight,
        "size_weight": cfg.size_weight,
        "absence_weight": cfg.absence_weight,
        "ruled_out_weight": cfg.ruled_out_weight,
        "balanced_ce": cfg.balanced_ce,
        "mixed_pseudo_weight": cfg.mixed_pseudo_weight,
        "rotate": cfg.rotate,
        "zoom": cfg.zoom,
        "batch": cfg.batch_size,
        "size": cfg.size,
        "patch": cfg.patch,
        "width": cfg.width,
        "seed": cfg.seed,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() and cfg.device != "cpu" else "cpu",
        "test_volumes": n_test,
    }


def run_one(
    pack: Pack,
    fold: int,
    name: str,
    base: TrainConfig,
    pool: ProcessPoolExecutor | None,
    crf_weight: float = 0.0,
    second_press: int = 0,
    pseudo: tuple[float | None, ...] = (),
    band: int | None = None,
    second_lr: float = 0.0,
    bins: int = 1,
    size_scale: float = 1.0,
    source: Pack | None = None,
    save_to: Path | None = None,
    tta: tuple[int, ...] = (1,),
    decoders: tuple[str, ...] = ("main",),
) -> list[dict]:
    """The row's records, one per ``tta`` entry (symmetries averaged at prediction, same model) and,
    for a two-decoder network, per ``decoders`` entry ("main": the first decoder, as the plugin
    predicts; "mean": both decoders' probabilities averaged), then
    one per ``pseudo`` entry: the same model trained ``second_press`` more steps, on its own
    confident predictions as strokes (a confidence) or as it was (None).
    ``source`` as :func:`_score`; ``save_to``: the first press's predictions go to a folder there
    named by the row and fold."""
    train_vols, test_vols = pack.fold_volumes(fold)
    slices = pack.slices_of(train_vols)
    cfg, priors = row_config(name, base, crf_weight, size_scale)
    sizes, cents = bounds_for(pack, slices, priors, train_vols, bins)
    data = dataset(pack, slices, sizes, cents)
    ruled = {}
    if cfg.ruled_out_weight > 0 and cfg.mode != Mode.FULL:
        data = rule_out_brighter(data, MYO, MYO_BRIGHTNESS_PERCENTILE)
        name = f"{name} + dark myocardium {cfg.ruled_out_weight:g}"
        ruled = _ruled_out_truth(data)
    if bins > 1 and priors in ("size", "size+centroid"):
        name = f"{name} ({bins} positions)"
    if cfg.balanced_ce and cfg.mode != Mode.FULL:
        name = f"{name}, classes balanced"
    if cfg.aux_decoder:
        name = f"{name} + mixed pseudo-labels {cfg.mixed_pseudo_weight:g}"
    device = torch.device("cuda" if cfg.device.startswith("cuda") else "cpu")
    start = time.perf_counter()
    state = _train(data, cfg)
    train_s = time.perf_counter() - start
    if save_to is not None:  # one folder per row and fold, named by the row as recorded
        save_to = save_to / f"{re.sub(r'[^A-Za-z0-9.+-]+', '_', name)}_fold{fold}"
    records = []
    scored = [(d, n) for d in (decoders if cfg.aux_decoder else ("main",)) for n in tta]
    for d, n in scored:  # the saved predictions are the first's
        model = state.model.to(device)
        label = name if d == "main" else f"{name}, decoders averaged"
        scores = _score(model if d == "main" else DecodersMean(model), pack, test_vols, pool, source, save_to, tta=n)
        save_to = None
        label = label if n == 1 else f"{label}, {n} symmetries averaged"
        records.append(_record(label, fold, scores, cfg, train_s, len(test_vols)))
        records[-1]["tta"] = n
        records[-1]["decoders"] = d
    records[0]["size_binding"] = _size_binding(state.model, pack, slices, sizes)
    if ruled:
        records[0]["ruled_out"] = ruled
    press = cfg.with_(steps=second_press, lr=second_lr or cfg.lr) if pseudo else cfg  # no press: unused
    for confidence in pseudo:
        second = copy.deepcopy(state)
        start = time.perf_counter()
        again = data
        if confidence is not None:
            strokes = pseudo_strokes(second.model.to(device), data, confidence=confidence, band=band)
            again = with_pseudo_strokes(data, strokes)
            painted = float((strokes > 0).mean())
        state2 = _train(again, press, state=second)
        label = f"{name}+{second_press}" + (f" lr {second_lr:g}" if second_lr else "")
        if confidence is not None:
            label += f" self-trained@{confidence:g}" + ("" if band is None else f" band {band}")
        rec = _record(
            label,
            fold,
            _score(state2.model.to(device), pack, test_vols, pool, source),
            press,
            time.perf_counter() - start,
            len(test_vols),
        )
        rec["first_press_steps"] = cfg.steps
        rec["second_lr"] = press.lr
        if confidence is not None:
            rec["painted_share"] = round(painted, 4)
            rec["pseudo_band"] = band
            rec["pseudo_dice_on_train"] = _train_dice(strokes, data)
        records.append(rec)
    for rec in records:
        rec["position_bins"] = bins
    return records


def _ruled_out_truth(data) -> dict:
    """How often the brightness rule is right on the training slices: the share of the pixels it
    rules the myocardium out of, and which expert class those pixels are; the share of the true
    myocardium it rules out."""
    marked = data.ruled_out == MYO + 1
    truth = data.labels[marked]
    return {
        "pixel_share": round(float(marked.mean()), 4),
        "by_true_class": {n: round(float((truth == c).mean()), 4) for c, n in enumerate(NAMES)},
        "true_myocardium_ruled_out": round(float(marked[data.labels == MYO].mean()), 4),
    }


@torch.no_grad()
def _size_binding(model: torch.nn.Module, pack: Pack, slices: np.ndarray, sizes: np.ndarray) -> dict:
    """Whether the size bounds bind on the slices the model trained on: per class, the summed soft
    area (probabilities) and hard area (arg-max) over the true area, on the slices that hold the
    class, and the share of those slices whose soft area ends above the upper bound it trained with."""
    from napari_wss.training import predict_slices

    soft, hard = [], []
    for i in range(0, len(slices), 128):
        probs = predict_slices(model, pack.images[slices[i : i + 128]])
        soft.append(probs.sum(dim=(2, 3)).cpu().numpy())
        hard.append(F.one_hot(probs.argmax(1), K).sum(dim=(1, 2)).cpu().numpy())
    soft_a, hard_a = np.concatenate(soft), np.concatenate(hard)
    true_a = np.stack([(pack.labels[slices] == c).sum(axis=(1, 2)) for c in range(K)], axis=1)
    out = {}
    for c in range(1, K):
        m = true_a[:, c] > 0
        upper = sizes[m, c, 1]
        bounded = np.isfinite(upper)
        out[NAMES[c]] = {
            "soft_over_true": round(float(soft_a[m, c].sum() / true_a[m, c].sum()), 3),
            "hard_over_true": round(float(hard_a[m, c].sum() / true_a[m, c].sum()), 3),
            "soft_above_upper": round(float((soft_a[m, c][bounded] > upper[bounded]).mean()), 3)
            if bounded.any()
            else None,
        }
    return out


def _train_dice(strokes: np.ndarray, data) -> list[float]:
    """Dice of the painted pseudo-labels against the training slices' expert masks, per class
    (unpainted pixels count as misses): how good the second round's supervision is."""
    out = []
    for c in range(1, K):
        a, b = strokes == c + 1, data.labels == c
        out.append(round(float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1)), 4))
    return out


def table(results: list[dict]) -> str:
    lines = [
        "| row | folds | RV | Myo | LV | mean Dice | mean HD95 (mm) | largest component: Dice | HD95 | LV EF MAE (%) "
        "| + convex LV: Dice | + wall <= 1.5 x septum: Dice | + dark myocardium first: Dice |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(r["row"] for r in results):
        rs = [r for r in results if r["row"] == name]
        d = np.mean([r["dice"] for r in rs], axis=0)
        hd = np.mean([r["hd95_mean"] for r in rs])
        folds = ",".join(str(r["fold"]) for r in rs)
        cells = f"| {name} | {folds} | {d[0]:.3f} | {d[1]:.3f} | {d[2]:.3f} | {d.mean():.3f} | {hd:.1f} |"
        if all("lcc_dice_mean" in r for r in rs):  # older result files lack the post-processed scores
            lcc = np.mean([r["lcc_dice_mean"] for r in rs])
            cells += f" {lcc:.3f} | {np.mean([r['lcc_hd95_mean'] for r in rs]):.1f} |"
        if all("lcc_clinical" in r for r in rs):  # of the cut predictions, mean over the folds
            cells += f" {np.mean([r['lcc_clinical']['LV EF']['mae'] for r in rs]):.1f} |"
        if all("hull_dice_mean" in r for r in rs):
            cells += f" {np.mean([r['hull_dice_mean'] for r in rs]):.3f} |"
        if all("septum_dice_mean" in r for r in rs):
            cells += f" {np.mean([r['septum_dice_mean'] for r in rs]):.3f} |"
        if all("dark_dice_mean" in r for r in rs):
            cells += f" {np.mean([r['dark_dice_mean'] for r in rs]):.3f} |"
        lines.append(cells)
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pack", type=Path, default=DEFAULT_PACK)
    ap.add_argument("--folds", default="1")
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument(
        "--patch",
        type=int,
        default=0,
        help="train on random windows of this side cut from the --size slices (a third placed around the painted "
        "structures, the rest anywhere); predict whole slices (0 = train on whole slices)",
    )
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--penalty-warmup", type=int, default=0, help="steps over which the prior terms grow from 0")
    ap.add_argument("--crf-weight", type=float, default=0.0, help="weight of the +crf rows (0 = the row's own, 1.0)")
    ap.add_argument(
        "--absence-weight",
        type=float,
        default=TrainConfig.absence_weight,
        help="the absence term's weight (default TrainConfig's, 0 = absence as a size bound of 0; the widget uses 0.3)",
    )
    ap.add_argument(
        "--dark-myocardium",
        type=float,
        default=0.0,
        help="weight of the term keeping the myocardium off pixels brighter than 99 %% of those under its strokes "
        "in the same volume (rows with scribbles; 0 = off)",
    )
    ap.add_argument(
        "--balanced-ce",
        action="store_true",
        help="every class painted in a batch counts equally in the partial cross-entropy (rows with scribbles)",
    )
    ap.add_argument(
        "--mixed-pseudo",
        type=float,
        default=0.0,
        help="weight of the dual-decoder mixed pseudo-label term (Luo et al. 2022 use 0.5; 0 = off)",
    )
    add_augmentation_args(ap)
    ap.add_argument(
        "--second-press", type=int, default=0, help="train each row's model this many more steps (see --pseudo)"
    )
    ap.add_argument(
        "--pseudo",
        default="none,0.9",
        help="second-press variants: 'none' continues on the scribbles, a number self-trains on the model's "
        "predictions painted where at least that confident",
    )
    ap.add_argument("--second-lr", type=float, default=0.0, help="the second press's peak learning rate (0 = --lr)")
    ap.add_argument(
        "--pseudo-band",
        type=int,
        default=None,
        help="self-training: paint background only within this many network pixels of the predicted structures",
    )
    ap.add_argument(
        "--position-bins",
        type=int,
        default=1,
        help="size ranges per this many stretches of the long axis, base to apex (1 = one range per class)",
    )
    ap.add_argument(
        "--scribble-share",
        type=float,
        default=0.0,
        help="below --pack's size, a shrunk pixel keeps a stroke only if strokes cover this share of it (0 = any)",
    )
    ap.add_argument("--seed", type=int, default=0, help="seeds the network's initialisation and the batches")
    ap.add_argument(
        "--size-scale", type=float, default=1.0, help="multiply the prior rows' size weight by this (1 = the defaults)"
    )
    ap.add_argument(
        "--tta",
        default="1",
        help="comma-separated: score each trained model once per entry, its probabilities averaged over that many "
        f"of the square's symmetries {TTA_CHOICES} (1 = plain; e.g. 1,8 compares both on the same training)",
    )
    ap.add_argument(
        "--decoders",
        default="main",
        help="comma-separated, rows with --mixed-pseudo: score the first decoder ('main', as the plugin predicts) "
        "and/or the mean of both decoders' probabilities ('mean'), on the same training",
    )
    ap.add_argument("--workers", type=int, default=0, help="processes for HD95 scoring (0 = inline)")
    ap.add_argument("--out", type=Path)
    ap.add_argument(
        "--save-predictions",
        type=Path,
        metavar="DIR",
        help="write each test volume's prediction (largest components kept) with its image, strokes, expert mask "
        "and voxel size to DIR/<row>_fold<f>/<patient>_<phase>.npz, for postprocess_study.py",
    )
    ap.add_argument("--extra-rows", default="", help="rows run after the main plan, on --extra-folds")
    ap.add_argument("--extra-folds", default="1")
    ap.add_argument("--deadline", type=float, default=0, help="unix time: skip runs that would end after it")
    args = ap.parse_args()
    try:
        tta = tuple(int(n) for n in args.tta.split(","))
    except ValueError:
        ap.error(f"--tta takes comma-separated integers, got {args.tta!r}")
    if not tta or any(n not in TTA_CHOICES for n in tta):
        ap.error(f"--tta entries must be among {TTA_CHOICES}, got {args.tta!r}")
    decoders = tuple(args.decoders.split(","))
    if not decoders or any(d not in ("main", "mean") for d in decoders):
        ap.error(f"--decoders entries must be 'main' or 'mean', got {args.decoders!r}")
    if args.position_bins < 1:
        ap.error(f"--position-bins must be at least 1, got {args.position_bins}")
    pool = ProcessPoolExecutor(args.workers) if args.workers else None  # before CUDA starts
    if not 0.0 <= args.scribble_share <= 1.0:
        ap.error(f"--scribble-share must lie in [0, 1], got {args.scribble_share:g}")
    source = load_pack(args.pack)
    pack = source.resized(args.size, args.scribble_share)
    base = TrainConfig(
        steps=args.steps,
        batch_size=args.batch,
        lr=args.lr,
        lr_schedule="cosine",
        width=args.width,
        size=args.size,
        patch=args.patch,
        device=args.device,
        preview_every=0,
        t0=5.0,
        steps_per_epoch=100,
        penalty_warmup=args.penalty_warmup,
        absence_weight=args.absence_weight,
        ruled_out_weight=args.dark_myocardium,
        balanced_ce=args.balanced_ce,
        mixed_pseudo_weight=args.mixed_pseudo,
        rotate=args.rotate,
        zoom=args.zoom,
        seed=args.seed,
    )
    results: list[dict] = []
    plan = [(int(f), name) for f in args.folds.split(",") for name in args.rows.split(",")]
    plan += [(int(f), name) for f in args.extra_folds.split(",") if f for name in args.extra_rows.split(",") if name]
    for fold, name in plan:
        if args.deadline and results:
            left = args.deadline - time.time()
            if left < 1.3 * max(r["wall_s"] for r in results):
                print(json.dumps({"skipped": name, "fold": fold, "seconds_left": round(left)}), flush=True)
                continue
        t0 = time.time()
        pseudo = tuple(None if p == "none" else float(p) for p in args.pseudo.split(",")) if args.second_press else ()
        rs = run_one(
            pack,
            fold,
            name,
            base,
            pool,
            args.crf_weight,
            args.second_press,
            pseudo,
            args.pseudo_band,
            args.second_lr,
            args.position_bins,
            args.size_scale,
            source,
            args.save_predictions,
            tta,
            decoders,
        )
        for r in rs:
            r["wall_s"] = round(time.time() - t0, 1)
            r["scribble_share"] = args.scribble_share
            results.append(r)
            line = json.dumps(r)
            print(line, flush=True)
            if args.out:
                with args.out.open("a") as fh:
                    fh.write(line + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
