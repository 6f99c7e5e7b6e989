"""The training generator end to end on small CPU problems, checkpoints and failure handling."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from napari_wss.config import TrainConfig
from napari_wss.data import (
    Batch,
    DeviceSlices,
    SliceDataset,
    SliceGeometry,
    bounds_from_labels,
    crop_around,
    prepare_volume,
    rule_out_brighter,
)
from napari_wss.errors import InputError
from napari_wss.losses import SizeConstraint, absence_loss
from napari_wss.metrics import dice_per_class
from napari_wss.models import ResidualUNet
from napari_wss.postprocess import clear_absent, keep_largest_component
from napari_wss.toy import cardiac_phantom, make_toy2
from napari_wss.training import (
    BoundsUpdate,
    Objective,
    TrainingError,
    TrainState,
    _calibration_images,
    calibrate_batchnorm,
    load_checkpoint,
    predict_slices,
    predict_volume,
    prediction_geometry,
    save_checkpoint,
    train,
)

SMALL = {"width": 8, "depth": 3, "size": 32, "batch_size": 4, "preview_every": 0}


def _run(gen):  # type: ignore[no-untyped-def]
    """Drain a training generator and return its final state."""
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


def _toy2(n: int = 16, size: int = 64) -> tuple[SliceDataset, np.ndarray, np.ndarray]:
    toy = make_toy2(n, seed=0, size=size)
    area = np.pi * toy.radius**2
    sizes = np.full((n, 2, 2), np.nan, dtype=np.float32)
    sizes[:, 1] = [0.9 * area, 1.1 * area]
    sizes[:, 0] = [size * size - 1.1 * area, size * size - 0.9 * area]
    cents = np.full((n, 2, 2, 2), np.nan, dtype=np.float32)
    for i, (r, c) in enumerate(toy.centers):
        cents[i, 1] = [[r - 2, r + 2], [c - 2, c + 2]]
    ds, _ = prepare_volume(
        toy.images.astype(np.float32),
        num_classes=2,
        size=size,
        scribbles=toy.scribbles,
        labels=toy.labels,
        size_bounds=sizes,
        centroid_bounds=cents,
    )
    return ds, toy.labels > 0, toy.images == 255


@pytest.mark.slow
def test_priors_alone_separate_target_from_distractor_partial_does_not() -> None:
    """The seed's TOY2 experiment in small: no pixel labels, only size and centroid priors.

    The priors bound sums of probabilities only, so where the target class's probability goes is
    what they decide: onto the target disc, off the distractor. How crisp it gets is not: here the
    target's probability ends near 0.5 (AMD EPYC, seeds 0-2: 0.48-0.50, an empty arg-max; the
    Intel machine with AMX: above 0.5), so the arg-max is not asserted (README, TOY2)."""
    ds, target, distractor = _toy2()
    rest = ~target & ~distractor
    results = {}
    for mode, penalty, steps in (("priors", "log-barrier", 250), ("partial", "none", 100)):
        cfg = TrainConfig(mode=mode, penalty=penalty, steps=steps, lr=1e-2, width=8, depth=3, size=64)
        # The paper's schedule: t grows after every pass over the data (two steps here), so it
        # gets large fast; with t growing only every 20 steps the soft sizes stay blurred.
        cfg = cfg.with_(size_weight=1e-2, centroid_weight=1e-2, steps_per_epoch=2)
        cfg = cfg.with_(batch_size=8, preview_every=0)
        state = _run(train(ds, cfg, class_names=("background", "target")))
        p = predict_slices(state.model, ds.images)[:, 1].numpy()
        pred = p > 0.5
        dice = 2 * (pred & target).sum() / (pred.sum() + target.sum())
        results[mode] = {"target": p[target].mean(), "distractor": p[distractor].mean(), "rest": p[rest].mean()}
        results[mode].update(dice=dice, distractor_px=pred[distractor].mean())
    priors, partial = results["priors"], results["partial"]
    assert priors["target"] > 0.3 and priors["target"] > 10 * priors["rest"], results
    assert priors["distractor"] < 0.02 and priors["distractor_px"] == 0, results
    assert partial["distractor"] > 0.5 and partial["distractor_px"] > 0.5, results  # the point label grows over it
    assert partial["dice"] < 0.3, results


def _phantom_data(size: int = 32) -> tuple[SliceDataset, object]:
    ph = cardiac_phantom(n_slices=4, size=64, seed=1)
    sizes, cents = bounds_from_labels(ph.labels, 4, margin=0.2)
    return prepare_volume(
        ph.image,
        num_classes=4,
        size=size,
        scribbles=ph.scribbles,
        labels=ph.labels,
        size_bounds=sizes,
        centroid_bounds=cents,
    ), ph


@pytest.mark.parametrize(
    ("mode", "penalty"),
    [("full", "none"), ("partial", "none"), ("constrained", "quadratic"), ("constrained", "log-barrier")],
)
def test_every_mode_yields_events(mode: str, penalty: str) -> None:
    (ds, _), _ = _phantom_data()
    cfg = TrainConfig(mode=mode, penalty=penalty, steps=3, **{**SMALL, "preview_every": 3})
    events = list(train(ds, cfg, class_names=("bg", "RV", "Myo", "LV")))
    assert [e.step for e in events] == [1, 2, 3]
    assert all(np.isfinite(e.loss) for e in events)
    last = events[-1]
    assert last.preview is not None and last.preview.shape == (4, 32, 32) and last.dice is not None
    assert last.sizes.shape == (4,) and last.centroids.shape == (4, 2)
    if mode == "constrained":
        assert {"ce", "size", "centroid"} <= set(last.parts)
    else:
        assert set(last.parts) == {"ce"}


def test_t_grows_each_epoch() -> None:
    (ds, _), _ = _phantom_data()
    cfg = TrainConfig(steps=4, steps_per_epoch=2, t0=2.0, t_growth=1.5, **SMALL)
    ts = [e.t for e in train(ds, cfg, class_names=("bg", "RV", "Myo", "LV"))]
    assert ts == pytest.approx([2.0, 2.0, 3.0, 3.0])


def test_bounds_sent_in_apply_from_next_step() -> None:
    (ds, _), _ = _phantom_data()
    cfg = TrainConfig(steps=3, augment=False, **SMALL)
    gen = train(ds, cfg, class_names=("bg", "RV", "Myo", "LV"))
    first = next(gen)
    sizes = ds.size_bounds.copy()
    sizes[:, 3] = [11.0, 22.0]
    second = gen.send(BoundsUpdate(sizes, ds.centroid_bounds.copy()))
    assert not np.allclose(first.size_bounds[3], [11.0, 22.0])
    assert second.size_bounds[3] == pytest.approx([11.0, 22.0])
    gen.close()


def test_checkpoint_round_trip_and_continue(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (ds, geom), ph = _phantom_data()
    cfg = TrainConfig(steps=2, **SMALL)
    state = _run(train(ds, cfg, class_names=("bg", "RV", "Myo", "LV"), checkpoint=tmp_path / "m.pt"))
    state.geometry = geom
    save_checkpoint(state, tmp_path / "m.pt")
    loaded = load_checkpoint(tmp_path / "m.pt", num_classes=4)
    assert loaded.class_names == ("bg", "RV", "Myo", "LV") and loaded.step == 2 and loaded.config == cfg
    a = predict_volume(state, ph.image)
    b = predict_volume(loaded, ph.image)
    assert a.shape == ph.image.shape and np.array_equal(a, b)
    more = _run(train(ds, cfg, state=loaded))
    assert more.step == 4
    with pytest.raises(InputError, match="segments 4 classes"):
        load_checkpoint(tmp_path / "m.pt", num_classes=3)
    (tmp_path / "bad.pt").write_bytes(b"not a model")
    with pytest.raises(InputError, match="not a napari-wss model file or is damaged"):
        load_checkpoint(tmp_path / "bad.pt")
    assert list(tmp_path.glob(".*.tmp")) == []  # no temporary files left behind


def test_predict_volume_with_crop_maps_back() -> None:
    ph = cardiac_phantom(n_slices=3, size=64, seed=2)
    box = crop_around(ph.scribbles)
    assert box is not None
    (ds, geom) = prepare_volume(ph.image, num_classes=4, size=32, scribbles=ph.scribbles, box=box)
    state = _run(train(ds, TrainConfig(mode="partial", penalty="none", steps=1, **SMALL)))
    labels = predict_volume(state, ph.image, geometry=geom)
    assert labels.shape == ph.image.shape and labels.dtype == np.uint8
    r0, r1, c0, c1 = box
    outside = np.ones(labels.shape[1:], dtype=bool)
    outside[max(r0, 0) : r1, max(c0, 0) : c1] = False
    assert labels[:, outside].max() == 0


def test_prediction_geometry_follows_the_strokes_of_a_crop_trained_model() -> None:
    ph = cardiac_phantom(n_slices=2, size=64, seed=2)
    state = TrainState.create(TrainConfig(**SMALL), ("bg", "RV", "Myo", "LV"))
    assert prediction_geometry(state, (64, 64), ph.scribbles) == (None, None)  # never trained: whole slices
    state.geometry = SliceGeometry.full((64, 64), 32)
    assert prediction_geometry(state, (80, 96), ph.scribbles[:, :40]) == (None, None)  # whole slices everywhere
    box = crop_around(ph.scribbles)
    assert box is not None
    state.geometry = SliceGeometry((64, 64), box, 32)
    for strokes in (ph.scribbles, ph.scribbles[:, ::-1], None):  # the trained grid: the model's box
        assert prediction_geometry(state, (64, 64), strokes) == (None, None)
    moved = np.zeros((2, 80, 96), dtype=np.uint8)
    moved[:, 10:74, 30:94] = ph.scribbles
    geometry, caution = prediction_geometry(state, (80, 96), moved)
    assert caution is None and geometry == SliceGeometry((80, 96), crop_around(moved), 32)
    assert geometry.box == (box[0] + 10, box[1] + 10, box[2] + 30, box[3] + 30)
    flat, _ = prediction_geometry(state, (80, 96), moved[1])  # one 2D image's strokes
    assert flat == SliceGeometry((80, 96), crop_around(moved[1:]), 32)
    background_only = np.where(moved == 1, 1, 0).astype(np.uint8)
    for strokes in (None, background_only):  # nothing to place the crop on another grid
        geometry, caution = prediction_geometry(state, (80, 96), strokes)
        assert geometry is None and "64×64" in caution and "80×96" in caution and "paint a few strokes" in caution


def test_a_crop_trained_model_finds_another_heart_by_its_strokes() -> None:
    """Trained on a crop of one phantom heart, the model segments another heart placed elsewhere on
    a larger grid when cut around that heart's strokes; seen as a whole slice it does far worse."""
    ph = cardiac_phantom(n_slices=4, size=64, seed=2)
    box = crop_around(ph.scribbles)
    ds, geom = prepare_volume(ph.image, num_classes=4, size=32, scribbles=ph.scribbles, box=box)
    state = _run(train(ds, TrainConfig(mode="partial", penalty="none", steps=120, lr=3e-3, **SMALL)))
    state.geometry = geom
    other = cardiac_phantom(n_slices=4, size=64, seed=5)

    def placed_off_centre(a: np.ndarray) -> np.ndarray:
        big = np.zeros((4, 112, 96), dtype=a.dtype)
        big[:, 40:104, 28:92] = a
        return big

    image, strokes, truth = map(placed_off_centre, (other.image, other.scribbles, other.labels))
    geometry, _ = prediction_geometry(state, image.shape[1:], strokes)
    placed = predict_volume(state, image, geometry=geometry)
    blind = predict_volume(state, image)  # another grid, no geometry: the whole slice
    placed_dice = dice_per_class(placed, truth, 4)[1:].mean()
    blind_dice = dice_per_class(blind, truth, 4)[1:].mean()
    assert placed_dice > 0.6 and placed_dice > blind_dice + 0.3, (placed_dice, blind_dice)


def test_diverging_loss_stops_with_advice() -> None:
    (ds, _), _ = _phantom_data()
    cfg = TrainConfig(steps=3, **SMALL)
    state = TrainState.create(cfg, ("bg", "RV", "Myo", "LV"))
    with torch.no_grad():
        for p in state.model.parameters():
            p.fill_(float("nan"))
    with pytest.raises(TrainingError, match=r"diverged at step 1.*learning rate"):
        _run(train(ds, cfg, state=state))


def test_out_of_memory_becomes_advice(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    (ds, _), _ = _phantom_data()

    def boom(self, *a, **k):  # type: ignore[no-untyped-def]
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")

    monkeypatch.setattr(Objective, "__call__", boom)
    with pytest.raises(TrainingError, match=r"ran out of memory at batch 4.*lower the batch size"):
        _run(train(ds, TrainConfig(steps=2, **SMALL), class_names=("bg", "RV", "Myo", "LV")))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: setattr(d, "scribbles", np.zeros_like(d.scribbles)), "no scribbles are painted"),
        (
            lambda d: (
                setattr(d, "scribbles", np.where(d.scribbles == 2, 0, d.scribbles).astype(np.uint8)),
                setattr(d, "size_bounds", np.full_like(d.size_bounds, np.nan)),
                setattr(d, "centroid_bounds", np.full_like(d.centroid_bounds, np.nan)),
            ),
            "'RV' has neither scribbles nor bounds",
        ),
    ],
)
def test_missing_supervision_is_refused(mutate, message) -> None:  # type: ignore[no-untyped-def]
    (ds, _), _ = _phantom_data()
    mutate(ds)
    with pytest.raises(InputError, match=message):
        next(train(ds, TrainConfig(steps=1, **SMALL), class_names=("bg", "RV", "Myo", "LV")))


def test_stopping_early_leaves_a_usable_state() -> None:
    (ds, _), ph = _phantom_data()
    state = TrainState.create(TrainConfig(steps=50, **SMALL), ("bg", "RV", "Myo", "LV"))
    gen = train(ds, state.config, state=state)
    for _ in itertools.islice(gen, 2):
        pass
    gen.close()
    assert state.step == 2 and next(state.model.parameters()).device.type == "cpu"
    assert predict_volume(state, ph.image).shape == ph.image.shape


def test_unet_pads_odd_sizes_and_rejects_tiny_inputs() -> None:
    net = ResidualUNet(1, 3, width=4, depth=3)
    assert net(torch.zeros(1, 1, 27, 19)).shape == (1, 3, 27, 19)
    with pytest.raises(InputError, match="smaller than this network's minimum of 8x8"):
        net(torch.zeros(1, 1, 6, 30))


def _bn_input_stats(model: torch.nn.Module, images: np.ndarray) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Mean and unbiased variance of every batch-norm layer's input in a training-mode pass."""
    stats: dict[torch.nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}

    def hook(m: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0].float()
        stats[m] = (x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=True))

    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    handles = [m.register_forward_pre_hook(hook) for m in norms]
    saved = [(m.running_mean.clone(), m.running_var.clone()) for m in norms]
    was = model.training
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(images).unsqueeze(1))
    model.train(was)
    for h in handles:
        h.remove()
    for m, (mean, var) in zip(norms, saved):  # the pass above moved them; put them back
        m.running_mean.copy_(mean)
        m.running_var.copy_(var)
    return [stats[m] for m in norms]


def _running_stats(model: torch.nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(m.running_mean, m.running_var) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]


def test_calibrated_batchnorm_predicts_with_the_data_statistics() -> None:
    (ds, _), _ = _phantom_data()
    model = ResidualUNet(1, 4, width=8, depth=3).eval()
    with torch.no_grad():  # weights changed since the running averages were taken
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    images = ds.images[:4]
    wanted = _bn_input_stats(model, images)
    assert not all(torch.allclose(m, w, atol=1e-3) for (m, _), (w, _) in zip(_running_stats(model), wanted))
    momenta = [m.momentum for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    calibrate_batchnorm(model, images, amp=False)
    for (mean, var), (want_mean, want_var) in zip(_running_stats(model), wanted):
        torch.testing.assert_close(mean, want_mean, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(var, want_var, rtol=1e-4, atol=1e-5)
    assert not model.training
    assert [m.momentum for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)] == momenta
    grad_on = []
    model.register_forward_hook(lambda *_: grad_on.append(torch.is_grad_enabled()))
    calibrate_batchnorm(model, images, amp=False)
    assert grad_on == [False]  # statistics only: no autograd graph kept for the passes


def test_calibration_leaves_the_second_decoders_statistics_as_they_were() -> None:
    """The plain forward pass does not reach the mixed pseudo-labels' second decoder: its batch
    norms keep their running statistics (a reset would leave them at mean 0, variance 1)."""
    (ds, _), _ = _phantom_data()
    model = ResidualUNet(1, 4, width=8, depth=3, aux_decoder=True).train()
    model(torch.as_tensor(ds.images[:4]).unsqueeze(1), aux=True)  # running statistics of both decoders move off 0 / 1
    aux = [m for m in model.aux.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    main = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) and all(m is not a for a in aux)]
    aux_before = [(m.running_mean.clone(), m.running_var.clone()) for m in aux]
    main_before = [m.running_mean.clone() for m in main]
    calibrate_batchnorm(model, ds.images[:4], amp=False)
    for m, (mean, var) in zip(aux, aux_before):
        torch.testing.assert_close(m.running_mean, mean)
        torch.testing.assert_close(m.running_var, var)
    assert all(not torch.equal(m.running_mean, before) for m, before in zip(main, main_before))


def test_training_hands_back_calibrated_statistics_when_finished_or_stopped() -> None:
    (ds, _), _ = _phantom_data()
    cfg = TrainConfig(steps=6, lr=3e-2, amp=False, **SMALL)
    finished = _run(train(ds, cfg, class_names=("bg", "RV", "Myo", "LV")))
    state = TrainState.create(cfg, ("bg", "RV", "Myo", "LV"))
    gen = train(ds, cfg, state=state)
    for _ in itertools.islice(gen, 3):
        pass
    gen.close()
    for st in (finished, state):
        for (mean, var), (want_mean, want_var) in zip(_running_stats(st.model), _bn_input_stats(st.model, ds.images)):
            torch.testing.assert_close(mean, want_mean, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(var, want_var, rtol=1e-4, atol=1e-5)


def test_window_training_predicts_whole_slices_with_the_windows_statistics() -> None:
    # Trained on 32-px windows of 64-px slices: previews are whole slices, and batch norm is
    # calibrated on windows cut as training cuts them (a fixed draw), not on the whole slices.
    (ds, _), _ = _phantom_data(size=64)
    cfg = TrainConfig(steps=4, lr=3e-2, amp=False, **{**SMALL, "size": 64, "patch": 32, "preview_every": 4})
    events = []
    gen = train(ds, cfg, class_names=("bg", "RV", "Myo", "LV"))
    try:
        while True:
            events.append(next(gen))
    except StopIteration as stop:
        state = stop.value
    assert events[-1].preview is not None and events[-1].preview.shape[1:] == (64, 64)
    slices = DeviceSlices(ds, torch.device("cpu"))
    windows = _calibration_images(slices, cfg).numpy()
    assert windows.shape == (len(ds), 32, 32)
    assert np.array_equal(windows, _calibration_images(slices, cfg).numpy())  # the same draw each time
    for (mean, var), (want_mean, want_var) in zip(_running_stats(state.model), _bn_input_stats(state.model, windows)):
        torch.testing.assert_close(mean, want_mean, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(var, want_var, rtol=1e-4, atol=1e-5)
    whole = _bn_input_stats(state.model, ds.images)
    assert not torch.allclose(_running_stats(state.model)[0][0], whole[0][0], atol=1e-3)


def test_penalty_warmup_scales_the_prior_terms_not_the_cross_entropy() -> None:
    (ds, _), _ = _phantom_data()
    base = TrainConfig(steps=1, augment=False, amp=False, **SMALL)
    plain = next(train(ds, base, class_names=("bg", "RV", "Myo", "LV")))
    warm = next(train(ds, base.with_(penalty_warmup=4), class_names=("bg", "RV", "Myo", "LV")))
    # Same seed, same first batch and weights: only the prior terms differ, by the ramp 1/4.
    assert warm.parts["ce"] == pytest.approx(plain.parts["ce"], rel=1e-5)
    assert plain.parts["size"] > 0
    assert warm.parts["size"] == pytest.approx(plain.parts["size"] / 4, rel=1e-4)
    assert warm.parts["centroid"] == pytest.approx(plain.parts["centroid"] / 4, rel=1e-4)
    with pytest.raises(InputError, match="penalty_warmup"):
        TrainConfig(penalty_warmup=-1)


def test_absent_classes_leave_the_size_penalty_for_the_absence_term() -> None:
    (ds, _), _ = _phantom_data()
    cfg = TrainConfig(mode="constrained", penalty="quadratic", size_weight=0.5, absence_weight=2.0, **SMALL)
    n = ds.images.shape[0]
    sizes = torch.as_tensor(ds.size_bounds).clone()
    sizes[0, 1] = 0.0  # RV absent on slice 0, ...
    sizes[1, 1:] = 0.0  # ... every structure on slice 1
    batch = Batch(
        torch.as_tensor(ds.images).unsqueeze(1),
        torch.as_tensor(ds.scribbles),
        None,
        sizes,
        torch.as_tensor(ds.centroid_bounds),
        torch.arange(n),
    )
    logits = torch.randn(n, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    _, parts, probs = Objective(cfg)(logits, batch, 1.0)
    absent = sizes[..., 1] == 0
    assert parts["absence"].item() == pytest.approx(2.0 * absence_loss(probs, absent).mean().item(), rel=1e-6)
    without = sizes.clone()
    without[absent] = float("nan")
    assert parts["size"].item() == pytest.approx(SizeConstraint("quadratic", 0.5)(probs, without).item(), rel=1e-6)
    # weight 0: the rule before, absence is a size bound of 0 in the penalty
    _, old, _ = Objective(cfg.with_(absence_weight=0.0))(logits, batch, 1.0)
    assert "absence" not in old
    assert old["size"].item() == pytest.approx(SizeConstraint("quadratic", 0.5)(probs, sizes).item(), rel=1e-6)
    assert old["size"].item() > parts["size"].item()
    with pytest.raises(InputError, match="absence_weight"):
        TrainConfig(absence_weight=-1.0)


def test_the_dark_myocardium_term_keeps_the_wall_off_bright_pixels() -> None:
    """The phantom's wall is darker than its cavities; ruling the myocardium out of every pixel
    brighter than its strokes must leave far less myocardium there than scribbles alone do, keep
    the wall, and so segment the wall better (seed 0, bf16 on an AVX512-BF16 CPU: bright 0.23 -> 0.09,
    wall 0.92 -> 0.90, Dice 0.40 -> 0.51; fp32 on an AVX2-only one: 0.25 -> 0.09, 0.93 -> 0.89,
    0.41 -> 0.45)."""
    (ds, _), _ = _phantom_data()
    ruled = rule_out_brighter(ds, 2, 99.0)
    marked = ruled.ruled_out == 3
    assert marked.mean() > 0.05 and (ds.labels[marked] == 2).mean() < 0.1  # bright pixels, rarely the wall
    cfg = TrainConfig(mode="partial", penalty="none", steps=40, lr=5e-3, **SMALL)
    wall = (ds.labels == 2) & ~marked
    found = {}
    for weight in (0.0, 0.3):
        state = _run(train(ruled, cfg.with_(ruled_out_weight=weight), class_names=("bg", "RV", "Myo", "LV")))
        probs = predict_slices(state.model, ds.images)
        myo, pred = probs[:, 2].numpy(), probs.argmax(1).numpy() == 2
        dice = 2 * (pred & (ds.labels == 2)).sum() / (pred.sum() + (ds.labels == 2).sum())
        found[weight] = (myo[marked].mean(), myo[wall].mean(), dice)
    (bright0, wall0, dice0), (bright1, wall1, dice1) = found[0.0], found[0.3]
    assert bright1 < 0.5 * bright0 and wall1 > 0.9 * wall0 and dice1 > dice0 + 0.02, found
    with pytest.raises(InputError, match="ruled-out map"):
        next(train(ds, cfg.with_(ruled_out_weight=1.0), class_names=("bg", "RV", "Myo", "LV")))


def test_predict_volume_keeps_the_lv_its_myocardium_rings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without LV strokes, Predict volume's island removal keeps the LV object the myocardium
    rings, not a larger pool painted LV beside it (an RV taken for the LV), for a model whose
    classes are named so; a model of other names keeps the largest, as before."""
    import napari_wss.training as training

    lab = np.zeros((2, 32, 32), dtype=np.uint8)
    lab[:, 4:14, 4:14] = 2
    lab[:, 6:12, 6:12] = 3  # the ringed cavity, 36 px a slice
    lab[:, 4:14, 16:26] = 3  # a pool of 100 px a slice, clear of the ring
    lab[:, 8:10, 14:16] = 2  # the ring touches it there
    onehot = torch.nn.functional.one_hot(torch.as_tensor(lab).long(), 4).permute(0, 3, 1, 2).float()
    fake = lambda model, images, **kw: onehot[: len(images)]  # noqa: E731  # the network's answer, fixed
    image = np.random.default_rng(0).random((2, 32, 32)).astype(np.float32)
    ph = cardiac_phantom(n_slices=2, size=32, seed=0)
    (ds, _) = prepare_volume(ph.image, num_classes=4, size=32, scribbles=ph.scribbles)
    cfg = TrainConfig(mode="partial", penalty="none", steps=1, **SMALL)
    heart = _run(train(ds, cfg, class_names=("background", "RV", "myocardium", "LV")))
    other = _run(train(ds, cfg))
    monkeypatch.setattr(training, "predict_slices", fake)
    cavity, pool = (lab == 3) & (np.arange(32) < 14), (lab == 3) & (np.arange(32) >= 16)
    kept = predict_volume(heart, image, largest_component="volume")
    assert (kept[cavity] == 3).all() and (kept[pool] == 0).all()
    plain = predict_volume(other, image, largest_component="volume")
    assert (plain[pool] == 3).all() and (plain[cavity] == 0).all()


def test_predict_volume_largest_component_post_processes_the_labels_only() -> None:
    ph = cardiac_phantom(n_slices=3, size=64, seed=2)
    (ds, _) = prepare_volume(ph.image, num_classes=4, size=32, scribbles=ph.scribbles)
    state = _run(train(ds, TrainConfig(mode="partial", penalty="none", steps=2, **SMALL)))
    raw, probs = predict_volume(state, ph.image, return_probs=True)
    kept, probs_kept = predict_volume(state, ph.image, return_probs=True, largest_component="volume")
    np.testing.assert_array_equal(probs, probs_kept)
    np.testing.assert_array_equal(kept, keep_largest_component(raw, 4))
    per_image = predict_volume(state, ph.image, largest_component="slice")
    np.testing.assert_array_equal(per_image, keep_largest_component(raw, 4, per_slice=True))
    one = predict_volume(state, ph.image[1], largest_component="volume")  # a 2D image
    np.testing.assert_array_equal(one, keep_largest_component(predict_volume(state, ph.image[1]), 4))
    with pytest.raises(InputError, match="largest_component must be one of"):
        predict_volume(state, ph.image, largest_component="3d")
    # The volume's own strokes choose which objects stay (2D too); they must lie on the image's grid.
    marked = predict_volume(state, ph.image, largest_component="volume", scribbles=ph.scribbles)
    np.testing.assert_array_equal(marked, keep_largest_component(raw, 4, scribbles=ph.scribbles))
    one = predict_volume(state, ph.image[1], largest_component="slice", scribbles=ph.scribbles[1])
    raw_2d = predict_volume(state, ph.image[1])
    np.testing.assert_array_equal(one, keep_largest_component(raw_2d, 4, scribbles=ph.scribbles[1]))
    with pytest.raises(InputError, match="scribbles have shape"):
        predict_volume(state, ph.image, largest_component="volume", scribbles=ph.scribbles[1])
    # Classes marked absent are cleared from their slices first, then the objects are chosen.
    absent = np.zeros((3, 4), dtype=bool)
    absent[0, 1:] = absent[2, 3] = True
    held = predict_volume(state, ph.image, largest_component="volume", scribbles=ph.scribbles, absent=absent)
    want = keep_largest_component(clear_absent(raw, absent), 4, scribbles=ph.scribbles)
    np.testing.assert_array_equal(held, want)
    assert not (held[0] > 0).any() and not (held[2] == 3).any()
    with pytest.raises(InputError, match="absent must have shape"):
        predict_volume(state, ph.image, absent=absent[:2])


@pytest.mark.parametrize("mode", ["constrained", "full", "partial", "priors"])
def test_warm_up_runs_a_step_at_the_settings_shapes_and_leaves_the_random_state(mode: str) -> None:
    from napari_wss import training

    before = torch.get_rng_state()
    cfg = TrainConfig(mode=mode, penalty="none" if mode in ("full", "partial") else "log-barrier", **SMALL)
    seconds = training.warm_up(cfg, 3)
    assert seconds > 0
    assert torch.equal(torch.get_rng_state(), before)  # a real run seeded before it draws the same numbers
    training.after_warm_up()  # nothing running: returns at once


def test_interactive_size_is_smaller_only_on_a_cpu_without_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    from napari_wss import training

    for fast, cpu, gpu in ((False, 80, 96), (True, 96, 96)):
        monkeypatch.setattr(training, "bf16_fast", lambda device, fast=fast: fast)
        assert training.interactive_size(torch.device("cpu")) == cpu
        assert training.interactive_size(torch.device("cuda")) == gpu


def test_after_warm_up_waits_for_a_running_warm_up(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from napari_wss import training

    started, release, waited = threading.Event(), threading.Event(), threading.Event()
    real_train = training.train

    def held_train(*args, **kwargs):  # type: ignore[no-untyped-def]
        started.set()
        release.wait(10)
        return (yield from real_train(*args, **kwargs))

    monkeypatch.setattr(training, "train", held_train)
    warm = threading.Thread(target=training.warm_up, args=(TrainConfig(**SMALL), 2))
    warm.start()
    assert started.wait(30)
    waiter = threading.Thread(target=lambda: (training.after_warm_up(), waited.set()))
    waiter.start()
    assert not waited.wait(0.5)  # a Train pressed now waits ...
    release.set()
    assert waited.wait(60)  # ... until the warm-up has finished
    warm.join(60)
    waiter.join(60)


def test_the_second_decoder_leaves_the_main_network_and_its_checkpoint_keys_as_they_were() -> None:
    """A network built with the mixed pseudo-label term's second decoder predicts with the same
    weights, under the same checkpoint keys, as one without it (models saved before still load)."""
    torch.manual_seed(0)
    plain = ResidualUNet(1, 4, width=4, depth=2)
    torch.manual_seed(0)
    dual = ResidualUNet(1, 4, width=4, depth=2, aux_decoder=True)
    a, b = plain.state_dict(), dual.state_dict()
    assert [k for k in b if not k.startswith("aux.")] == list(a)
    assert all(torch.equal(a[k], b[k]) for k in a) and any(k.startswith("aux.") for k in b)
    x = torch.randn(2, 1, 20, 20)
    plain.eval()
    dual.eval()
    main, second = dual(x, aux=True)
    assert torch.equal(main, plain(x)) and torch.equal(dual(x), main) and second.shape == main.shape
    dual.train()
    first, again = dual(x, aux=True)[1], dual(x, aux=True)[1]
    assert not torch.allclose(first, again)  # the second decoder reads the features through dropout
    with pytest.raises(InputError, match="no second decoder"):
        plain(x, aux=True)


def test_mixed_pseudo_labels_train_both_decoders_and_survive_a_checkpoint(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (ds, _), ph = _phantom_data()
    names = ("bg", "RV", "Myo", "LV")
    cfg = TrainConfig(mode="partial", penalty="none", steps=3, mixed_pseudo_weight=0.5, **SMALL)
    state = TrainState.create(cfg, names)
    before = {k: v.clone() for k, v in state.model.state_dict().items() if k.startswith("aux.")}
    events = list(train(ds, cfg, state=state))
    assert all("mixed" in e.parts and e.parts["mixed"] > 0 and np.isfinite(e.loss) for e in events)
    after = state.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the second decoder learnt too
    save_checkpoint(state, tmp_path / "dual.pt")
    loaded = load_checkpoint(tmp_path / "dual.pt")
    assert loaded.model.aux is not None
    assert np.array_equal(predict_volume(state, ph.image), predict_volume(loaded, ph.image))
    assert _run(train(ds, cfg, state=loaded)).step == 6
    plain = _run(train(ds, cfg.with_(mixed_pseudo_weight=0.0), class_names=names))
    with pytest.raises(InputError, match="second decoder"):
        next(train(ds, cfg, state=plain))
    assert TrainState.create(cfg.with_(mode="full"), names).model.aux is None  # full supervision needs none
    with pytest.raises(InputError, match="mixed_pseudo_weight"):
        TrainConfig(mixed_pseudo_weight=-0.5)


def test_test_time_averaging_is_equivariant_to_the_symmetries_it_averages() -> None:
    """Probabilities averaged over a group of the square's symmetries turn with the image: the
    prediction of a turned or mirrored slice is the turned or mirrored prediction, for a network
    that is not equivariant itself (a random U-Net). Fails if a symmetry is undone the wrong way."""
    torch.manual_seed(0)
    model = ResidualUNet(in_channels=1, num_classes=3, width=8, depth=3).eval()
    x = torch.rand(2, 32, 32)
    plain = predict_slices(model, x, amp=False)
    assert not torch.allclose(predict_slices(model, x.flip(-1), amp=False), plain.flip(-1), atol=1e-3)
    for tta, moves in (
        (4, (lambda t: t.flip(-1), lambda t: t.flip(-2))),
        (8, (lambda t: torch.rot90(t, 1, (-2, -1)),)),
    ):
        avg = predict_slices(model, x, amp=False, tta=tta)
        torch.testing.assert_close(avg.sum(1), torch.ones(2, 32, 32))
        for move in moves:
            torch.testing.assert_close(predict_slices(model, move(x), amp=False, tta=tta), move(avg), atol=1e-5, rtol=0)
    with pytest.raises(InputError, match="one of"):
        predict_slices(model, x, tta=3)


def test_predict_volume_averages_symmetries_when_asked() -> None:
    ph = cardiac_phantom(n_slices=2, size=32, seed=1)
    (ds, _) = prepare_volume(ph.image, num_classes=4, size=32, scribbles=ph.scribbles)
    state = _run(train(ds, TrainConfig(mode="partial", penalty="none", steps=2, amp=False, **SMALL)))
    _, probs = predict_volume(state, ph.image, return_probs=True)
    _, probs8 = predict_volume(state, ph.image, return_probs=True, tta=8)
    _, turned8 = predict_volume(state, np.rot90(ph.image, 1, (1, 2)).copy(), return_probs=True, tta=8)
    assert np.abs(probs8 - probs).max() > 1e-3
    np.testing.assert_allclose(turned8, np.rot90(probs8, 1, (2, 3)), atol=1e-5)
    with pytest.raises(InputError, match="one of"):
        predict_volume(state, ph.image, tta=5)
