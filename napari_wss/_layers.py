"""Layer conventions shared by the reader, the sample data and the widget (numpy only, no Qt).

Layers this plugin creates carry a small ``metadata["wss"]`` dict saying what they are, so the
widget can pick them without guessing from names:

* ``role``: ``"image"``, ``"scribbles"``, ``"ground truth"`` or ``"prediction"``;
* ``class_names`` (optional): the classes the labels use, e.g. ``["background", "target"]``;
* ``priors`` (optional): ``ClassPrior.to_dict()`` entries in source pixels (the sample data's
  size bounds), adopted by the class table when the layer is picked;
* ``stack`` (optional, True): the slices are separate 2D images (a PNG folder), not a volume.

NIfTI layers also carry ``metadata["affine"]`` (4 x 4, nibabel's (x, y, z) order), ``"spacing"``
``(dz, dy, dx)`` in mm and ``"source_path"`` (the image file), so the writer can put labels back on
the image's grid and refuse to write over the image itself. An image that is one frame of a 4D
cine also carries ``"frame"`` (0-based) and ``"frames"`` (how many the file holds).

Prediction layers the widget makes also carry ``metadata["predicted_from"]`` (the image's layer
name) and, once the user paints on them, ``metadata["edited"] = True``: the widget then never
writes into them again (new predictions go to a layer of their own).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from napari_wss.config import DEFAULT_CLASS_NAMES

ROLE_IMAGE = "image"
ROLE_SCRIBBLES = "scribbles"
ROLE_GT = "ground truth"
ROLE_PREDICTION = "prediction"
PREDICTED_FROM = "predicted_from"
EDITED = "edited"


def watch_edits(layer: Any) -> None:
    """Mark a labels layer ``metadata["edited"]`` when the user paints, fills or erases on it (the
    widget's own writes go through ``layer.data`` and emit no paint event)."""
    layer.events.paint.connect(lambda _event, lay=layer: lay.metadata.__setitem__(EDITED, True))


# background, RV, myocardium, LV, then more for added classes.
DEFAULT_COLORS = (
    "#f2c81d",
    "#3b82f6",
    "#22c55e",
    "#ef4444",
    "#a855f7",
    "#06b6d4",
    "#f97316",
    "#ec4899",
    "#84cc16",
    "#64748b",
)
TRANSPARENT = "transparent"


def class_color(index: int) -> str:
    """The default colour of class ``index`` (cycles after ten classes)."""
    return DEFAULT_COLORS[index % len(DEFAULT_COLORS)]


def default_colors(n: int) -> list[str]:
    return [class_color(i) for i in range(n)]


def scribble_colormap(colors: Sequence[str]) -> dict[int | None, str]:
    """Scribble encoding: 0 = not annotated (transparent), class ``c`` painted as ``c + 1``."""
    cmap: dict[int | None, str] = {None: TRANSPARENT, 0: TRANSPARENT}
    cmap.update({c + 1: color for c, color in enumerate(colors)})
    return cmap


def label_colormap(colors: Sequence[str]) -> dict[int | None, str]:
    """Dense class labels: class 0 (background) transparent so the image shows through."""
    cmap: dict[int | None, str] = {None: TRANSPARENT, 0: TRANSPARENT}
    cmap.update({c: color for c, color in enumerate(colors) if c > 0})
    return cmap


def wss_meta(
    role: str,
    *,
    class_names: Sequence[str] | None = None,
    priors: Sequence[Mapping] | None = None,
    stack: bool = False,
) -> dict:
    meta: dict[str, Any] = {"role": role}
    if stack:
        meta["stack"] = True
    if class_names is not None:
        meta["class_names"] = list(class_names)
    if priors is not None:
        meta["priors"] = [dict(p) for p in priors]
    return meta


def nifti_metadata(
    role: str,
    *,
    affine: np.ndarray | None,
    spacing: Sequence[float] | None,
    source_path: str | None,
    class_names: Sequence[str] | None = None,
    priors: Sequence[Mapping] | None = None,
) -> dict:
    """``metadata`` for a layer on a NIfTI grid (affine, spacing and the image file it belongs to)."""
    meta: dict[str, Any] = {"wss": wss_meta(role, class_names=class_names, priors=priors)}
    if affine is not None:
        meta["affine"] = np.asarray(affine, dtype=float)
    if spacing is not None:
        meta["spacing"] = tuple(float(s) for s in spacing)
    if source_path is not None:
        meta["source_path"] = str(source_path)
    return meta


def file_affine(layer: Any) -> Any:
    """The NIfTI affine a layer was read with (``metadata["affine"]``), or None."""
    meta = getattr(layer, "metadata", None)
    return meta.get("affine") if isinstance(meta, Mapping) else None


def check_segmentable(image: Any) -> None:
    """Refuse, before anything is made, an image layer the network cannot segment: RGB,
    multiscale, or other than a 2D image or a 3D (Z, Y, X) volume (a 4D cine: one frame, please)."""
    from napari_wss._session import as_volume
    from napari_wss.errors import InputError

    if image.rgb or image.multiscale:
        kind = "an RGB image" if image.rgb else "a multiscale image"
        raise InputError(f"'{image.name}' is {kind}: open a greyscale, single-resolution image")
    as_volume(image.data, f"image '{image.name}'")


def cine_frame(metadata: Mapping | None) -> tuple[int, int] | None:
    """(frame, frames) of a layer that shows one frame of a 4D cine file, else None."""
    if not isinstance(metadata, Mapping) or "frames" not in metadata or "source_path" not in metadata:
        return None
    return int(metadata.get("frame", 0)), int(metadata["frames"])


def is_stack(metadata: Mapping | None) -> bool:
    """Whether a layer's slices are separate 2D images (``wss`` metadata ``stack``)."""
    wss = metadata.get("wss") if isinstance(metadata, Mapping) else None
    return isinstance(wss, Mapping) and wss.get("stack") is True


def role_of(metadata: Mapping | None) -> str | None:
    """The ``wss`` role stored in a layer's metadata, or None."""
    if not isinstance(metadata, Mapping):
        return None
    wss = metadata.get("wss")
    return wss.get("role") if isinstance(wss, Mapping) else None


def labels_kwargs(
    name: str,
    role: str,
    *,
    class_names: Sequence[str] = DEFAULT_CLASS_NAMES,
    scale: Sequence[float] | None = None,
    metadata: dict | None = None,
    priors: Sequence[Mapping] | None = None,
) -> dict[str, Any]:
    """Keyword arguments of a Labels layer with this plugin's colours for ``role``."""
    colors = default_colors(len(class_names))
    meta = dict(metadata or {})
    meta.setdefault("wss", wss_meta(role, class_names=class_names, priors=priors))
    kwargs: dict[str, Any] = {
        "name": name,
        "metadata": meta,
        "colormap": scribble_colormap(colors) if role == ROLE_SCRIBBLES else label_colormap(colors),
    }
    if role == ROLE_GT:
        # Hidden at first: the prediction is drawn on the same pixels; toggle the eye to compare.
        kwargs.update(opacity=0.5, visible=False)
    elif role == ROLE_PREDICTION:
        kwargs.update(opacity=0.45)
    if scale is not None:
        kwargs["scale"] = tuple(float(s) for s in scale)
    return kwargs


def as_label_array(data: np.ndarray) -> np.ndarray:
    """Integer label data for napari (floats holding whole numbers become uint8/int32)."""
    arr = np.asarray(data)
    if arr.dtype.kind in "iub":
        return arr.astype(np.uint8) if arr.dtype == bool else arr
    if arr.size and np.all(np.isfinite(arr)) and np.array_equal(arr, np.round(arr)):
        lo, hi = float(arr.min()), float(arr.max())
        return arr.astype(np.uint8 if lo >= 0 and hi < 256 else np.int32)
    return arr.astype(np.int32)
