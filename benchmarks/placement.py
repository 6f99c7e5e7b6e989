"""Where Predict volume should place a model trained on a crop when the image was not trained on.

For ten ACDC patients (81, 83, ..., 99) one press of the widget's defaults (300 steps) on the ED
frame's own strokes, off the clock; then two painted images the model never saw, scored after
Predict volume's defaults (islands by the strokes, dark myocardium, convex LV cavity):
the same patient's ES frame (same grid) and the next patient's ED frame (another heart, mostly
another grid). Placements: (a) ``model_box``, the trained image's crop box (only on the same
grid), (b) ``own_crop``, the crop Train would cut around the image's own strokes, (c) ``centred``,
a box of the model's side (its scale) centred on the image's strokes. Prints one JSON line per
target and the medians by target kind. Reads the NIfTI files under ../shared/data/acdc and the
packed data (for the fold's size ranges), like interactive.py.

    python benchmarks/placement.py
"""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from interactive import ACDC, NAMES, Boxes, area_ranges_mm2, centroid_margins, held_dice, load_pack, prepare

from napari_wss.config import PENALTY_WEIGHTS, Penalty, TrainConfig
from napari_wss.data import SliceGeometry, crop_around
from napari_wss.io import find_acdc_cases, read_nifti
from napari_wss.training import TrainState, calibrate_batchnorm, train

pack = load_pack()
train_vols, _ = pack.fold_volumes(5)
ranges = area_ranges_mm2(pack, train_vols)
margins_net = centroid_margins(pack, pack.slices_of(train_vols))
w = PENALTY_WEIGHTS[Penalty("quadratic")]
cfg = TrainConfig(
    mode="constrained",
    penalty="quadratic",
    absence_weight=0.3,
    penalty_warmup=100,
    steps=300,
    batch_size=4,
    lr=1e-3,
    width=16,
    size=96,
    preview_every=0,
    size_weight=w[0],
    centroid_weight=w[1],
    steps_per_epoch=20,
    seed=0,
    device="cpu",
)
cases = {(c.patient_id, c.phase): c for c in find_acdc_cases(ACDC)}


def load(p, ph):
    c = cases[(p, ph)]
    v = read_nifti(c.image)
    return (
        v.data,
        read_nifti(c.scribble).data.astype(np.uint8),
        read_nifti(c.gt).data.astype(np.uint8),
        np.array(v.spacing),
    )


def centred(geom, shape, scr):
    b = crop_around(scr)
    side = geom.box[1] - geom.box[0]
    cr, cc = (b[0] + b[1]) / 2, (b[2] + b[3]) / 2
    r0, c0 = int(np.floor(cr - side / 2 + 0.5)), int(np.floor(cc - side / 2 + 0.5))
    return SliceGeometry(shape, (r0, r0 + side, c0, c0 + side), geom.size)


pats = list(range(81, 100, 2))
rows = []
for p in pats:
    image, scr, gt, sp = load(p, "ED")
    scale = pack.side / np.array(image.shape[1:])
    data, geom, _ = prepare(image, scr, sp, ranges, Boxes(margins_net / scale.mean()), cfg, 0.35)
    state = TrainState.create(cfg, NAMES)
    for _ in train(data, cfg, state=state):
        pass
    calibrate_batchnorm(state.model, data.images)
    for target in ((p, "ES"), (p + 1, "ED")):
        im2, scr2, gt2, sp2 = load(*target)
        scale2 = pack.side / np.array(im2.shape[1:])
        _, g_train, absent2 = prepare(im2, scr2, sp2, ranges, Boxes(margins_net / scale2.mean()), cfg, 0.35)
        r = {"train": p, "target": list(target)}
        variants = {
            "model_box": geom if geom.source_shape == im2.shape[1:] else None,
            "own_crop": g_train,
            "centred": centred(geom, im2.shape[1:], scr2),
        }
        for k, g in variants.items():
            if g is None:
                continue
            r[k] = held_dice(state, im2, g, absent2, scr2, gt2, sp2)
        rows.append(r)
        print(json.dumps(r), flush=True)
for kind in ("ES", "ED"):
    sel = [r for r in rows if r["target"][1] == kind]
    print(
        kind,
        {
            k: round(float(np.median([r[k] for r in sel if k in r])), 4)
            for k in ("model_box", "own_crop", "centred")
            if any(k in r for r in sel)
        },
    )
