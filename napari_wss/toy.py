"""Deterministic synthetic data: the seed tutorial's TOY and TOY2 sets and a cardiac MRI phantom.

* **TOY** — a bright disc (r = 50, value 200) inside a grey disc (r = 100, value 68) on a black
  background, with Gaussian noise whose σ is drawn per image from U[0, 100). The target is the
  inner disc; the weak label is a small disc (r = 5) at its centre.
* **TOY2** — two non-overlapping discs (r = 25) at random centres: a distractor (value 255) and the
  target (value 125). The weak label is a radius-2 disc at the target centre, so the network must
  learn *which* disc to grow from a point: the size/centroid priors are what make that possible.
* **Phantom** — a short-axis cine-MRI-like volume with RV, myocardium and LV, and scribbles that
  never cross a class border, for demos and end-to-end tests without the real data.

Sizes are given for 256 x 256 images, as in the seed; radii scale with ``size``
(``r = round(r256 * size / 256)``) so tests can use small images. Scribbles use the project's
encoding: 0 = not annotated, class ``c`` painted as ``c + 1``. Everything is drawn from
``numpy.random.default_rng`` streams derived from ``seed``; the same arguments give identical arrays.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from scipy import ndimage as ndi

from napari_wss.errors import InputError

__all__ = [
    "PHANTOM_CLASSES",
    "Phantom",
    "ToySet",
    "cardiac_phantom",
    "make_toy",
    "make_toy2",
    "toy_splits",
    "write_samples",
]

PHANTOM_CLASSES = ("background", "RV", "myocardium", "LV")
_REF_SIZE = 256
_SPLIT_COUNTS = {"toy": (10, 10), "toy2": (1000, 100)}


@dataclass(frozen=True, eq=False)
class ToySet:
    """A batch of 2D toy images with dense and weak labels.

    ``eq=False``: sets compare by identity (compare arrays with :func:`numpy.array_equal`).

    Attributes:
        images: uint8 ``(N, H, W)``.
        labels: uint8 ``(N, H, W)`` dense ground truth, 0 background, 1 target.
        scribbles: uint8 ``(N, H, W)`` weak labels, 0 not annotated, 2 target (class 1 + 1).
        centers: float ``(N, 2)`` ``(row, col)`` of the target disc.
        radius: Target disc radius in pixels (after scaling to the image size).
        noise: float ``(N,)`` standard deviation of the Gaussian noise added to each image.
    """

    images: np.ndarray
    labels: np.ndarray
    scribbles: np.ndarray
    centers: np.ndarray
    radius: float
    noise: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])


def _scaled(r256: float, size: int) -> int:
    return max(1, round(r256 * size / _REF_SIZE))


def _check_counts(n: int, size: int) -> None:
    if int(n) != n or n < 0:
        raise InputError(f"The number of images must be a whole number >= 0, got {n}.")
    if int(size) != size or size < 8:
        raise InputError(f"The image size must be a whole number >= 8 pixels, got {size}.")


def _disc(shape: tuple[int, int], center: Sequence[float], radius: float) -> np.ndarray:
    """Boolean mask of the pixels whose centre lies within ``radius`` of ``center`` (row, col)."""
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    return (rows - center[0]) ** 2 + (cols - center[1]) ** 2 <= radius**2


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def make_toy(n: int, *, seed: int = 0, size: int = 256) -> ToySet:
    """The seed's TOY set: a bright disc inside a grey disc, heavy noise, a point-like weak label.

    Image: background 0, disc r = 100 of value 68, disc r = 50 of value 200, both centred in the
    image; plus Gaussian noise with σ ~ U[0, 100) drawn per image; clipped to 0..255.

    Args:
        n: Number of images.
        seed: Seed of the random stream (noise levels and noise).
        size: Image side H = W in pixels; radii scale with ``size / 256``.

    Returns:
        A :class:`ToySet` whose target is the inner disc and weak label a disc r = 5 at the centre.
    """
    _check_counts(n, size)
    rng = np.random.default_rng(seed)
    shape = (size, size)
    center = (size // 2, size // 2)
    outer, inner = _disc(shape, center, _scaled(100, size)), _disc(shape, center, _scaled(50, size))
    weak = _disc(shape, center, _scaled(5, size))

    clean = np.zeros(shape, dtype=np.float64)
    clean[outer] = 68
    clean[inner] = 200
    sigmas = rng.uniform(0, 100, size=n)
    images = np.stack([_to_uint8(clean + rng.normal(0.0, s, shape)) for s in sigmas]) if n else _empty(size)
    labels = np.broadcast_to(inner.astype(np.uint8), (n, size, size)).copy()
    scribbles = np.broadcast_to(weak.astype(np.uint8) * 2, (n, size, size)).copy()
    centers = np.tile(np.asarray(center, dtype=float), (n, 1))
    return ToySet(images, labels, scribbles, centers, float(_scaled(50, size)), sigmas)


def _empty(size: int) -> np.ndarray:
    return np.zeros((0, size, size), dtype=np.uint8)


def make_toy2(n: int, *, seed: int = 0, size: int = 256, radius: float = 25, noise: float = 0.0) -> ToySet:
    """The seed's TOY2 set: a target disc (value 125) and a distractor disc (value 255).

    Both discs lie fully inside the image and do not overlap; the distractor is drawn first and the
    target over it. The disc geometry comes from one random stream and the noise from another, so
    changing ``noise`` keeps the same centres.

    Args:
        n: Number of images.
        seed: Seed of the random streams.
        size: Image side H = W in pixels.
        radius: Disc radius in pixels *of a 256 x 256 image*; scaled by ``size / 256``.
        noise: σ of optional additive Gaussian noise (the seed had none), result clipped to 0..255.

    Returns:
        A :class:`ToySet` whose target is the value-125 disc and weak label a disc r = 2 at its
        centre (also scaled, at least 1 px).

    Raises:
        InputError: ``noise`` is negative or two discs cannot fit in the image.
    """
    _check_counts(n, size)
    if not noise >= 0:
        raise InputError(f"TOY2 noise must be >= 0, got {noise}.")
    r = _scaled(radius, size)
    lo, hi = r, size - 1 - r  # centre range keeping the whole disc inside
    min_dist = 2 * r + 1  # discs of radius r with centres this far apart share no pixel
    if hi < lo or (hi - lo) * np.sqrt(2) < min_dist:
        raise InputError(f"Two TOY2 discs of radius {r} px do not fit in a {size} x {size} image.")

    geometry = np.random.default_rng(seed)
    noise_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    shape = (size, size)
    weak_r = _scaled(2, size)
    images, labels, scribbles = (np.zeros((n, size, size), dtype=np.uint8) for _ in range(3))
    centers = np.zeros((n, 2), dtype=float)
    for i in range(n):
        for _ in range(10_000):
            target, distractor = geometry.integers(lo, hi + 1, size=(2, 2))
            if np.hypot(*(target - distractor)) >= min_dist:
                break
        else:
            raise InputError(f"Could not place two TOY2 discs of radius {r} px in a {size} x {size} image.")
        img = np.zeros(shape, dtype=np.float64)
        img[_disc(shape, distractor, r)] = 255
        target_mask = _disc(shape, target, r)
        img[target_mask] = 125
        if noise > 0:
            img += noise_rng.normal(0.0, noise, shape)
        images[i] = _to_uint8(img)
        labels[i] = target_mask
        scribbles[i] = _disc(shape, target, weak_r) * np.uint8(2)
        centers[i] = target
    return ToySet(images, labels, scribbles, centers, float(r), np.full(n, float(noise)))


def toy_splits(
    kind: Literal["toy", "toy2"],
    *,
    seed: int = 0,
    size: int = 256,
    n_train: int | None = None,
    n_val: int | None = None,
) -> dict[str, ToySet]:
    """Train and validation sets with the seed's counts (TOY 10 + 10, TOY2 1000 + 100).

    ``train`` equals ``make_toy*(n_train, seed=seed)``; ``val`` comes from a different random
    stream derived from ``seed``, so the two never share images.

    Raises:
        InputError: ``kind`` is not ``"toy"`` or ``"toy2"``.
    """
    if kind not in _SPLIT_COUNTS:
        raise InputError(f"Unknown toy set {kind!r}; expected 'toy' or 'toy2'.")
    default_train, default_val = _SPLIT_COUNTS[kind]
    make = make_toy if kind == "toy" else make_toy2
    val_seed = int(np.random.SeedSequence([seed, 1]).generate_state(1)[0])
    return {
        "train": make(default_train if n_train is None else n_train, seed=seed, size=size),
        "val": make(default_val if n_val is None else n_val, seed=val_seed, size=size),
    }


# --------------------------------------------------------------------------------------------
# Cardiac phantom


@dataclass(frozen=True, eq=False)
class Phantom:
    """A synthetic short-axis cine-MRI volume with labels and scribbles.

    Attributes:
        image: float32 ``(Z, Y, X)``, MRI-like magnitude (blood ~ 900, myocardium ~ 250).
        labels: uint8 ``(Z, Y, X)``: 0 background, 1 RV, 2 myocardium, 3 LV (ACDC's classes).
        scribbles: uint8 ``(Z, Y, X)``: 0 not annotated, class ``c`` as ``c + 1``.
        spacing: ``(dz, dy, dx)`` in mm.
        class_names: Names of the classes 0..3.
    """

    image: np.ndarray
    labels: np.ndarray
    scribbles: np.ndarray
    spacing: tuple[float, float, float]
    class_names: tuple[str, ...] = PHANTOM_CLASSES

    @property
    def affine(self) -> np.ndarray:
        """``diag(dx, dy, dz, 1)``: the voxel-to-world matrix in nibabel's ``(x, y, z)`` order."""
        dz, dy, dx = self.spacing
        return np.diag([dx, dy, dz, 1.0])


def _stroke_mask(shape: tuple[int, int], points: np.ndarray) -> np.ndarray:
    """Rasterise a densely sampled polyline ``(P, 2)`` of (row, col) points as a 1-px stroke."""
    mask = np.zeros(shape, dtype=bool)
    rc = np.rint(points).astype(int)
    keep = (rc[:, 0] >= 0) & (rc[:, 0] < shape[0]) & (rc[:, 1] >= 0) & (rc[:, 1] < shape[1])
    mask[rc[keep, 0], rc[keep, 1]] = True
    return mask


def _curve(start: np.ndarray, end: np.ndarray, bend: float, n: int = 200) -> np.ndarray:
    """Quadratic Bézier from ``start`` to ``end`` whose middle is pushed sideways by ``bend`` px."""
    mid = (start + end) / 2
    direction = end - start
    normal = np.array([-direction[1], direction[0]]) / max(np.hypot(*direction), 1e-9)
    control = mid + 2 * bend * normal  # the curve's midpoint moves by half the control offset
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * start + 2 * (1 - t) * t * control + t**2 * end


def _safe_stroke(stroke: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Keep the stroke inside the region eroded by one pixel (inside the region if that empties it).

    Falls back to the region's deepest pixel, so every present class gets at least one scribble.
    """
    inner = ndi.binary_erosion(region)
    clipped = stroke & inner
    if not clipped.any():
        clipped = stroke & region
    if not clipped.any() and region.any():
        depth = ndi.distance_transform_edt(region)
        clipped = np.zeros_like(region)
        clipped[np.unravel_index(int(np.argmax(depth)), region.shape)] = True
    return clipped


def _ellipse(shape: tuple[int, int], center: Sequence[float], radii: Sequence[float], angle: float = 0.0) -> np.ndarray:
    """Boolean mask of an ellipse with semi-axes ``radii`` (rows, cols) rotated by ``angle`` rad."""
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    dr, dc = rows - center[0], cols - center[1]
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = dr * cos + dc * sin, -dr * sin + dc * cos
    return (u / radii[0]) ** 2 + (v / radii[1]) ** 2 <= 1


def _background(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Body outline, chest wall, liver and lungs as blurred ellipses, plus smooth texture."""
    size = shape[0]
    img = np.zeros(shape, dtype=np.float64)
    img[_ellipse(shape, (0.52 * size, 0.5 * size), (0.40 * size, 0.47 * size))] = 180  # body
    img[_ellipse(shape, (0.16 * size, 0.5 * size), (0.06 * size, 0.36 * size))] = 320  # chest wall
    img[_ellipse(shape, (0.80 * size, 0.30 * size), (0.16 * size, 0.22 * size), 0.3)] = 420  # liver
    for col in (0.22, 0.80):  # lungs: dark
        img[_ellipse(shape, (0.45 * size, col * size), (0.20 * size, 0.11 * size))] = 40
    texture = ndi.gaussian_filter(rng.normal(0, 1, shape), sigma=size / 40)
    img *= 1 + 0.6 * texture / max(np.abs(texture).max(), 1e-9)
    return ndi.gaussian_filter(img, sigma=size / 100)


def _polar(shape: tuple[int, int], center: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    dr, dc = rows - center[0], cols - center[1]
    return np.hypot(dr, dc), np.arctan2(dr, dc)


def _slice_scribbles(
    labels: np.ndarray, center: np.ndarray, r_lv: float, r_out: float, rng: np.random.Generator
) -> np.ndarray:
    """Thin strokes inside each class present on one slice, clipped to stay inside the class."""
    shape = labels.shape
    size = shape[0]
    scribble = np.zeros(shape, dtype=np.uint8)
    dist, theta = _polar(shape, center)

    # Myocardium: a partial arc along the ring's midline.
    myo = labels == 2
    if myo.any():
        start = rng.uniform(-np.pi, np.pi)
        span = rng.uniform(0.9, 1.4) * np.pi
        in_span = np.mod(theta - start, 2 * np.pi) <= span
        arc = (np.abs(dist - (r_lv + r_out) / 2) <= 0.6) & in_span
        scribble[_safe_stroke(arc, myo)] = 3

    # LV: a short slightly curved line through the cavity.
    lv = labels == 3
    if lv.any():
        angle = rng.uniform(0, np.pi)
        half = 0.55 * r_lv * np.array([np.sin(angle), np.cos(angle)])
        line = _curve(center - half, center + half, rng.uniform(-0.15, 0.15) * r_lv)
        scribble[_safe_stroke(_stroke_mask(shape, line), lv)] = 4

    # RV: the midline of the crescent, found along rays from the LV centre (left side: theta ~ pi).
    rv = labels == 1
    if rv.any():
        points = []
        for ang in np.linspace(np.pi - 0.45, np.pi + 0.45, 40):
            rho = np.arange(r_out, 3.5 * r_out, 0.25)
            rr = np.rint(center[0] + rho * np.sin(ang)).astype(int)
            cc = np.rint(center[1] + rho * np.cos(ang)).astype(int)
            ok = (rr >= 0) & (rr < size) & (cc >= 0) & (cc < shape[1])
            hits = rho[ok][rv[rr[ok], cc[ok]]]
            if hits.size:
                mid = (hits.min() + hits.max()) / 2
                points.append(center + mid * np.array([np.sin(ang), np.cos(ang)]))
        stroke = np.zeros(shape, dtype=bool)
        for a, b in itertools.pairwise(points):
            stroke |= _stroke_mask(shape, np.linspace(a, b, 20))
        scribble[_safe_stroke(stroke, rv)] = 2

    # Background: a few strokes well away from the heart.
    heart = labels > 0
    margin = max(3.0, 0.06 * size)
    far = ndi.distance_transform_edt(~heart) >= margin
    far &= ndi.binary_erosion(np.ones(shape, dtype=bool), iterations=max(2, int(0.05 * size)), border_value=0)
    candidates = np.argwhere(far)
    for _ in range(3):
        if not candidates.size:
            break
        start = candidates[rng.integers(len(candidates))].astype(float)
        angle = rng.uniform(0, 2 * np.pi)
        end = start + 0.15 * size * np.array([np.sin(angle), np.cos(angle)])
        stroke = _stroke_mask(shape, _curve(start, end, rng.uniform(-0.03, 0.03) * size))
        scribble[stroke & far & (scribble == 0)] = 1
    if not (scribble == 1).any():
        scribble[_safe_stroke(np.zeros(shape, dtype=bool), ~heart)] = 1
    return scribble


def cardiac_phantom(
    n_slices: int = 8,
    size: int = 128,
    *,
    seed: int = 0,
    spacing: tuple[float, float, float] = (10.0, 1.5, 1.5),
) -> Phantom:
    """A synthetic short-axis cine-MRI-like volume, from base (slice 0) to apex (last slice).

    The LV cavity is a bright disc, the myocardium a dark ring around it, and the RV cavity a bright
    crescent against the ring's left side (image column < LV centre, as RV appears in ACDC). LV and
    ring shrink towards the apex; the RV is absent on the last slice (last two when
    ``n_slices >= 6``). The heart centre jitters by about a pixel per slice. The background holds
    blurred ellipses (body, chest wall, liver, lungs) with smooth texture; the image is blurred
    slightly and Rician noise is added (magnitude of a complex Gaussian perturbation).

    Scribbles: on every slice, a partial arc along the myocardium's midline, a short line in the LV
    and along the RV crescent, and a few background strokes away from the heart; each stroke is 1-2
    px thick and clipped to its class, so every scribbled voxel agrees with ``labels``.

    Args:
        n_slices: Number of short-axis slices Z.
        size: Image side Y = X in pixels (geometry scales with ``size / 128``).
        seed: Seed of the random stream.
        spacing: ``(dz, dy, dx)`` in mm, stored with the phantom (the geometry is in pixels).

    Returns:
        The :class:`Phantom`.
    """
    if int(n_slices) != n_slices or n_slices < 1:
        raise InputError(f"The phantom needs at least one slice, got n_slices={n_slices}.")
    if int(size) != size or size < 32:
        raise InputError(f"The phantom size must be a whole number >= 32 pixels, got {size}.")
    if len(spacing) != 3 or not all(float(s) > 0 for s in spacing):
        raise InputError(f"spacing must be three positive numbers (dz, dy, dx) in mm, got {spacing}.")

    rng = np.random.default_rng(seed)
    shape = (size, size)
    scale = size / 128
    n_no_rv = 0 if n_slices == 1 else (1 if n_slices < 6 else 2)
    base_center = np.array([0.50 * size, 0.55 * size]) + rng.normal(0, 1.5 * scale, 2)
    background = _background(shape, rng)

    image = np.zeros((n_slices, size, size), dtype=np.float32)
    labels = np.zeros((n_slices, size, size), dtype=np.uint8)
    scribbles = np.zeros((n_slices, size, size), dtype=np.uint8)
    for z in range(n_slices):
        t = z / max(n_slices - 1, 1)  # 0 at the base, 1 at the apex
        center = base_center + np.clip(rng.normal(0, 0.8 * scale, 2), -2 * scale, 2 * scale)
        r_lv = (14 - 8 * t) * scale
        r_out = r_lv + (6 - 1.5 * t) * scale
        dist, _ = _polar(shape, center)
        lab = np.zeros(shape, dtype=np.uint8)
        clean = background.copy()
        if z < n_slices - n_no_rv:
            rv_center = (center[0] + 0.1 * r_out, center[1] - 0.55 * r_out)
            rv_radii = ((1.35 - 0.3 * t) * r_out, (1.05 - 0.3 * t) * r_out)
            rv = _ellipse(shape, rv_center, rv_radii) & (dist > r_out)
            wall = ndi.binary_dilation(rv, iterations=max(1, round(scale))) & ~rv & (dist > r_out)
            clean[wall] = 230  # thin RV free wall, labelled background as in ACDC
            clean[rv] = 850
            lab[rv] = 1
        myo = dist <= r_out
        clean[myo] = 250
        lab[myo] = 2
        clean[dist <= r_lv] = 900
        lab[dist <= r_lv] = 3
        clean = ndi.gaussian_filter(clean, sigma=0.6 * scale)
        sigma = 25.0
        noisy = np.hypot(clean + rng.normal(0, sigma, shape), rng.normal(0, sigma, shape))
        image[z] = noisy.astype(np.float32)
        labels[z] = lab
        scribbles[z] = _slice_scribbles(lab, center, r_lv, r_out, rng)
    dz, dy, dx = (float(s) for s in spacing)
    return Phantom(image, labels, scribbles, (dz, dy, dx))


# --------------------------------------------------------------------------------------------
# Sample files

_README = """\
# Sample data (synthetic)

Every file here is synthetic: generated by `napari-wss make-samples` (napari_wss.toy.write_samples)
with fixed seeds, so it can be regenerated at any time. No patient data.

- `toy/{{img,gt,weak}}/NNN.png` - the seed tutorial's TOY set (256 x 256): a disc r=100 of value 68
  with a disc r=50 of value 200 at the centre, Gaussian noise with sigma ~ U[0, 100). `gt` holds
  the inner disc as class 1 (pixel value 1); `weak` a disc r=5 at the centre in scribble encoding
  (0 = not annotated, class c painted as c + 1, so the target is 2).
- `toy2/{{img,gt,weak}}/NNN.png` - the TOY2 set (256 x 256): a target disc r=25 of value 125 and a
  distractor disc r=25 of value 255; `gt` the target (1); `weak` a disc r=2 at its centre (2).
- `phantom/phantom.nii.gz` - a short-axis cine-MRI-like phantom, {n_slices} slices of {size} x {size}
  px at spacing (dz, dy, dx) = {spacing} mm, stored as int16 magnitudes. `phantom_gt.nii.gz`: 0
  background, 1 RV, 2 myocardium, 3 LV (the ACDC classes). `phantom_scribble.nii.gz`: thin strokes
  in every structure, 0 = not annotated, class c as c + 1 (as the ACDC scribble files).
"""


def write_samples(out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write the small synthetic sample files (TOY, TOY2 PNGs and the phantom) under ``out_dir``.

    Existing files are overwritten, so the command can regenerate them. The total is well under
    1 MB.

    Returns:
        The paths written, README last.
    """
    # Local import: toy stays importable without io's nibabel/skimage; io imports nothing from toy.
    from napari_wss import io

    out = Path(out_dir)
    written: list[Path] = []
    for kind, toyset in (("toy", make_toy(3, seed=0)), ("toy2", make_toy2(3, seed=0))):
        for sub in ("img", "gt", "weak"):
            (out / kind / sub).mkdir(parents=True, exist_ok=True)
        for i in range(len(toyset)):
            name = f"{i:03d}.png"
            arrays = {"img": toyset.images, "gt": toyset.labels, "weak": toyset.scribbles}
            for sub, arr in arrays.items():
                written.append(io.write_png(out / kind / sub / name, arr[i], overwrite=True))

    phantom = cardiac_phantom(n_slices=8, size=128, seed=0)
    folder = out / "phantom"
    folder.mkdir(parents=True, exist_ok=True)
    image = np.rint(phantom.image).astype(np.int16)
    volumes = {"phantom": image, "phantom_gt": phantom.labels, "phantom_scribble": phantom.scribbles}
    for name, arr in volumes.items():
        path = folder / f"{name}.nii.gz"
        written.append(io.write_nifti(path, arr, phantom.affine, spacing=phantom.spacing, overwrite=True))

    readme = out / "README.md"
    readme.write_text(
        _README.format(n_slices=len(phantom.labels), size=phantom.labels.shape[1], spacing=phantom.spacing),
        encoding="utf-8",
    )
    written.append(readme)
    return written
