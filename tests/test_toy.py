"""Tests for napari_wss.toy: the TOY/TOY2 generators, the cardiac phantom and the sample files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_wss import io, toy
from napari_wss.errors import InputError


def _disc_area(radius: float) -> int:
    """Pixel count of a disc of the given radius around an integer centre (as toy draws it)."""
    r = int(np.ceil(radius))
    rows, cols = np.mgrid[-r : r + 1, -r : r + 1]
    return int((rows**2 + cols**2 <= radius**2).sum())


# --------------------------------------------------------------------------------------------
# Determinism


@pytest.mark.parametrize(
    "make",
    [
        lambda seed: toy.make_toy(4, seed=seed, size=64),
        lambda seed: toy.make_toy2(4, seed=seed, size=64),
        lambda seed: toy.make_toy2(4, seed=seed, size=64, noise=5.0),
        lambda seed: toy.cardiac_phantom(4, 64, seed=seed),
    ],
    ids=["toy", "toy2", "toy2-noise", "phantom"],
)
def test_deterministic(make) -> None:  # type: ignore[no-untyped-def]
    a, b, c = make(0), make(0), make(1)
    first = "images" if hasattr(a, "images") else "image"
    for name in (first, "labels", "scribbles"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(getattr(a, first), getattr(c, first))


@pytest.mark.parametrize(("make", "n"), [(toy.make_toy, 0), (toy.make_toy2, 0), (toy.make_toy, 2)])
def test_shapes_and_dtypes(make, n: int) -> None:  # type: ignore[no-untyped-def]
    s = make(n, size=32)
    assert len(s) == n
    for arr in (s.images, s.labels, s.scribbles):
        assert arr.shape == (n, 32, 32) and arr.dtype == np.uint8
    assert s.centers.shape == (n, 2)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: toy.make_toy(-1), "whole number >= 0"),
        (lambda: toy.make_toy(1, size=4), ">= 8"),
        (lambda: toy.make_toy2(1, noise=-1.0), "noise"),
        (lambda: toy.make_toy2(1, size=16, radius=100), "do not fit"),
        (lambda: toy.toy_splits("toy3"), "expected 'toy' or 'toy2'"),  # type: ignore[arg-type]
        (lambda: toy.cardiac_phantom(0), "at least one slice"),
        (lambda: toy.cardiac_phantom(2, spacing=(1.0, 0.0, 1.0)), "spacing"),
    ],
)
def test_bad_arguments(call, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=match):
        call()


# --------------------------------------------------------------------------------------------
# TOY


def test_toy_geometry_256() -> None:
    s = toy.make_toy(3, seed=0)
    inner = s.labels[0].astype(bool)
    assert inner.sum() == pytest.approx(np.pi * 50**2, rel=0.02)
    assert set(np.unique(s.labels)) == {0, 1} and set(np.unique(s.scribbles)) == {0, 2}
    weak = s.scribbles[0] > 0
    assert weak.sum() == pytest.approx(np.pi * 5**2, rel=0.15)
    assert np.all(inner[weak])
    np.testing.assert_array_equal(s.centers, [[128, 128]] * 3)
    assert s.radius == 50
    rows, cols = np.nonzero(inner)
    assert (rows.mean(), cols.mean()) == pytest.approx((128, 128))


def test_toy_noise_levels() -> None:
    s = toy.make_toy(40, seed=3, size=64)
    assert s.noise is not None
    assert np.all((s.noise >= 0) & (s.noise < 100))
    assert s.noise.std() > 15  # spread over the range, not constant
    r_out = round(100 * 64 / 256)
    rows, cols = np.ogrid[:64, :64]
    ring = ((rows - 32) ** 2 + (cols - 32) ** 2 <= r_out**2) & (s.labels[0] == 0)
    for img, sigma in zip(s.images, s.noise):
        if sigma < 20:  # clipping at 0 (68 - 3.4 sigma) is negligible here
            measured = img[ring].astype(float).std()
            assert measured == pytest.approx(np.hypot(sigma, np.sqrt(1 / 12)), rel=0.1, abs=0.5)
            assert img[ring].mean() == pytest.approx(68, abs=max(1.0, sigma / 4))


# --------------------------------------------------------------------------------------------
# TOY2


@pytest.mark.parametrize("size", [64, 256])
def test_toy2_geometry(size: int) -> None:
    s = toy.make_toy2(20, seed=1, size=size)
    r = round(25 * size / 256)
    assert s.radius == r
    for img, lab, weak, (cr, cc) in zip(s.images, s.labels, s.scribbles, s.centers):
        assert img[int(cr), int(cc)] == 125
        target, distractor = img == 125, img == 255
        # both discs whole: inside the image and not overlapping
        assert target.sum() == distractor.sum() == _disc_area(r)
        assert r <= cr <= size - 1 - r and r <= cc <= size - 1 - r
        np.testing.assert_array_equal(lab.astype(bool), target)
        dr, dc = ndi.center_of_mass(distractor)
        assert np.hypot(dr - cr, dc - cc) >= 2 * r + 1
        assert set(np.unique(img)) == {0, 125, 255}
        assert weak.max() == 2 and np.all(lab[weak > 0] == 1) and weak[int(cr), int(cc)] == 2


def test_toy2_noise_keeps_geometry() -> None:
    clean, noisy = toy.make_toy2(5, seed=2, size=64), toy.make_toy2(5, seed=2, size=64, noise=8.0)
    np.testing.assert_array_equal(clean.centers, noisy.centers)
    np.testing.assert_array_equal(clean.labels, noisy.labels)
    diff = noisy.images.astype(float) - clean.images
    assert diff[clean.images == 125].std() == pytest.approx(8.0, rel=0.15)


@pytest.mark.parametrize(("kind", "n_train", "n_val"), [("toy", 10, 10), ("toy2", 1000, 100)])
def test_toy_splits_defaults(kind: str, n_train: int, n_val: int) -> None:
    splits = toy.toy_splits(kind, size=32)  # type: ignore[arg-type]
    assert (len(splits["train"]), len(splits["val"])) == (n_train, n_val)
    make = toy.make_toy if kind == "toy" else toy.make_toy2
    np.testing.assert_array_equal(splits["train"].images, make(n_train, seed=0, size=32).images)
    k = min(n_train, n_val)
    assert not np.array_equal(splits["train"].images[:k], splits["val"].images[:k])


def test_toy_splits_counts() -> None:
    splits = toy.toy_splits("toy2", seed=5, size=32, n_train=3, n_val=2)
    assert (len(splits["train"]), len(splits["val"])) == (3, 2)


# --------------------------------------------------------------------------------------------
# Phantom


@pytest.mark.parametrize(("n_slices", "size", "seed"), [(8, 128, 0), (8, 128, 7), (5, 64, 3), (1, 64, 0)])
def test_phantom_labels_and_scribbles(n_slices: int, size: int, seed: int) -> None:
    ph = toy.cardiac_phantom(n_slices, size, seed=seed, spacing=(8.0, 1.25, 1.25))
    assert ph.image.shape == ph.labels.shape == ph.scribbles.shape == (n_slices, size, size)
    assert ph.image.dtype == np.float32 and ph.labels.dtype == ph.scribbles.dtype == np.uint8
    assert ph.spacing == (8.0, 1.25, 1.25)
    assert ph.class_names == ("background", "RV", "myocardium", "LV")
    np.testing.assert_array_equal(ph.affine, np.diag([1.25, 1.25, 8.0, 1.0]))

    annotated = ph.scribbles > 0
    np.testing.assert_array_equal(ph.scribbles[annotated] - 1, ph.labels[annotated])
    for z in range(n_slices):
        present = set(np.unique(ph.labels[z]).tolist())
        scribbled = {int(v) - 1 for v in np.unique(ph.scribbles[z]) if v > 0}
        assert present == scribbled, f"slice {z}: classes {present}, scribbles {scribbled}"
        assert {0, 2, 3} <= present
        for c in present:
            # thin strokes, not filled regions
            assert (ph.scribbles[z] == c + 1).sum() <= 0.5 * (ph.labels[z] == c).sum()

    if n_slices > 1:
        assert 1 in ph.labels[0] and 1 not in ph.labels[-1]
        lv_area = (ph.labels == 3).sum(axis=(1, 2))
        assert np.all(np.diff(lv_area) <= 0) and lv_area[-1] < lv_area[0]


def test_phantom_looks_like_cine_mri() -> None:
    ph = toy.cardiac_phantom(seed=0)
    img, lab = ph.image[0], ph.labels[0]
    blood, myo = np.median(img[lab == 3]), np.median(img[lab == 2])
    assert blood > 2.5 * myo  # bright blood, dark muscle
    assert np.median(img[lab == 1]) > 2.5 * myo
    # the RV lies to the left (smaller column) of the LV
    assert np.nonzero(lab == 1)[1].mean() < np.nonzero(lab == 3)[1].mean()
    # background strokes stay away from the heart
    distance = ndi.distance_transform_edt(ph.labels[0] == 0)
    assert distance[ph.scribbles[0] == 1].min() >= 3


# --------------------------------------------------------------------------------------------
# Sample files


def test_write_samples(tmp_path: Path) -> None:
    written = toy.write_samples(tmp_path)
    assert all(p.is_file() for p in written)
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    expected_png = [
        f"{kind}/{sub}/{i:03d}.png" for kind in ("toy", "toy2") for sub in ("gt", "img", "weak") for i in range(3)
    ]
    expected_nii = [f"phantom/phantom{s}.nii.gz" for s in ("", "_gt", "_scribble")]
    assert files == sorted(["README.md", *expected_png, *expected_nii])
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == files
    assert sum(p.stat().st_size for p in written) < 1_000_000

    for kind in ("toy", "toy2"):
        images = io.read_png_folder(tmp_path / kind / "img")
        assert images.shape == (3, 256, 256) and images.dtype == np.uint8
        assert set(np.unique(io.read_png_folder(tmp_path / kind / "gt"))) == {0, 1}
        assert set(np.unique(io.read_png_folder(tmp_path / kind / "weak"))) == {0, 2}
    np.testing.assert_array_equal(io.read_png_folder(tmp_path / "toy2" / "img"), toy.make_toy2(3, seed=0).images)

    ph = toy.cardiac_phantom(8, 128, seed=0)
    image = io.read_nifti(tmp_path / "phantom" / "phantom.nii.gz")
    gt = io.read_nifti(tmp_path / "phantom" / "phantom_gt.nii.gz")
    scribble = io.read_nifti(tmp_path / "phantom" / "phantom_scribble.nii.gz")
    for vol in (image, gt, scribble):
        assert vol.data.shape == (8, 128, 128)
        assert vol.spacing == pytest.approx((10.0, 1.5, 1.5))
        np.testing.assert_allclose(vol.affine, np.diag([1.5, 1.5, 10.0, 1.0]))
    np.testing.assert_array_equal(gt.data, ph.labels)
    np.testing.assert_array_equal(scribble.data, ph.scribbles)
    np.testing.assert_allclose(image.data, ph.image, atol=0.5)
    assert io.acdc_siblings(tmp_path / "phantom" / "phantom.nii.gz") == (gt.path, scribble.path)

    readme = (tmp_path / "README.md").read_text()
    assert "napari-wss make-samples" in readme and "synthetic" in readme
    assert toy.write_samples(tmp_path) == written  # regenerating overwrites in place
