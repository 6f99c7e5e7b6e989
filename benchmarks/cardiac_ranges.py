"""The slice areas of the heart's structures on ACDC's expert masks: the widget's cardiac preset.

For every class the script pools the areas (mm², pixel count × in-plane spacing from the NIfTI
header) of the short-axis slices where the structure is present, both phases of every patient,
and prints the 1st and 99th percentiles and the range they give once widened by 10 % on each
side — the rule the interactive benchmarks used for a user's textbook knowledge — next to the
ranges the package ships (``napari_wss.metrics.CARDIAC_AREA_MM2``), with how many slices each
range would have cut. Exit status 1 if the shipped ranges are not the ones computed here.

    python benchmarks/cardiac_ranges.py [--acdc ../shared/data/acdc] [--patients 1-100]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from napari_wss.io import find_acdc_cases, read_nifti
from napari_wss.metrics import CARDIAC_AREA_MM2, CARDIAC_WIDEN

ACDC = Path(__file__).resolve().parents[2] / "shared" / "data" / "acdc"
LABELS = {"RV": 1, "myocardium": 2, "LV": 3}  # ACDC's label values


def slice_areas(root: Path, patients: range) -> dict[str, dict[str, list[float]]]:
    """``{phase: {class: [mm² of every slice where the class is present]}}`` over the patients."""
    out: dict[str, dict[str, list[float]]] = {}
    for case in find_acdc_cases(root):
        if case.patient_id not in patients or case.gt is None:
            continue
        gt = read_nifti(case.gt)
        px_mm2 = gt.spacing[1] * gt.spacing[2]
        labels = np.asarray(gt.data)
        per_phase = out.setdefault(case.phase or "?", {name: [] for name in LABELS})
        for name, value in LABELS.items():
            counts = (labels == value).sum(axis=(1, 2))
            per_phase[name].extend((counts[counts > 0] * px_mm2).tolist())
    return out


def ranges(areas: list[float], widen: float = CARDIAC_WIDEN) -> tuple[float, float, float, float]:
    lo, hi = np.percentile(areas, [1, 99])
    return float(lo), float(hi), float(lo * (1 - widen)), float(hi * (1 + widen))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--acdc", type=Path, default=ACDC)
    p.add_argument("--patients", default="1-100", help="first-last patient numbers (default 1-100)")
    args = p.parse_args(argv)
    first, last = (int(v) for v in args.patients.split("-"))
    by_phase = slice_areas(args.acdc, range(first, last + 1))
    if not by_phase:
        print(f"no ACDC masks under {args.acdc}", file=sys.stderr)
        return 2
    pooled = {name: [a for ph in by_phase.values() for a in ph[name]] for name in LABELS}
    print(f"ACDC patients {first}-{last}: slice areas (mm²) where the structure is present")
    print(f"{'class':<11} {'phase':<5} {'slices':>6} {'p1':>7} {'p99':>7} {'min':>7} {'max':>7}")
    for name in LABELS:
        for phase in [*sorted(by_phase), "both"]:
            a = pooled[name] if phase == "both" else by_phase[phase][name]
            lo, hi, _, _ = ranges(a)
            print(f"{name:<11} {phase:<5} {len(a):>6} {lo:>7.0f} {hi:>7.0f} {min(a):>7.0f} {max(a):>7.0f}")
    print(f"\nranges (p1, p99 of both phases, widened {CARDIAC_WIDEN:.0%}), shipped, and the slices outside them")
    ok = True
    for name in LABELS:
        a = np.asarray(pooled[name])
        _, _, lo, hi = ranges(pooled[name])
        shipped = CARDIAC_AREA_MM2[name]
        cut = int(((a < shipped[0]) | (a > shipped[1])).sum())
        same = round(lo) == shipped[0] and round(hi) == shipped[1]
        ok &= same
        print(
            f"{name:<11} computed {lo:7.0f} – {hi:7.0f}   shipped {shipped[0]:7.0f} – {shipped[1]:7.0f}"
            f"   outside {cut}/{len(a)} ({cut / len(a):.2%}){'' if same else '   DIFFERENT'}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
