"""The bad-input matrix of issue 5, through the core and the ``napari-wss`` command line.

Every row of the matrix has a case here: the CLI answers ONE line ``napari-wss: error: ...`` on
stderr with exit status 2 and no traceback; the core raises :class:`InputError` with one line.
Rows that are accepted on purpose (2D NIfTI, a 4D file with ``--frame``, 8/16-bit and RGB PNGs,
float64 volumes, images smaller than the network) train instead. The readers fed random or damaged
bytes raise nothing but :class:`InputError` (property-based, hypothesis).
The napari reader and widget rows live in ``tests/gui/test_bad_input_plugin.py``.
"""

from __future__ import annotations

import gzip
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from helpers import assert_one_line_error
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from skimage import io as skio

from napari_wss import cli, io, toy, training
from napari_wss.config import TrainConfig
from napari_wss.errors import InputError

AFFINE = np.diag([1.5, 1.25, 8.0, 1.0])
AFFINE[:3, 3] = [-30.0, 12.0, 4.0]
TINY = ["--steps", "2", "--net-size", "32", "--width", "4", "--depth", "2", "--batch-size", "2"]
TINY += ["--device", "cpu", "--no-amp", "--no-progress"]


pytestmark = pytest.mark.usefixtures("one_thread")


@dataclass
class Case:
    """The folder of one test and a good image / scribbles / labels triple in it (3 x 48 x 48)."""

    dir: Path
    image: Path
    scribbles: Path
    labels: Path
    phantom: toy.Phantom
    monkeypatch: pytest.MonkeyPatch

    def nifti(self, name: str, data: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
        """Write ``data`` in napari order (Z, Y, X) as given (no dtype change)."""
        path = self.dir / name
        nib.save(nib.Nifti1Image(np.asarray(data).transpose(2, 1, 0), affine), str(path))
        return path

    def raw_nifti(self, name: str, xyz: np.ndarray) -> Path:
        """Write a NIfTI of any dimensionality in nibabel's (x, y, z, ...) order."""
        path = self.dir / name
        nib.save(nib.Nifti1Image(xyz, AFFINE), str(path))
        return path

    def train(self, *extra: object, image: object = None, scribbles: object = None) -> list[str]:
        args = ["train", "--image", image or self.image, "--scribbles", scribbles or self.scribbles]
        return [str(a) for a in (*args, "--out", self.dir / "model.pt", *TINY, *extra)]

    def model(self, names: tuple[str, ...] = ("background", "RV", "myocardium", "LV")) -> Path:
        state = training.TrainState.create(TrainConfig(width=4, depth=2, size=32, device="cpu"), names)
        return training.save_checkpoint(state, self.dir / f"model{len(names)}.pt")


@pytest.fixture
def case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Case:
    ph = toy.cardiac_phantom(n_slices=3, size=48, seed=0)
    files = {
        name: io.write_nifti(tmp_path / f"ph_{name}.nii.gz", arr, AFFINE, spacing=(8.0, 1.25, 1.5))
        for name, arr in (("image", ph.image.astype(np.float32)), ("scribbles", ph.scribbles), ("labels", ph.labels))
    }
    return Case(tmp_path, files["image"], files["scribbles"], files["labels"], ph, monkeypatch)


def _truncated(c: Case) -> Path:
    raw = c.image.read_bytes()
    path = c.dir / "cut.nii.gz"
    path.write_bytes(raw[: len(raw) // 2])
    return path


def _not_nifti(c: Case) -> Path:
    path = c.dir / "notes.nii.gz"
    path.write_bytes(b"Patient notes, not an image.\n" * 20)
    return path


def _image_with(c: Case, value: float | None = None, at: float | None = None) -> Path:
    img = c.phantom.image.astype(np.float32)
    if value is not None:
        img[...] = value
    if at is not None:
        img[1, 5, 7] = at
    return c.nifti("bad_image.nii.gz", img)


def _scribbles_as(c: Case, arr: np.ndarray) -> Path:
    return c.nifti("bad_scribbles.nii.gz", arr)


def _shifted_affine() -> np.ndarray:
    moved = AFFINE.copy()
    moved[0, 3] += 40.0  # the same grid 40 mm to the side
    return moved


def _read_only(c: Case) -> list[str]:
    def refuse(*_a: object, **_k: object) -> None:
        raise PermissionError(13, "Permission denied")

    c.monkeypatch.setattr(os, "replace", refuse)
    return c.train()


def _predict(c: Case, *extra: object, model: Path | None = None, image: Path | None = None) -> list[str]:
    args = ["predict", "--model", model or c.model(), "--image", image or c.image, "--device", "cpu"]
    return [str(a) for a in (*args, *extra)]


def _predict_read_only(c: Case) -> list[str]:
    argv = _predict(c, "--out", c.dir / "pred.nii.gz")

    def refuse(*_a: object, **_k: object) -> None:
        raise PermissionError(13, "Permission denied")

    c.monkeypatch.setattr(os, "replace", refuse)
    return argv


def _damaged_model(c: Case) -> Path:
    good = c.model()
    raw = good.read_bytes()
    bad = c.dir / "damaged.pt"
    bad.write_bytes(raw[: len(raw) // 2])
    return bad


def _a_file(c: Case) -> Path:
    path = c.dir / "notes.txt"
    path.write_text("a file, not a folder")
    return path


def _predict_onto_scribbles(c: Case) -> list[str]:
    image = _acdc_like(c)
    return _predict(c, "--out", c.scribbles, "--overwrite", image=image)


def _acdc_like(c: Case) -> Path:
    """An image with an ACDC-style ``_scribble`` sibling; ``c.scribbles`` becomes that sibling."""
    image = c.dir / "case.nii.gz"
    image.write_bytes(c.image.read_bytes())
    sibling = c.dir / "case_scribble.nii.gz"
    sibling.write_bytes(c.scribbles.read_bytes())
    c.scribbles = sibling
    return image


# id -> (argv builder, needles in the one line)
CLI_ROWS: dict[str, tuple[Callable[[Case], list[str]], tuple[str, ...]]] = {
    "truncated-nii-gz": (lambda c: c.train(image=_truncated(c)), ("cut.nii.gz", "truncated or corrupt")),
    "not-nifti-named-nii-gz": (lambda c: c.train(image=_not_nifti(c)), ("notes.nii.gz", "as NIfTI")),
    "4d-without-frame": (
        lambda c: c.train(image=c.raw_nifti("cine.nii.gz", np.zeros((48, 48, 3, 5), np.float32))),
        ("4D with 5 time frames", "--frame 0..4"),
    ),
    "4d-frame-out-of-range": (
        lambda c: c.train("--frame", "5", image=c.raw_nifti("cine.nii.gz", np.zeros((48, 48, 3, 5), np.float32))),
        ("frame 5 is out of range",),
    ),
    "frame-on-a-3d-image": (lambda c: c.train("--frame", "0"), ("not 4D",)),
    "5d": (
        lambda c: c.train(image=c.raw_nifti("five.nii.gz", np.zeros((4, 4, 3, 2, 2), np.float32))),
        ("5 dimensions",),
    ),
    "all-zero-image": (lambda c: c.train(image=_image_with(c, value=0.0)), ("constant", "every value is 0")),
    "constant-image": (lambda c: c.train(image=_image_with(c, value=7.5)), ("constant", "7.5")),
    "nan-image": (lambda c: c.train(image=_image_with(c, at=np.nan)), ("1 NaN or infinite",)),
    "inf-image": (lambda c: c.train(image=_image_with(c, at=np.inf)), ("1 NaN or infinite",)),
    "scribble-shape": (
        lambda c: c.train(scribbles=_scribbles_as(c, np.zeros((3, 48, 40), np.uint8))),
        ("shape (3, 48, 40)", "(3, 48, 48)"),
    ),
    "scribble-affine": (
        lambda c: c.train(scribbles=c.nifti("moved.nii.gz", c.phantom.scribbles, _shifted_affine())),
        ("moved.nii.gz", "grid", "affine"),
    ),
    "labels-affine": (
        lambda c: [
            *c.train("--mode", "full"),
            "--labels",
            str(c.nifti("moved_gt.nii.gz", c.phantom.labels, _shifted_affine())),
        ],
        ("moved_gt.nii.gz", "affine"),
    ),
    "label-beyond-class-count": (lambda c: c.train("--classes", "background,RV"), ("names 2 classes", "use 4")),
    "mask-0-255-as-scribbles": (
        lambda c: c.train(scribbles=_scribbles_as(c, (c.phantom.scribbles > 0).astype(np.uint8) * 255)),
        ("255", "0 = not annotated"),
    ),
    "negative-labels": (
        lambda c: c.train(scribbles=_scribbles_as(c, c.phantom.scribbles.astype(np.int16) - 1)),
        ("must be >= 0", "-1"),
    ),
    "non-integer-labels": (
        lambda c: c.train(scribbles=_scribbles_as(c, c.phantom.scribbles.astype(np.float32) * 0.5)),
        ("whole numbers",),
    ),
    "no-scribbles": (
        lambda c: c.train(scribbles=_scribbles_as(c, np.zeros((3, 48, 48), np.uint8))),
        ("no scribbles are painted",),
    ),
    "class-without-scribble-or-bound": (
        lambda c: c.train("--classes", "background,RV,myocardium,LV,scar"),
        ("'scar' has neither scribbles nor bounds",),
    ),
    "lower-above-upper": (lambda c: c.train("--size-px", "LV=900:100"), ("LV", "lower 900 > upper 100")),
    "negative-size": (lambda c: c.train("--size-mm2", "LV=-5:10"), ("LV", "negative")),
    "size-beyond-slice-area": (
        lambda c: c.train("--size-px", "LV=5000:6000"),
        ("lower 5000 px exceeds the slice area 2304 px",),
    ),
    "centroid-box-outside": (
        lambda c: c.train("--centroid", "LV=100:120,0:5"),
        ("centroid box for 'LV'", "outside the 48x48 image"),
    ),
    "cardiac-sizes-without-spacing": (
        lambda c: [*_png_case(c, _grey8(c)), "--cardiac-sizes"],
        ("--cardiac-sizes are areas in mm²", "--spacing DY DX"),
    ),
    "cardiac-sizes-without-heart-classes": (
        lambda c: c.train("--cardiac-sizes", "--classes", "bg,a,b,c"),
        ("classes named RV, myocardium or LV", "the classes are bg, a, b, c"),
    ),
    "rotation-beyond-half-turn": (lambda c: c.train("--rotate", "270"), ("rotate must be in [0, 180]", "270")),
    "network-below-minimum": (lambda c: c.train("--net-size", "8", "--depth", "4"), ("size must be", "[16, 4096]")),
    "checkpoint-other-class-count": (
        lambda c: c.train("--resume", c.model(("background", "target"))),
        ("model2.pt", "segments 2 classes", "use 4"),
    ),
    "corrupt-checkpoint-resume": (lambda c: c.train("--resume", _damaged_model(c)), ("damaged.pt", "damaged")),
    "corrupt-checkpoint-predict": (
        lambda c: _predict(c, "--out", c.dir / "pred.nii.gz", model=_damaged_model(c)),
        ("damaged.pt", "damaged"),
    ),
    "model-out-under-a-file": (
        lambda c: [*c.train()[: -len(TINY) - 2], "--out", str(_a_file(c) / "m.pt"), *TINY],
        ("notes.txt", "does not exist"),
    ),
    "model-out-read-only": (_read_only, ("cannot save the model", "Permission denied")),
    "prediction-out-under-a-file": (
        lambda c: _predict(c, "--out", _a_file(c) / "pred.nii.gz"),
        ("notes.txt", "does not exist"),
    ),
    "prediction-out-read-only": (_predict_read_only, ("Cannot write", "Permission denied")),
    "predict-on-an-unknown-device": (
        lambda c: _predict(c, "--out", c.dir / "pred.nii.gz", "--device", "gpu0"),
        ("device must be auto, cpu, cuda, cuda:N or mps", "'gpu0'"),
    ),
    "prediction-out-is-the-source": (
        lambda c: _predict(c, "--out", c.image, "--overwrite"),
        ("source image",),
    ),
    "prediction-out-is-the-scribbles": (_predict_onto_scribbles, ("case_scribble.nii.gz", "scribbles")),
    "model-out-is-the-image": (
        lambda c: [*c.train()[: -len(TINY) - 2], "--out", str(c.image), *TINY],
        ("training image",),
    ),
    "model-out-is-the-scribbles": (
        lambda c: [*c.train()[: -len(TINY) - 2], "--out", str(c.scribbles), *TINY],
        ("ph_scribbles.nii.gz",),
    ),
}


def _digests(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.mark.parametrize("row", list(CLI_ROWS))
def test_cli_refuses_with_one_line(row: str, case: Case, capsys: pytest.CaptureFixture[str]) -> None:
    build, needles = CLI_ROWS[row]
    argv = build(case)
    before = _digests(case.dir)
    code = cli.main(argv)
    _out, err = capsys.readouterr()
    assert_one_line_error(code, err, *needles)
    after = _digests(case.dir)
    assert {k: v for k, v in after.items() if k in before} == before, "an input file changed"
    assert not set(after) - set(before), f"files appeared: {set(after) - set(before)}"


# --------------------------------------------------------------------------------------------
# Accepted on purpose: these train (exit 0)


def _png(path: Path, arr: np.ndarray) -> Path:
    skio.imsave(str(path), arr, check_contrast=False)
    return path


def _png_case(c: Case, image: np.ndarray) -> list[str]:
    img = _png(c.dir / "slice.png", image)
    scr = _png(c.dir / "slice_scribbles.png", c.phantom.scribbles[1])
    return c.train(image=img, scribbles=scr)


def _grey8(c: Case) -> np.ndarray:
    return (c.phantom.image[1] / c.phantom.image.max() * 255).astype(np.uint8)


ACCEPTED: dict[str, Callable[[Case], list[str]]] = {
    "2d-nifti": lambda c: c.train(
        image=c.raw_nifti("flat.nii.gz", c.phantom.image[1].T.astype(np.float32)),
        scribbles=c.raw_nifti("flat_scr.nii.gz", c.phantom.scribbles[1].T.copy()),
    ),
    "4d-with-frame": lambda c: c.train(
        "--frame", "2", image=c.raw_nifti("cine.nii.gz", np.stack([c.phantom.image.T] * 4, axis=-1))
    ),
    "float64-nifti": lambda c: c.train(image=c.nifti("f64.nii.gz", c.phantom.image.astype(np.float64))),
    "integer-png-8bit": lambda c: _png_case(c, _grey8(c)),
    "integer-png-16bit": lambda c: _png_case(c, _grey8(c).astype(np.uint16) * 257),
    "rgb-png": lambda c: _png_case(c, np.stack([_grey8(c), _grey8(c) // 2, _grey8(c)], axis=-1)),
    "image-smaller-than-the-network": lambda c: c.train(
        image=c.nifti("tiny.nii.gz", c.phantom.image[:, 20:26, 20:27].astype(np.float32)),
        scribbles=c.nifti("tiny_scr.nii.gz", np.tile([[1, 2, 0, 0, 3, 0, 4]], (3, 6, 1)).astype(np.uint8)),
    ),
}


@pytest.mark.parametrize("row", list(ACCEPTED))
def test_cli_accepts(row: str, case: Case, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(ACCEPTED[row](case))
    _out, err = capsys.readouterr()
    assert code == 0, err
    assert training.load_checkpoint(case.dir / "model.pt").step == 2


def test_rgb_png_is_read_as_luminance(tmp_path: Path) -> None:
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    grey = io.read_png(_png(tmp_path / "rgb.png", rgb))
    assert grey.shape == (4, 5) and grey.dtype == np.uint8
    assert int(grey[0, 0]) == round(0.2125 * 200 + 0.7154 * 100 + 0.0721 * 50)
    # A label map saved as RGB with equal channels keeps its values.
    labels = np.stack([np.arange(20, dtype=np.uint8).reshape(4, 5) % 5] * 3, axis=-1)
    np.testing.assert_array_equal(io.read_png(_png(tmp_path / "labels.png", labels)), labels[..., 0])


# --------------------------------------------------------------------------------------------
# The core rows (what the CLI and the widget call)


def _vol(path: Path) -> io.Volume:
    return io.read_nifti(path)


CORE_ROWS: dict[str, tuple[Callable[[Case], object], str]] = {
    "read-truncated": (lambda c: _vol(_truncated(c)), "truncated or corrupt"),
    "read-not-nifti": (lambda c: _vol(_not_nifti(c)), "as NIfTI"),
    "read-4d": (lambda c: _vol(c.raw_nifti("cine.nii", np.zeros((4, 4, 2, 3), np.uint8))), "pick one"),
    "read-5d": (lambda c: _vol(c.raw_nifti("five.nii", np.zeros((4, 4, 2, 3, 2), np.uint8))), "5 dimensions"),
    "grid-mismatch": (
        lambda c: io.check_same_grid(_vol(c.image), _vol(c.nifti("m.nii.gz", c.phantom.scribbles, _shifted_affine()))),
        "affine",
    ),
    "write-onto-source-even-if-asked": (
        lambda c: io.write_nifti(c.image, c.phantom.labels, AFFINE, source=c.image, overwrite=True),
        "source image",
    ),
    "write-png-under-a-file": (
        lambda c: io.write_png(_a_file(c) / "x.png", np.zeros((2, 2), np.uint8)),
        "does not exist",
    ),
    "checkpoint-other-class-count": (
        lambda c: training.load_checkpoint(c.model(("a", "b")), num_classes=4),
        "segments 2 classes (a, b) but 4 are defined here",
    ),
    "checkpoint-damaged": (lambda c: training.load_checkpoint(_damaged_model(c)), "damaged"),
    "checkpoint-under-a-file": (
        lambda c: training.save_checkpoint(training.load_checkpoint(c.model()), _a_file(c) / "m.pt"),
        "does not exist",
    ),
    "checkpoint-read-only": (
        lambda c: (
            c.monkeypatch.setattr(os, "replace", _raise_permission),
            training.save_checkpoint(training.load_checkpoint(c.model()), c.dir / "new.pt"),
        ),
        "Permission denied",
    ),
}


def _raise_permission(*_a: object, **_k: object) -> None:
    raise PermissionError(13, "Permission denied")


@pytest.mark.parametrize("row", list(CORE_ROWS))
def test_core_refuses_with_one_line(row: str, case: Case) -> None:
    call, needle = CORE_ROWS[row]
    with pytest.raises(InputError) as info:
        call(case)
    assert needle in str(info.value) and "\n" not in str(info.value)
    assert not [p for p in case.dir.iterdir() if p.name.endswith(".tmp")], "a temporary file was left"


# --------------------------------------------------------------------------------------------
# Readers fed random or damaged bytes (hypothesis)


def _small_nifti_bytes() -> bytes:
    img = nib.Nifti1Image(np.arange(4 * 5 * 3, dtype=np.int16).reshape(4, 5, 3), AFFINE)
    return img.to_bytes()


GOOD = _small_nifti_bytes()


def _read_bytes(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"x{suffix}"
        path.write_bytes(data)
        try:
            vol = io.read_nifti(path)
        except InputError as exc:
            assert "\n" not in str(exc)
            return
        assert vol.data.ndim == 3


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=1024), suffix=st.sampled_from([".nii", ".nii.gz"]), gz=st.booleans())
def test_read_nifti_random_bytes_only_input_error(data: bytes, suffix: str, gz: bool) -> None:
    _read_bytes(gzip.compress(data) if gz else data, suffix)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    edits=st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.integers(0, len(GOOD)),
    suffix=st.sampled_from([".nii", ".nii.gz"]),
)
def test_read_nifti_damaged_header_only_input_error(edits: list[tuple[int, int]], cut: int, suffix: str) -> None:
    raw = bytearray(GOOD)
    for pos, value in edits:
        raw[pos] = value
    data = bytes(raw[: max(cut, 1)])
    _read_bytes(gzip.compress(data) if suffix == ".nii.gz" else data, suffix)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=512), suffix=st.sampled_from([".nii", ".nii.gz", ".png"]))
def test_napari_reader_on_random_bytes_never_raises(data: bytes, suffix: str, monkeypatch_session: None) -> None:
    from napari_wss import _reader

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"x{suffix}"
        path.write_bytes(data)
        reader = _reader.napari_get_reader(str(path))
        assert reader is not None  # chosen by name
        layers = reader(str(path))
        assert layers == [(None,)] or all(layer[0] is not None for layer in layers)


@pytest.fixture(scope="module")
def monkeypatch_session() -> Iterator[None]:
    """The reader's error notifications go nowhere (no viewer here); count them instead."""
    from napari_wss import _reader

    shown: list[str] = []
    real = _reader._show_error
    _reader._show_error = shown.append  # type: ignore[assignment]
    try:
        yield
    finally:
        _reader._show_error = real  # type: ignore[assignment]


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_a_header_claiming_gigabytes_is_refused_before_allocating(tmp_path: Path, suffix: str) -> None:
    """nibabel would allocate all 18 GB the header declares before finding the file short."""
    import resource

    header = nib.Nifti1Header.from_fileobj(__import__("io").BytesIO(GOOD))
    header.set_data_shape((3000, 3000, 1000))
    data = header.binaryblock + GOOD[348:]
    path = tmp_path / f"huge{suffix}"
    path.write_bytes(gzip.compress(data) if suffix == ".nii.gz" else data)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with pytest.raises(InputError, match=r"truncated or corrupt.*declares 1.717e\+04 MiB"):
        io.read_nifti(path)
    assert time.perf_counter() - started < 2.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 200 * 1024  # KiB
