"""The bad-input matrix of issue 5 in napari: the reader answers with a notification (or opens what
it can), the widget refuses with one notification and changes nothing. Rows already covered in
``test_errors.py`` / ``test_reader_writer.py`` are not repeated here.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from skimage import io as skio

from napari_wss import _reader, toy
from napari_wss._qt.class_table import SIZE_HI, SIZE_LO

pytestmark = pytest.mark.gui

AFFINE = np.diag([1.5, 1.5, 10.0, 1.0])
AFFINE[:3, 3] = [-20.0, 7.0, 3.0]


def _phantom() -> toy.Phantom:
    return toy.cardiac_phantom(n_slices=3, size=32, seed=0)


def _save(path: Path, xyz: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    nib.save(nib.Nifti1Image(xyz, affine), str(path))
    return path


def _zyx(path: Path, zyx: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    return _save(path, np.ascontiguousarray(np.asarray(zyx).transpose(2, 1, 0)), affine)


def _truncated(d: Path) -> Path:
    good = _zyx(d / "good.nii.gz", _phantom().image.astype(np.float32)).read_bytes()
    (d / "cut.nii.gz").write_bytes(good[: len(good) // 2])
    return d / "cut.nii.gz"


def _huge_header(d: Path) -> Path:
    """A header that claims 18 GB of voxels in a file of a few hundred bytes."""
    raw = nib.Nifti1Image(np.zeros((4, 5, 3), np.int16), AFFINE).to_bytes()
    header = nib.Nifti1Header.from_fileobj(__import__("io").BytesIO(raw))
    header.set_data_shape((3000, 3000, 1000))
    (d / "huge.nii.gz").write_bytes(gzip.compress(header.binaryblock + raw[348:]))
    return d / "huge.nii.gz"


def _noise(d: Path, name: str) -> Path:
    (d / name).write_bytes(np.random.default_rng(3).integers(0, 256, 700, dtype=np.uint8).tobytes())
    return d / name


REFUSED: dict[str, tuple[Callable[[Path], Path], str]] = {
    "truncated-nii-gz": (_truncated, "truncated or corrupt"),
    "not-nifti-named-nii-gz": (lambda d: _noise(d, "noise.nii.gz"), "as NIfTI"),
    "huge-header": (_huge_header, "truncated or corrupt"),
    "5d": (lambda d: _save(d / "five.nii.gz", np.zeros((4, 4, 3, 2, 2), np.float32)), "5 dimensions"),
    "random-bytes-png": (lambda d: _noise(d, "noise.png"), "as an image"),
}


@pytest.mark.parametrize("row", list(REFUSED))
def test_reader_refuses_with_a_notification(row: str, tmp_path: Path, make_napari_viewer, notes) -> None:  # type: ignore[no-untyped-def]
    make, fragment = REFUSED[row]
    path = make(tmp_path)
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-wss")
    assert len(viewer.layers) == 0
    assert notes.has(path.name, "error") and notes.has(fragment, "error"), notes


def _rgb_png(d: Path) -> Path:
    rgb = np.zeros((20, 24, 3), np.uint8)
    rgb[..., 0] = 200
    rgb[5:10, 5:10] = (10, 250, 30)
    skio.imsave(str(d / "colour.png"), rgb, check_contrast=False)
    return d / "colour.png"


def _png16(d: Path) -> Path:
    skio.imsave(str(d / "deep.png"), np.arange(20 * 24, dtype=np.uint16).reshape(20, 24) * 100, check_contrast=False)
    return d / "deep.png"


OPENED: dict[str, tuple[Callable[[Path], Path], tuple[int, ...], str]] = {
    "2d-nifti": (lambda d: _save(d / "flat.nii.gz", np.ones((24, 20), np.float32)), (1, 20, 24), "float32"),
    "float64-nifti": (lambda d: _zyx(d / "f64.nii.gz", np.ones((3, 20, 24))), (3, 20, 24), "float64"),
    "nan-image": (
        lambda d: _zyx(d / "nan.nii.gz", np.where(np.eye(24)[None, :20] > 0, np.nan, 1.0).astype(np.float32)),
        (1, 20, 24),
        "float32",
    ),
    "all-zero-image": (lambda d: _zyx(d / "zero.nii.gz", np.zeros((2, 20, 24), np.int16)), (2, 20, 24), "int16"),
    "rgb-png": (_rgb_png, (20, 24), "uint8"),
    "png-16bit": (_png16, (20, 24), "uint16"),
}


@pytest.mark.parametrize("row", list(OPENED))
def test_reader_opens_what_it_can_show(row: str, tmp_path: Path, make_napari_viewer, notes) -> None:  # type: ignore[no-untyped-def]
    make, shape, dtype = OPENED[row]
    viewer = make_napari_viewer()
    viewer.open(str(make(tmp_path)), plugin="napari-wss")
    assert [type(layer).__name__ for layer in viewer.layers] == ["Image"]
    data = viewer.layers[0].data
    assert data.shape == shape and str(data.dtype) == dtype and not viewer.layers[0].rgb
    assert not notes.errors(), notes


@pytest.mark.parametrize("what", ["affine", "shape", "damaged"])
def test_reader_leaves_out_a_sibling_on_another_grid(what: str, tmp_path: Path, notes) -> None:  # type: ignore[no-untyped-def]
    ph = _phantom()
    image = _zyx(tmp_path / "case.nii.gz", ph.image.astype(np.float32))
    _zyx(tmp_path / "case_gt.nii.gz", ph.labels)
    sibling = tmp_path / "case_scribble.nii.gz"
    if what == "affine":
        moved = AFFINE.copy()
        moved[:3, :3] = -moved[:3, :3]  # flipped
        _zyx(sibling, ph.scribbles, moved)
    elif what == "shape":
        _zyx(sibling, ph.scribbles[:, :, :20])
    else:
        sibling.write_bytes(b"\x1f\x8b damaged")
    layers = _reader.read(str(image))
    assert [kw["name"] for _d, kw, _t in layers] == ["case", "ground truth"]
    message = {"affine": "affines differ", "shape": "has shape (3, 32, 20)", "damaged": "as NIfTI"}[what]
    assert notes.has(message, "error") and notes.has("case_scribble.nii.gz was not opened", "error"), notes


# --------------------------------------------------------------------------------------------
# The widget


def _refused(widget, notes, fragment: str) -> None:  # type: ignore[no-untyped-def]
    assert not widget.runner.running, "training started on bad input"
    assert widget.prediction_layer is None
    assert notes.has(fragment, "error"), notes


def _with_image(make_widget, image: np.ndarray, scribbles: np.ndarray | None = None):  # type: ignore[no-untyped-def]
    viewer, widget = make_widget()
    layer = viewer.add_image(image, name="img")
    widget.image_picker.set_layer(layer)
    ph = _phantom()
    scr = viewer.add_labels(ph.scribbles if scribbles is None else scribbles, name="scribbles")
    widget.scribble_picker.set_layer(scr)
    return viewer, widget, scr


@pytest.mark.parametrize(
    ("row", "value", "fragment"),
    [
        ("nan", np.nan, "1 NaN or infinite values"),
        ("inf", -np.inf, "1 NaN or infinite values"),
        ("all-zero", 0.0, "the image is constant (every value is 0)"),
        ("constant", 3.0, "the image is constant (every value is 3)"),
    ],
)
def test_widget_refuses_bad_intensities(row: str, value: float, fragment: str, make_widget, gui, notes) -> None:  # type: ignore[no-untyped-def]
    image = _phantom().image.astype(np.float32)
    if row in ("nan", "inf"):
        image[1, 4, 4] = value
    else:
        image[...] = value
    _viewer, widget, scr = _with_image(make_widget, image)
    before = gui.digest(scr.data)
    widget.train()
    _refused(widget, notes, fragment)
    assert gui.digest(scr.data) == before


def test_widget_refuses_negative_labels(make_widget, notes) -> None:  # type: ignore[no-untyped-def]
    scribbles = _phantom().scribbles.astype(np.int16)
    scribbles[0, 0, 0] = -2
    _viewer, widget, _scr = _with_image(make_widget, _phantom().image, scribbles)
    widget.train()
    _refused(widget, notes, "holds negative labels (down to -2)")


def test_widget_refuses_scribbles_read_on_another_grid(make_widget, notes) -> None:  # type: ignore[no-untyped-def]
    _viewer, widget, scr = _with_image(make_widget, _phantom().image)
    widget.image_layer().metadata["affine"] = AFFINE
    moved = AFFINE.copy()
    moved[1, 3] += 15.0
    scr.metadata["affine"] = moved
    widget.train()
    _refused(widget, notes, "on another grid than image 'img'")


@pytest.mark.parametrize(
    ("low", "high", "fragment"),
    [
        ("-30", "50", "lower -30 is negative"),
        ("5000", "6000", "exceeds the slice area 1024 px"),
    ],
)
def test_widget_refuses_sizes_that_cannot_hold(low: str, high: str, fragment: str, make_widget, notes) -> None:  # type: ignore[no-untyped-def]
    _viewer, widget, _scr = _with_image(make_widget, _phantom().image)
    widget.table.set_cell(3, SIZE_LO, low)
    widget.table.set_cell(3, SIZE_HI, high)
    widget.train()
    _refused(widget, notes, fragment)


def test_widget_refuses_rgb_and_4d_layers(make_widget, notes) -> None:  # type: ignore[no-untyped-def]
    viewer, widget = make_widget()
    rgb = viewer.add_image(np.zeros((32, 32, 3), np.uint8), rgb=True, name="photo")
    scr = viewer.add_labels(np.ones((32, 32), np.uint8), name="s")
    widget.image_picker.set_layer(rgb)
    widget.scribble_picker.set_layer(scr)
    widget.train()
    _refused(widget, notes, "'photo' is an RGB image")
    cine = viewer.add_image(np.zeros((2, 3, 32, 32), np.float32), name="cine")
    widget.image_picker.set_layer(cine)
    widget.train()
    _refused(widget, notes, "got 4 dimensions (2, 3, 32, 32): for a cine sequence pick one time frame")


def test_predict_volume_refuses_rgb_and_4d_layers_before_making_a_layer(make_widget, gui, notes) -> None:  # type: ignore[no-untyped-def]
    viewer, widget = make_widget("phantom", steps=2)
    gui.train_and_wait(widget)
    for layer, fragment in (
        (viewer.add_image(np.zeros((2, 3, 32, 32), np.float32), name="cine"), "got 4 dimensions (2, 3, 32, 32)"),
        (viewer.add_image(np.zeros((32, 32, 3), np.uint8), rgb=True, name="photo"), "'photo' is an RGB image"),
    ):
        widget.image_picker.set_layer(layer)
        names = [lay.name for lay in viewer.layers]
        assert widget.model.predict() is None
        assert fragment in notes.errors()[-1] and [lay.name for lay in viewer.layers] == names


@pytest.mark.parametrize("row", ["float64", "2d", "smaller-than-the-network"])
def test_widget_trains_on_accepted_inputs(row: str, make_widget, gui, notes) -> None:  # type: ignore[no-untyped-def]
    ph = _phantom()
    image, scribbles = ph.image.astype(np.float64), ph.scribbles
    if row == "2d":
        image, scribbles = image[1], scribbles[1]
    elif row == "smaller-than-the-network":
        image = image[:, 10:17, 9:15]
        scribbles = np.tile(np.array([1, 2, 3, 4, 0, 0], np.uint8), (3, 7, 1))
    _viewer, widget, scr = _with_image(make_widget, image, scribbles)
    gui.apply_settings(widget, steps=2)
    gui.train_and_wait(widget)
    assert not notes.errors(), notes
    assert widget.state.step == 2 and widget.prediction_layer.data.shape == scr.data.shape


def test_saving_the_model_where_it_cannot_be_written(make_widget, gui, tmp_path: Path, notes) -> None:  # type: ignore[no-untyped-def]
    _viewer, widget, _scr = _with_image(make_widget, _phantom().image)
    gui.apply_settings(widget, steps=1)
    gui.train_and_wait(widget)
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    assert widget.model.save(blocker / "model.pt") is None
    assert notes.has("does not exist", "error"), notes
    assert widget.save_button.isEnabled() and widget.state.step == 1


def test_writer_on_a_read_only_target_is_a_notification(tmp_path: Path, monkeypatch, notes) -> None:  # type: ignore[no-untyped-def]
    import os

    from napari_wss import _writer

    def refuse(*_a: object, **_k: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    labels = np.zeros((2, 8, 8), np.uint8)
    assert _writer.write_labels_nifti(str(tmp_path / "pred.nii.gz"), labels, {}) == []
    assert _writer.write_labels_png(str(tmp_path / "pred.png"), labels, {}) == []
    assert len([m for m in notes.errors() if "Permission denied" in m]) == 2, notes
    assert list(tmp_path.iterdir()) == []  # no half file, no temporary file
