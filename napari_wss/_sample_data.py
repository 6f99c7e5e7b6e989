"""napari sample data, generated in memory with fixed seeds (napari_wss.toy).

* TOY: ten 256 x 256 images of a bright disc inside a grey disc with heavy noise; the weak label
  (a small disc at the centre) is the scribble layer. The class table gets the seed's size bounds
  (the target's true area ± 10 %), since the background is never scribbled.
* TOY2: ten images with a target and a distractor disc; the weak label is a point on the target.
* Cardiac phantom: an 8-slice short-axis MRI-like volume (RV, myocardium, LV) with scribbles in
  every structure and its ground truth, at a 1.5 mm in-plane spacing.
"""

from __future__ import annotations

import numpy as np

from napari_wss import _layers, toy
from napari_wss.config import ClassPrior

_TOY_CLASSES = ("background", "target")
_N_IMAGES = 10


def _toy_layers(ts: toy.ToySet, name: str) -> list[tuple]:
    area = float(ts.labels[0].sum())
    total = float(ts.labels[0].size)
    priors = [
        ClassPrior("background", (total - 1.1 * area, total - 0.9 * area)).to_dict(),
        ClassPrior("target", (0.9 * area, 1.1 * area)).to_dict(),
    ]
    image_meta = {"wss": _layers.wss_meta(_layers.ROLE_IMAGE)}
    return [
        (ts.images, {"name": name, "metadata": image_meta, "colormap": "gray"}, "image"),
        (ts.labels, _layers.labels_kwargs("ground truth", _layers.ROLE_GT, class_names=_TOY_CLASSES), "labels"),
        (
            ts.scribbles,
            _layers.labels_kwargs("scribbles", _layers.ROLE_SCRIBBLES, class_names=_TOY_CLASSES, priors=priors),
            "labels",
        ),
    ]


def make_toy_sample() -> list[tuple]:
    """The seed's TOY set (10 images) with its weak labels as scribbles."""
    return _toy_layers(toy.make_toy(_N_IMAGES, seed=0), "TOY")


def make_toy2_sample() -> list[tuple]:
    """The seed's TOY2 set (10 images) with its point-like weak labels as scribbles."""
    return _toy_layers(toy.make_toy2(_N_IMAGES, seed=0), "TOY2")


def make_phantom_sample() -> list[tuple]:
    """The synthetic cardiac phantom: image, ground truth and scribbles on a 1.5 mm grid."""
    ph = toy.cardiac_phantom(n_slices=8, size=128, seed=0)

    def meta(role: str) -> dict:
        return _layers.nifti_metadata(
            role, affine=ph.affine, spacing=ph.spacing, source_path=None, class_names=ph.class_names
        )

    return [
        (
            ph.image,
            {"name": "cardiac phantom", "scale": ph.spacing, "metadata": meta(_layers.ROLE_IMAGE), "colormap": "gray"},
            "image",
        ),
        (
            ph.labels,
            _layers.labels_kwargs(
                "ground truth",
                _layers.ROLE_GT,
                class_names=ph.class_names,
                scale=ph.spacing,
                metadata=meta(_layers.ROLE_GT),
            ),
            "labels",
        ),
        (
            np.ascontiguousarray(ph.scribbles),
            _layers.labels_kwargs(
                "scribbles",
                _layers.ROLE_SCRIBBLES,
                class_names=ph.class_names,
                scale=ph.spacing,
                metadata=meta(_layers.ROLE_SCRIBBLES),
            ),
            "labels",
        ),
    ]
