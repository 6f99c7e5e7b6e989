"""The widget's Qt-free half (napari_wss._session), driven headless: checks, bounds, the worker generator."""

from __future__ import annotations

import numpy as np
import pytest

from napari_wss import _session, toy, training
from napari_wss.config import ClassPrior, TrainConfig
from napari_wss.errors import InputError

CFG = TrainConfig(size=32, width=4, depth=2, steps=6, batch_size=2, device="cpu")


@pytest.fixture(scope="module")
def phantom() -> toy.Phantom:
    return toy.cardiac_phantom(n_slices=3, size=48, seed=0)


def _priors(names=("background", "RV", "myocardium", "LV")) -> list[ClassPrior]:  # type: ignore[no-untyped-def]
    return [ClassPrior(n) for n in names]


@pytest.mark.parametrize(
    ("image", "scribbles", "priors", "config", "message"),
    [
        (None, np.zeros((2, 4, 4), np.uint8), _priors(), CFG, "no image is chosen"),
        (np.zeros((2, 4, 4)), None, _priors(), CFG, "no scribble layer is chosen"),
        (np.zeros((2, 4, 4)), np.zeros((2, 4, 5), np.uint8), _priors(), CFG, "has shape (2, 4, 5) but image"),
        (np.zeros((2, 4, 4)), np.zeros((2, 4, 4), np.uint8), _priors(), CFG, "no scribbles are painted"),
        (np.zeros((2, 4, 4)), np.full((2, 4, 4), 6, np.uint8), _priors(), CFG, "uses label 6 but only 4 classes"),
        (np.zeros((2, 4, 4)), np.ones((2, 4, 4), np.float32), _priors(), CFG, "must hold whole numbers"),
        (np.zeros((2, 2, 4, 4)), np.ones((2, 2, 4, 4), np.uint8), _priors(), CFG, "got 4 dimensions"),
        (
            np.zeros((2, 4, 4)),
            np.ones((2, 4, 4), np.uint8),
            [ClassPrior("background"), ClassPrior("LV", (1.0, 5.0))],
            CFG.with_(penalty="none", mode="partial"),
            "choose a penalty",
        ),
        (
            np.zeros((2, 4, 4)),
            np.ones((2, 4, 4), np.uint8),
            [ClassPrior("background"), ClassPrior("LV", None, ((10.0, 12.0), (1.0, 2.0)))],
            CFG,
            "lies outside the 4x4 image",
        ),
    ],
)
def test_check_inputs_says_what_is_wrong(image, scribbles, priors, config, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=None) as err:
        _session.check_inputs(image, scribbles, priors, config)
    assert message in str(err.value)


def test_a_2d_image_is_one_slice() -> None:
    img, scr = _session.check_inputs(np.zeros((4, 4)), np.array([[1, 2, 0, 0]] * 4, np.uint8), _priors()[:2], CFG)
    assert img.shape == scr.shape == (1, 4, 4)


def test_estimate_bounds_is_the_range_over_labelled_slices() -> None:
    labels = np.zeros((3, 10, 10), np.uint8)
    labels[0, 2:4, 2:4] = 1  # 4 px
    labels[1, 2:6, 2:6] = 1  # 16 px
    est = _session.estimate_bounds(labels, 3, margin=0.25)
    assert est.labelled_slices == 2  # slice 2 holds no foreground: not labelled
    assert est.sizes[1] == (3.0, 20.0)  # floor(4 * 0.75), ceil(16 * 1.25)
    assert est.sizes[2] is None and est.centroids[2] is None
    assert est.absent == ((0, 2), (1, 2))
    (r0, r1), (c0, c1) = est.centroids[1]
    assert r0 <= 2.5 <= r1 and c0 <= 3.5 <= c1


def test_preview_rows() -> None:
    np.testing.assert_array_equal(_session.preview_rows(5, 3), np.arange(5))
    rows = _session.preview_rows(40, 17)
    assert 17 in rows and rows[0] == 0 and rows[-1] == 39 and len(rows) <= 16


def test_worker_generator_bounds_version_stop_and_state(phantom, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    released = []
    monkeypatch.setattr(training, "release_memory", lambda: released.append(1))
    priors = [ClassPrior(n, (0.0, 2000.0)) for n in phantom.class_names]
    img, scr = _session.check_inputs(phantom.image, phantom.scribbles, priors, CFG)
    job = _session.build_job(img, scr, priors, CFG.with_(steps=1000), labels=phantom.labels, crop=True)
    assert job.config.preview_every == 0 and job.geometry.box != (0, 48, 0, 48)
    control = _session.RunControl(preview_interval=0.0, nice=0)
    gen = _session.run_training(job, None, control)
    first = next(gen)
    assert first.frame is not None and first.frame.shape == (3, 48, 48) and first.dice is not None
    assert first.frame[:, 0, 0].max() == 0  # outside the crop box: background
    new = [*priors[:3], ClassPrior("LV", (10.0, 20.0))]
    update = _session.network_bounds(job, new, [])
    second = gen.send(_session.BoundsMessage(update, 7))
    assert second.bounds_version == 7
    sr, sc = job.geometry.scale
    assert second.event.size_bounds[3, 1] == pytest.approx(20.0 * sr * sc, rel=1e-5)
    control.stop.set()
    with pytest.raises(StopIteration) as done:
        gen.send(None)
    state = done.value.value
    assert state.step == 2 and released
    assert state.geometry == job.geometry and state.priors == job.priors


def test_unexpected_errors_are_wrapped_for_the_worker(phantom, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def broken(*_a, **_k):  # type: ignore[no-untyped-def]
        raise RuntimeError("cuDNN said no")
        yield

    monkeypatch.setattr(training, "train", broken)
    img, scr = _session.check_inputs(phantom.image, phantom.scribbles, _priors(), CFG)
    job = _session.build_job(img, scr, _priors(), CFG)
    with pytest.raises(_session.WorkerCrash, match="RuntimeError: cuDNN said no") as err:
        next(_session.run_training(job, None, _session.RunControl(nice=0)))
    assert isinstance(err.value.__cause__, RuntimeError)


def test_stroke_boxes_fill_the_classes_without_a_typed_box_and_follow_live_edits(phantom) -> None:  # type: ignore[no-untyped-def]
    from napari_wss.data import stroke_boxes

    typed = ((5.0, 40.0), (5.0, 40.0))
    priors = [ClassPrior("background"), ClassPrior("RV"), ClassPrior("myocardium", None, typed), ClassPrior("LV")]
    img, scr = _session.check_inputs(phantom.image, phantom.scribbles, priors, CFG)
    absent = [(0, 3)]  # LV ticked absent on slice 0, where it is painted: the tick wins
    plain = _session.build_job(img, scr, priors, CFG, absent=absent)
    job = _session.build_job(img, scr, priors, CFG, absent=absent, stroke_boxes=0.05)
    want = stroke_boxes(scr, 4, min_half=0.05 * 48)  # no crop: the slice's side
    src = job.geometry.bounds_to_network(np.full((3, 4, 2), np.nan, np.float32), want)[1]
    painted = ~np.isnan(want[..., 0, 0])
    assert painted[:, 1].sum() == 2 and painted[:, 3].all()
    np.testing.assert_allclose(job.data.centroid_bounds[:, 1], src[:, 1])  # RV: its strokes' boxes
    np.testing.assert_allclose(job.data.centroid_bounds[1:, 3], src[1:, 3])
    assert np.isnan(job.data.centroid_bounds[0, 3]).all()  # absent there
    np.testing.assert_allclose(job.data.centroid_bounds[:, 2], plain.data.centroid_bounds[:, 2])  # typed box kept
    assert np.isnan(plain.data.centroid_bounds[:, 1]).all()  # off: no box for RV
    assert np.isnan(job.data.centroid_bounds[:, 0]).all()  # background strokes give none
    update = _session.network_bounds(job, priors, absent)  # a live edit keeps them
    np.testing.assert_allclose(update.centroid_bounds, job.data.centroid_bounds)
    with pytest.raises(InputError, match="stroke boxes' floor"):
        _session.build_job(img, scr, priors, CFG, stroke_boxes=0.7)


def test_absent_ticks_beyond_the_image_slices_are_not_its(phantom) -> None:  # type: ignore[no-untyped-def]
    """The class table keeps one set of ticks for every image: a tick on slice 6 of a 7-slice image
    does not stop a 3-slice one from training (found by the monkey test: an IndexError on Train),
    nor a live bounds edit; the ticks on its own slices still apply."""
    img, scr = _session.check_inputs(phantom.image, phantom.scribbles, _priors(), CFG)
    own = _session.build_job(img, scr, _priors(), CFG, absent=[(1, 3)])
    job = _session.build_job(img, scr, _priors(), CFG, absent=[(1, 3), (6, 2)])
    np.testing.assert_array_equal(job.data.size_bounds, own.data.size_bounds)
    assert job.data.size_bounds[1, 3, 1] == 0  # the tick on its own slice: LV absent there
    update = _session.network_bounds(job, _priors(), [(1, 3), (6, 2), (-1, 2)])
    np.testing.assert_array_equal(update.size_bounds, job.data.size_bounds)


def test_background_bounds_follow_the_crop_box() -> None:
    sizes = np.array([[[900.0, 950.0], [10.0, 20.0]], [[np.nan, np.nan], [0.0, 0.0]]], np.float32)
    out = _session.background_in_box(sizes, (40, 30), (5, 25, 10, 30))  # 20 x 20 box in a 40 x 30 slice
    np.testing.assert_allclose(out[0, 0], [100.0, 150.0])  # 900 - (1200 - 400)
    assert np.isnan(out[1, 0]).all() and (out[:, 1] == sizes[:, 1]).all()
    np.testing.assert_allclose(_session.background_in_box(sizes, (40, 30), (-10, 30, -5, 35))[0, 0], [1300, 1350])
    assert _session.background_in_box(sizes, (40, 30), None) is sizes


def test_previews_remove_islands_as_predict_volume_does(phantom) -> None:  # type: ignore[no-untyped-def]
    from scipy import ndimage

    img, scr = _session.check_inputs(phantom.image, phantom.scribbles, _priors(), CFG)
    with pytest.raises(InputError, match="islands must be one of"):
        _session.build_job(img, scr, _priors(), CFG, islands="3d")
    frames = {}
    for islands in (None, "volume"):
        job = _session.build_job(img, scr, _priors(), CFG.with_(steps=1), islands=islands)
        control = _session.RunControl(preview_interval=0.0, nice=0)
        frames[islands] = next(_session.run_training(job, None, control)).frame
    raw, kept = frames[None], frames["volume"]
    assert raw.shape == kept.shape == img.shape  # every slice previewed: the 3D cut applies
    full = ndimage.generate_binary_structure(3, 3)
    for c in range(1, 4):
        assert np.all((kept == c) <= (raw == c))  # only removes
        comps, n = ndimage.label(kept == c, structure=full)
        marked = set(np.unique(comps[scr == c + 1])) - {0}
        assert n <= 1 or marked == set(range(1, n + 1))  # one object, or only objects the strokes touch
    assert (raw != kept).any()  # an untrained network paints islands: the test sees the cut at work


def test_previews_make_the_lv_cavity_convex_as_predict_volume_does(phantom, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from napari_wss import postprocess
    from napari_wss.postprocess import (
        fill_lv_hull,
        limit_myocardium_brightness,
        limit_wall_thickness,
        limit_wall_to_septum,
    )

    img, scr = _session.check_inputs(phantom.image, phantom.scribbles, _priors(), CFG)
    with pytest.raises(InputError, match="need classes named LV and myocardium"):
        _session.build_job(img, scr, _priors(("bg", "a", "b", "c")), CFG, lv_hull=True)
    frames = {}
    for hull in (False, True):
        job = _session.build_job(img, scr, _priors(), CFG.with_(steps=1), islands="volume", lv_hull=hull)
        control = _session.RunControl(preview_interval=0.0, nice=0)
        frames[hull] = next(_session.run_training(job, None, control)).frame
    names = [p.name for p in _priors()]
    np.testing.assert_array_equal(frames[True], fill_lv_hull(frames[False], names))
    job = _session.build_job(
        img, scr, _priors(), CFG.with_(steps=1), islands="volume", lv_hull=True, max_wall=(2.0, (1.5, 1.5))
    )
    control = _session.RunControl(preview_interval=0.0, nice=0)
    capped = next(_session.run_training(job, None, control)).frame
    np.testing.assert_array_equal(capped, limit_wall_thickness(frames[True], names, 2.0, (1.5, 1.5)))
    assert (capped != frames[True]).any()  # the untrained wall is thicker than 2 mm: the limit is at work
    # the wall within a multiple of the septum the preview shows, after the convex cavity. Whether a
    # one-step network shows a septum at all depends on the CPU's arithmetic (bf16 or fp32), so the
    # rule's call is watched rather than its effect on this frame (postprocess's tests cut real walls)
    calls = []

    def watched(labels, class_names, spacing_yx=(1.0, 1.0), factor=postprocess.SEPTUM_FACTOR):  # type: ignore[no-untyped-def]
        calls.append((np.array(labels, copy=True), tuple(spacing_yx), factor))
        return limit_wall_to_septum(labels, class_names, spacing_yx, factor)

    monkeypatch.setattr(postprocess, "limit_wall_to_septum", watched)
    job = _session.build_job(
        img, scr, _priors(), CFG.with_(steps=1), islands="volume", lv_hull=True, septum=(0.5, (1.5, 1.5))
    )
    thin = next(_session.run_training(job, None, _session.RunControl(preview_interval=0.0, nice=0))).frame
    np.testing.assert_array_equal(thin, limit_wall_to_septum(frames[True], names, (1.5, 1.5), 0.5))
    assert [(spacing, factor) for _, spacing, factor in calls] == [((1.5, 1.5), 0.5)]
    np.testing.assert_array_equal(calls[0][0], frames[True])  # applied to the convex-cavity frame
    monkeypatch.undo()
    with pytest.raises(InputError, match="needs classes named RV, myocardium and LV"):
        _session.build_job(img, scr, _priors(("bg", "a", "b", "LV")), CFG, septum=(1.5, (1.0, 1.0)))
    # the myocardium no brighter than a ceiling, before the convex cavity, as Predict volume does
    ceiling = float(np.median(img))
    job = _session.build_job(
        img, scr, _priors(), CFG.with_(steps=1), islands="volume", lv_hull=True, myo_ceiling=ceiling
    )
    dark = next(_session.run_training(job, None, _session.RunControl(preview_interval=0.0, nice=0))).frame
    raw = _session.build_job(img, scr, _priors(), CFG.with_(steps=1), islands="volume")
    plain = next(_session.run_training(raw, None, _session.RunControl(preview_interval=0.0, nice=0))).frame
    want = fill_lv_hull(limit_myocardium_brightness(plain, img, ceiling, names), names)
    np.testing.assert_array_equal(dark, want)
    assert (dark != frames[True]).any()  # the ceiling is at work


def test_previews_clear_the_absent_classes_as_predict_volume_does(phantom) -> None:  # type: ignore[no-untyped-def]
    from napari_wss.data import absent_classes
    from napari_wss.postprocess import clear_absent, keep_largest_component

    img, scr = _session.check_inputs(phantom.image, phantom.scribbles, _priors(), CFG)
    ticks = ((0, 3),)  # LV ticked absent on slice 0, where it is painted
    frames = {}
    for islands in (None, "volume"):
        job = _session.build_job(img, scr, _priors(), CFG.with_(steps=3), islands=islands, absent=ticks)
        control = _session.RunControl(preview_interval=0.0, nice=0)
        gen = _session.run_training(job, None, control)
        first = next(gen).frame
        # an Absent tick added while it trains reaches the next preview
        update = _session.network_bounds(job, _priors(), ((0, 3), (1, 2)))
        frames[islands] = first, gen.send(_session.BoundsMessage(update, 1)).frame
        gen.close()
    raw, kept = frames[None][0], frames["volume"][0]
    assert (raw[0] == 3).any() and (raw[1] == 2).any()  # the untrained network paints them there
    flags = absent_classes(3, 4, scribbles=scr, absent=list(ticks))
    np.testing.assert_array_equal(kept, keep_largest_component(clear_absent(raw, flags), 4, scribbles=scr))
    assert not (kept[0] == 3).any() and (kept[1] == 2).any()
    later = frames["volume"][1]
    assert not (later[0] == 3).any() and not (later[1] == 2).any()
    assert (frames[None][1][1] == 2).any()  # without islands removed the previews stay raw


def test_other_painted_images_train_after_the_picked_one_with_their_own_bounds(phantom) -> None:  # type: ignore[no-untyped-def]
    """``others``: their slices follow the picked image's (volume index 1, 2, …), cropped around
    their own strokes, with sizes from their own priors; edited bounds reach the picked image's rows
    and leave the others' as built; previews calibrate on the picked image alone."""
    other = toy.cardiac_phantom(n_slices=4, size=40, seed=3)
    img, scr = _session.check_inputs(phantom.image, phantom.scribbles, _priors(), CFG)
    lv = [ClassPrior(p.name, (10.0, 200.0) if p.name == "LV" else None) for p in _priors()]
    lv_other = [ClassPrior(p.name, (20.0, 400.0) if p.name == "LV" else None) for p in _priors()]  # smaller pixels
    o_img, o_scr = _session.check_inputs(other.image, other.scribbles, lv_other, CFG)
    more = _session.OtherImage("other", o_img, o_scr, tuple(lv_other))
    alone = _session.build_job(img, scr, lv, CFG, labels=phantom.labels, crop=True)
    job = _session.build_job(img, scr, lv, CFG, labels=phantom.labels, crop=True, others=[more])
    assert job.others == ("other",) and job.n_slices == 3 and len(job.data) == 3 + 4
    assert job.config.steps == 2 * alone.config.steps  # a press trains each image as long as one alone
    np.testing.assert_array_equal(job.data.volume, [0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(job.data.images[:3], alone.data.images)
    np.testing.assert_array_equal(job.data.size_bounds[:3], alone.data.size_bounds)
    mine = _session.build_job(o_img, o_scr, lv_other, CFG, crop=True)  # the other image trained alone
    np.testing.assert_array_equal(job.data.images[3:], mine.data.images)
    np.testing.assert_array_equal(job.data.scribbles[3:], mine.data.scribbles)
    np.testing.assert_array_equal(job.data.size_bounds[3:], mine.data.size_bounds)
    assert job.data.labels is None and job.labels is not None  # Dice still has the picked image's truth

    edited = [ClassPrior(p.name, (0.0, 50.0) if p.name == "LV" else None) for p in _priors()]
    update = _session.network_bounds(job, edited, [(0, 1)])
    assert update.size_bounds.shape[0] == 7
    np.testing.assert_array_equal(update.size_bounds[:3], _session.network_bounds(alone, edited, [(0, 1)]).size_bounds)
    np.testing.assert_array_equal(update.size_bounds[3:], mine.data.size_bounds)
    np.testing.assert_array_equal(update.centroid_bounds[3:], mine.data.centroid_bounds)

    with pytest.raises(InputError, match="other classes"):
        _session.build_job(img, scr, lv, CFG, others=[_session.OtherImage("x", o_img, o_scr, tuple(_priors()[:3]))])

    seen = []
    real = training.predict_slices

    def spy(model, images, **kw):  # type: ignore[no-untyped-def]
        seen.append(kw.get("calibrate_on"))
        return real(model, images, **kw)

    state = training.TrainState.create(job.config, job.class_names)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(training, "predict_slices", spy)
        for _ in _session.run_training(job, state, _session.RunControl(preview_interval=0.0)):
            pass
    assert seen and all(np.array_equal(c, job.data.images[:3]) for c in seen)


def test_inferred_absence_is_named_per_class_and_painted_slice() -> None:
    names = ["background", "RV", "myocardium", "LV"]
    scribbles = np.zeros((4, 8, 8), np.uint8)
    scribbles[0, 0, :4] = [1, 2, 3, 4]  # every class painted
    scribbles[1, 0, 0] = 4  # one LV stroke on a fresh slice (a correction): RV and myocardium absent there
    scribbles[3, 0, :2] = [1, 3]  # slice 2 unpainted: nothing is assumed there
    text = _session.describe_inferred_absence(scribbles, names)
    assert text.startswith("Taken as absent where a painted slice has no stroke of it: ")
    assert text.endswith(": RV on slices 1, 3; myocardium on slice 1; LV on slice 3.")
    scribbles[1:] = scribbles[0]
    assert _session.describe_inferred_absence(scribbles, names) == ""
    only_lv = np.zeros((9, 4, 4), np.uint8)
    only_lv[:, 0, 0] = 4
    assert "RV on slices 0, 1, 2, 3, 4, 5 and 3 more" in _session.describe_inferred_absence(only_lv, names)
