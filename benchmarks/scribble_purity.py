"""How the strokes change when the pack is shrunk to a CPU network size.

Every shrunk pixel that a stroke touches keeps the stroke (``resize_labels(scribbles=True)``), so
strokes thicken and spill onto pixels whose majority label is another class; ``--shares`` asks
for a minimum painted share instead. Per class: coverage (stroke pixels / the class's pixels in
the shrunk expert masks), purity (stroke pixels whose shrunk expert label is their class) and the
slices that keep a stroke of the class, first at the pack's own size.

    python scribble_purity.py --size 128 --shares 0,0.5,0.75

One JSON line per share. Reads the pack (``acdc_pack.py``).
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pack", default=DEFAULT_PACK)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--shares", default="0,0.5", help="minimum painted shares of a shrunk pixel (0 = any stroke)")
    args = ap.parse_args()
    pack = load_pack(args.pack)
    print(json.dumps({"size": pack.side, "share": None, **stroke_stats(pack.scribbles, pack.labels)}))
    labels = resize_labels(pack.labels, (args.size, args.size))
    for share in (float(s) for s in args.shares.split(",")):
        scribbles = resize_labels(pack.scribbles, (args.size, args.size), scribbles=True, min_share=share)
        print(json.dumps({"size": args.size, "share": share, **stroke_stats(scribbles, labels)}))


if __name__ == "__main__":
    main()
