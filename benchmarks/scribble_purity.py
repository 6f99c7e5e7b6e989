"""How the strokes change when the pack is shrunk to a CPU network size.

Every shrunk pixel that a stroke touches keeps the stroke (``resize_labels(scribbles=True)``), so
strokes thicken and spill onto pixels whose majority label is another class; ``--shares`` asks
for a minimum painted share instead. Per class: coverage (stroke pixels / the class's pixels in
the shrunk expert masks), purity (stroke pixels whose shrunk expert label is their class) and the
slices that keep a stroke of the class, first at the pack's own size.

    python scribble_purity.py --size 128 --shares 0,0.5,0.75
    python scribble_purity.py --edges 400   # how far the strokes lie from the myocardium's edges

One JSON line per share. Reads the pack (``acdc_pack.py``). With ``--edges N``, instead: on N
training slices of fold 5 drawn at random, the median distance (mm) from the experts' epicardial
edge (myocardium touching background) to the nearest background and myocardium stroke, and from
the endocardial edge (touching the LV) to the nearest LV and myocardium stroke.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from acdc_pack import DEFAULT_PACK, NAMES, load_pack

from napari_wss.data import resize_labels


def stroke_stats(scribbles: np.ndarray, labels: np.ndarray) -> dict[str, dict[str, float]]:
    out = {}
    for c, name in enumerate(NAMES):
        painted = scribbles == c + 1  # scribble encoding: class c is stored as c + 1
        n = int(painted.sum())
        out[name] = {
            "coverage": round(n / max(1, int((labels == c).sum())), 4),
            "purity": round(int((painted & (labels == c)).sum()) / max(1, n), 4),
            "slices": int(painted.reshape(len(painted), -1).any(axis=1).sum()),
        }
    return out


def edge_distances(pack, n: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Median over slices of each slice's median distance (mm, in-plane) from the myocardium's outer
    and inner edges to the nearest stroke of the classes on either side."""
    from scipy import ndimage

    train_vols, _ = pack.fold_volumes(5)
    picked = np.random.default_rng(0).choice(pack.slices_of(train_vols), n, replace=False)
    epi_bg, epi_myo, endo_lv, endo_myo = [], [], [], []
    for i in picked:
        gt, sc = pack.labels[i], pack.scribbles[i]
        if not (gt == 2).any() or not (sc == 1).any() or not (sc == 3).any():
            continue  # strokes are stored as class + 1: 1 background, 3 myocardium, 4 LV
        v = pack.volume[i]
        mm = pack.spacings[v][1] * max(pack.shapes[v][1:]) / pack.side  # a packed pixel, about
        outer = (gt == 2) & ndimage.binary_dilation(gt == 0)
        if not outer.any():
            continue
        to_myo = ndimage.distance_transform_edt(sc != 3)
        epi_bg.append(np.median(ndimage.distance_transform_edt(sc != 1)[outer]) * mm)
        epi_myo.append(np.median(to_myo[outer]) * mm)
        inner = (gt == 2) & ndimage.binary_dilation(gt == 3)
        if inner.any() and (sc == 4).any():
            endo_lv.append(np.median(ndimage.distance_transform_edt(sc != 4)[inner]) * mm)
            endo_myo.append(np.median(to_myo[inner]) * mm)
    return {
        "slices": len(epi_bg),
        "epicardial edge to background stroke (mm)": round(float(np.median(epi_bg)), 1),
        "epicardial edge to myocardium stroke (mm)": round(float(np.median(epi_myo)), 1),
        "endocardial edge to LV stroke (mm)": round(float(np.median(endo_lv)), 1),
        "endocardial edge to myocardium stroke (mm)": round(float(np.median(endo_myo)), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pack", default=DEFAULT_PACK)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--shares", default="0,0.5", help="minimum painted shares of a shrunk pixel (0 = any stroke)")
    ap.add_argument("--edges", type=int, default=0, help="measure the strokes' distances to the myocardium's edges")
    args = ap.parse_args()
    pack = load_pack(args.pack)
    if args.edges:
        print(json.dumps(edge_distances(pack, args.edges)))
        return
    print(json.dumps({"size": pack.side, "share": None, **stroke_stats(pack.scribbles, pack.labels)}))
    labels = resize_labels(pack.labels, (args.size, args.size))
    for share in (float(s) for s in args.shares.split(",")):
        scribbles = resize_labels(pack.scribbles, (args.size, args.size), scribbles=True, min_share=share)
        print(json.dumps({"size": args.size, "share": share, **stroke_stats(scribbles, labels)}))


if __name__ == "__main__":
    main()
