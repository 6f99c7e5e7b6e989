"""Reader, writer and sample data through napari (npe2 plugin 'napari-wss')."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_wss import _layers, _reader, _writer, io, toy

pytestmark = pytest.mark.gui

ACDC = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "acdc" / "training" / "patient001"
ACDC_IMAGE = ACDC / "patient001_frame01.nii.gz"


@pytest.fixture
def phantom_files(tmp_path: Path) -> Path:
    """A NIfTI image with _gt and _scribble siblings on a non-trivial affine."""
    ph = toy.cardiac_phantom(n_slices=4, size=48, seed=1)
    affine = np.array([[0, -1.5, 0, 20.0], [-1.25, 0, 0, 30.0], [0, 0, 8.0, -5.0], [0, 0, 0, 1]])
    spacing = (8.0, 1.5, 1.25)
    for name, arr in (("case", ph.image.astype(np.int16)), ("case_gt", ph.labels), ("case_scribble", ph.scribbles)):
        io.write_nifti(tmp_path / f"{name}.nii.gz", arr, affine, spacing=spacing)
    return tmp_path / "case.nii.gz"


def test_unknown_paths_give_none(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "empty").mkdir()
    for path in (
        str(tmp_path / "notes.txt"),
        str(tmp_path / "missing.nii.gz"),
        str(tmp_path / "empty"),
        [str(tmp_path / "notes.txt"), str(tmp_path / "missing.png")],
        [],
        "",
    ):
        assert _reader.napari_get_reader(path) is None


def test_nifti_with_siblings_round_trip_keeps_affine(make_napari_viewer, phantom_files: Path, tmp_path: Path) -> None:
    viewer = make_napari_viewer()
    viewer.open(str(phantom_files), plugin="napari-wss")
    assert [layer.name for layer in viewer.layers] == ["case", "ground truth", "scribbles"]
    image, gt, scribbles = viewer.layers
    source = io.read_nifti(phantom_files)
    np.testing.assert_array_equal(image.data, source.data)
    np.testing.assert_allclose(image.scale, (8.0, 1.5, 1.25))
    np.testing.assert_allclose(image.metadata["affine"], source.affine)
    assert scribbles.data.dtype == np.uint8 and int(scribbles.data.max()) == 4
    assert type(gt).__name__ == "Labels" and not _layers.is_stack(image.metadata)

    out = tmp_path / "out" / "case_pred.nii.gz"
    out.parent.mkdir()
    written = gt.save(str(out), plugin="napari-wss")
    assert written == [str(out)]
    back = nib.load(str(out))
    np.testing.assert_allclose(back.affine, source.affine)
    np.testing.assert_array_equal(np.asarray(back.dataobj).transpose(2, 1, 0), gt.data)
    np.testing.assert_allclose(back.header.get_zooms()[:3], (1.25, 1.5, 8.0))


def test_writer_never_writes_over_the_source(phantom_files: Path, notes) -> None:  # type: ignore[no-untyped-def]
    before = phantom_files.read_bytes()
    meta = {"metadata": {"source_path": str(phantom_files), "affine": np.eye(4)}, "scale": (1, 1, 1)}
    assert _writer.write_labels_nifti(str(phantom_files), np.zeros((4, 48, 48), np.uint8), meta) == []
    assert phantom_files.read_bytes() == before
    assert notes.has("source image", "error")


def test_png_writer_writes_one_file_per_slice(tmp_path: Path) -> None:
    labels = np.zeros((3, 16, 20), np.uint8)
    labels[1, 4:8, 5:9] = 2
    written = _writer.write_labels_png(str(tmp_path / "pred.png"), labels, {})
    assert [Path(p).name for p in written] == ["pred_000.png", "pred_001.png", "pred_002.png"]
    np.testing.assert_array_equal(io.read_png_stack(written), labels)


def test_corrupt_file_is_a_notification_not_a_crash(make_napari_viewer, tmp_path: Path, notes) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00 this is not a nifti file at all")
    viewer = make_napari_viewer()
    viewer.open(str(bad), plugin="napari-wss")
    assert len(viewer.layers) == 0
    assert notes.has("broken.nii.gz", "error")


def test_4d_file_opens_its_first_frame(tmp_path: Path, notes) -> None:  # type: ignore[no-untyped-def]
    data = np.arange(6 * 5 * 3 * 2, dtype=np.int16).reshape(6, 5, 3, 2)
    path = tmp_path / "cine_4d.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    layers = _reader.napari_get_reader(str(path))(str(path))  # type: ignore[misc]
    assert len(layers) == 1 and layers[0][0].shape == (3, 5, 6)
    np.testing.assert_array_equal(layers[0][0], data[..., 0].transpose(2, 1, 0))
    assert notes.has("cine of 2 time frames; opened frame 0", "info")
    meta = layers[0][1]["metadata"]
    assert (meta["frame"], meta["frames"]) == (0, 2) and layers[0][1]["name"] == "cine_4d [frame 0]"


def test_png_dataset_folder_opens_image_gt_and_scribbles(make_napari_viewer, tmp_path: Path) -> None:
    toy.write_samples(tmp_path)
    viewer = make_napari_viewer()
    viewer.open(str(tmp_path / "toy"), plugin="napari-wss")
    names = [layer.name for layer in viewer.layers]
    assert names == ["toy", "ground truth", "scribbles"]
    assert viewer.layers["toy"].data.shape == (3, 256, 256)
    assert viewer.layers["scribbles"].metadata["wss"]["class_names"] == ["background", "target"]
    # A single PNG in a gt/ folder opens as labels, a folder of PNGs as a stack.
    gt_layers = _reader.read(str(tmp_path / "toy" / "gt" / "000.png"))
    assert gt_layers[0][2] == "labels"
    stack = _reader.read(str(tmp_path / "toy" / "img"))
    assert stack[0][2] == "image" and stack[0][0].shape == (3, 256, 256)
    # Their slices are separate images (largest-component post-processing works per image); one
    # PNG and a NIfTI volume are not stacks.
    assert _layers.is_stack(viewer.layers["toy"].metadata) and _layers.is_stack(stack[0][1]["metadata"])
    single = _reader.read(str(tmp_path / "toy" / "img" / "000.png"))
    assert not _layers.is_stack(single[0][1]["metadata"])


@pytest.mark.skipif(not ACDC_IMAGE.is_file(), reason="the shared ACDC data is not mounted here")
def test_acdc_case_opens_with_scribbles(make_napari_viewer) -> None:  # type: ignore[no-untyped-def]
    viewer = make_napari_viewer()
    viewer.open(str(ACDC_IMAGE), plugin="napari-wss")
    names = [layer.name for layer in viewer.layers]
    assert names == ["patient001_frame01", "ground truth", "scribbles"]
    image = viewer.layers[0]
    assert image.scale[1] == pytest.approx(1.5625) and image.scale[0] == pytest.approx(10.0)
    assert set(np.unique(viewer.layers["scribbles"].data)) <= {0, 1, 2, 3, 4}


@pytest.mark.parametrize("key", ["toy", "toy2", "phantom"])
def test_sample_data(make_napari_viewer, key: str) -> None:  # type: ignore[no-untyped-def]
    viewer = make_napari_viewer()
    viewer.open_sample("napari-wss", key)
    kinds = [type(layer).__name__ for layer in viewer.layers]
    assert kinds == ["Image", "Labels", "Labels"]
    scribbles = viewer.layers["scribbles"]
    assert scribbles.data.any() and scribbles.data.shape == viewer.layers[0].data.shape
    if key == "phantom":
        np.testing.assert_allclose(viewer.layers[0].scale, (10.0, 1.5, 1.5))
        assert "affine" in viewer.layers[0].metadata
