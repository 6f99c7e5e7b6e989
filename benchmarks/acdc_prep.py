"""Pack the ACDC training set into one compact file for benchmarks (and for the GPU machine).

Every volume is normalised (robust percentiles, as the engine does), every slice resized to
S × S: images as uint8 stored as JPEG at quality 95 (mean absolute error 0.9 grey levels of 255,
well below the MRI noise; lossless storage would be 86 MiB, over the 64 MiB that can travel to a
GPU machine), dense masks by majority vote, scribbles keeping thin strokes. The expert masks are
also kept on their source grid (lossless) so volumes are scored in 3D at full resolution.

    python benchmarks/acdc_prep.py --size 256 --out .carry/acdc256.npz
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
from PIL import Image

from napari_wss.data import Normalization, SliceGeometry
from napari_wss.io import find_acdc_cases, read_nifti

ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "acdc"


def _jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=ROOT)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--out", type=Path, default=Path(".carry/acdc256.npz"))
    args = ap.parse_args()
    start = time.perf_counter()
    cases = find_acdc_cases(args.root)
    norm = Normalization()
    images, labels, scribbles, vol_of_slice = [], [], [], []
    gt_flat, shapes, spacings, patients, frames, phases = [], [], [], [], [], []
    for v, case in enumerate(cases):
        img = read_nifti(case.image)
        gt = read_nifti(case.gt).data.astype(np.uint8)
        scr = read_nifti(case.scribble).data.astype(np.uint8)
        geom = SliceGeometry.full(img.data.shape[1:], args.size)
        images.append(np.round(geom.image_to_network(norm(img.data)) * 255).clip(0, 255).astype(np.uint8))
        labels.append(geom.labels_to_network(gt))
        scribbles.append(geom.scribbles_to_network(scr))
        vol_of_slice.append(np.full(img.data.shape[0], v, dtype=np.int16))
        gt_flat.append(gt.ravel())
        shapes.append(img.data.shape)
        spacings.append(img.spacing)
        patients.append(case.patient_id)
        frames.append(case.frame)
        phases.append(case.phase)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    jpegs = [_jpeg(s) for s in np.concatenate(images)]
    np.savez_compressed(
        args.out,
        jpeg=np.frombuffer(b"".join(jpegs), dtype=np.uint8),
        jpeg_offsets=np.cumsum([0] + [len(j) for j in jpegs]).astype(np.int64),
        labels=np.concatenate(labels),
        scribbles=np.concatenate(scribbles),
        volume=np.concatenate(vol_of_slice),
        gt_flat=np.concatenate(gt_flat),
        shapes=np.array(shapes, dtype=np.int32),
        spacings=np.array(spacings, dtype=np.float32),
        patients=np.array(patients, dtype=np.int16),
        frames=np.array(frames, dtype=np.int16),
        phases=np.array(phases),
    )
    mib = args.out.stat().st_size / 2**20
    print(
        f"{len(cases)} volumes, {sum(s[0] for s in shapes)} slices -> {args.out} ({mib:.1f} MiB) "
        f"in {time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
