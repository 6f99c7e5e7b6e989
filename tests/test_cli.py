"""Tests for the ``napari-wss`` command line: errors, samples, train → predict → evaluate, reproduce."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_one_line_error

from napari_wss import cli, io, toy
from napari_wss.data import absent_classes
from napari_wss.postprocess import (
    FROM_PREDICTION,
    clear_absent,
    fill_convex_hull,
    keep_largest_component,
    limit_myocardium_brightness,
    limit_wall_thickness,
    limit_wall_to_septum,
    myocardium_ceiling,
    predicted_myocardium_ceiling,
)
from napari_wss.training import load_checkpoint, predict_volume, save_checkpoint

ACDC = Path(__file__).resolve().parents[1].parent / "shared/data/acdc"
needs_acdc = pytest.mark.skipif(not ACDC.is_dir(), reason=f"ACDC data not found at {ACDC}")

# A non-trivial affine: voxel sizes (dx, dy, dz) = (1.5, 1.25, 8) mm and a shift.
AFFINE = np.diag([1.5, 1.25, 8.0, 1.0])
AFFINE[:3, 3] = [-30.0, 12.0, 4.0]
SPACING = (8.0, 1.25, 1.5)


pytestmark = pytest.mark.usefixtures("one_thread")


TINY = [
    "--steps",
    "4",
    "--net-size",
    "32",
    "--width",
    "4",
    "--depth",
    "2",
    "--batch-size",
    "2",
    "--device",
    "cpu",
    "--no-amp",
]


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small phantom (3 slices, 48 px) written as image / scribbles / labels on AFFINE."""
    folder = tmp_path_factory.mktemp("phantom")
    ph = toy.cardiac_phantom(n_slices=3, size=48, seed=0)
    files = {"image": ph.image.astype(np.float32), "scribbles": ph.scribbles, "labels": ph.labels}
    return {
        name: io.write_nifti(folder / f"ph_{name}.nii.gz", arr, AFFINE, spacing=SPACING) for name, arr in files.items()
    }


# --------------------------------------------------------------------------------------------
# Bad input: one line on stderr, exit status 2


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "train", "--image", tmp_path / "nope.nii.gz", "--out", tmp_path / "m.pt")
    assert_one_line_error(code, err, "nope.nii.gz", "not found")


def test_wrong_layout_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "stuff"
    folder.mkdir()
    (folder / "notes.txt").write_text("not an image")
    code, _, err = run(capsys, "train", "--image", folder, "--out", tmp_path / "m.pt")
    assert_one_line_error(code, err, "stuff", "no PNG", "ACDC")


def test_nan_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = np.random.default_rng(0).random((2, 32, 32)).astype(np.float32)
    image[0, 3, 4] = np.nan
    scribbles = np.zeros((2, 32, 32), dtype=np.uint8)
    scribbles[:, :4] = 1
    scribbles[:, 14:18, 14:18] = 2
    img = io.write_nifti(tmp_path / "nan.nii.gz", image, AFFINE)
    scr = io.write_nifti(tmp_path / "nan_scr.nii.gz", scribbles, AFFINE)
    code, _, err = run(capsys, "train", "--image", img, "--scribbles", scr, "--out", tmp_path / "m.pt", *TINY)
    assert_one_line_error(code, err, "NaN")


def test_shape_mismatch(tmp_path: Path, capsys: pytest.CaptureFixture[str], phantom_files: dict[str, Path]) -> None:
    small = io.write_nifti(tmp_path / "small.nii.gz", np.zeros((3, 16, 16), np.uint8), AFFINE)
    code, _, err = run(
        capsys, "train", "--image", phantom_files["image"], "--scribbles", small, "--out", tmp_path / "m.pt"
    )
    assert_one_line_error(code, err, "shape", "(3, 16, 16)", "(3, 48, 48)")


def test_lower_above_upper(tmp_path: Path, capsys: pytest.CaptureFixture[str], phantom_files: dict[str, Path]) -> None:
    code, _, err = run(
        capsys,
        "train",
        "--image",
        phantom_files["image"],
        "--scribbles",
        phantom_files["scribbles"],
        "--size-mm2",
        "LV=900:100",
        "--out",
        tmp_path / "m.pt",
        *TINY,
    )
    assert_one_line_error(code, err, "LV", "lower 900 > upper 100")


def test_cardiac_sizes_fill_the_classes_without_a_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], phantom_files: dict[str, Path]
) -> None:
    from napari_wss.metrics import CARDIAC_AREA_MM2
    from napari_wss.training import load_checkpoint

    args = ["--image", phantom_files["image"], "--scribbles", phantom_files["scribbles"], "--cardiac-sizes"]
    code, _, err = run(capsys, "train", *args, "--size-mm2", "LV=50:1500", "--out", tmp_path / "m.pt", *TINY)
    assert code == 0, err
    priors = load_checkpoint(tmp_path / "m.pt").priors
    px = 1.25 * 1.5  # mm² per pixel
    assert priors[0].size is None and priors[3].size == pytest.approx((50 / px, 1500 / px))  # the user's wins
    for c, key in ((1, "RV"), (2, "myocardium")):
        assert priors[c].size == pytest.approx(tuple(v / px for v in CARDIAC_AREA_MM2[key]))


@pytest.mark.parametrize(
    ("flag", "value", "needle"),
    [
        ("--size-mm2", "LV=100", "CLASS=LOWER:UPPER"),
        ("--size-mm2", "aorta=1:2", "unknown class 'aorta'"),
        ("--centroid", "LV=1:2", "ROW0:ROW1,COL0:COL1"),
    ],
)
def test_malformed_bounds(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    phantom_files: dict[str, Path],
    flag: str,
    value: str,
    needle: str,
) -> None:
    args = ["--image", phantom_files["image"], "--scribbles", phantom_files["scribbles"]]
    code, _, err = run(capsys, "train", *args, flag, value, "--out", tmp_path / "m.pt", *TINY)
    assert_one_line_error(code, err, needle)


def test_acdc_folder_passed_as_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    patient = tmp_path / "training" / "patient001"
    patient.mkdir(parents=True)
    io.write_nifti(patient / "patient001_frame01.nii.gz", np.zeros((2, 8, 8), np.int16), AFFINE)
    code, _, err = run(capsys, "train", "--image", tmp_path / "training", "--out", tmp_path / "m.pt")
    assert_one_line_error(code, err, "--acdc")


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "train", "--image", "x.nii.gz")  # --out is required
    assert code == 2
    assert "--out" in err


def test_verbose_shows_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "train", "--image", tmp_path / "nope.png", "--out", tmp_path / "m.pt", "--verbose")
    assert code == 2
    assert "Traceback" in err
    assert err.strip().splitlines()[-1].startswith("napari-wss: error: ")


def test_predict_every_frame_of_a_cine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`predict --frame all` writes one 4D labels file on the cine's grid and time step, each frame
    as `predict --frame T` gives it, and reports the volume curve; misuse is one line."""
    frames = [toy.cardiac_phantom(n_slices=3, size=48, seed=s) for s in range(3)]
    cine = io.write_nifti(
        tmp_path / "cine.nii.gz", np.stack([f.image for f in frames]), AFFINE, spacing=SPACING, frame_step=33.0
    )
    first = io.write_nifti(tmp_path / "f0.nii.gz", frames[0].image, AFFINE, spacing=SPACING)
    strokes = io.write_nifti(tmp_path / "f0_scr.nii.gz", frames[0].scribbles, AFFINE, spacing=SPACING)
    model = tmp_path / "m.pt"
    code, _, err = run(capsys, "train", "--image", first, "--scribbles", strokes, "--out", model, *TINY)
    assert code == 0, err

    def predict(image: Path, frame: object, out: Path, *extra: object) -> tuple[int, str, str]:
        return run(capsys, "predict", "--model", model, "--image", image, "--frame", frame, "--out", out, *extra)

    out_path = tmp_path / "pred4d.nii.gz"
    code, out, err = predict(cine, "all", out_path, "--largest-component")
    assert code == 0, err
    written, step = io.read_nifti_frames(out_path)
    assert len(written) == 3 and step == pytest.approx(33.0)
    np.testing.assert_allclose(written[0].affine, AFFINE)
    for t in range(3):
        one = tmp_path / f"p{t}.nii.gz"
        code, _, err = predict(cine, t, one, "--largest-component")
        assert code == 0, err
        np.testing.assert_array_equal(written[t].data, io.read_nifti(one).data)
    assert "frame by frame" in out and "end-diastole = frame" in out
    assert all(f"\n{t} " in out for t in range(3))  # a row per frame
    # --dark-myocardium without strokes: each frame capped by its own prediction's wall / blood threshold.
    dark_path = tmp_path / "dark4d.nii.gz"
    code, _, err = predict(cine, "all", dark_path, "--largest-component", "--dark-myocardium")
    assert code == 0, err
    names = ("background", "RV", "myocardium", "LV")
    sources, _ = io.read_nifti_frames(cine)
    darkened, _ = io.read_nifti_frames(dark_path)
    for t in range(3):
        want = limit_myocardium_brightness(written[t].data, sources[t].data, FROM_PREDICTION, names)
        np.testing.assert_array_equal(darkened[t].data, want)
    assert any((d.data != w.data).any() for d, w in zip(darkened, written))  # the rule is at work here

    # Strokes kept as a 4D file too: --frame takes the same frame of them (a 3D file is taken as it is).
    strokes4d = io.write_nifti(tmp_path / "scr4d.nii.gz", np.stack([f.scribbles for f in frames]), AFFINE)
    image1 = cli.load_image(cine, frame=1)
    np.testing.assert_array_equal(cli.load_map(strokes4d, image1, what="scribbles", frame=1), frames[1].scribbles)
    np.testing.assert_array_equal(cli.load_map(strokes, image1, what="scribbles", frame=1), frames[0].scribbles)
    code, _, err = run(
        capsys, "train", "--image", cine, "--frame", "1", "--scribbles", strokes4d, "--out", tmp_path / "m1.pt", *TINY
    )
    assert code == 0, err

    code, _, err = predict(cine, "all", out_path)
    assert_one_line_error(code, err, "already exists")
    code, _, err = predict(first, "all", tmp_path / "x.nii.gz")
    assert_one_line_error(code, err, "not a 4D cine", "leave out --frame all")
    code, _, err = predict(cine, "all", tmp_path / "x.png")
    assert_one_line_error(code, err, "4D NIfTI")
    code, _, err = predict(cine, "all", tmp_path / "y.nii.gz", "--largest-component", "--scribbles", strokes)
    assert_one_line_error(code, err, "--scribbles belong to one frame")


def test_predict_a_cohort_into_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Several NIfTI images (or a folder of them) go into --out DIR under their own names, each as
    a one-image predict writes it; a damaged file is named and skipped, the rest still written."""
    data = tmp_path / "cohort"
    data.mkdir()
    images = []
    for s in range(3):
        ph = toy.cardiac_phantom(n_slices=2 + s, size=48, seed=s)
        images.append(io.write_nifti(data / f"case{s}.nii.gz", ph.image, AFFINE, spacing=SPACING))
        if s == 0:
            strokes = io.write_nifti(data / "case0_scribble.nii.gz", ph.scribbles, AFFINE, spacing=SPACING)
    model = tmp_path / "m.pt"
    code, _, err = run(capsys, "train", "--image", images[0], "--scribbles", strokes, "--out", model, *TINY)
    assert code == 0, err
    out = tmp_path / "pred"
    code, text, err = run(capsys, "predict", "--model", model, "--image", *images, "--out", out, "--largest-component")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["case0.nii.gz", "case1.nii.gz", "case2.nii.gz"]
    assert f"wrote 3 predictions to {out}" in text
    for src in images:
        one = tmp_path / f"one_{src.name}"
        code, _, err = run(capsys, "predict", "--model", model, "--image", src, "--out", one, "--largest-component")
        assert code == 0, err
        np.testing.assert_array_equal(io.read_nifti(out / src.name).data, io.read_nifti(one).data)
    # A folder: its images, not its label files.
    code, text, err = run(capsys, "predict", "--model", model, "--image", data, "--out", tmp_path / "pred2")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "pred2").iterdir()) == ["case0.nii.gz", "case1.nii.gz", "case2.nii.gz"]
    # Nothing is written over existing predictions or the images themselves.
    code, _, err = run(capsys, "predict", "--model", model, "--image", *images, "--out", out)
    assert_one_line_error(code, err, "already exists", "--overwrite")
    code, _, err = run(capsys, "predict", "--model", model, "--image", *images, "--out", data, "--overwrite")
    assert_one_line_error(code, err, "would overwrite the image")
    before = {p.name: p.read_bytes() for p in data.iterdir()}
    # A damaged image among them: skipped and named, the others written, exit status 2.
    broken = data / "case9.nii.gz"
    broken.write_bytes(images[1].read_bytes()[:200])
    code, _, err = run(capsys, "predict", "--model", model, "--image", *images, broken, "--out", tmp_path / "p3")
    assert code == 2
    assert "skipped case9.nii.gz" in err and "1 of 4 images could not be predicted (case9.nii.gz)" in err
    assert sorted(p.name for p in (tmp_path / "p3").iterdir()) == ["case0.nii.gz", "case1.nii.gz", "case2.nii.gz"]
    assert all(before[p.name] == p.read_bytes() for p in data.iterdir() if p.name in before)
    code, _, err = run(
        capsys, "predict", "--model", model, "--image", images[0], strokes.with_suffix(".txt"), "--out", out
    )
    assert_one_line_error(code, err, "each must be a NIfTI file")


def test_predict_places_a_crop_trained_model_by_the_image_strokes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model trained on a crop (the widget's default, saved from the plugin) predicts another
    image in the crop around that image's strokes: --scribbles (no --largest-component needed),
    or a cohort image's *_scribble file; one of another size without strokes is predicted whole,
    with one caution line naming it on stderr."""
    from napari_wss import training
    from napari_wss.config import TrainConfig
    from napari_wss.data import SliceGeometry, crop_around, prepare_volume

    ph = toy.cardiac_phantom(n_slices=3, size=48, seed=0)
    box = crop_around(ph.scribbles)
    ds, geometry = prepare_volume(ph.image, num_classes=4, size=32, scribbles=ph.scribbles, box=box)
    config = TrainConfig(mode="partial", penalty="none", steps=2, size=32, width=4, depth=2, batch_size=2, device="cpu")
    state = training.TrainState.create(config, ("background", "RV", "myocardium", "LV"))
    for _ in training.train(ds, config, state=state):
        pass
    state.geometry = geometry
    model = training.save_checkpoint(state, tmp_path / "m.pt")
    data = tmp_path / "data"
    data.mkdir()
    other = toy.cardiac_phantom(n_slices=2, size=64, seed=1)
    image = io.write_nifti(data / "other.nii.gz", other.image, AFFINE, spacing=SPACING)
    strokes = io.write_nifti(data / "other_scribble.nii.gz", other.scribbles, AFFINE, spacing=SPACING)
    bare = io.write_nifti(data / "bare.nii.gz", other.image[:, :56], AFFINE, spacing=SPACING)
    placed = SliceGeometry((64, 64), crop_around(other.scribbles), 32)
    seen: list[object] = []
    real = training.predict_volume
    monkeypatch.setattr(training, "predict_volume", lambda *a, **k: seen.append(k["geometry"]) or real(*a, **k))

    args = ["predict", "--model", model, "--image", image, "--scribbles", strokes, "--out", tmp_path / "a.nii.gz"]
    code, _, err = run(capsys, *args)
    assert code == 0 and err == "" and seen == [placed]
    code, _, err = run(capsys, "predict", "--model", model, "--image", bare, "--out", tmp_path / "b.nii.gz")
    assert code == 0 and seen[-1] is None
    assert err.count("\n") == 1 and "56×64" in err
    assert err.startswith("napari-wss: bare.nii.gz: the model learnt a crop")
    code, _, err = run(capsys, "predict", "--model", model, "--image", image, bare, "--out", tmp_path / "c")
    assert code == 0 and seen[-2:] == [placed, None] and err.count("the model learnt a crop") == 1
    assert io.read_nifti(tmp_path / "a.nii.gz").data.shape == other.image.shape


def test_predict_with_a_foreign_model_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "model.pt"
    model.write_bytes(b"not a model")
    code, _, err = run(
        capsys, "predict", "--model", model, "--image", tmp_path / "a.nii.gz", "--out", tmp_path / "o.nii.gz"
    )
    assert_one_line_error(code, err, "model.pt")


def test_keyboard_interrupt_leaves_model_intact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], phantom_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from napari_wss import experiments

    model = tmp_path / "m.pt"
    model.write_bytes(b"previous model")

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(experiments, "run_training", interrupted)
    args = ["--image", phantom_files["image"], "--scribbles", phantom_files["scribbles"]]
    code, _, err = run(capsys, "train", *args, "--out", model, *TINY)
    assert code == 130
    assert "interrupted" in err and len(err.strip().splitlines()) == 1
    assert model.read_bytes() == b"previous model"


# --------------------------------------------------------------------------------------------
# Commands that work


def test_make_samples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "samples"
    code, stdout, _ = run(capsys, "make-samples", out)
    assert code == 0 and "wrote" in stdout
    for rel in (
        "README.md",
        "toy/img/000.png",
        "toy2/weak/002.png",
        "phantom/phantom.nii.gz",
        "phantom/phantom_gt.nii.gz",
        "phantom/phantom_scribble.nii.gz",
    ):
        assert (out / rel).is_file(), rel
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert total < 1_000_000
    vol = io.read_nifti(out / "phantom/phantom.nii.gz")
    scr = io.read_nifti(out / "phantom/phantom_scribble.nii.gz")
    assert vol.shape == scr.shape


def test_train_predict_evaluate_round_trip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], phantom_files: dict[str, Path]
) -> None:
    model, pred, table = tmp_path / "m.pt", tmp_path / "pred.nii.gz", tmp_path / "scores.csv"
    code, out, err = run(
        capsys,
        "train",
        "--image",
        phantom_files["image"],
        "--scribbles",
        phantom_files["scribbles"],
        "--labels",
        phantom_files["labels"],
        "--size-mm2",
        "LV=50:1500",
        "--size-px",
        "RV=0:400",
        "--centroid",
        "LV=10:40,10:40",
        "--compile",  # CUDA only: on the CPU it is recorded and ignored
        "--penalty-warmup",
        "3",
        "--absence-weight",
        "0.5",
        "--rotate",
        "15",
        "--zoom",
        "0.1",
        "--out",
        model,
        *TINY,
    )
    assert code == 0, err
    assert model.is_file() and "saved" in out and "Dice on the training volumes" in out
    saved = load_checkpoint(model)
    assert saved.config.compile is True and saved.config.penalty_warmup == 3
    assert saved.config.absence_weight == 0.5
    assert (saved.config.rotate, saved.config.zoom) == (15.0, 0.1)
    assert (saved.config.size_weight, saved.config.centroid_weight) == (1.0, 100.0)  # the log-barrier's
    assert saved.class_names == ("background", "RV", "myocardium", "LV")
    assert saved.priors[3].size == pytest.approx((50 / (1.25 * 1.5), 1500 / (1.25 * 1.5)))  # mm² → px
    assert saved.priors[3].centroid == ((10, 40), (10, 40)) and saved.priors[1].size == (0, 400)

    code, out, err = run(capsys, "predict", "--model", model, "--image", phantom_files["image"], "--out", pred)
    assert code == 0, err
    written = io.read_nifti(pred)
    source = io.read_nifti(phantom_files["image"])
    np.testing.assert_allclose(written.affine, source.affine)
    assert written.spacing == pytest.approx(source.spacing)
    assert written.shape == source.shape and written.data.dtype == np.uint8
    assert written.data.max() < 4
    kept = tmp_path / "kept.nii.gz"
    code, _, err = run(
        capsys, "predict", "--model", model, "--image", phantom_files["image"], "--out", kept, "--largest-component"
    )
    assert code == 0, err
    np.testing.assert_array_equal(io.read_nifti(kept).data, keep_largest_component(written.data, 4))
    marked = tmp_path / "marked.nii.gz"
    strokes = phantom_files["scribbles"]
    args = ("predict", "--model", model, "--image", phantom_files["image"], "--out", marked, "--scribbles", strokes)
    code, _, err = run(capsys, *args)  # alone they only place a crop-trained model: this one saw whole slices
    assert code == 0 and err == ""
    np.testing.assert_array_equal(io.read_nifti(marked).data, written.data)
    code, _, err = run(capsys, *args, "--largest-component", "--overwrite")
    assert code == 0, err
    painted = io.read_nifti(strokes).data.astype(np.int64)
    absent = absent_classes(painted.shape[0], 4, scribbles=painted)  # what the strokes say is not on a slice
    want = keep_largest_component(clear_absent(written.data, absent), 4, scribbles=painted)
    np.testing.assert_array_equal(io.read_nifti(marked).data, want)
    hull = tmp_path / "hull.nii.gz"
    code, _, err = run(capsys, *args, "--largest-component", "--lv-hull", "--out", hull)
    assert code == 0, err
    np.testing.assert_array_equal(io.read_nifti(hull).data, fill_convex_hull(want, 3, (2,)))
    wall = tmp_path / "wall.nii.gz"
    code, _, err = run(capsys, *args, "--largest-component", "--lv-hull", "--max-wall-mm", "4", "--out", wall)
    assert code == 0, err
    names = ("background", "RV", "myocardium", "LV")
    capped = limit_wall_thickness(fill_convex_hull(want, 3, (2,)), names, 4.0, source.spacing[1:])
    np.testing.assert_array_equal(io.read_nifti(wall).data, capped)
    dark = tmp_path / "dark.nii.gz"
    code, _, err = run(capsys, *args, "--largest-component", "--dark-myocardium", "--lv-hull", "--out", dark)
    assert code == 0, err
    image = io.read_nifti(phantom_files["image"]).data
    ceiling = myocardium_ceiling(image, painted, names)
    want_dark = fill_convex_hull(limit_myocardium_brightness(want, image, ceiling, names), 3, (2,))
    np.testing.assert_array_equal(io.read_nifti(dark).data, want_dark)
    assert (want_dark != fill_convex_hull(want, 3, (2,))).any()  # the ceiling is at work here
    septum = tmp_path / "septum.nii.gz"
    code, _, err = run(capsys, *args, "--largest-component", "--lv-hull", "--septum-wall", "--out", septum)
    assert code == 0, err
    limited = limit_wall_to_septum(fill_convex_hull(want, 3, (2,)), names, source.spacing[1:])
    np.testing.assert_array_equal(io.read_nifti(septum).data, limited)
    # --heart: the four rules the widget's Predict volume applies by default, in its order.
    heart = tmp_path / "heart.nii.gz"
    code, _, err = run(capsys, *args, "--heart", "--out", heart)
    assert code == 0, err
    want_heart = limit_wall_to_septum(want_dark, names, source.spacing[1:])
    np.testing.assert_array_equal(io.read_nifti(heart).data, want_heart)
    # --tta: the probabilities averaged over the square's flips and quarter turns before the arg-max.
    averaged = tmp_path / "tta.nii.gz"
    code, _, err = run(capsys, *args[:5], "--out", averaged, "--tta", "8")
    assert code == 0, err
    want_tta = predict_volume(load_checkpoint(model), image, tta=8)
    np.testing.assert_array_equal(io.read_nifti(averaged).data, want_tta)
    assert (want_tta != written.data).any()
    code, _, err = run(capsys, *args[:5], "--out", tmp_path / "t3.nii.gz", "--tta", "3")
    assert code == 2 and "--tta" in err
    unturned = load_checkpoint(model)  # a model trained without flips and turns is averaged, with a caution
    unturned.config = unturned.config.with_(augment=False)
    still = save_checkpoint(unturned, tmp_path / "still.pt")
    code, _, err = run(capsys, "predict", "--model", still, *args[3:5], "--out", tmp_path / "s.nii.gz", "--tta", "8")
    assert code == 0 and "never saw" in err
    np.testing.assert_array_equal(io.read_nifti(tmp_path / "s.nii.gz").data, want_tta)
    # Without strokes (or none of the myocardium) the ceiling comes from the prediction itself.
    code, _, err = run(capsys, *args[:5], "--out", tmp_path / "d.nii.gz", "--dark-myocardium")
    assert code == 0, err
    own = predicted_myocardium_ceiling(written.data, image, names)
    assert own is not None and own != ceiling
    want_own = limit_myocardium_brightness(written.data, image, own, names)
    np.testing.assert_array_equal(io.read_nifti(tmp_path / "d.nii.gz").data, want_own)
    assert (want_own != written.data).any()
    code, _, err = run(capsys, *args, "--max-wall-mm", "-3", "--out", tmp_path / "neg.nii.gz")
    assert_one_line_error(code, err, "--max-wall-mm must be a positive number of mm")
    png = tmp_path / "slice.png"
    io.write_png(png, np.zeros((16, 16), np.uint8))
    code, _, err = run(
        capsys, "predict", "--model", model, "--image", png, "--out", tmp_path / "p.png", "--max-wall-mm", "9"
    )
    assert_one_line_error(code, err, "--max-wall-mm needs a NIfTI image")

    # Existing output and the source itself are refused.
    code, _, err = run(capsys, "predict", "--model", model, "--image", phantom_files["image"], "--out", pred)
    assert_one_line_error(code, err, "already exists", "--overwrite")
    code, _, err = run(
        capsys,
        "predict",
        "--model",
        model,
        "--image",
        phantom_files["image"],
        "--out",
        phantom_files["image"],
        "--overwrite",
    )
    assert_one_line_error(code, err, "source image")

    code, out, err = run(capsys, "evaluate", "--pred", pred, "--ref", phantom_files["labels"], "--csv", table)
    assert code == 0, err
    assert "Dice LV" in out and "HD95 mean (mm)" in out
    rows = list(csv.reader(table.open()))
    assert rows[0][0] == "case" and rows[-1][0] == "mean" and len(rows) == 3
    assert 0.0 <= float(rows[1][rows[0].index("Dice mean")]) <= 1.0

    # Continue training from the checkpoint.
    code, out, err = run(
        capsys,
        "train",
        "--image",
        phantom_files["image"],
        "--scribbles",
        phantom_files["scribbles"],
        "--estimate-bounds-from",
        phantom_files["labels"],
        "--resume",
        model,
        "--out",
        model,
        *TINY,
    )
    assert code == 0, err
    assert "after 8 steps" in out


def test_evaluate_shape_mismatch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = io.write_nifti(tmp_path / "a.nii.gz", np.zeros((2, 8, 8), np.uint8), AFFINE)
    b = io.write_nifti(tmp_path / "b.nii.gz", np.zeros((2, 8, 9), np.uint8), AFFINE)
    code, _, err = run(capsys, "evaluate", "--pred", a, "--ref", b)
    assert_one_line_error(code, err, "shape")


def test_evaluate_folders_matched_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = np.zeros((2, 16, 16), np.uint8)
    ref[:, 4:10, 4:10] = 1
    pred = ref.copy()
    pred[:, 4:6] = 0
    for folder, arr in (("pred", pred), ("ref", ref)):
        (tmp_path / folder).mkdir()
        for name in ("case1", "case2"):
            io.write_nifti(tmp_path / folder / f"{name}.nii.gz", arr, AFFINE)
    code, out, err = run(capsys, "evaluate", "--pred", tmp_path / "pred", "--ref", tmp_path / "ref")
    assert code == 0, err
    expected = 2 * 48 / (48 + 72)
    assert "case1" in out and "case2" in out and f"{expected:.3f}" in out

    # The CSV adds each class's volume: 72 reference voxels of 15 mm³ (AFFINE) = 1.08 mL, 48 = 0.72.
    code, _, err = run(
        capsys, "evaluate", "--pred", tmp_path / "pred", "--ref", tmp_path / "ref", "--csv", tmp_path / "s.csv"
    )
    assert code == 0, err
    with open(tmp_path / "s.csv", newline="") as fh:
        rows = {r["case"]: r for r in csv.DictReader(fh)}
    assert float(rows["case1"]["class1 ref (mL)"]) == pytest.approx(1.08)
    assert float(rows["mean"]["class1 pred (mL)"]) == pytest.approx(0.72)


def test_measure_volumes_and_cardiac_indices(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Voxels of 1.5 × 1.25 × 8 mm = 15 mm³: 1000 LV voxels at ED are 15 mL, 400 at ES 6 mL."""
    ed = np.zeros((4, 20, 20), np.uint8)
    es = np.zeros((4, 20, 20), np.uint8)
    ed.reshape(-1)[:1000] = 3
    ed.reshape(-1)[1000:1400] = 2  # 6 mL of myocardium = 6.3 g
    es.reshape(-1)[:400] = 3
    a = io.write_nifti(tmp_path / "ed.nii.gz", ed, AFFINE)
    b = io.write_nifti(tmp_path / "es.nii.gz", es, AFFINE)
    code, out, err = run(capsys, "measure", a, "--es", b, "--csv", tmp_path / "m.csv")
    assert code == 0, err
    assert "LV EDV        15.0 mL" in out and "LV ESV         6.0 mL" in out
    assert "LV EF         60.0 %" in out and "myo mass       6.3 g" in out
    assert "RV EF            - %" in out  # no RV: no ejection fraction
    with open(tmp_path / "m.csv", newline="") as fh:
        rows = {r["item"]: float(r["value"]) for r in csv.DictReader(fh)}
    assert rows["ed.nii.gz LV"] == pytest.approx(15.0) and rows["LV EF"] == pytest.approx(60.0)
    # Without --es: only what end-diastole gives; other class names: volumes only.
    code, out, _ = run(capsys, "measure", a, "--classes", "bg,a,b,c")
    assert code == 0 and "c (mL)" in out and "EF" not in out and "EDV" not in out


def test_measure_a_cine_finds_end_diastole_and_end_systole(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A 4D labels file is measured frame by frame; end-diastole is the frame of the largest LV
    (1000 voxels = 15 mL), end-systole the smallest (400 = 6 mL), wherever they fall in the cycle."""
    cine = np.zeros((4, 4, 20, 20), np.uint8)
    for t, n in enumerate((600, 1000, 400, 700)):
        cine[t].reshape(-1)[:n] = 3
        cine[t].reshape(-1)[1200:1300] = 1  # 1.5 mL of RV in every frame: its EF is 0
    path = io.write_nifti(tmp_path / "cine.nii.gz", cine, AFFINE, frame_step=30.0)
    code, out, err = run(capsys, "measure", path, "--csv", tmp_path / "c.csv")
    assert code == 0, err
    assert "end-diastole = frame 1 and end-systole = frame 2" in out
    assert "LV EDV        15.0 mL" in out and "LV ESV         6.0 mL" in out and "LV EF         60.0 %" in out
    assert "RV EF          0.0 %" in out
    with open(tmp_path / "c.csv", newline="") as fh:
        rows = {r["item"]: float(r["value"]) for r in csv.DictReader(fh)}
    assert rows["frame 3 LV"] == pytest.approx(10.5) and rows["end-systole frame"] == 2
    code, out, _ = run(capsys, "measure", path, "--frame", "3")  # one frame, as before
    assert code == 0 and "LV EDV        10.5 mL" in out and "LV EF" not in out
    code, _, err = run(capsys, "measure", path, "--es", path)
    assert_one_line_error(code, err, "4D", "leave out --es")


@needs_acdc
def test_measure_a_cine_of_expert_masks_matches_the_two_frame_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """ACDC's expert masks of one heart stacked end-systole first: the cine report takes the
    second frame as end-diastole and gives the indices `measure ED --es ES` gives."""
    ed, es = (io.read_nifti(f) for f in sorted((ACDC / "training/patient001").glob("*_gt.nii.gz")))
    cine = io.write_nifti(tmp_path / "cine.nii.gz", np.stack([es.data, ed.data]), ed.affine, spacing=ed.spacing)
    code, two, err = run(capsys, "measure", ed.path, "--es", es.path)
    assert code == 0, err
    code, out, err = run(capsys, "measure", cine)
    assert code == 0, err
    assert "end-diastole = frame 1 and end-systole = frame 0" in out
    for key in ("LV EDV", "LV ESV", "LV EF", "RV EF", "myo mass"):
        line = next(x for x in two.splitlines() if x.strip().startswith(key))
        assert line in out


def test_measure_refuses_an_image_and_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = io.write_nifti(tmp_path / "img.nii.gz", np.arange(4 * 16 * 16, dtype=np.int16).reshape(4, 16, 16), AFFINE)
    code, _, err = run(capsys, "measure", img)
    assert_one_line_error(code, err, "an image instead of labels")
    png = io.write_png(tmp_path / "l.png", np.ones((8, 8), np.uint8))
    code, _, err = run(capsys, "measure", png)
    assert_one_line_error(code, err, "NIfTI")


@needs_acdc
def test_evaluate_acdc_reports_clinical_indices(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Predictions = the expert masks, except one ES frame with the LV's first slice cleared: the
    EF bias printed must be that patient's EF change over two patients, counted here by nibabel."""
    import nibabel as nib

    pred_dir = tmp_path / "pred"
    pred_dir.mkdir()
    counts = {}
    for pid in (81, 82):
        for gt in sorted((ACDC / f"training/patient{pid:03d}").glob("*_gt.nii.gz")):
            shutil.copy(gt, pred_dir / gt.name.replace("_gt", ""))
        frames = sorted((ACDC / f"training/patient{pid:03d}").glob("*_gt.nii.gz"))
        counts[pid] = [np.asarray(nib.load(f).dataobj) for f in frames]  # ED (frame01), ES
    es_img = nib.load(sorted((ACDC / "training/patient081").glob("*_gt.nii.gz"))[1])
    es = np.asarray(es_img.dataobj).copy()
    z = int(np.flatnonzero((es == 3).any(axis=(0, 1)))[0])
    cleared = int((es[..., z] == 3).sum())
    es[..., z][es[..., z] == 3] = 0
    nib.save(nib.Nifti1Image(es, es_img.affine, es_img.header), pred_dir / "patient081_frame07.nii.gz")
    code, out, err = run(
        capsys, "evaluate", "--acdc-pred", pred_dir, "--acdc", ACDC, "--clinical-csv", tmp_path / "c.csv"
    )
    assert code == 0, err
    assert "clinical indices of 2 patient(s)" in out
    edv, esv = (int((v == 3).sum()) for v in counts[81])
    ef_change = 100 * (edv - (esv - cleared)) / edv - 100 * (edv - esv) / edv
    line = next(r for r in out.splitlines() if r.startswith("LV EF"))
    assert float(line.split()[3]) == pytest.approx(ef_change / 2, abs=1e-3)
    with open(tmp_path / "c.csv", newline="") as fh:
        per_patient = {int(r["patient"]): r for r in csv.DictReader(fh)}
    assert float(per_patient[82]["LV EF pred"]) == pytest.approx(float(per_patient[82]["LV EF ref"]))
    assert float(per_patient[81]["LV ESV pred"]) < float(per_patient[81]["LV ESV ref"])


def test_train_and_predict_on_png_samples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toy.write_samples(tmp_path / "s")
    model = tmp_path / "toy.pt"
    code, out, err = run(
        capsys,
        "train",
        "--image",
        tmp_path / "s/toy",
        "--mode",
        "constrained",
        "--estimate-bounds-from",
        "gt",
        "--penalty",
        "quadratic",
        "--arch",
        "shallow",
        "--out",
        model,
        *TINY,
    )
    assert code == 0, err
    assert "classes: background, class1" in out
    code, _, err = run(
        capsys, "predict", "--model", model, "--image", tmp_path / "s/toy/img/000.png", "--out", tmp_path / "p.png"
    )
    assert code == 0, err
    assert io.read_png(tmp_path / "p.png").shape == (256, 256)
    code, _, err = run(
        capsys, "predict", "--model", model, "--image", tmp_path / "s/toy/img", "--out", tmp_path / "preds"
    )
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "preds").iterdir()) == ["000.png", "001.png", "002.png"]
    folder = ("predict", "--model", model, "--image", tmp_path / "s/toy/img")
    code, _, err = run(capsys, *folder, "--out", tmp_path / "kept", "--largest-component")
    assert code == 0, err  # each PNG on its own: the same as cutting every file's prediction alone
    for name in ("000.png", "001.png", "002.png"):
        raw = io.read_png(tmp_path / "preds" / name)
        np.testing.assert_array_equal(io.read_png(tmp_path / "kept" / name), keep_largest_component(raw, 2))
    code, _, err = run(capsys, *folder, "--out", tmp_path / "hull", "--lv-hull")
    assert_one_line_error(code, err, "need classes named LV and myocardium", "background, class1")
    assert not (tmp_path / "hull").exists()  # refused before anything is written
    code, _, err = run(capsys, *folder, "--out", tmp_path / "wall", "--max-wall-mm", "10")
    assert_one_line_error(code, err, "need classes named LV and myocardium")
    code, _, err = run(capsys, *folder, "--out", tmp_path / "septum", "--septum-wall")
    assert_one_line_error(code, err, "needs classes named RV, myocardium and LV", "background, class1")
    assert not (tmp_path / "septum").exists()
    code, _, err = run(capsys, *folder, "--out", tmp_path / "heart", "--heart")
    assert_one_line_error(code, err, "need classes named LV and myocardium", "background, class1")
    code, _, err = run(capsys, *folder, "--out", tmp_path / "dark", "--dark-myocardium")
    assert_one_line_error(code, err, "needs classes named myocardium and LV", "background, class1")
    assert not (tmp_path / "dark").exists()


def test_parse_bound_flags() -> None:
    names = ("background", "RV", "myocardium", "LV")
    assert cli.parse_size_flags(["LV=1:2", "1=3.5:4"], names, "--size-px") == {3: (1.0, 2.0), 1: (3.5, 4.0)}
    assert cli.parse_centroid_flags(["lv=1:2,3:4"], names) == {3: ((1.0, 2.0), (3.0, 4.0))}


# --------------------------------------------------------------------------------------------
# Reproduce and demo (tiny budgets)


@pytest.mark.slow
def test_reproduce_toy_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "reproduce", "toy", "--size", "32", "--epochs", "2", "--n-train", "2", "--n-val", "2", "--device", "cpu"
    )
    assert code == 0, err
    assert "TOY" in out and "REDUCED" in out
    for method, seed in (("full", "0.995"), ("partial", "0.976"), ("partial + size", "0.988")):
        assert any(line.startswith(method) and seed in line for line in out.splitlines()), out


@pytest.mark.slow
def test_reproduce_toy2_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "reproduce",
        "toy2",
        "--size",
        "32",
        "--epochs",
        "1",
        "--n-train",
        "16",
        "--n-val",
        "4",
        "--device",
        "cpu",
    )
    assert code == 0, err
    assert "distractor px as target" in out and "p-mass on target" in out
    rows = [line.split()[0] for line in out.splitlines() if line.startswith(("quadratic", "log-barrier"))]
    assert rows == ["quadratic", "quadratic", "log-barrier", "log-barrier"], out  # each without and with the CRF


@pytest.mark.slow
def test_demo_headless(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "demo",
        "--headless",
        "--out-dir",
        tmp_path / "demo",
        "--steps",
        "3",
        "--net-size",
        "32",
        "--width",
        "4",
        "--device",
        "cpu",
    )
    assert code == 0, err
    png = tmp_path / "demo" / "phantom_overlay.png"
    assert png.is_file() and png.stat().st_size > 10_000
    assert "LV" in out and "3D Dice" in out


@pytest.mark.slow
@needs_acdc
def test_reproduce_acdc_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "reproduce",
        "acdc",
        "--acdc",
        ACDC,
        "--patients",
        "1-2",
        "--test-patients",
        "81",
        "--steps",
        "2",
        "--net-size",
        "32",
        "--width",
        "4",
        "--batch-size",
        "2",
        "--modes",
        "full,constrained",
        "--device",
        "cpu",
    )
    assert code == 0, err
    assert "RV" in out and "constrained (oracle" in out and "0.852" in out


# --------------------------------------------------------------------------------------------
# The real console script


def test_console_script_one_line_error(tmp_path: Path) -> None:
    exe = shutil.which("napari-wss", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "napari_wss.cli"]
    proc = subprocess.run(
        [*cmd, "predict", "--model", str(tmp_path / "missing.pt"), "--image", "x.nii.gz", "--out", "y.nii.gz"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"napari-wss: error: model file {tmp_path / 'missing.pt'} does not exist"
    ]


def test_train_with_mixed_pseudo_labels_and_continue_without(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], phantom_files: dict[str, Path]
) -> None:
    """--mixed-pseudo builds the second decoder into the saved model (predict uses the first), a
    resumed run may drop the term, and a network that cannot carry it is refused in one line."""
    from napari_wss.training import load_checkpoint

    common = ["--image", phantom_files["image"], "--scribbles", phantom_files["scribbles"], "--mode", "partial"]
    common += ["--penalty", "none", "--steps", "2", "--net-size", "32"]
    common += ["--width", "4", "--depth", "2", "--device", "cpu"]
    code, _, err = run(capsys, "train", *common, "--mixed-pseudo", "0.5", "--out", tmp_path / "dual.pt")
    assert code == 0, err
    assert load_checkpoint(tmp_path / "dual.pt").model.aux is not None
    code, _, err = run(capsys, "train", *common, "--resume", tmp_path / "dual.pt", "--out", tmp_path / "again.pt")
    assert code == 0, err
    again = load_checkpoint(tmp_path / "again.pt")
    assert again.step == 4 and again.model.aux is not None and again.config.mixed_pseudo_weight == 0
    out = tmp_path / "pred.nii.gz"
    code, _, err = run(
        capsys, "predict", "--model", tmp_path / "again.pt", "--image", phantom_files["image"], "--out", out
    )
    assert code == 0 and io.read_nifti(out).data.shape == io.read_nifti(phantom_files["image"]).data.shape
    code, _, err = run(
        capsys, "train", *common, "--arch", "shallow", "--mixed-pseudo", "0.5", "--out", tmp_path / "s.pt"
    )
    assert_one_line_error(code, err, "second decoder needs arch 'unet'")
    assert not (tmp_path / "s.pt").exists()
