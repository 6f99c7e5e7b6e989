"""napari writers: a Labels layer → NIfTI on its image's grid, or → PNG.

The NIfTI writer takes the affine and spacing from the layer's ``metadata`` (set by the reader and
copied by the widget onto the prediction layer); without them it builds a diagonal affine from the
layer's ``scale``. It never writes over the image the labels were drawn on (``source_path``), and
a prediction never over that image's ``_gt`` / ``_scribble`` files.
Replacing any other existing file is allowed: napari's save dialog has already asked.

Problems become an error notification and an empty list (nothing written), never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_wss.errors import InputError

log = logging.getLogger(__name__)


def _notify(message: str) -> None:
    from napari.utils.notifications import show_error

    show_error(message)


def _metadata(meta: Mapping[str, Any]) -> Mapping[str, Any]:
    md = meta.get("metadata") or {}
    return md if isinstance(md, Mapping) else {}


def _spacing(meta: Mapping[str, Any], ndim: int) -> tuple[float, float, float]:
    md = _metadata(meta)
    if md.get("spacing") is not None:
        dz, dy, dx = (float(s) for s in md["spacing"])
        return dz, dy, dx
    scale = [float(s) for s in (meta.get("scale") if meta.get("scale") is not None else [1.0] * ndim)]
    scale = [1.0] * (3 - len(scale)) + scale[-3:]
    return scale[0], scale[1], scale[2]


def _affine(meta: Mapping[str, Any], spacing: tuple[float, float, float]) -> np.ndarray:
    affine = _metadata(meta).get("affine")
    if affine is not None:
        arr = np.asarray(affine, dtype=float)
        if arr.shape == (4, 4):
            return arr
        log.warning("ignoring an affine of shape %s in the layer metadata", arr.shape)
    dz, dy, dx = spacing
    return np.diag([dx, dy, dz, 1.0])


def write_labels_nifti(path: str, data: Any, meta: dict) -> list[str]:
    """Write a Labels layer as ``.nii.gz`` / ``.nii`` on its source image's affine."""
    from napari_wss import io

    try:
        target = Path(path)
        if not target.name.lower().endswith((".nii", ".nii.gz")):
            target = target.with_name(target.name + ".nii.gz")
        arr = np.asarray(data)
        spacing = _spacing(meta, arr.ndim)
        _refuse_user_labels(target, meta)
        written = io.write_nifti(
            target,
            arr,
            _affine(meta, spacing),
            spacing=spacing,
            source=_metadata(meta).get("source_path"),
            overwrite=True,
            frame_step=float(_metadata(meta).get("frame_step") or 0.0),  # a cine's time step, kept
        )
    except InputError as exc:
        _notify(str(exc))
        return []
    return [str(written)]


def _refuse_user_labels(target: Path, meta: Mapping[str, Any]) -> None:
    """A prediction is never written over the scribbles or ground truth beside its image.

    (Saving the scribble layer itself to its own file stays allowed: that is the user editing it.)
    """
    from napari_wss import _layers, io

    md = _metadata(meta)
    source = md.get("source_path")
    if source is None or _layers.role_of(md) != _layers.ROLE_PREDICTION:
        return
    for sibling in io.acdc_siblings(source):
        if sibling is not None and sibling.resolve() == target.resolve():
            raise InputError(
                f"Refusing to write the prediction over {sibling.name}, the ground truth or scribbles of "
                f"{Path(source).name}; choose another file name."
            )


def write_labels_png(path: str, data: Any, meta: dict) -> list[str]:
    """Write a 2D Labels layer as one PNG, a (Z, Y, X) one as ``name_000.png``, ``name_001.png``, ..."""
    from napari_wss import io

    try:
        target = Path(path)
        if target.suffix.lower() != ".png":
            target = target.with_name(target.name + ".png")
        arr = np.asarray(data)
        if arr.ndim == 3 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim == 2:
            return [str(io.write_png(target, arr, overwrite=True))]
        if arr.ndim != 3:
            raise InputError(f"Cannot write {target}: expected 2D or (Z, Y, X) labels, got shape {arr.shape}.")
        return [str(p) for p in _write_png_slices(target, arr)]
    except InputError as exc:
        _notify(str(exc))
        return []


def _write_png_slices(target: Path, arr: np.ndarray) -> Sequence[Path]:
    from napari_wss import io

    width = max(3, len(str(arr.shape[0] - 1)))
    return [
        io.write_png(target.with_name(f"{target.stem}_{z:0{width}d}.png"), arr[z], overwrite=True)
        for z in range(arr.shape[0])
    ]
