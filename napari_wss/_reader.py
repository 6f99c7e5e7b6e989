"""napari reader: NIfTI volumes (with their ACDC ``_gt`` / ``_scribble`` siblings) and PNG data.

* ``*.nii`` / ``*.nii.gz`` image → an Image layer scaled by the voxel spacing, its affine in
  ``metadata``; a ``_gt`` sibling → a "ground truth" Labels layer, a ``_scribble`` sibling → the
  "scribbles" Labels layer. A label file opened on its own becomes that Labels layer. A 4D file
  opens its first time frame (with a notification). A sibling that is damaged or lies on another
  grid (shape or affine) is left out with an error notification; the image still opens.
* ``*.png`` → one 2D layer (a file in a ``gt/`` or ``weak/`` folder opens as labels); a list of
  PNG files or a folder of PNGs → a stack; the seed's ``{img,gt,weak}`` folders (with or without
  ``train/``/``val/`` splits) → image, ground truth and scribble stacks.

``napari_get_reader`` only looks at names, returns ``None`` for anything else and never raises.
A file that turns out to be damaged gives an error notification and no layer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_wss import _layers
from napari_wss.config import DEFAULT_CLASS_NAMES
from napari_wss.errors import InputError

log = logging.getLogger(__name__)

LayerData = tuple  # (data, kwargs, layer_type) or the null sentinel (None,)
ReaderFunction = Callable[[Any], list[LayerData]]

_NULL = [(None,)]  # npe2's "read, but nothing to add" sentinel: no second error from napari


def napari_get_reader(path: str | Sequence[str]) -> ReaderFunction | None:
    """Return a reader for ``path`` when this plugin understands it, else ``None``."""
    try:
        kind = _kind(path)
    except Exception:  # a reader must never raise while napari is choosing one
        log.debug("napari-wss cannot tell what %r is", path, exc_info=True)
        return None
    return None if kind is None else read


def _kind(path: str | Sequence[str]) -> str | None:
    if isinstance(path, (list, tuple)):
        paths = [Path(p) for p in path]
        if not paths:
            return None
        kinds = {_kind(str(p)) for p in paths}
        return "list" if len(kinds) == 1 and kinds <= {"nifti", "png"} else None
    p = Path(path)
    name = p.name.lower()
    if name.endswith((".nii", ".nii.gz")) and p.is_file():
        return "nifti"
    if name.endswith(".png") and p.is_file():
        return "png"
    if p.is_dir():
        if (p / "img").is_dir() or any((d / "img").is_dir() for d in _subdirs(p)):
            return "png-dataset"
        if any(f.suffix.lower() == ".png" for f in p.iterdir() if f.is_file()):
            return "png-folder"
    return None


def _subdirs(p: Path) -> list[Path]:
    return [d for d in p.iterdir() if d.is_dir()]


def read(path: str | Sequence[str]) -> list[LayerData]:
    """Read ``path`` into layer data; a damaged file becomes a notification and no layer."""
    try:
        layers = _read(path)
    except InputError as exc:
        _show_error(str(exc))
        return _NULL
    except Exception as exc:  # unexpected: keep the traceback in the log, tell the user in one line
        log.exception("napari-wss could not read %s", path)
        _show_error(f"napari-wss could not read {path}: {type(exc).__name__}: {exc}")
        return _NULL
    return layers or _NULL


def _show_error(message: str) -> None:
    from napari.utils.notifications import show_error

    show_error(message)


def _show_info(message: str) -> None:
    from napari.utils.notifications import show_info

    show_info(message)


def _read(path: str | Sequence[str]) -> list[LayerData]:
    kind = _kind(path)
    if kind == "list":
        paths = [str(p) for p in path]  # type: ignore[union-attr]
        if all(p.lower().endswith(".png") for p in paths):
            return [_png_stack_layer(paths, name=Path(paths[0]).parent.name or "stack")]
        return [layer for p in paths for layer in _read(p)]
    p = Path(str(path))
    if kind == "nifti":
        return read_nifti_layers(p)
    if kind == "png":
        return [_png_file_layer(p)]
    if kind == "png-dataset":
        return read_png_dataset(p)
    if kind == "png-folder":
        from napari_wss import io

        stack = io.read_png_folder(p)
        return [_png_layer(stack, name=p.name, folder=p.name)]
    raise InputError(f"napari-wss cannot open {p}: expected a .nii/.nii.gz file, a .png file or a folder of PNGs.")


# --------------------------------------------------------------------------------------------
# NIfTI


def _read_volume(path: Path) -> tuple[Any, int]:
    """The file's volume and how many time frames it holds; a 4D cine gives its first frame."""
    from napari_wss import io

    frames = io.nifti_frame_count(path)
    if frames == 1:
        return io.read_nifti(path), 1
    volume = io.read_nifti(path, frame=0)
    _show_info(
        f"{path.name} is a cine of {frames} time frames; opened frame 0. The widget's 'Cine frame' opens the others."
    )
    return volume, frames


def read_nifti_layers(path: Path) -> list[LayerData]:
    """An image file and its ``_gt`` / ``_scribble`` siblings, or one label file on its own."""
    from napari_wss import io

    if io.is_acdc_label_file(path):
        volume, _ = _read_volume(path)
        stem = path.name.lower().removesuffix(".gz").removesuffix(".nii")
        role = _layers.ROLE_SCRIBBLES if stem.endswith("_scribble") else _layers.ROLE_GT
        return [_nifti_labels(volume, role, source=None)]
    volume, frames = _read_volume(path)
    return [image_layer_data(volume, path, frame=0, frames=frames), *_sibling_layers(path, volume)]


def image_layer_data(volume: Any, path: Path, *, frame: int = 0, frames: int = 1) -> LayerData:
    """An image layer for ``volume`` read from ``path`` (frame ``frame`` of ``frames`` for a cine)."""
    meta = _layers.nifti_metadata(
        _layers.ROLE_IMAGE, affine=volume.affine, spacing=volume.spacing, source_path=str(path)
    )
    name = _stem(path)
    if frames > 1:
        meta.update(frame=frame, frames=frames)
        name = f"{name} [frame {frame}]"
    return (volume.data, {"name": name, "scale": volume.spacing, "metadata": meta, "colormap": "gray"}, "image")


def _sibling_layers(path: Path, volume: Any) -> list[LayerData]:
    from napari_wss import io

    layers: list[LayerData] = []
    gt, scribble = io.acdc_siblings(path)
    for sibling, role in ((gt, _layers.ROLE_GT), (scribble, _layers.ROLE_SCRIBBLES)):
        if sibling is None:
            continue
        # A damaged or misaligned sibling is reported and left out; the image still opens.
        try:
            labels, _ = _read_volume(sibling)
            io.check_same_grid(volume, labels, role)
        except InputError as exc:
            _show_error(f"{exc} {sibling.name} was not opened.")
            continue
        layers.append(_nifti_labels(labels, role, source=str(path)))
    return layers


def _nifti_labels(volume, role: str, *, source: str | None) -> LayerData:  # type: ignore[no-untyped-def]
    meta = _layers.nifti_metadata(
        role,
        affine=volume.affine,
        spacing=volume.spacing,
        source_path=source,
        class_names=DEFAULT_CLASS_NAMES,
    )
    kwargs = _layers.labels_kwargs(role, role, scale=volume.spacing, metadata=meta)
    return (_layers.as_label_array(volume.data), kwargs, "labels")


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii", ".NII.GZ", ".NII"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


# --------------------------------------------------------------------------------------------
# PNG


def _png_role(folder: str) -> str:
    return {"gt": _layers.ROLE_GT, "weak": _layers.ROLE_SCRIBBLES}.get(folder.lower(), _layers.ROLE_IMAGE)


def _class_names_for(labels: np.ndarray) -> list[str]:
    k = max(int(labels.max()) + 1 if labels.size else 2, 2)
    return ["background", "target"] if k == 2 else ["background", *(f"class {c}" for c in range(1, k))]


def _png_layer(data: np.ndarray, *, name: str, folder: str, class_names: Sequence[str] | None = None) -> LayerData:
    role = _png_role(folder)
    if role == _layers.ROLE_IMAGE:
        meta = {"wss": _layers.wss_meta(role, stack=data.ndim == 3)}
        return (data, {"name": name, "metadata": meta, "colormap": "gray"}, "image")
    labels = _layers.as_label_array(data)
    if class_names is None:
        # Scribbles store class c as c + 1, so one more value than classes.
        dense = np.maximum(labels.astype(np.int64) - 1, 0) if role == _layers.ROLE_SCRIBBLES else labels
        class_names = _class_names_for(dense)
    kwargs = _layers.labels_kwargs(name if name not in ("gt", "weak") else role, role, class_names=class_names)
    return (labels, kwargs, "labels")


def _png_file_layer(path: Path) -> LayerData:
    from napari_wss import io

    return _png_layer(io.read_png(path), name=path.stem, folder=path.parent.name)


def _png_stack_layer(paths: Sequence[str], *, name: str) -> LayerData:
    from napari_wss import io

    return _png_layer(io.read_png_stack(paths), name=name, folder=Path(paths[0]).parent.name)


def read_png_dataset(root: Path) -> list[LayerData]:
    """The seed's ``{img,gt,weak}`` layout: one image / ground truth / scribble stack per split."""
    from napari_wss import io

    dataset = io.find_png_dataset(root)
    layers: list[LayerData] = []
    for split, samples in dataset.items():
        if not samples:
            continue
        prefix = "" if split == "all" else f"{split} "
        images = io.read_png_stack([s.image for s in samples])
        meta = {"wss": _layers.wss_meta("image", stack=True)}  # separate images, not a volume
        layers.append((images, {"name": f"{prefix}{root.name}", "metadata": meta}, "image"))
        gt = weak = None
        if all(s.gt is not None for s in samples):
            gt = io.read_png_stack([s.gt for s in samples])  # type: ignore[misc]
        if all(s.weak is not None for s in samples):
            weak = io.read_png_stack([s.weak for s in samples])  # type: ignore[misc]
        names = _class_names_for(gt) if gt is not None else None
        if gt is not None:
            layers.append(_png_layer(gt, name=f"{prefix}ground truth", folder="gt", class_names=names))
        if weak is not None:
            layers.append(_png_layer(weak, name=f"{prefix}scribbles", folder="weak", class_names=names))
    return layers
