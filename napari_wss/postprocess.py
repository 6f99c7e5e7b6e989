"""Post-processing of predicted label maps.

A network trained from scribbles paints stray islands of a class away from the structure (on
ACDC after short training, foreground on most of the slices beyond the heart's ends). Anatomical
structures such as the ventricles and the myocardium are each one connected object, so a common
remedy in cardiac segmentation is to keep, per class, only the largest connected component and
hand the rest to the background. Where the user's strokes are at hand (the volume they painted),
the object their strokes of a class touch is kept instead, also when a stray outgrows it.
Whether it helps is measured (benchmarks/interactive.py, benchmarks/acdc_quality.py), not assumed:
it is an option, and it is wrong for classes with many instances (cells, nuclei).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

LARGEST_COMPONENT = ("volume", "slice")
"""How :func:`keep_largest_component` connects voxels: across slices, or within each slice."""


def keep_largest_component(
    labels: np.ndarray,
    num_classes: int,
    *,
    per_slice: bool = False,
    background: int = 0,
    scribbles: np.ndarray | None = None,
) -> np.ndarray:
    """Keep only the largest connected component of every class; the rest becomes ``background``.

    Components are connected in the label map's own dimensions — in 3D across slices too — with
    full (8 / 26) connectivity, so a structure that touches its neighbour slice only diagonally
    (thick, gapped cine slices) stays one object. ``per_slice`` treats each slice of a 3D map on
    its own (a stack of unrelated 2D images). The input is not modified.

    With ``scribbles`` (the user's strokes on the same grid), a class keeps instead every component
    that holds one of its own strokes: the object the user marked, also where a larger stray of the
    class lies elsewhere (on ACDC a blood pool beside the heart can outgrow the left ventricle).
    A class none of whose strokes falls inside its prediction keeps its largest component.

    Args:
        labels: integer label map, 2D ``(Y, X)`` or 3D ``(Z, Y, X)``.
        num_classes: classes ``0 .. num_classes - 1``; ``background`` is left as it is.
        per_slice: components within each 2D slice of a 3D map instead of across slices.
        background: the class that receives the removed voxels.
        scribbles: optional strokes shaped like ``labels``, class ``c`` painted as ``c + 1``
            and 0 where nothing is painted (the engine's scribble encoding).

    Returns:
        A new label map of the same shape and dtype.
    """
    lab = np.asarray(labels)
    if lab.ndim not in (2, 3):
        raise ValueError(f"expected a 2D or 3D label map, got shape {lab.shape}")
    marks = None if scribbles is None else np.asarray(scribbles)
    if marks is not None and marks.shape != lab.shape:
        raise ValueError(f"scribbles have shape {marks.shape} but the labels {lab.shape}")
    if per_slice and lab.ndim == 3:
        return np.stack(
            [
                keep_largest_component(
                    s, num_classes, background=background, scribbles=None if marks is None else marks[z]
                )
                for z, s in enumerate(lab)
            ]
        )
    out = lab.copy()
    structure = ndimage.generate_binary_structure(lab.ndim, lab.ndim)
    for c in range(num_classes):
        if c == background:
            continue
        components, n = ndimage.label(lab == c, structure=structure)
        if n <= 1:
            continue
        marked = np.unique(components[marks == c + 1]) if marks is not None else np.zeros(0, int)
        marked = marked[marked != 0]
        if marked.size:
            keep = np.isin(components, marked)
        else:
            sizes = np.bincount(components.ravel())
            sizes[0] = 0
            keep = components == sizes.argmax()
        out[(components != 0) & ~keep] = background
    return out
