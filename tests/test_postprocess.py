"""Island removal (largest or marked components), the convex LV cavity and the absence rule, on
hand-built label maps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from skimage.morphology import convex_hull_image

from napari_wss.config import ClassPrior
from napari_wss.data import absent_classes, bounds_from_priors
from napari_wss.errors import InputError
from napari_wss.postprocess import (
    FROM_PREDICTION,
    clear_absent,
    enclosures,
    fill_convex_hull,
    fill_lv_hull,
    keep_largest_component,
    limit_myocardium_brightness,
    limit_wall_thickness,
    limit_wall_to_septum,
    lv_hull_classes,
    myocardium_ceiling,
    predicted_myocardium_ceiling,
    septal_thickness,
)


def test_2d_keeps_each_classes_largest_island_and_clears_the_rest() -> None:
    lab = np.zeros((8, 8), dtype=np.uint8)
    lab[0:3, 0:3] = 1  # class 1: 9 px, kept
    lab[6, 6] = 1  # class 1: stray pixel, removed
    lab[4:6, 0:2] = 2  # class 2: 4 px, kept
    lab[0, 7] = 2  # class 2: stray pixel, removed
    out = keep_largest_component(lab, 3)
    want = lab.copy()
    want[6, 6] = 0
    want[0, 7] = 0
    np.testing.assert_array_equal(out, want)
    assert lab[6, 6] == 1  # the input is left as it was
    assert out.dtype == lab.dtype


def test_diagonal_contact_joins_components() -> None:
    lab = np.zeros((4, 4), dtype=np.uint8)
    lab[0, 0] = lab[1, 1] = lab[2, 2] = 1  # one diagonal line: one object with 8-connectivity
    np.testing.assert_array_equal(keep_largest_component(lab, 2), lab)


def test_3d_connects_across_slices_unless_per_slice() -> None:
    lab = np.zeros((3, 6, 6), dtype=np.uint8)
    lab[0, 0:2, 0:2] = 1  # slice 0: 4 px ...
    lab[1, 1:3, 1:3] = 1  # ... touching slice 1's 4 px: one 8-voxel object in 3D
    lab[2, 4:6, 4:6] = 1  # slice 2: 4 px, not touching slice 1 (not even diagonally)
    vol = keep_largest_component(lab, 2)
    assert vol[2].sum() == 0 and vol[:2].sum() == 8
    # As separate images each slice keeps its own largest object: nothing is removed.
    np.testing.assert_array_equal(keep_largest_component(lab, 2, per_slice=True), lab)


def test_removed_voxels_go_to_the_named_background_and_it_is_never_cut() -> None:
    lab = np.full((5, 5), 2, dtype=np.uint8)  # class 2 fills the map ...
    lab[1, 1] = 0  # ... with two separate class-0 holes
    lab[3, 3] = 0
    lab[0, 4] = 1
    lab[4, 0] = 1  # two class-1 islands of one pixel
    out = keep_largest_component(lab, 3, background=2)
    # Class 0 is not the background here: one of its two islands goes; class 2 is never touched.
    assert (out == 0).sum() == 1 and (out == 1).sum() == 1
    assert (out == 2).sum() == lab.size - 2


def test_empty_and_single_component_maps_are_unchanged() -> None:
    empty = np.zeros((2, 4, 4), dtype=np.uint8)
    np.testing.assert_array_equal(keep_largest_component(empty, 4), empty)
    one = np.zeros((4, 4), dtype=np.int64)
    one[1:3, 1:3] = 3
    np.testing.assert_array_equal(keep_largest_component(one, 4), one)


def test_rejects_other_dimensions() -> None:
    with pytest.raises(ValueError, match=r"2D or 3D label map, got shape \(4,\)"):
        keep_largest_component(np.zeros(4, dtype=np.uint8), 2)


def test_strokes_keep_the_object_they_mark_over_a_larger_stray() -> None:
    lab = np.zeros((2, 8, 8), dtype=np.uint8)
    lab[:, 0:2, 0:2] = 1  # class 1, 8 voxels: the object the user marked
    lab[:, 4:8, 4:8] = 1  # class 1, 32 voxels: a larger stray
    lab[0, 0, 7] = 1  # class 1, a second unmarked stray
    lab[:, 0:2, 5] = 2  # class 2, two objects, neither marked: its largest stays
    lab[1, 7, 0] = 2
    scr = np.zeros_like(lab)
    scr[1, 1, 1] = 2  # a class-1 stroke (class c painted as c + 1) on the small object
    scr[0, 4, 0] = 3  # a class-2 stroke on the background: marks no class-2 object
    out = keep_largest_component(lab, 3, scribbles=scr)
    want = lab.copy()
    want[:, 4:8, 4:8] = 0
    want[0, 0, 7] = 0
    want[1, 7, 0] = 0
    np.testing.assert_array_equal(out, want)
    # Strokes on two objects keep both; per image, each slice is marked by its own strokes only.
    scr[0, 6, 6] = 2
    assert (keep_largest_component(lab, 3, scribbles=scr) == 1).sum() == 8 + 32
    per_image = keep_largest_component(lab, 3, per_slice=True, scribbles=scr)
    assert per_image[0, 5, 5] == 1 and per_image[0, 0, 0] == 0  # slice 0: the stroke at (6, 6)
    assert per_image[1, 0, 0] == 1 and per_image[1, 5, 5] == 0  # slice 1: the stroke at (1, 1)
    with pytest.raises(ValueError, match="scribbles have shape"):
        keep_largest_component(lab, 3, scribbles=scr[0])


def _ringed_cavity_beside_a_larger_pool() -> np.ndarray:
    """Two slices: an LV cavity (3) of 9 pixels ringed by myocardium (2), and beside it a pool
    also painted LV, 25 pixels a slice, touching the ring at one pixel (an RV taken for the LV)."""
    lab = np.zeros((2, 12, 16), dtype=np.uint8)
    lab[:, 2:7, 2:7] = 2
    lab[:, 3:6, 3:6] = 3  # the ringed cavity
    lab[:, 2:7, 7:13] = 3  # the pool, against the ring's right side
    lab[:, 2:7, 7] = 0  # a column of background between them
    lab[:, 4, 7] = 2  # the ring's rim touches it there
    return lab


def test_an_enclosed_class_keeps_the_component_its_surround_rings() -> None:
    lab = _ringed_cavity_beside_a_larger_pool()
    cavity, pool = (lab == 3) & (np.arange(16) < 7), (lab == 3) & (np.arange(16) >= 7)
    assert pool.sum() > cavity.sum()
    plain = keep_largest_component(lab, 4)
    assert (plain[pool] == 3).all() and (plain[cavity] == 0).all()  # the largest: the wrong one
    out = keep_largest_component(lab, 4, enclosed={3: 2})
    assert (out[cavity] == 3).all() and (out[pool] == 0).all()
    np.testing.assert_array_equal(out[lab != 3], lab[lab != 3])  # the other classes untouched
    np.testing.assert_array_equal(keep_largest_component(lab, 4, enclosed={3: 2}, per_slice=True), out)
    # A stroke still decides: marked on the pool, the pool stays.
    scr = np.zeros_like(lab)
    scr[0, 4, 10] = 4
    kept = keep_largest_component(lab, 4, enclosed={3: 2}, scribbles=scr)
    assert (kept[pool] == 3).all() and (kept[cavity] == 0).all()
    # With no surround anywhere, the largest component as before.
    bare = np.where(lab == 2, 0, lab).astype(np.uint8)
    np.testing.assert_array_equal(keep_largest_component(bare, 4, enclosed={3: 2}), keep_largest_component(bare, 4))


def test_enclosures_name_the_lv_and_its_myocardium() -> None:
    assert enclosures(["background", "RV", "myocardium", "LV"]) == {3: 2}
    assert enclosures(["bg", "left ventricle", "myo"]) == {1: 2}
    assert enclosures(["background", "RV", "LV"]) == {}
    assert enclosures(["background", "cell"]) == {}


def test_absent_classes_follow_the_bounds_rules() -> None:
    scr = np.zeros((3, 4, 4), dtype=np.uint8)
    scr[0, 0, 0] = 1  # slice 0: background only → classes 1 and 2 absent
    scr[1, 0, 0] = 2  # slice 1: class 1 → background and class 2 "missing"; background never absent
    # slice 2: nothing painted → nothing known
    got = absent_classes(3, 3, scribbles=scr, absent=[(2, 1)])
    np.testing.assert_array_equal(got, [[False, True, True], [False, False, True], [False, True, False]])
    sizes, _ = bounds_from_priors([ClassPrior(f"c{c}") for c in range(3)], 3, (4, 4), scribbles=scr, absent=[(2, 1)])
    np.testing.assert_array_equal(sizes[..., 1] == 0, got)
    for tick in ((3, 1), (-1, 1), (0, 3)):  # a slice or class the image has not: refused, never wrapped round
        with pytest.raises(InputError, match="absent tick"):
            absent_classes(3, 3, absent=[tick])


@settings(max_examples=150, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 4), st.integers(1, 9), st.integers(1, 9)),
    k=st.integers(2, 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_properties_on_random_maps(shape: tuple[int, int, int], k: int, seed: int) -> None:
    lab = np.random.default_rng(seed).integers(0, k, size=shape).astype(np.uint8)
    out = keep_largest_component(lab, k)
    full = ndimage.generate_binary_structure(3, 3)
    for c in range(1, k):
        before = lab == c
        after = out == c
        assert np.all(after <= before)  # only removes
        n_after = ndimage.label(after, structure=full)[1]
        assert n_after == (1 if before.any() else 0)  # exactly one object left where there was any
        # ... and it is a largest one.
        comps, n = ndimage.label(before, structure=full)
        if n:
            assert after.sum() == np.bincount(comps.ravel())[1:].max()
    assert np.all((out != lab) <= (out == 0))  # what is removed becomes background
    np.testing.assert_array_equal(keep_largest_component(out, k), out)  # idempotent

    scr = np.random.default_rng(seed + 1).integers(0, k + 1, size=shape) * (
        np.random.default_rng(seed + 2).random(shape) < 0.1
    )
    marked = keep_largest_component(lab, k, scribbles=scr)
    assert np.all((marked != lab) <= (marked == 0))
    for c in range(1, k):
        comps = ndimage.label(lab == c, structure=full)[0]
        hit = set(np.unique(comps[scr == c + 1])) - {0}
        kept = set(np.unique(comps[marked == c])) - {0}
        if hit:
            assert kept == hit  # exactly the objects its strokes touch
        else:
            np.testing.assert_array_equal(marked == c, out == c)  # no stroke inside: the largest, as before


def _ring_heart() -> np.ndarray:
    """One 21² slice: a myocardial ring (2) around an LV disc (3) with a papillary notch of
    myocardium cut into the cavity, an RV (1) beside it, background 0."""
    yy, xx = np.mgrid[:21, :21]
    r = np.hypot(yy - 10, xx - 10)
    lab = np.zeros((21, 21), dtype=np.uint8)
    lab[r <= 8] = 2
    lab[r <= 5] = 3
    lab[9:12, 13:16] = 2  # papillary muscle: myocardium reaching into the cavity from the wall
    lab[8:10, 11:13] = 1  # an RV pixel block inside the hull (not myocardium: left alone)
    lab[0:2, 0:4] = 1
    return lab


def test_convex_hull_hands_the_myocardium_inside_the_cavity_to_it() -> None:
    lab = _ring_heart()
    out = fill_convex_hull(lab, 3, (2,))
    inside = convex_hull_image(lab == 3)
    assert ((lab == 2) & inside).any()  # the notch lies in the hull: the test sees the fill at work
    np.testing.assert_array_equal(out[(lab == 2) & inside], 3)
    np.testing.assert_array_equal(out[~((lab == 2) & inside)], lab[~((lab == 2) & inside)])  # nothing else moves
    assert (out == 2).sum() > 0 and (out[lab == 1] == 1).all()  # the ring outside stays, the RV is untouched
    assert out[10, 14] == 3 and out[10, 17] == 2  # the notch joins the cavity, the wall beside it stays
    assert lab[10, 14] == 2  # the input is left as it was


def test_convex_hull_works_per_slice_and_skips_slices_without_the_cavity() -> None:
    heart = _ring_heart()
    no_lv = np.where(heart == 3, 2, heart).astype(np.uint8)  # an apical slice: myocardium, no cavity
    vol = np.stack([heart, no_lv])
    out = fill_convex_hull(vol, 3, (2,))
    np.testing.assert_array_equal(out[0], fill_convex_hull(heart, 3, (2,)))
    np.testing.assert_array_equal(out[1], no_lv)
    with pytest.raises(ValueError, match="2D or 3D"):
        fill_convex_hull(np.zeros(5, np.uint8), 3, (2,))


def test_lv_hull_finds_the_classes_by_name_and_refuses_without_them() -> None:
    lab = _ring_heart()
    np.testing.assert_array_equal(
        fill_lv_hull(lab, ["background", "RV", "myocardium", "LV"]), fill_convex_hull(lab, 3, (2,))
    )
    swapped = np.choose(lab, [0, 1, 3, 2]).astype(np.uint8)  # the LV stored as 2, the myocardium as 3
    np.testing.assert_array_equal(
        fill_lv_hull(swapped, ["bg", "right ventricle", "left ventricle", "myo"]), fill_convex_hull(swapped, 2, (3,))
    )
    with pytest.raises(InputError, match="need classes named LV and myocardium; the model has bg, cell"):
        lv_hull_classes(["bg", "cell"])


def test_wall_thickness_limit_drops_the_myocardium_beyond_it_in_mm() -> None:
    names = ["background", "RV", "myocardium", "LV"]
    lab = np.zeros((1, 9, 30), dtype=np.uint8)
    lab[0, :, 0:5] = 3  # the cavity: columns 0-4
    lab[0, :, 5:25] = 2  # the wall: columns 5-24, 1 .. 20 columns from the cavity
    lab[0, :, 25:] = 1  # RV beyond it: never touched
    no_lv = np.where(lab == 3, 0, lab).astype(np.uint8)
    vol = np.concatenate([lab, no_lv])
    out = limit_wall_thickness(vol, names, 6.0, (1.0, 0.5))  # 0.5 mm columns: 6 mm = 12 columns
    np.testing.assert_array_equal(out[0, :, 5:17], 2)  # columns 5-16 lie within 6 mm
    np.testing.assert_array_equal(out[0, :, 17:25], 0)  # beyond it: background
    np.testing.assert_array_equal(out[0, :, 25:], 1)
    np.testing.assert_array_equal(out[1], no_lv[0])  # no cavity on the slice: nothing to measure from
    assert (vol[0] == 2).sum() == 9 * 20  # the input is left as it was
    np.testing.assert_array_equal(limit_wall_thickness(lab[0], names, 6.0, (1.0, 0.5)), out[0])  # 2D too
    with pytest.raises(InputError, match="positive number of mm"):
        limit_wall_thickness(lab, names, 0.0, (1.0, 1.0))
    with pytest.raises(InputError, match="need classes named LV and myocardium"):
        limit_wall_thickness(lab, ["bg", "a", "b", "c"], 6.0, (1.0, 1.0))


def _heart_slice(septum: int, free_wall: int, stray: bool) -> np.ndarray:
    """One 40x60 slice: LV cavity columns 20-29, a septum of ``septum`` columns to its left with the RV
    beyond it, a free wall of ``free_wall`` columns to its right, and a stray myocardium blob beyond."""
    lab = np.zeros((40, 60), dtype=np.uint8)
    lab[10:30, 20:30] = 3
    lab[10:30, 20 - septum : 20] = 2
    lab[10:30, 5 : 20 - septum] = 1
    lab[10:30, 30 : 30 + free_wall] = 2
    if stray:
        lab[10:30, 30 + free_wall : 50] = 2  # the wall grown into the tissue around the heart
    return lab


def test_septal_thickness_is_the_wall_between_the_cavities() -> None:
    names = ["background", "RV", "myocardium", "LV"]
    lab = np.stack([_heart_slice(4, 5, False), _heart_slice(6, 5, False)])
    # distances from the cavity of the wall pixels next to the RV: 4 (columns 16) and 6 (column 14), in mm
    assert septal_thickness(lab, names) == pytest.approx(5.0)  # the median over both slices' 2 x 20 pixels
    assert septal_thickness(lab, names, (1.0, 0.5)) == pytest.approx(2.5)
    no_rv = np.where(lab == 1, 0, lab).astype(np.uint8)
    assert septal_thickness(no_rv, names) is None
    with pytest.raises(InputError, match="needs classes named RV, myocardium and LV; the model has bg, a, b, c"):
        septal_thickness(lab, ["bg", "a", "b", "c"])


def test_the_wall_is_limited_to_a_multiple_of_the_septum() -> None:
    names = ["background", "RV", "myocardium", "LV"]
    grown = _heart_slice(4, 5, True)[None]
    out = limit_wall_to_septum(grown, names, (1.0, 1.0), 1.5)  # septum 4 px: the wall within 6 px stays
    np.testing.assert_array_equal(out[0, :, 30:36], grown[0, :, 30:36])
    assert not (out[0, :, 36:] == 2).any()  # the stray beyond: background
    np.testing.assert_array_equal(out[0][grown[0] != 2], grown[0][grown[0] != 2])  # only myocardium moves
    np.testing.assert_array_equal(out, limit_wall_thickness(grown, names, 6.0, (1.0, 1.0)))
    assert (grown == 2).sum() > (out == 2).sum()  # and the input is left as it was
    # A thick (hypertrophic) septum raises the limit with it: a 12 px free wall is kept whole.
    thick = _heart_slice(10, 12, False)[None]
    np.testing.assert_array_equal(limit_wall_to_septum(thick, names, (1.0, 1.0)), thick)
    no_rv = np.where(grown == 1, 0, grown).astype(np.uint8)
    np.testing.assert_array_equal(limit_wall_to_septum(no_rv, names), no_rv)  # no septum to go by
    with pytest.raises(InputError, match="septum factor must be a positive number"):
        limit_wall_to_septum(grown, names, (1.0, 1.0), 0.0)


def test_clear_absent_hands_each_marked_class_to_the_background_on_its_slice_only() -> None:
    lab = np.array([[[1, 2], [3, 0]], [[1, 2], [3, 3]]], dtype=np.uint8)
    absent = np.array([[False, True, False, True], [True, False, True, False]])  # class 0 is never cleared
    out = clear_absent(lab, absent)
    assert out.tolist() == [[[0, 2], [0, 0]], [[1, 0], [3, 3]]]
    assert lab[0, 0, 0] == 1  # the input is not modified
    np.testing.assert_array_equal(clear_absent(lab, np.zeros((2, 4), bool)), lab)
    with pytest.raises(InputError, match="absent must be"):
        clear_absent(lab, absent[:1])


def test_myocardium_brighter_than_its_strokes_goes_to_its_nearest_other_class() -> None:
    """A bright LV pool (200) in a dark wall (80) on a mid-grey background (120): the predicted
    wall spills over the pool's rim and onto bright fat outside; with the ceiling from the strokes
    the rim returns to the LV, the fat to the background, and the dark wall stays."""
    names = ["background", "RV", "myocardium", "LV"]
    yy, xx = np.mgrid[:40, :40]
    r = np.hypot(yy - 20, xx - 20)
    image = np.full((2, 40, 40), 120.0)
    image[:, r < 12] = 80.0  # the wall
    image[:, r < 8] = 200.0  # the blood pool
    image[:, 30:, :] = 210.0  # fat below the heart
    truth = np.zeros((2, 40, 40), np.uint8)
    truth[:, r < 12] = 2
    truth[:, r < 8] = 3
    pred = truth.copy()
    pred[:, (r >= 6) & (r < 8)] = 2  # the wall drawn into the pool's rim
    pred[:, 30:33, 15:25] = 2  # and onto the fat
    strokes = np.zeros_like(truth)
    strokes[:, 20, 30] = 3  # a myocardium stroke on the wall (label c + 1)
    strokes[:, 20, 20] = 4
    ceiling = myocardium_ceiling(image, strokes, names)
    assert ceiling == pytest.approx(80.0)
    before = pred.copy()
    out = limit_myocardium_brightness(pred, image, ceiling, names)
    np.testing.assert_array_equal(pred, before)  # the input is not modified
    np.testing.assert_array_equal(out[:, :30], truth[:, :30])  # rim back to the LV, wall kept
    assert (out[:, 30:33, 15:25] == 0).all()  # the fat to the background next to it
    np.testing.assert_array_equal(limit_myocardium_brightness(pred[0], image[0], ceiling, names), out[0])  # 2D


def test_without_strokes_the_ceiling_comes_from_the_predicted_wall_and_pool() -> None:
    """The phantom above with noise and no strokes: the threshold between the predicted wall's and
    the predicted pool's intensities lies between the true wall and the blood, although the
    overgrown wall holds bright rim pixels, and trims the wall as the strokes' ceiling does."""
    names = ["background", "RV", "myocardium", "LV"]
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:40, :40]
    r = np.hypot(yy - 20, xx - 20)
    image = np.full((2, 40, 40), 120.0)
    image[:, r < 12] = 80.0
    image[:, r < 8] = 200.0
    image[:, 30:, :] = 210.0
    image += rng.normal(0, 5, image.shape)
    truth = np.zeros((2, 40, 40), np.uint8)
    truth[:, r < 12] = 2
    truth[:, r < 8] = 3
    pred = truth.copy()
    pred[:, (r >= 6) & (r < 8)] = 2
    pred[:, 30:33, 15:25] = 2
    before = pred.copy()
    ceiling = predicted_myocardium_ceiling(pred, image, names)
    np.testing.assert_array_equal(pred, before)
    assert 100 < ceiling < 180
    out = limit_myocardium_brightness(pred, image, ceiling, names)
    np.testing.assert_array_equal(out[:, :30], truth[:, :30])
    assert (out[:, 30:33, 15:25] == 0).all()
    no_pool = np.where(pred == 3, 0, pred)
    assert predicted_myocardium_ceiling(no_pool, image, names) is None
    assert predicted_myocardium_ceiling(pred, np.full_like(image, 7.0), names) is None  # nothing to split
    # limit_myocardium_brightness takes it from the labels when asked, and leaves them when it has none
    np.testing.assert_array_equal(limit_myocardium_brightness(pred, image, FROM_PREDICTION, names), out)
    np.testing.assert_array_equal(limit_myocardium_brightness(no_pool, image, FROM_PREDICTION, names), no_pool)
    with pytest.raises(InputError, match="a number or 'prediction'"):
        limit_myocardium_brightness(pred, image, "strokes", names)
    with pytest.raises(InputError, match="named myocardium and LV"):
        predicted_myocardium_ceiling(pred, image, ["background", "RV", "myocardium"])
    with pytest.raises(InputError, match="shape"):
        predicted_myocardium_ceiling(pred, image[0], names)


def test_myocardium_ceiling_needs_its_class_and_strokes() -> None:
    names = ["background", "RV", "myocardium", "LV"]
    image = np.arange(16.0).reshape(1, 4, 4)
    strokes = np.zeros((1, 4, 4), np.uint8)
    assert myocardium_ceiling(image, strokes, names) is None  # no myocardium strokes: no ceiling
    strokes[0, 0, :] = 3
    assert myocardium_ceiling(image, strokes, names, 100) == 3.0
    assert myocardium_ceiling(image, strokes, names, 50) == pytest.approx(1.5)
    with pytest.raises(InputError, match="named myocardium"):
        myocardium_ceiling(image, strokes, ["background", "cell"])
    with pytest.raises(InputError, match="percentile"):
        myocardium_ceiling(image, strokes, names, 0)
    with pytest.raises(InputError, match="shape"):
        limit_myocardium_brightness(np.zeros((1, 4, 4), np.uint8), image[0], 1.0, names)
