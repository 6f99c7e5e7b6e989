"""Tests for napari_wss.io: NIfTI and PNG round trips, error messages, dataset discovery."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from skimage import io as skio

from napari_wss import io, toy
from napari_wss.errors import InputError

ACDC = Path(__file__).resolve().parents[1].parent / "shared/data/acdc"
needs_acdc = pytest.mark.skipif(not ACDC.is_dir(), reason=f"ACDC data not found at {ACDC}")

# A non-diagonal affine: rotation about z, anisotropic voxels (dx, dy, dz) = (1.25, 0.8, 6), shift.
_ROT = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
AFFINE = np.eye(4)
AFFINE[:3, :3] = _ROT @ np.diag([1.25, 0.8, 6.0])
AFFINE[:3, 3] = [10.0, -20.0, 5.0]


def _save_xyz(path: Path, xyz: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    nib.save(nib.Nifti1Image(xyz, affine), str(path))
    return path


# --------------------------------------------------------------------------------------------
# NIfTI


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_read_nifti_orientation_spacing_affine(tmp_path: Path, suffix: str) -> None:
    xyz = np.zeros((5, 4, 3), dtype=np.int16)  # (x, y, z)
    xyz[4, 1, 2] = 7  # known voxel: x=4, y=1, z=2
    vol = io.read_nifti(_save_xyz(tmp_path / f"a{suffix}", xyz))
    assert vol.data.shape == (3, 4, 5)
    assert vol.data[2, 1, 4] == 7 and vol.data.sum() == 7
    assert vol.data.flags.c_contiguous
    assert vol.spacing == pytest.approx((6.0, 0.8, 1.25))
    np.testing.assert_allclose(vol.affine, AFFINE)
    assert vol.path == tmp_path / f"a{suffix}"


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize(
    ("values", "dtype"),
    [((0, 1, 3), np.uint8), ((0, 255), np.uint8), ((0, 256), np.int16), ((-1, 2), np.int16), ((True,), np.uint8)],
)
def test_write_nifti_round_trip(tmp_path: Path, suffix: str, values: tuple[int, ...], dtype: type) -> None:
    rng = np.random.default_rng(0)
    data = rng.choice(np.array(values), size=(3, 4, 5))
    path = io.write_nifti(tmp_path / f"labels{suffix}", data, AFFINE)
    vol = io.read_nifti(path)
    assert vol.data.dtype == dtype
    np.testing.assert_array_equal(vol.data, data)
    np.testing.assert_allclose(vol.affine, AFFINE)
    assert vol.spacing == pytest.approx((6.0, 0.8, 1.25))
    # the file itself is (x, y, z)
    assert nib.load(str(path)).shape == (5, 4, 3)


def test_write_nifti_explicit_spacing_and_float(tmp_path: Path) -> None:
    data = np.linspace(0, 1, 24, dtype=np.float64).reshape(2, 3, 4)
    path = io.write_nifti(tmp_path / "img.nii.gz", data, np.diag([-1.0, -1.0, 1.0, 1.0]), spacing=(10, 1.5, 1.25))
    vol = io.read_nifti(path)
    assert vol.data.dtype == np.float32
    np.testing.assert_allclose(vol.data, data, rtol=1e-6)
    assert vol.spacing == pytest.approx((10.0, 1.5, 1.25))
    np.testing.assert_allclose(vol.affine, np.diag([-1.0, -1.0, 1.0, 1.0]))


def test_read_nifti_2d(tmp_path: Path) -> None:
    xy = np.arange(12, dtype=np.uint8).reshape(4, 3)  # (x, y)
    vol = io.read_nifti(_save_xyz(tmp_path / "flat.nii.gz", xy, np.diag([0.5, 0.7, 1.0, 1.0])))
    assert vol.data.shape == (1, 3, 4)
    np.testing.assert_array_equal(vol.data[0], xy.T)
    assert vol.spacing[1:] == pytest.approx((0.7, 0.5))


def test_read_nifti_4d(tmp_path: Path) -> None:
    xyzt = np.zeros((5, 4, 3, 6), dtype=np.int16)
    for t in range(6):
        xyzt[..., t] = t
    path = _save_xyz(tmp_path / "cine.nii.gz", xyzt)
    with pytest.raises(InputError, match=r"4D with 6 time frames.*frame=0\.\.5"):
        io.read_nifti(path)
    vol = io.read_nifti(path, frame=4)
    assert vol.data.shape == (3, 4, 5)
    assert np.all(vol.data == 4)
    with pytest.raises(InputError, match="out of range"):
        io.read_nifti(path, frame=6)


def test_cine_frames_round_trip_through_nifti(tmp_path: Path) -> None:
    """Every frame of a 4D file in one read, each as read_nifti gives it; written back as a cine
    on the same grid with the same time step, it reads back voxel for voxel."""
    rng = np.random.default_rng(0)
    xyzt = rng.integers(0, 4, size=(5, 4, 3, 6)).astype(np.uint8)
    img = nib.Nifti1Image(xyzt, np.diag([1.5, 1.25, 8.0, 1.0]))
    img.header.set_zooms((1.5, 1.25, 8.0, 32.5))
    path = tmp_path / "cine.nii.gz"
    nib.save(img, path)
    frames, step = io.read_nifti_frames(path)
    assert len(frames) == 6 and step == pytest.approx(32.5)
    for t, vol in enumerate(frames):
        np.testing.assert_array_equal(vol.data, io.read_nifti(path, frame=t).data)
        assert vol.spacing == pytest.approx((8.0, 1.25, 1.5))
    cine = np.stack([v.data for v in frames])  # (T, Z, Y, X)
    out = io.write_nifti(tmp_path / "out.nii.gz", cine, frames[0].affine, spacing=frames[0].spacing, frame_step=step)
    back = nib.load(out)
    np.testing.assert_array_equal(np.asarray(back.dataobj), xyzt)
    assert back.header.get_zooms() == pytest.approx((1.5, 1.25, 8.0, 32.5))
    with pytest.raises(InputError, match="not a 4D cine"):
        io.read_nifti_frames(_save_xyz(tmp_path / "vol.nii.gz", xyzt[..., 0]))


@pytest.mark.parametrize(
    ("shape", "frame", "match"),
    [((2, 2, 2, 2, 2), None, "5 dimensions"), ((2, 2, 2), 0, "not 4D")],
)
def test_read_nifti_bad_dimensions(tmp_path: Path, shape: tuple[int, ...], frame: int | None, match: str) -> None:
    path = _save_xyz(tmp_path / "x.nii", np.zeros(shape, dtype=np.uint8))
    with pytest.raises(InputError, match=match):
        io.read_nifti(path, frame=frame)


def _truncated(tmp_path: Path, suffix: str) -> Path:
    good = io.write_nifti(tmp_path / f"good{suffix}", np.random.default_rng(0).integers(0, 4, (6, 32, 32)), AFFINE)
    raw = good.read_bytes()
    bad = tmp_path / f"cut{suffix}"
    bad.write_bytes(raw[: len(raw) * 2 // 3])
    return bad


def _random_bytes(tmp_path: Path, suffix: str) -> Path:
    bad = tmp_path / f"noise{suffix}"
    bad.write_bytes(np.random.default_rng(1).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    return bad


@pytest.mark.parametrize(
    "make",
    [
        lambda d: _truncated(d, ".nii.gz"),
        lambda d: _truncated(d, ".nii"),
        lambda d: _random_bytes(d, ".nii.gz"),
        lambda d: _random_bytes(d, ".nii"),
        lambda d: d / "missing.nii.gz",
        lambda d: d,  # a folder
    ],
    ids=["truncated-gz", "truncated-nii", "random-gz", "random-nii", "missing", "folder"],
)
def test_read_nifti_bad_files(tmp_path: Path, make) -> None:  # type: ignore[no-untyped-def]
    path = make(tmp_path)
    with pytest.raises(InputError) as info:
        io.read_nifti(path)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message


def test_write_nifti_refuses_source_and_existing(tmp_path: Path) -> None:
    data = np.zeros((2, 3, 4), dtype=np.uint8)
    src = io.write_nifti(tmp_path / "img.nii.gz", data, AFFINE)
    alias = tmp_path / "sub" / ".." / "img.nii.gz"
    (tmp_path / "sub").mkdir()
    with pytest.raises(InputError, match="source image"):
        io.write_nifti(alias, data, AFFINE, source=src, overwrite=True)
    with pytest.raises(InputError, match="already exists"):
        io.write_nifti(src, data, AFFINE)
    io.write_nifti(src, data + 1, AFFINE, overwrite=True)
    assert io.read_nifti(src).data.max() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.nii.gz", "sub"]  # no temp files left


@pytest.mark.parametrize(
    ("name", "data", "affine", "match"),
    [
        ("x.nrrd", np.zeros((2, 2, 2)), np.eye(4), r"\.nii or \.nii\.gz"),
        ("x.nii", np.zeros((2, 2, 2, 2, 2)), np.eye(4), r"\(Z, Y, X\)"),
        ("x.nii", np.zeros((2, 2, 2)), np.eye(3), "4 x 4"),
        ("missing/x.nii", np.zeros((2, 2, 2)), np.eye(4), "does not exist"),
    ],
)
def test_write_nifti_bad_arguments(tmp_path: Path, name: str, data: np.ndarray, affine: np.ndarray, match: str) -> None:
    with pytest.raises(InputError, match=match):
        io.write_nifti(tmp_path / name, data, affine)


def test_write_nifti_unwritable_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(io.tempfile, "mkstemp", refuse)
    with pytest.raises(InputError, match="not writable"):
        io.write_nifti(tmp_path / "x.nii.gz", np.zeros((1, 2, 2), dtype=np.uint8), np.eye(4))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root POSIX user")
def test_write_nifti_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(InputError, match="not writable"):
            io.write_nifti(folder / "x.nii.gz", np.zeros((1, 2, 2), dtype=np.uint8), np.eye(4))
    finally:
        folder.chmod(0o755)


# --------------------------------------------------------------------------------------------
# PNG


def test_png_folder_natural_order(tmp_path: Path) -> None:
    for i in (10, 2, 1):
        skio.imsave(tmp_path / f"img{i}.png", np.full((3, 4), i, dtype=np.uint8), check_contrast=False)
    (tmp_path / "notes.txt").write_text("not an image")
    stack = io.read_png_folder(tmp_path)
    assert stack.shape == (3, 3, 4)
    assert stack[:, 0, 0].tolist() == [1, 2, 10]


def test_png_folder_shape_mismatch_names_file(tmp_path: Path) -> None:
    skio.imsave(tmp_path / "a1.png", np.zeros((3, 4), dtype=np.uint8), check_contrast=False)
    skio.imsave(tmp_path / "a2.png", np.zeros((4, 4), dtype=np.uint8), check_contrast=False)
    skio.imsave(tmp_path / "a3.png", np.zeros((5, 4), dtype=np.uint8), check_contrast=False)
    with pytest.raises(InputError, match=r"a2\.png has shape \(4, 4\)"):
        io.read_png_folder(tmp_path)


@pytest.mark.parametrize(("make", "match"), [(lambda d: d / "nope", "not found"), (lambda d: d, "no .png")])
def test_png_folder_missing_or_empty(tmp_path: Path, make, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=match):
        io.read_png_folder(make(tmp_path))


def test_read_png_stack_keeps_order(tmp_path: Path) -> None:
    paths = []
    for i in (3, 1):
        paths.append(tmp_path / f"{i}.png")
        skio.imsave(paths[-1], np.full((2, 2), i, dtype=np.uint8), check_contrast=False)
    assert io.read_png_stack(paths)[:, 0, 0].tolist() == [3, 1]
    with pytest.raises(InputError):
        io.read_png_stack([])


@pytest.mark.parametrize(
    ("pixel", "dtype", "expected"),
    [
        ((255, 0, 0), np.uint8, 54),  # 0.2125 * 255 = 54.19
        ((0, 255, 0), np.uint8, 182),  # 0.7154 * 255 = 182.4
        ((0, 0, 255, 255), np.uint8, 18),  # RGBA: 0.0721 * 255 = 18.4, alpha dropped
        ((100, 100, 100), np.uint8, 100),
    ],
)
def test_read_png_colour_to_luminance(tmp_path: Path, pixel: tuple[int, ...], dtype: type, expected: int) -> None:
    rgb = np.broadcast_to(np.asarray(pixel, dtype=dtype), (3, 5, len(pixel))).copy()
    skio.imsave(tmp_path / "c.png", rgb, check_contrast=False)
    grey = io.read_png(tmp_path / "c.png")
    assert grey.shape == (3, 5)
    assert grey.dtype == dtype
    assert int(grey[0, 0]) == expected


def test_read_png_16bit_and_bool(tmp_path: Path) -> None:
    deep = np.array([[0, 1000], [40000, 65535]], dtype=np.uint16)
    skio.imsave(tmp_path / "d.png", deep, check_contrast=False)
    out = io.read_png(tmp_path / "d.png")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, deep)
    Image.fromarray(np.array([[True, False]])).save(tmp_path / "b.png")  # a 1-bit PNG
    binary = io.read_png(tmp_path / "b.png")
    assert binary.dtype == np.uint8 and binary.tolist() == [[1, 0]]


def test_read_png_bad_file(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_bytes(b"definitely not a png")
    with pytest.raises(InputError, match=r"x\.png"):
        io.read_png(tmp_path / "x.png")


def test_write_png_round_trip_and_protection(tmp_path: Path) -> None:
    labels = np.array([[0, 1], [2, 4]], dtype=np.int64)
    path = io.write_png(tmp_path / "l.png", labels)
    np.testing.assert_array_equal(io.read_png(path), labels)
    with pytest.raises(InputError, match="already exists"):
        io.write_png(path, labels)
    io.write_png(path, labels + 1, overwrite=True)
    assert io.read_png(path).max() == 5
    for bad in (labels - 1, labels * 100.0, labels + 0.5, labels[None]):
        with pytest.raises(InputError):
            io.write_png(tmp_path / "bad.png", bad)


# --------------------------------------------------------------------------------------------
# Layouts and helpers


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("patient001_frame01_gt.nii.gz", True),
        ("patient001_frame01_scribble.nii", True),
        ("patient001_frame01.nii.gz", False),
        ("patient001_4d.nii.gz", False),
        ("x_gt.png", False),
    ],
)
def test_is_acdc_label_file(name: str, expected: bool) -> None:
    assert io.is_acdc_label_file(name) is expected


def test_acdc_siblings(tmp_path: Path) -> None:
    for name in ("patient007_frame03.nii.gz", "patient007_frame03_gt.nii.gz", "patient007_frame09.nii"):
        (tmp_path / name).touch()
    (tmp_path / "patient007_frame09_scribble.nii").touch()
    assert io.acdc_siblings(tmp_path / "patient007_frame03.nii.gz") == (tmp_path / "patient007_frame03_gt.nii.gz", None)
    assert io.acdc_siblings(tmp_path / "patient007_frame09.nii") == (None, tmp_path / "patient007_frame09_scribble.nii")
    assert io.acdc_siblings(tmp_path / "patient007_frame03_gt.nii.gz") == (None, None)


def test_find_acdc_cases_synthetic_layout(tmp_path: Path) -> None:
    patient = tmp_path / "training" / "patient012"
    patient.mkdir(parents=True)
    (patient / "Info.cfg").write_text("ED: 1\nES: 9\nGroup: NOR\n")
    for name in ("patient012_frame09.nii.gz", "patient012_frame01.nii.gz", "patient012_frame01_gt.nii.gz"):
        (patient / name).touch()
    for root in (tmp_path, tmp_path / "training", patient):
        cases = io.find_acdc_cases(root)
        assert [(c.patient_id, c.frame, c.phase) for c in cases] == [(12, 1, "ED"), (12, 9, "ES")]
        assert cases[0].gt == patient / "patient012_frame01_gt.nii.gz" and cases[1].gt is None
        assert cases[0].info["Group"] == "NOR"


@pytest.mark.parametrize(("make", "match"), [(lambda d: d / "nope", "not found"), (lambda d: d, "expected training/")])
def test_find_acdc_cases_errors(tmp_path: Path, make, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=match):
        io.find_acdc_cases(make(tmp_path))


@needs_acdc
def test_find_acdc_cases_real() -> None:
    cases = io.find_acdc_cases(ACDC)
    assert len(cases) == 200
    first, second = cases[0], cases[1]
    assert (first.patient, first.frame, first.phase) == ("patient001", 1, "ED")
    assert (second.patient, second.frame, second.phase) == ("patient001", 12, "ES")
    assert all(c.gt is not None and c.scribble is not None for c in cases)
    assert all(c.phase in ("ED", "ES") for c in cases)
    assert [c.patient_id for c in cases] == sorted(c.patient_id for c in cases)
    assert len(io.find_acdc_cases(ACDC / "training")) == 200
    assert len(io.find_acdc_cases(ACDC / "training" / "patient001")) == 2


@needs_acdc
def test_read_acdc_case() -> None:
    case = io.find_acdc_cases(ACDC / "training" / "patient001")[0]
    assert case.gt is not None and case.scribble is not None
    image, gt, scribble = (io.read_nifti(p) for p in (case.image, case.gt, case.scribble))
    assert image.data.shape == gt.data.shape == scribble.data.shape
    assert image.data.shape[0] < image.data.shape[1]  # few slices along Z
    assert image.spacing == gt.spacing == scribble.spacing
    assert image.spacing[0] >= 5.0
    assert gt.data.dtype == scribble.data.dtype == np.uint8
    assert scribble.data.min() >= 0 and scribble.data.max() <= 4
    assert set(np.unique(gt.data)) <= {0, 1, 2, 3}
    annotated = scribble.data > 0
    agree = (scribble.data[annotated].astype(int) - 1) == gt.data[annotated]
    assert agree.mean() >= 0.99
    gt_sib, scribble_sib = io.acdc_siblings(case.image)
    assert (gt_sib, scribble_sib) == (case.gt, case.scribble)


def test_find_png_dataset_seed_layout(tmp_path: Path) -> None:
    toy.write_samples(tmp_path)
    # Seed layout {train,val}/{img,gt,weak}: train is the sample TOY set, val a hand-made split
    # with a missing gt file and no weak/ folder.
    (tmp_path / "seed").mkdir()
    (tmp_path / "toy").rename(tmp_path / "seed" / "train")
    val = tmp_path / "seed" / "val"
    for sub, names in (("img", ("img1.png", "img10.png", "img2.png")), ("gt", ("img1.png", "img10.png"))):
        (val / sub).mkdir(parents=True)
        for name in names:
            skio.imsave(val / sub / name, np.zeros((4, 4), np.uint8), check_contrast=False)

    dataset = io.find_png_dataset(tmp_path / "seed")
    assert sorted(dataset) == ["train", "val"]
    assert [s.name for s in dataset["train"]] == ["000.png", "001.png", "002.png"]
    assert all(s.gt is not None and s.weak is not None for s in dataset["train"])
    assert [s.name for s in dataset["val"]] == ["img1.png", "img2.png", "img10.png"]
    assert [s.gt is not None for s in dataset["val"]] == [True, False, True]
    assert all(s.weak is None for s in dataset["val"])

    single = io.find_png_dataset(tmp_path / "toy2")
    assert list(single) == ["all"] and len(single["all"]) == 3


@pytest.mark.parametrize(("make", "match"), [(lambda d: d / "nope", "not found"), (lambda d: d, "expected")])
def test_find_png_dataset_errors(tmp_path: Path, make, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=match):
        io.find_png_dataset(make(tmp_path))


@pytest.mark.parametrize(
    ("area_mm2", "spacing", "pixels"),
    [(100.0, (1.0, 1.0), 100.0), (100.0, (2.0, 0.5), 100.0), (10.0, (1.5625, 1.5625), 4.096), (0.0, (1, 1), 0.0)],
)
def test_area_conversions(area_mm2: float, spacing: tuple[float, float], pixels: float) -> None:
    assert io.mm2_to_pixels(area_mm2, spacing) == pytest.approx(pixels)
    assert io.pixels_to_mm2(pixels, spacing) == pytest.approx(area_mm2)


@pytest.mark.parametrize("spacing", [(0.0, 1.0), (1.0, -1.0), (1.0,), (1.0, float("nan"))])
def test_area_conversion_bad_spacing(spacing: tuple[float, ...]) -> None:
    with pytest.raises(InputError, match="spacing"):
        io.mm2_to_pixels(1.0, spacing)
