"""Files <-> numpy: NIfTI volumes with their affine and spacing, PNG files and folders, dataset layouts.

Every array leaves this module in napari order: a volume is ``(Z, Y, X)`` and its spacing is
``(dz, dy, dx)`` in millimetres. nibabel stores voxels as ``(x, y, z)``; the transpose happens here
and nowhere else. Scribbles keep the project's encoding (0 = not annotated, class ``c`` painted as
``c + 1``), which is also the encoding of the ACDC ``*_scribble.nii.gz`` files.

Anything a user can get wrong (a missing, truncated or 4D file, a folder with the wrong layout, a
write onto the source image) raises :class:`~napari_wss.errors.InputError` with one plain sentence
that names the file. This module imports numpy, nibabel, scikit-image and the standard library only,
so the napari reader stays fast to import.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import struct
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

from napari_wss.errors import InputError

logger = logging.getLogger(__name__)

__all__ = [
    "AcdcCase",
    "PngSample",
    "Volume",
    "acdc_siblings",
    "affines_match",
    "check_same_grid",
    "find_acdc_cases",
    "find_png_dataset",
    "is_acdc_label_file",
    "mm2_to_pixels",
    "natural_sort_key",
    "nifti_frame_count",
    "pixels_to_mm2",
    "read_nifti",
    "read_nifti_frames",
    "read_png",
    "read_png_folder",
    "read_png_stack",
    "write_nifti",
    "write_png",
]

NIFTI_SUFFIXES = (".nii.gz", ".nii")
LABEL_SUFFIXES = ("_gt", "_scribble")

# What nibabel, gzip and zlib raise on a missing, truncated or foreign file.
_READ_ERRORS = (
    ImageFileError,
    HeaderDataError,
    OSError,  # includes gzip.BadGzipFile and FileNotFoundError
    EOFError,
    zlib.error,
    struct.error,
    ValueError,
    MemoryError,  # a garbage header can claim an absurd shape
)

_ACDC_IMAGE_RE = re.compile(r"^(patient\d+)_frame(\d+)\.nii(\.gz)?$")
_PATIENT_DIR_RE = re.compile(r"^patient\d+$")


# --------------------------------------------------------------------------------------------
# NIfTI


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D image or label volume in napari order.

    ``eq=False``: two volumes compare by identity, because element-wise array equality has no
    single truth value; compare ``data`` with :func:`numpy.array_equal` instead.

    Attributes:
        data: Voxels, shape ``(Z, Y, X)``. A 2D file gives ``Z = 1``.
        spacing: Voxel size ``(dz, dy, dx)`` in mm, from the header's pixdim.
        affine: The file's 4 x 4 voxel-to-world matrix, in nibabel's ``(x, y, z)`` index order,
            kept as is so labels can be written back on the same grid.
        path: The file it was read from, if any.
    """

    data: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray
    path: Path | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(Z, Y, X)``."""
        z, y, x = self.data.shape
        return int(z), int(y), int(x)


def _nifti_suffix(path: Path) -> str | None:
    name = path.name.lower()
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return None


def _split_nifti_name(path: Path) -> tuple[str, str]:
    """``patient001_frame01.nii.gz`` -> (``patient001_frame01``, ``.nii.gz``)."""
    suffix = _nifti_suffix(path)
    if suffix is None:
        return path.stem, path.suffix
    return path.name[: -len(suffix)], path.name[-len(suffix) :]


def _spacing_from_header(img: nib.spatialimages.SpatialImage) -> tuple[float, float, float]:
    """(dz, dy, dx) from the header's zooms; a missing or non-positive pixdim counts as 1 mm."""
    zooms = [float(z) for z in img.header.get_zooms()[:3]]
    zooms += [1.0] * (3 - len(zooms))
    dx, dy, dz = (z if np.isfinite(z) and z > 0 else 1.0 for z in zooms)
    return dz, dy, dx


def read_nifti(path: str | os.PathLike[str], *, frame: int | None = None) -> Volume:
    """Read a NIfTI file (``.nii`` or ``.nii.gz``) into a ``(Z, Y, X)`` volume.

    The data is read eagerly (no memory map), so a truncated file fails here rather than later.
    Label files (``*_gt``, ``*_scribble``) keep the file's integer dtype.

    Args:
        path: The file.
        frame: For a 4D ``(x, y, z, t)`` file, the time point to take (0-based). Must be ``None``
            for 2D and 3D files.

    Returns:
        The volume with ``data`` ``(Z, Y, X)``, ``spacing`` ``(dz, dy, dx)`` and the file's affine.

    Raises:
        InputError: The file is missing, unreadable, not NIfTI, 4D without ``frame``, has more than
            four dimensions, or ``frame`` is out of range.
    """
    path = Path(path)
    img, shape = _open_nifti(path)
    ndim = len(shape)
    if ndim == 4:
        n_frames = shape[3]
        if frame is None:
            raise InputError(f"{path} is 4D with {n_frames} time frames; pick one with frame=0..{n_frames - 1}.")
        if not 0 <= frame < n_frames:
            raise InputError(
                f"frame {frame} is out of range for {path}, which has {n_frames} frames (0..{n_frames - 1})."
            )
    elif frame is not None:
        raise InputError(f"frame={frame} was given but {path} is {ndim}D, not 4D; leave frame unset.")
    raw = _read_voxels(path, img, shape if ndim < 4 else None, frame)
    return _volume(path, img, raw)


def nifti_frame_count(path: str | os.PathLike[str]) -> int:
    """How many time frames a NIfTI file holds: the fourth dimension of a 4D file, else 1. Reads
    the header only.

    Raises:
        InputError: As :func:`read_nifti`, for a file it would refuse before reading voxels.
    """
    _, shape = _open_nifti(Path(path))
    return shape[3] if len(shape) == 4 else 1


def read_nifti_frames(path: str | os.PathLike[str]) -> tuple[list[Volume], float]:
    """Read every time frame of a 4D (cine) NIfTI file, decompressing it once.

    Returns:
        One :class:`Volume` per frame (all on the file's grid) and the time between frames from
        the header's fourth pixdim (in the file's time unit; 0 when the header gives none).

    Raises:
        InputError: As :func:`read_nifti`, and for a file that is not 4D.
    """
    path = Path(path)
    img, shape = _open_nifti(path)
    if len(shape) != 4:
        raise InputError(f"{path} is {len(shape)}D, not a 4D cine; read it as one volume instead.")
    raw = _read_voxels(path, img, shape, None)
    zooms = img.header.get_zooms()
    step = float(zooms[3]) if len(zooms) > 3 and np.isfinite(zooms[3]) and zooms[3] > 0 else 0.0
    return [_volume(path, img, raw[..., t]) for t in range(shape[3])], step


def _open_nifti(path: Path) -> tuple[nib.spatialimages.SpatialImage, tuple[int, ...]]:
    """The file's image (voxels not read yet) and its shape without trailing singleton dimensions,
    after refusing folders, missing, unreadable, over-5D and truncated files."""
    if path.is_dir():
        raise InputError(f"{path} is a folder; expected a NIfTI file (.nii or .nii.gz).")
    if not path.is_file():
        raise InputError(f"NIfTI file not found: {path}.")
    try:
        img = nib.load(str(path), mmap=False)
        shape = tuple(int(s) for s in img.shape)
    except _READ_ERRORS as exc:
        raise InputError(f"Cannot read {path} as NIfTI ({_reason(exc)}).") from exc

    # Trailing singleton dimensions (x, y, z, 1) are common and carry nothing.
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) > 4:
        raise InputError(f"{path} has {len(shape)} dimensions {shape}; expected a 2D, 3D or 4D NIfTI file.")
    _check_declared_size(path, img)
    return img, shape


def _read_voxels(
    path: Path, img: nib.spatialimages.SpatialImage, shape: tuple[int, ...] | None, frame: int | None
) -> np.ndarray:
    """The voxels in the file's (x, y, z[, t]) order: all of them reshaped to ``shape``, or one
    frame of a 4D file (``shape`` None)."""
    try:
        if frame is not None:
            return np.asarray(img.dataobj[:, :, :, frame]).reshape(img.shape[:3])
        return np.asarray(img.dataobj).reshape(shape)
    except _READ_ERRORS as exc:
        raise InputError(
            f"Cannot read the voxels of {path}; the file looks truncated or corrupt ({_reason(exc)})."
        ) from exc


def _volume(path: Path, img: nib.spatialimages.SpatialImage, data: np.ndarray) -> Volume:
    """``data`` in (x, y[, z]) order as a napari-order :class:`Volume` with the file's grid."""
    if is_acdc_label_file(path):
        data = _keep_label_dtype(data, img.get_data_dtype())
    if data.ndim == 2:
        data = data[:, :, np.newaxis]
    data = np.ascontiguousarray(data.transpose(2, 1, 0))
    affine = np.array(img.affine, dtype=float)
    return Volume(data=data, spacing=_spacing_from_header(img), affine=affine, path=path)


AFFINE_TOLERANCE_MM = 1e-3
"""Affines closer than this (in mm, entry by entry) describe the same grid; float32 headers round
positions of a few hundred mm at about 1e-5 mm."""


def affines_match(a: np.ndarray, b: np.ndarray, *, tol: float = AFFINE_TOLERANCE_MM) -> bool:
    """Whether two 4 x 4 voxel-to-world matrices put the voxels at the same places."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape == (4, 4) and bool(np.allclose(a, b, rtol=0.0, atol=tol))


def check_same_grid(image: Volume, other: Volume, what: str = "labels") -> None:
    """Raise unless ``other`` (scribbles, labels) lies on ``image``'s voxel grid: same shape and affine.

    A label file of the right shape but another affine is flipped, shifted or resampled relative
    to the image; training on it would teach the network the wrong pixels, so it is refused.

    Raises:
        InputError: the shapes or the affines differ.
    """
    name = other.path.name if other.path is not None else what
    image_name = image.path.name if image.path is not None else "the image"
    if other.shape != image.shape:
        raise InputError(f"{what} {name} has shape {other.shape} but the image {image_name} has shape {image.shape}.")
    if not affines_match(image.affine, other.affine):
        moved = float(np.abs(np.asarray(image.affine) - np.asarray(other.affine)).max())
        raise InputError(
            f"{what} {name} lies on another grid than the image {image_name} (their affines differ by up to "
            f"{moved:.3g}); resample it onto the image or save it with the image's header."
        )


_DEFLATE_MAX_RATIO = 1100
"""deflate (gzip) cannot compress better than about 1032 : 1, so a .nii.gz whose header declares
more voxel bytes than this many times its own size is damaged: refuse it before allocating."""


def _physical_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def _check_declared_size(path: Path, img: nib.spatialimages.SpatialImage) -> None:
    """Refuse a header whose voxels cannot be in the file, before nibabel allocates room for them.

    A damaged header can declare a volume of many gigabytes; nibabel would allocate all of it
    and only then find the file short (18 GB and half a minute for a 200-byte file).
    """
    try:
        n_bytes = int(np.prod([int(s) for s in img.shape], dtype=np.float64)) * np.dtype(img.get_data_dtype()).itemsize
        offset = int(img.header.get_data_offset())
        size = path.stat().st_size
    except (*_READ_ERRORS, TypeError, OverflowError) as exc:
        raise InputError(f"Cannot read {path} as NIfTI ({_reason(exc)}).") from exc
    compressed = path.name.lower().endswith(".gz")
    room = size * _DEFLATE_MAX_RATIO if compressed else size - offset
    if n_bytes > room:
        held = f"{size} bytes compressed" if compressed else f"{max(size - offset, 0)} bytes of voxels"
        raise InputError(
            f"Cannot read the voxels of {path}; the file looks truncated or corrupt (its header declares "
            f"{n_bytes / 2**20:.4g} MiB of voxels, the file holds {held})."
        )
    memory = _physical_memory()
    if memory is not None and n_bytes > memory:
        raise InputError(
            f"{path} declares {n_bytes / 2**30:.3g} GiB of voxels, more than this computer's memory "
            f"({memory / 2**30:.3g} GiB); crop or resample it first."
        )


def _keep_label_dtype(data: np.ndarray, file_dtype: np.dtype) -> np.ndarray:
    """Undo nibabel's float promotion of scaled integer labels when the values are integral."""
    file_dtype = np.dtype(file_dtype)
    if data.dtype == file_dtype or file_dtype.kind not in "iub" or data.dtype.kind != "f":
        return data
    info = np.iinfo(file_dtype) if file_dtype.kind in "iu" else None
    if not np.all(np.isfinite(data)) or not np.array_equal(data, np.round(data)):
        return data
    if info is not None and data.size and (data.min() < info.min or data.max() > info.max):
        return data
    return data.astype(file_dtype)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def _label_dtype(data: np.ndarray) -> np.dtype:
    """uint8 when all values fit 0..255, else int16 (int32 beyond int16's range); floats stay float32."""
    if data.dtype.kind == "f":
        return np.dtype(np.float32)
    if data.size == 0:
        return np.dtype(np.uint8)
    lo, hi = int(data.min()), int(data.max())
    if lo >= 0 and hi < 256:
        return np.dtype(np.uint8)
    if np.iinfo(np.int16).min <= lo and hi <= np.iinfo(np.int16).max:
        return np.dtype(np.int16)
    return np.dtype(np.int32)


def _check_target(path: Path, *, source: str | os.PathLike[str] | None, overwrite: bool, what: str) -> None:
    if source is not None and Path(source).resolve() == path.resolve():
        raise InputError(f"Refusing to write {what} onto the source image {path}; choose another file name.")
    if path.exists() and not overwrite:
        raise InputError(f"{path} already exists; choose another name or allow overwriting.")
    if path.is_dir():
        raise InputError(f"{path} is a folder; expected a file name.")
    if not path.parent.is_dir():
        raise InputError(f"Cannot write {path}: the folder {path.parent} does not exist.")


@contextlib.contextmanager
def _atomic_target(path: Path, suffix: str) -> Iterator[Path]:
    """Yield a temporary file name in ``path``'s folder; on success move it onto ``path``."""
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    except OSError as exc:
        raise InputError(f"Cannot write {path}: the folder {path.parent} is not writable ({_reason(exc)}).") from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise InputError(f"Cannot write {path} ({_reason(exc)}).") from exc
    finally:
        if tmp.exists():
            tmp.unlink()


def write_csv(
    path: str | os.PathLike[str],
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    source: str | os.PathLike[str] | None = None,
) -> Path:
    """Write a table as CSV (floats to 6 significant digits), replacing ``path`` in one move so that
    a failed write leaves the old file; never onto ``source`` (the image the figures came from)."""
    import csv

    path = Path(path)
    _check_target(path, source=source, overwrite=True, what="a table")
    with _atomic_target(path, ".csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in row])
    return path


def write_nifti(
    path: str | os.PathLike[str],
    data: np.ndarray,
    affine: np.ndarray,
    *,
    spacing: Sequence[float] | None = None,
    source: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    frame_step: float = 0.0,
) -> Path:
    """Write a ``(Z, Y, X)`` volume (usually labels), or a ``(T, Z, Y, X)`` cine of them, as NIfTI
    on a given affine, atomically.

    Integer and boolean data is stored as uint8 when it fits 0..255, else int16; float data is
    stored as float32. The file is written to a temporary name in the same folder and moved into
    place, so a failed write never leaves half a file.

    Args:
        path: Target file, ending in ``.nii`` or ``.nii.gz``.
        data: Voxels ``(Z, Y, X)``; a 2D ``(Y, X)`` array is written as one slice, a 4D
            ``(T, Z, Y, X)`` one as a cine (time last in the file, as NIfTI orders it).
        affine: 4 x 4 voxel-to-world matrix in nibabel's ``(x, y, z)`` order, e.g. ``Volume.affine``.
        spacing: ``(dz, dy, dx)`` in mm to store in the header's pixdim. Needed when the affine does
            not carry the voxel size (ACDC's affines do not); ``None`` derives it from the affine.
        source: The image the labels were drawn on; writing onto it is refused.
        overwrite: Replace an existing file.
        frame_step: For a cine, the time between frames to store as the fourth pixdim (the
            source's, from :func:`read_nifti_frames`; 0 stores 1).

    Returns:
        The path written.

    Raises:
        InputError: Wrong suffix, shape or affine; the target is the source or exists; the folder
            is missing or not writable.
    """
    path = Path(path)
    suffix = _nifti_suffix(path)
    if suffix is None:
        raise InputError(f"Cannot write {path}: the name must end in .nii or .nii.gz.")
    arr = np.asarray(data)
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    if arr.ndim not in (3, 4):
        raise InputError(
            f"Cannot write {path}: expected a (Z, Y, X) volume or (T, Z, Y, X) cine, got shape {arr.shape}."
        )
    aff = np.asarray(affine, dtype=float)
    if aff.shape != (4, 4):
        raise InputError(f"Cannot write {path}: the affine must be 4 x 4, got shape {aff.shape}.")
    if arr.dtype.kind not in "biuf":
        raise InputError(f"Cannot write {path}: unsupported data type {arr.dtype}.")
    _check_target(path, source=source, overwrite=overwrite, what="labels")

    dtype = _label_dtype(arr)
    xyz = np.asarray(arr.transpose(*range(arr.ndim)[::-1]), dtype=dtype)
    img = nib.Nifti1Image(xyz, aff)
    img.header.set_data_dtype(dtype)
    if spacing is not None or arr.ndim == 4:
        zooms = img.header.get_zooms()[:3]
        if spacing is not None:
            dz, dy, dx = (float(s) for s in spacing)
            zooms = (dx, dy, dz)
        img.header.set_zooms(zooms + ((frame_step or 1.0,) if arr.ndim == 4 else ()))
    with _atomic_target(path, suffix) as tmp:
        img.to_filename(str(tmp))
    return path


# --------------------------------------------------------------------------------------------
# PNG


def natural_sort_key(path: str | os.PathLike[str]) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders ``img2.png`` before ``img10.png``."""
    parts = re.split(r"(\d+)", Path(path).name)
    return tuple((0, int(p)) if p.isdigit() else (1, p.lower()) for p in parts if p)


def read_png(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a PNG as a 2D ``(Y, X)`` array.

    Grey images are returned as stored (8- or 16-bit). RGB/RGBA images are converted to luminance
    (:func:`skimage.color.rgb2gray`, alpha dropped) and rescaled to the input dtype's range. Grey +
    alpha keeps the grey channel. Boolean images become uint8 0/1.

    Raises:
        InputError: The file is missing, not a PNG, or not 2D grey/RGB/RGBA.
    """
    from skimage import io as skio  # lazy: imageio is only needed here

    path = Path(path)
    if not path.is_file():
        raise InputError(f"PNG file not found: {path}.")
    try:
        arr = np.asarray(skio.imread(str(path)))
    except (OSError, ValueError, SyntaxError, EOFError, RuntimeError) as exc:
        raise InputError(f"Cannot read {path} as an image ({_reason(exc)}).") from exc

    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        from skimage.color import rgb2gray

        logger.info("%s is colour (%d channels); using its luminance.", path, arr.shape[2])
        grey = rgb2gray(arr[..., :3])  # float in [0, 1] for integer input
        if arr.dtype.kind in "iu":
            grey = np.round(grey * np.iinfo(arr.dtype).max).astype(arr.dtype)
        arr = grey
    elif arr.ndim == 3 and arr.shape[2] in (1, 2):  # grey (+ alpha)
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise InputError(f"{path} has shape {arr.shape}; expected a 2D grey, RGB or RGBA image.")
    return np.ascontiguousarray(arr)


def read_png_stack(paths: Iterable[str | os.PathLike[str]]) -> np.ndarray:
    """Read PNG files, in the given order, into a ``(Z, Y, X)`` stack.

    Raises:
        InputError: No files, an unreadable file, or a file whose shape differs from the first.
    """
    files = [Path(p) for p in paths]
    if not files:
        raise InputError("No PNG files were given; expected at least one.")
    slices = [read_png(files[0])]
    for f in files[1:]:
        arr = read_png(f)
        if arr.shape != slices[0].shape:
            raise InputError(
                f"{f} has shape {arr.shape} but {files[0].name} has {slices[0].shape}; "
                "all images in a stack must match."
            )
        slices.append(arr)
    return np.stack(slices)


def read_png_folder(folder: str | os.PathLike[str]) -> np.ndarray:
    """Read every ``*.png`` in a folder, in natural order (``img2`` before ``img10``), as ``(Z, Y, X)``.

    Raises:
        InputError: The folder is missing, holds no PNG, or the images differ in shape.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"PNG folder not found: {folder}.")
    files = _png_files(folder)
    if not files:
        raise InputError(f"{folder} contains no .png files.")
    return read_png_stack(files)


def _png_files(folder: Path) -> list[Path]:
    files = (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".png")
    return sorted(files, key=natural_sort_key)


def write_png(path: str | os.PathLike[str], labels2d: np.ndarray, *, overwrite: bool = False) -> Path:
    """Write a 2D label image as an 8-bit PNG, atomically.

    Raises:
        InputError: Not 2D, values outside 0..255 or not integral, the file exists (and not
            ``overwrite``), or the folder is missing or not writable.
    """
    from skimage import io as skio

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InputError(f"Cannot write {path}: the name must end in .png.")
    arr = np.asarray(labels2d)
    if arr.ndim != 2:
        raise InputError(f"Cannot write {path}: expected a 2D (Y, X) label image, got shape {arr.shape}.")
    integral = arr.dtype.kind in "biu" or (arr.dtype.kind == "f" and np.array_equal(arr, np.round(arr)))
    if arr.size and arr.dtype != np.uint8 and not (integral and arr.min() >= 0 and arr.max() <= 255):
        raise InputError(f"Cannot write {path}: PNG labels must be whole numbers in 0..255.")
    _check_target(path, source=None, overwrite=overwrite, what="labels")
    with _atomic_target(path, ".png") as tmp:
        skio.imsave(str(tmp), arr.astype(np.uint8), check_contrast=False)
    return path


# --------------------------------------------------------------------------------------------
# ACDC layout


@dataclass(frozen=True)
class AcdcCase:
    """One annotated cardiac phase of an ACDC patient.

    Attributes:
        patient: Folder/file prefix, e.g. ``"patient001"``.
        frame: Frame number from the file name (1-based, as ACDC numbers them).
        phase: ``"ED"`` or ``"ES"`` per ``Info.cfg``, ``""`` if unknown.
        image: ``patientNNN_frameXX.nii.gz``.
        gt: The expert mask ``*_gt``, if present.
        scribble: The scribble file ``*_scribble``, if present.
        info: ``Info.cfg`` as strings (ED, ES, Group, Height, NbFrame, Weight).
    """

    patient: str
    frame: int
    phase: str
    image: Path
    gt: Path | None
    scribble: Path | None
    info: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def patient_id(self) -> int:
        """The patient number: ``"patient001"`` -> 1."""
        digits = re.sub(r"\D", "", self.patient)
        return int(digits) if digits else -1


def is_acdc_label_file(path: str | os.PathLike[str]) -> bool:
    """True for ``*_gt.nii[.gz]`` and ``*_scribble.nii[.gz]`` files."""
    stem, suffix = _split_nifti_name(Path(path))
    return suffix.lower() in NIFTI_SUFFIXES and stem.endswith(LABEL_SUFFIXES)


def acdc_siblings(image_path: str | os.PathLike[str]) -> tuple[Path | None, Path | None]:
    """Find the ``_gt`` and ``_scribble`` files next to an image (``.nii.gz`` or ``.nii``).

    A label file has no siblings of its own: passing one returns ``(None, None)``.
    """
    path = Path(image_path)
    stem, suffix = _split_nifti_name(path)
    if suffix.lower() not in NIFTI_SUFFIXES or is_acdc_label_file(path):
        return None, None
    found: list[Path | None] = []
    for label in LABEL_SUFFIXES:
        candidates = [path.with_name(f"{stem}{label}{s}") for s in (suffix, *NIFTI_SUFFIXES)]
        found.append(next((c for c in candidates if c.is_file()), None))
    return found[0], found[1]


def _read_info_cfg(path: Path) -> dict[str, str]:
    info: dict[str, str] = {}
    if not path.is_file():
        return info
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        logger.warning("Cannot read %s: %s", path, exc)
        return info
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            info[key.strip()] = value.strip()
    return info


def _phase(frame: int, info: dict[str, str]) -> str:
    for phase in ("ED", "ES"):
        try:
            if int(float(info.get(phase, ""))) == frame:
                return phase
        except ValueError:
            continue
    return ""


def _patient_cases(folder: Path) -> list[AcdcCase]:
    info = _read_info_cfg(folder / "Info.cfg")
    cases = []
    for image in folder.iterdir():
        match = _ACDC_IMAGE_RE.match(image.name)
        if match is None or not image.is_file():
            continue
        frame = int(match.group(2))
        gt, scribble = acdc_siblings(image)
        cases.append(
            AcdcCase(
                patient=match.group(1),
                frame=frame,
                phase=_phase(frame, info),
                image=image,
                gt=gt,
                scribble=scribble,
                info=dict(info),
            )
        )
    return cases


def find_acdc_cases(root: str | os.PathLike[str]) -> list[AcdcCase]:
    """List the annotated frames in an ACDC folder.

    ``root`` may be the dataset folder (holding ``training/`` and/or ``testing/``), one of those,
    or a single ``patientNNN`` folder. 4D ``*_4d.nii.gz`` files are not listed.

    Returns:
        Cases sorted by patient number, then frame.

    Raises:
        InputError: ``root`` is missing or holds no ``patientNNN/patientNNN_frameXX.nii.gz`` files.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"ACDC folder not found: {root}.")

    def patient_dirs(folder: Path) -> list[Path]:
        return [d for d in folder.iterdir() if d.is_dir() and _PATIENT_DIR_RE.match(d.name)]

    if _PATIENT_DIR_RE.match(root.name) or any(_ACDC_IMAGE_RE.match(p.name) for p in root.iterdir()):
        folders = [root]
    else:
        folders = patient_dirs(root)
        if not folders:
            for split in ("training", "testing"):
                if (root / split).is_dir():
                    folders += patient_dirs(root / split)
    cases = [case for folder in folders for case in _patient_cases(folder)]
    if not cases:
        raise InputError(
            f"No ACDC cases found in {root}; expected training/patientNNN/patientNNN_frameXX.nii.gz "
            "(with _gt and _scribble files beside them)."
        )
    return sorted(cases, key=lambda c: (c.patient_id, c.patient, c.frame))


# --------------------------------------------------------------------------------------------
# Seed PNG layout


@dataclass(frozen=True)
class PngSample:
    """One 2D sample of the seed's PNG layout: an image and, when present, its dense and weak labels."""

    image: Path
    gt: Path | None
    weak: Path | None

    @property
    def name(self) -> str:
        """The shared file name, e.g. ``"003.png"``."""
        return self.image.name


_PNG_LAYOUT = "{train,val}/{img,gt,weak}/*.png (or img/, gt/, weak/ directly inside the folder)"


def _png_split(folder: Path) -> list[PngSample]:
    samples = []
    for image in _png_files(folder / "img"):
        gt, weak = folder / "gt" / image.name, folder / "weak" / image.name
        samples.append(PngSample(image=image, gt=gt if gt.is_file() else None, weak=weak if weak.is_file() else None))
    return samples


def find_png_dataset(root: str | os.PathLike[str]) -> dict[str, list[PngSample]]:
    """Discover the seed's PNG layout: ``root/{train,val}/{img,gt,weak}/*.png``.

    Files are matched across ``img/``, ``gt/`` and ``weak/`` by name; a missing ``gt``/``weak``
    file gives ``None``. Every direct sub-folder that has an ``img/`` folder is a split, keyed by
    its name (``"train"``, ``"val"``, ...). A folder that itself holds ``img/`` (one split, as in
    the sample data) is returned under the key ``"all"``.

    Raises:
        InputError: ``root`` is missing, no ``img/`` folder is found, or no PNG is found.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"PNG dataset folder not found: {root}.")
    if (root / "img").is_dir():
        splits = {"all": root}
    else:
        splits = {d.name: d for d in sorted(root.iterdir(), key=natural_sort_key) if (d / "img").is_dir()}
    if not splits:
        raise InputError(f"No img/ folder found in {root}; expected {_PNG_LAYOUT}.")
    dataset = {name: _png_split(folder) for name, folder in splits.items()}
    if not any(dataset.values()):
        raise InputError(f"The img/ folders in {root} contain no .png files; expected {_PNG_LAYOUT}.")
    return dataset


# --------------------------------------------------------------------------------------------
# Spacing


def _pixel_area(spacing_yx: Sequence[float]) -> float:
    if len(spacing_yx) != 2:
        raise InputError(f"In-plane spacing must be (dy, dx), got {tuple(spacing_yx)}.")
    dy, dx = (float(s) for s in spacing_yx)
    if not (np.isfinite(dy) and np.isfinite(dx) and dy > 0 and dx > 0):
        raise InputError(f"In-plane spacing must be positive, got (dy, dx) = ({dy}, {dx}).")
    return dy * dx


def mm2_to_pixels(area_mm2: float, spacing_yx: Sequence[float]) -> float:
    """Convert an area in mm² to a (fractional) pixel count for in-plane spacing ``(dy, dx)`` in mm."""
    return float(area_mm2) / _pixel_area(spacing_yx)


def pixels_to_mm2(pixels: float, spacing_yx: Sequence[float]) -> float:
    """Convert a pixel count to mm² for in-plane spacing ``(dy, dx)`` in mm."""
    return float(pixels) * _pixel_area(spacing_yx)
