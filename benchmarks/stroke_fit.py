"""Does one press fit the volume's own strokes? A probe for a structure the priors erase.

Trains one press on one ACDC frame's scribbles with the interactive defaults (as
``interactive.py``: textbook size ranges from the fold's other patients, absence and centroid
boxes from the strokes, crop, 96², 300 steps) and prints, per class, the share of its stroke pixels
the network labels right, the mean probability it gives them, its soft and hard predicted sizes
(network pixels, summed over the slices) and the 3D Dice of the prediction (no post-processing).
A class whose strokes are not fitted after a press was pushed off them by some other term.

    python stroke_fit.py --patient 29 --phase ES --fold 2 --absence-weight 0
    python stroke_fit.py --patient 29 --phase ES --fold 2

One JSON line per run. Reads ../shared/data/acdc and the pack (``acdc_pack.py``) for the ranges.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import numpy as np
import torch
from acdc_pack import DEFAULT_PACK, NAMES, K, area_ranges_mm2, centroid_margins, load_pack
from interactive import ACDC, Boxes, prepare

from napari_wss.config import PENALTY_WEIGHTS, Penalty, TrainConfig
from napari_wss.io import find_acdc_cases, read_nifti
from napari_wss.metrics import score_volume
from napari_wss.training import TrainState, predict_slices, predict_volume, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patient", type=int, required=True)
    ap.add_argument("--phase", choices=("ED", "ES"), default="ES")
    ap.add_argument("--fold", type=int, default=5, help="the size ranges come from the other folds' patients")
    ap.add_argument("--absence-weight", type=float, default=0.3, help="the widget's default; 0 = the library's")
    ap.add_argument("--centroid-weight", type=float, default=None, help="default: the quadratic penalty's")
    ap.add_argument("--centroid-floor", type=float, default=0.0)
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()

    pack = load_pack(DEFAULT_PACK)
    train_vols, _ = pack.fold_volumes(args.fold)
    ranges = area_ranges_mm2(pack, train_vols)
    margins_net = centroid_margins(pack, pack.slices_of(train_vols))
    size_w, centroid_w = PENALTY_WEIGHTS[Penalty.QUADRATIC]
    cfg = TrainConfig(
        penalty="quadratic",
        penalty_warmup=100,
        steps=args.steps,
        lr_schedule="cosine",
        width=16,
        size=96,
        preview_every=0,
        size_weight=size_w,
        centroid_weight=centroid_w if args.centroid_weight is None else args.centroid_weight,
        steps_per_epoch=20,
        device="cpu",
    )
    cfg = replace(cfg, absence_weight=args.absence_weight)
    case = next(c for c in find_acdc_cases(ACDC) if c.patient_id == args.patient and c.phase == args.phase)
    vol = read_nifti(case.image)
    image, spacing = vol.data, np.array(vol.spacing)
    scribbles = read_nifti(case.scribble).data.astype(np.uint8)
    gt = read_nifti(case.gt).data.astype(np.uint8)
    scale = pack.side / np.array(image.shape[1:])
    boxes = Boxes(margins_net / scale.mean(), args.centroid_floor)
    data, geom, _ = prepare(image, scribbles, spacing, ranges, boxes, cfg, 0.35)
    state = TrainState.create(cfg, NAMES)
    for _ in train(data, cfg, state=state):
        pass
    probs = predict_slices(state.model, data.images)
    hard = probs.argmax(1)
    strokes = torch.as_tensor(np.asarray(data.scribbles)).long()
    fit, mean_p = [], []
    for c in range(K):
        on = strokes == c + 1
        fit.append(round(float((hard[on] == c).float().mean()), 3) if on.any() else None)
        mean_p.append(round(float(probs[:, c][on].mean()), 3) if on.any() else None)
    pred = predict_volume(state, image, geometry=geom)
    row = {
        "patient": args.patient,
        "phase": args.phase,
        "absence_weight": cfg.absence_weight,
        "centroid_weight": cfg.centroid_weight,
        "centroid_floor": args.centroid_floor,
        "steps": state.step,
        "stroke_fit": dict(zip(NAMES, fit)),
        "stroke_mean_p": dict(zip(NAMES, mean_p)),
        "soft_size": dict(zip(NAMES, probs.sum(dim=(0, 2, 3)).round().int().tolist())),
        "hard_size": dict(zip(NAMES, [int((hard == c).sum()) for c in range(K)])),
        "dice": dict(zip(NAMES, np.round(score_volume(pred, gt, K, spacing).dice, 3).tolist())),
    }
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
