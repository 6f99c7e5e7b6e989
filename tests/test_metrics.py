"""Scores and clinical indices against values worked out by hand."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_wss.errors import InputError
from napari_wss.metrics import (
    CARDIAC_AREA_MM2,
    agreement,
    cardiac_classes,
    cardiac_indices,
    cardiac_size_ranges,
    cine_indices,
    cine_phases,
    class_volumes_ml,
    describe_volumes,
    dice,
    dice_per_slice,
    ejection_fraction,
    hd95,
    score_volume,
)

NAMES = ("background", "RV", "myocardium", "LV")
ROOT = Path(__file__).resolve().parents[1]
ACDC = ROOT.parent / "shared" / "data" / "acdc"


def test_dice_hand_computed() -> None:
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2, :2] = True  # 4 px
    b[:2, :3] = True  # 6 px, 4 shared
    assert dice(a, b) == pytest.approx(2 * 4 / 10)
    assert math.isnan(dice(np.zeros(3, bool), np.zeros(3, bool)))
    assert dice(a, np.zeros_like(a)) == 0.0


def test_dice_per_slice_leaves_empty_slices_nan() -> None:
    pred = np.zeros((2, 4, 4), np.int64)
    ref = np.zeros((2, 4, 4), np.int64)
    pred[0, :2, :2] = 1
    ref[0, :2, :2] = 1
    d = dice_per_slice(pred, ref, 2)
    assert d[0, 1] == 1.0 and math.isnan(d[1, 1])


def test_hd95_of_a_shifted_square_in_mm() -> None:
    """A square moved by 2 columns at 0.5 mm per column: every surface distance is at most 1 mm."""
    a = np.zeros((1, 20, 20), bool)
    a[0, 5:15, 5:15] = True
    b = np.roll(a, 2, axis=2)
    assert hd95(a, b, (1.0, 1.0, 0.5)) == pytest.approx(1.0)
    assert hd95(a, a, (1.0, 1.0, 1.0)) == 0.0
    assert math.isnan(hd95(a, np.zeros_like(a), (1.0, 1.0, 1.0)))


def test_score_volume_of_a_2d_pair() -> None:
    ref = np.zeros((8, 8), np.int64)
    ref[2:6, 2:6] = 1
    s = score_volume(ref, ref, 2, (1.0, 1.0))
    assert s.mean_dice() == 1.0 and s.mean_hd95() == 0.0


def test_class_volumes_in_ml() -> None:
    labels = np.zeros((2, 10, 10), np.uint8)
    labels[0, :4, :5] = 1  # 20 voxels
    labels[1, :, :] = 3  # 100 voxels
    ml = class_volumes_ml(labels, 4, (10.0, 1.5, 2.0))  # 30 mm³ a voxel
    np.testing.assert_allclose(ml, [80 * 30 / 1000, 20 * 30 / 1000, 0.0, 100 * 30 / 1000])
    with pytest.raises(ValueError, match="3-value spacing"):
        class_volumes_ml(labels, 4, (1.5, 2.0))


def test_ejection_fraction() -> None:
    assert ejection_fraction(150.0, 60.0) == pytest.approx(60.0)
    assert math.isnan(ejection_fraction(0.0, 0.0))


def test_cardiac_classes_by_name() -> None:
    assert cardiac_classes(NAMES) == {"LV": 3, "RV": 1, "myocardium": 2}
    assert cardiac_classes(("bg", "Left ventricle", "Myo")) == {"LV": 1, "myocardium": 2}
    assert cardiac_classes(("background", "nucleus")) == {}


def test_cardiac_indices_hand_computed() -> None:
    ed = np.array([0.0, 180.0, 100.0, 150.0])
    es = np.array([0.0, 120.0, 105.0, 60.0])
    out = cardiac_indices(ed, es, NAMES)
    assert out["LV EDV"] == 150.0 and out["LV ESV"] == 60.0 and out["LV SV"] == 90.0
    assert out["LV EF"] == pytest.approx(60.0)
    assert out["RV EF"] == pytest.approx(100 * 60 / 180)
    assert out["myo mass"] == pytest.approx(105.0)  # ED volume × 1.05 g/mL
    ed_only = cardiac_indices(ed, None, NAMES)
    assert set(ed_only) == {"LV EDV", "RV EDV", "myo mass"}
    assert set(cardiac_indices(ed[:2], None, ("background", "LV"))) == {"LV EDV"}


def test_agreement_hand_computed() -> None:
    a = agreement([11.0, 19.0, 33.0, float("nan")], [10.0, 20.0, 30.0, 40.0])
    d = np.array([1.0, -1.0, 3.0])
    assert a.n == 3
    assert a.bias == pytest.approx(1.0)
    assert a.sd == pytest.approx(d.std(ddof=1))
    assert a.mae == pytest.approx(5 / 3)
    assert a.limits == pytest.approx((1 - 1.96 * 2.0, 1 + 1.96 * 2.0))
    assert a.r == pytest.approx(np.corrcoef([11, 19, 33], [10, 20, 30])[0, 1])
    assert agreement([], []).n == 0
    with pytest.raises(ValueError):
        agreement([1.0], [1.0, 2.0])


def test_describe_volumes() -> None:
    labels = np.zeros((1, 10, 10), np.uint8)
    labels[0, :5] = 2  # 50 voxels of 20 mm³ = 1 mL
    text = describe_volumes(class_volumes_ml(labels, 4, (20.0, 1.0, 1.0)), NAMES)
    assert text == "RV 0.0 mL · myocardium 1.0 mL (1.1 g) · LV 0.0 mL"


def test_cardiac_sizes_are_found_by_name() -> None:
    got = cardiac_size_ranges(["background", "Left ventricle", "myo", "scar", "RV"])
    assert got == {1: CARDIAC_AREA_MM2["LV"], 2: CARDIAC_AREA_MM2["myocardium"], 4: CARDIAC_AREA_MM2["RV"]}
    with pytest.raises(InputError, match="the classes are background, cell"):
        cardiac_size_ranges(["background", "cell"])


@pytest.mark.skipif(not ACDC.is_dir(), reason=f"ACDC data not found at {ACDC}")
def test_cardiac_sizes_are_the_ones_the_acdc_masks_give() -> None:
    """The shipped ranges against ACDC's expert masks, recomputed from the NIfTI files."""
    script = ROOT / "benchmarks" / "cardiac_ranges.py"
    run = subprocess.run([sys.executable, str(script), "--acdc", str(ACDC)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1558" in run.stdout and "DIFFERENT" not in run.stdout  # both phases of every patient were read


def test_cine_phases_take_the_largest_and_smallest_ventricle() -> None:
    names = ("background", "RV", "myocardium", "LV")
    ml = np.array([[0, 50, 60, 120], [0, 70, 61, 150], [0, 40, 62, 70], [0, 45, 60, 90]], dtype=float)
    assert cine_phases(ml, names) == (1, 2)
    indices, ed, es = cine_indices(ml, names)
    assert (ed, es) == (1, 2) and indices["LV EF"] == pytest.approx(100 * 80 / 150)
    assert indices["RV EDV"] == 70 and indices["RV ESV"] == 40  # the LV's frames serve both ventricles
    assert cine_phases(ml[:, :2], names[:2]) == (1, 2)  # no LV class: the RV's curve
    assert cine_phases(ml[:1], names) == (0, 0)
    flat = np.tile([0.0, 5.0, 5.0, 9.0], (3, 1))
    assert cine_phases(flat, names) == (0, 1)  # equal volumes: two different frames, EF 0
    assert cine_indices(flat, names)[0]["LV EF"] == 0
    assert cine_phases(ml[:, :3], ("background", "a", "myocardium")) is None
