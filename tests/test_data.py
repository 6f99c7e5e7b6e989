"""Slices, geometry, bounds and augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_wss.config import ClassPrior
from napari_wss.data import (
    Batch,
    DeviceSlices,
    Normalization,
    SliceDataset,
    SliceGeometry,
    augment_batch,
    bounds_from_labels,
    bounds_from_priors,
    check_scribbles,
    crop_around,
    focus_boxes,
    labels_to_scribbles,
    prepare_volume,
    resize_labels,
    rule_out_brighter,
    scribbles_to_labels,
    stroke_boxes,
    window_origins,
)
from napari_wss.errors import InputError
from napari_wss.losses import soft_centroid


def test_scribble_encoding_round_trip() -> None:
    labels = np.array([[0, 1], [2, 3]], dtype=np.uint8)
    s = labels_to_scribbles(labels)
    assert s.tolist() == [[1, 2], [3, 4]]
    assert np.array_equal(scribbles_to_labels(s), labels)
    partial = np.array([[0, 2], [1, 0]], dtype=np.uint8)
    assert scribbles_to_labels(partial).tolist() == [[-1, 1], [0, -1]]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (np.array([[0, 5]]), "beyond the 4 classes"),
        (np.array([[0, -1]]), ">= 0"),
        (np.array([[0, 1.5]]), "whole numbers"),
        (np.array([["a"]]), "integers"),
    ],
)
def test_check_scribbles_rejects(values: np.ndarray, message: str) -> None:
    with pytest.raises(InputError, match=message):
        check_scribbles(values, 4)


def test_check_scribbles_shape() -> None:
    with pytest.raises(InputError, match="shape"):
        check_scribbles(np.zeros((2, 3)), 4, shape=(3, 3))


@pytest.mark.parametrize(
    ("volume", "message"),
    [
        (np.full((2, 4, 4), np.nan), "NaN or infinite"),
        (np.array([[[0, np.inf], [1, 2]]]), "NaN or infinite"),
        (np.zeros((2, 4, 4)), "constant"),
        (np.full((2, 4, 4), 7.0), "constant"),
    ],
)
def test_normalization_rejects_bad_intensities(volume: np.ndarray, message: str) -> None:
    with pytest.raises(InputError, match=message):
        Normalization()(volume)


def test_normalization_robust_range() -> None:
    v = np.arange(1000, dtype=np.int16).reshape(10, 10, 10)
    v[0, 0, 0] = 30000  # an outlier does not squash the rest
    out = Normalization()(v)
    assert out.dtype == np.float32 and out.min() == 0 and out.max() == 1
    assert 0.5 < out[5].mean() < 0.6


def test_geometry_points_round_trip_and_bounds() -> None:
    g = SliceGeometry((100, 80), (10, 60, 20, 70), 64)
    rows, cols = np.array([10.0, 35.0, 59.0]), np.array([20.0, 44.5, 69.0])
    r, c = g.to_network_points(rows, cols)
    rr, cc = g.to_source_points(r, c)
    assert np.allclose(rr, rows) and np.allclose(cc, cols)
    sizes, cents = g.bounds_to_network(np.array([[[100.0, 200.0]]]), np.array([[[[10.0, 59.0], [20.0, 69.0]]]]))
    assert np.allclose(sizes, [[[100 * (64 / 50) ** 2, 200 * (64 / 50) ** 2]]])
    # box corners (first/last source pixel centres) land on network pixels near 0 and 63
    assert cents[0, 0, 0, 0] == pytest.approx(0.14) and cents[0, 0, 0, 1] == pytest.approx(62.86)


def test_geometry_crop_pads_outside_and_maps_back() -> None:
    labels = np.zeros((1, 20, 20), dtype=np.uint8)
    labels[0, 5:10, 5:10] = 2
    g = SliceGeometry((20, 20), (-4, 16, 0, 20), 20)
    net = g.labels_to_network(labels)
    assert net.shape == (1, 20, 20) and net[0, :4].max() == 0 and net[0, 9:14, 5:10].min() == 2
    back = g.labels_to_source(net)
    assert np.array_equal(back[0, :16], labels[0, :16]) and back[0, 16:].max() == 0
    probs = torch.zeros(1, 3, 20, 20)
    probs[:, 1] = 1.0
    full = g.probs_to_source(probs)
    assert full[0, 1, :16].min() == 1 and full[0, 0, 16:].min() == 1


def test_crop_around_foreground_only() -> None:
    s = np.zeros((2, 100, 100), dtype=np.uint8)
    s[0, 0:5, 0:5] = 1  # background strokes are ignored
    s[1, 40:60, 45:55] = 3
    box = crop_around(s, margin=0.5, min_side=8)
    assert box == (30, 70, 30, 70)
    assert crop_around(np.ones((1, 4, 4), dtype=np.uint8)) is None


def test_bounds_from_priors_rules() -> None:
    priors = [
        ClassPrior("background"),
        ClassPrior("RV", size=(10, 50), centroid=((2, 8), (2, 8))),
        ClassPrior("LV", size=(20, 60)),
    ]
    scribbles = np.zeros((3, 10, 10), dtype=np.uint8)
    scribbles[0, 1, 1] = 1
    scribbles[0, 5, 5] = 2  # slice 0: RV painted, LV not -> LV absent
    scribbles[1, 5, 5] = 3  # slice 1: LV painted, RV not -> RV absent
    # slice 2: nothing painted -> lower bounds dropped
    sizes, cents = bounds_from_priors(priors, 3, (10, 10), scribbles=scribbles, absent=[(0, 1)])
    assert np.isnan(sizes[:, 0]).all()
    assert sizes[0, 2].tolist() == [0, 0] and sizes[1, 1].tolist() == [0, 0]
    assert sizes[0, 1].tolist() == [0, 0]  # explicitly absent
    assert np.isnan(sizes[2, 1, 0]) and sizes[2, 1, 1] == 50
    assert np.isnan(cents[1, 1]).all() and cents[2, 1].tolist() == [[2, 8], [2, 8]]


def test_stroke_boxes_bound_each_class_per_slice_and_widen_narrow_ones() -> None:
    scr = np.zeros((3, 20, 20), dtype=np.uint8)
    scr[0, 2:9, 5] = 2  # class 1: rows 2-8, column 5 (a vertical stroke)
    scr[0, 10, 3:15] = 3  # class 2: row 10, columns 3-14
    scr[1, 0:20, 0] = 1  # background strokes give no box
    scr[2, 4, 4] = 2  # one pixel
    boxes = stroke_boxes(scr, 3)
    assert boxes[0, 1].tolist() == [[2, 8], [5, 5]]
    assert boxes[0, 2].tolist() == [[10, 10], [3, 14]]
    assert np.isnan(boxes[:, 0]).all() and np.isnan(boxes[1]).all() and np.isnan(boxes[2, 2]).all()
    assert boxes[2, 1].tolist() == [[4, 4], [4, 4]]
    # margins widen every side (per class); the floor only sides narrower than it, about their middle
    assert stroke_boxes(scr, 3, margin=[0, 1, 2])[0, 2].tolist() == [[8, 12], [1, 16]]
    floored = stroke_boxes(scr, 3, min_half=2.5)
    assert floored[0, 1].tolist() == [[2, 8], [2.5, 7.5]]
    assert floored[0, 2].tolist() == [[7.5, 12.5], [3, 14]]
    assert floored[2, 1].tolist() == [[1.5, 6.5], [1.5, 6.5]]
    with pytest.raises(InputError, match="finite and >= 0"):
        stroke_boxes(scr, 3, min_half=-1.0)
    with pytest.raises(InputError, match=r"shape \(N, H, W\)"):
        stroke_boxes(scr[0], 3)


def test_bounds_from_priors_checks_fit() -> None:
    with pytest.raises(InputError, match="outside the 10x10 image"):
        bounds_from_priors([ClassPrior("bg"), ClassPrior("x", centroid=((20, 30), (0, 5)))], 1, (10, 10))
    with pytest.raises(InputError, match="exceeds the slice area"):
        bounds_from_priors([ClassPrior("bg"), ClassPrior("x", size=(200, 300))], 1, (10, 10))


def test_bounds_from_labels_oracle() -> None:
    lab = np.zeros((2, 10, 10), dtype=np.uint8)
    lab[0, 2:4, 2:7] = 1  # 10 px, centroid (2.5, 4)
    sizes, cents = bounds_from_labels(lab, 2, margin=0.1, centroid_margin=0.1)
    assert sizes[0, 1] == pytest.approx([9, 11]) and sizes[1, 1].tolist() == [0, 0]
    assert np.allclose(cents[0, 1], [[1.5, 3.5], [3.0, 5.0]])
    assert np.isnan(cents[1, 1]).all()


def test_prepare_volume_shapes_and_bounds() -> None:
    rng = np.random.default_rng(0)
    img = rng.normal(size=(3, 40, 30))
    scr = np.zeros((3, 40, 30), dtype=np.uint8)
    scr[:, 10, 10] = 2
    sb = np.full((3, 2, 2), np.nan, dtype=np.float32)
    sb[:, 1] = [100, 200]
    ds, geom = prepare_volume(img, num_classes=2, size=16, scribbles=scr, size_bounds=sb)
    assert ds.images.shape == (3, 16, 16) and ds.scribbles is not None and ds.scribbles.max() == 2
    assert ds.size_bounds[0, 1] == pytest.approx([100 * 256 / 1200, 200 * 256 / 1200])
    assert geom.source_shape == (40, 30)
    with pytest.raises(InputError, match="shape"):
        prepare_volume(img, num_classes=2, size=16, scribbles=scr[:, :20])


def _blob_batch(seed: int) -> Batch:
    g = torch.Generator().manual_seed(seed)
    b, s = 8, 16
    labels = torch.zeros(b, s, s, dtype=torch.long)
    for i in range(b):
        r, c = torch.randint(0, s - 5, (2,), generator=g).tolist()
        h, w = torch.randint(2, 5, (2,), generator=g).tolist()
        labels[i, r : r + h, c : c + w] = 1
    onehot = torch.stack([1.0 - labels, labels.float()], 1)
    cen = soft_centroid(onehot)
    cents = torch.stack([cen - torch.tensor([1.0, 2.0]), cen + torch.tensor([0.5, 3.0])], -1)  # asymmetric box
    return Batch(
        labels[:, None].float(), (labels + 1).to(torch.uint8), labels, torch.zeros(b, 2, 2), cents, torch.arange(b)
    )


@pytest.mark.parametrize("seed", range(4))
def test_augmentation_moves_centroid_boxes_with_pixels(seed: int) -> None:
    batch = _blob_batch(seed)
    before = soft_centroid(torch.stack([1.0 - batch.labels, batch.labels.float()], 1))[:, 1]
    offset = before - batch.centroid_bounds[:, 1, :, 0]  # where the centroid sits inside its box
    batch.ruled_out = torch.where(batch.labels == 1, 1, 0).to(torch.uint8)  # background ruled out of the blob
    out = augment_batch(batch, torch.Generator().manual_seed(seed))
    assert out.labels is not None and out.scribbles is not None and out.ruled_out is not None
    assert torch.equal(out.scribbles.long() - 1, out.labels)
    assert torch.equal(out.ruled_out.long(), out.labels)
    after = soft_centroid(torch.stack([1.0 - out.labels, out.labels.float()], 1))[:, 1]
    lo, hi = out.centroid_bounds[:, 1, :, 0], out.centroid_bounds[:, 1, :, 1]
    assert torch.all(lo <= after + 1e-5) and torch.all(after <= hi + 1e-5)
    assert torch.allclose((hi - lo).sort(-1).values, torch.tensor([1.5, 5.0]).expand(8, 2))
    assert offset.shape == after.shape


@pytest.mark.parametrize("seed", range(3))
def test_rotation_and_zoom_move_everything_together(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    b, s = 8, 48
    yy, xx = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
    labels = torch.zeros(b, s, s, dtype=torch.long)
    for i in range(b):  # discs that stay inside the frame under any turn and a 1.2x zoom
        cy, cx = (torch.randint(-8, 9, (2,), generator=g) + (s - 1) / 2).tolist()
        r = 5 + 3 * torch.rand(1, generator=g).item()
        labels[i][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
    onehot = torch.stack([1.0 - labels, labels.float()], 1)
    cen = soft_centroid(onehot)
    boxes = torch.stack([cen - torch.tensor([1.0, 2.0]), cen + torch.tensor([0.5, 3.0])], -1)
    area = labels.sum((1, 2)).float()
    sizes = torch.stack([torch.full((b, 2), float("nan")), torch.stack([0.9 * area, 1.1 * area], -1)], 1)
    ruled = torch.where(labels == 0, 2, 0).to(torch.uint8)  # class 1 ruled out of the background
    batch = Batch(labels[:, None].float(), (labels + 1).to(torch.uint8), labels, sizes, boxes, torch.arange(b), ruled)
    out = augment_batch(batch, torch.Generator().manual_seed(seed), rotate=45.0, zoom=0.2)
    assert out.labels is not None and out.scribbles is not None
    assert out.scribbles.dtype == torch.uint8 and out.labels.dtype == torch.long
    # Pixels brought in from outside are unannotated; elsewhere scribbles and labels still agree.
    inside = out.scribbles > 0
    assert torch.equal(out.scribbles.long()[inside] - 1, out.labels[inside]) and not out.labels[~inside].any()
    assert (~inside).any()  # the corners came from outside on some image
    assert out.ruled_out is not None and out.ruled_out.dtype == torch.uint8
    assert torch.equal(out.ruled_out == 2, (out.labels == 0) & inside)  # moved with the labels
    # The image moved with its labels.
    fg = out.images[:, 0] > 0.5
    dice = 2 * (fg & (out.labels == 1)).sum((1, 2)) / (fg.sum((1, 2)) + out.labels.sum((1, 2)))
    assert torch.all(dice > 0.9)
    # Size bounds scaled with the area: the new area sits where the old one sat between them.
    new_area = out.labels.sum((1, 2)).float()
    factor2 = out.size_bounds[:, 1, 0] / (0.9 * area)
    assert torch.allclose(out.size_bounds[:, 1, 1] / (1.1 * area), factor2)
    assert torch.all(out.size_bounds[:, 0].isnan()) and not torch.allclose(factor2, torch.ones(b))
    assert torch.allclose(new_area, factor2 * area, rtol=0.12)
    # The centroid stays inside its (transformed) box.
    after = soft_centroid(torch.stack([1.0 - out.labels, out.labels.float()], 1))[:, 1]
    lo, hi = out.centroid_bounds[:, 1, :, 0], out.centroid_bounds[:, 1, :, 1]
    assert torch.all(lo <= after + 0.5) and torch.all(after <= hi + 0.5)


def test_rotation_draws_after_the_other_augmentations() -> None:
    # A turn of at most a millionth of a degree changes nothing else: its draws come after the
    # flips', quarter turns' and intensity's, so runs without it keep their random stream.
    batch = _blob_batch(0)
    plain = augment_batch(batch, torch.Generator().manual_seed(3))
    tiny = augment_batch(batch, torch.Generator().manual_seed(3), rotate=1e-6)
    turned = augment_batch(batch, torch.Generator().manual_seed(3), rotate=30.0)
    assert plain.scribbles is not None and tiny.scribbles is not None
    assert torch.equal(plain.scribbles, tiny.scribbles)
    assert torch.allclose(plain.images, tiny.images, atol=1e-4)
    assert torch.allclose(plain.centroid_bounds, tiny.centroid_bounds, atol=1e-3)
    assert not torch.equal(plain.images, turned.images)


def test_rule_out_brighter_per_volume_from_the_class_strokes() -> None:
    # Two volumes of two 6x6 slices; intensities 0..1 in steps; volume 1 is twice as bright.
    ramp = np.linspace(0.0, 0.5, 36, dtype=np.float32).reshape(6, 6)
    images = np.stack([ramp, ramp, 2 * ramp, 2 * ramp])
    scribbles = np.zeros(images.shape, np.uint8)
    scribbles[0, 1, :3] = 2  # class 1's strokes in volume 0: intensities of pixels 6..8
    scribbles[2, 1, :3] = 2  # and in volume 1 (twice as bright)
    scribbles[1, 5, 5] = 1  # a background stroke on volume 0's brightest pixel
    data = SliceDataset(
        images,
        scribbles,
        None,
        np.full((4, 2, 2), np.nan, np.float32),
        np.full((4, 2, 2, 2), np.nan, np.float32),
        np.array([0, 0, 1, 1], np.int32),
    )
    out = rule_out_brighter(data, 1, 100.0)
    assert data.ruled_out is None and out.ruled_out is not None  # the input is kept
    for v in (0, 1):
        ceiling = images[2 * v, 1, 2]  # the brightest pixel under its strokes
        expected = np.where(images[2 * v : 2 * v + 2] > ceiling, 2, 0)
        assert np.array_equal(out.ruled_out[2 * v : 2 * v + 2], expected)
    assert out.ruled_out[1, 5, 5] == 2  # another class's stroke does not protect a pixel
    # A lower percentile lowers the ceiling but never rules a class out of its own strokes.
    low = rule_out_brighter(data, 1, 10.0).ruled_out
    assert (low[scribbles == 2] == 0).all() and (low == 2).sum() > (out.ruled_out == 2).sum()
    # No strokes of the class in a volume: nothing is ruled out there; subsets and concatenations keep the map.
    data.scribbles[2:] = 0
    lone = rule_out_brighter(data, 1, 100.0)
    assert not lone.ruled_out[2:].any() and lone.ruled_out[:2].any()
    assert np.array_equal(lone.subset([1, 0]).ruled_out, lone.ruled_out[[1, 0]])
    assert np.array_equal(SliceDataset.concat([lone, lone]).ruled_out, np.concatenate([lone.ruled_out] * 2))
    with pytest.raises(InputError, match="percentile"):
        rule_out_brighter(data, 1, 0.0)


def test_device_slices_epochs_and_shards() -> None:
    rng = np.random.default_rng(0)
    ds, _ = prepare_volume(rng.normal(size=(10, 8, 8)), num_classes=2, size=8)
    one = DeviceSlices(ds, torch.device("cpu"), seed=1)
    seen = torch.cat([one.batch(5, augment=False).index for _ in range(2)])
    assert sorted(seen.tolist()) == list(range(10))  # one epoch visits every slice once
    ranks = [DeviceSlices(ds, torch.device("cpu"), seed=1, shard=(r, 2)) for r in range(2)]
    parts = [r.batch(5, augment=False).index for r in ranks]
    assert sorted(torch.cat(parts).tolist()) == list(range(10))


def _windowed_data() -> SliceDataset:
    """Four 64² slices: a painted structure that fits a 32² window, one longer than it, one known
    only from its dense labels, and one with nothing but a background stroke."""
    rng = np.random.default_rng(0)
    images = rng.random((4, 64, 64), dtype=np.float32)
    scribbles = np.zeros((4, 64, 64), np.uint8)
    scribbles[0, 40:50, 5:20] = 2  # class 1, rows 40-49, columns 5-19
    scribbles[0, 0:2, 60:64] = 1  # background strokes far away do not count
    scribbles[1, 10:12, 4:60] = 3  # class 2, 56 columns long
    scribbles[3, 30, 30] = 1
    labels = np.zeros((4, 64, 64), np.uint8)
    labels[2, 50:60, 50:64] = 1  # no strokes: the labels' foreground is the focus
    sizes = np.full((4, 3, 2), np.nan, np.float32)
    sizes[0, 1] = (100.0, 200.0)
    cents = np.full((4, 3, 2, 2), np.nan, np.float32)
    cents[0, 1] = [[40.0, 49.0], [5.0, 19.0]]
    return SliceDataset(images, scribbles, labels, sizes, cents)


def test_focus_boxes_from_foreground_strokes_else_labels() -> None:
    boxes = focus_boxes(_windowed_data())
    assert boxes.tolist() == [[40, 49, 5, 19], [10, 11, 4, 59], [50, 59, 50, 63], [-1, -1, -1, -1]]


def test_window_origins_keep_the_focus_inside_where_asked_and_vary() -> None:
    focus = torch.from_numpy(focus_boxes(_windowed_data())).repeat(300, 1)
    o, holds = window_origins(focus, 64, 32, torch.Generator().manual_seed(0), focused_share=1.0)
    o, holds = o.view(300, 4, 2), holds.view(300, 4)
    assert o.min() >= 0 and o.max() <= 32
    # Slices 0 and 2: the box fits, so it lies inside every window, at many positions.
    for i, (r0, r1, c0, c1) in ((0, (40, 49, 5, 19)), (2, (50, 59, 50, 63))):
        assert torch.all(o[:, i, 0] <= r0) and torch.all(o[:, i, 0] + 31 >= r1)
        assert torch.all(o[:, i, 1] <= c0) and torch.all(o[:, i, 1] + 31 >= c1)
        assert holds[:, i].all()
    assert len(set(o[:, 0, 0].tolist())) > 10 and set(o[:, 0, 1].tolist()) == set(range(6))
    # Slice 1: too long along the columns, so the window is centred on it there (rows still vary).
    assert set(o[:, 1, 1].tolist()) == {16} and len(set(o[:, 1, 0].tolist())) > 5 and not holds[:, 1].any()
    # Slice 3: no focus, anywhere on the slice (nothing to cut).
    assert o[:, 3].min() == 0 and o[:, 3].max() == 32 and holds[:, 3].all()
    # The default share: a third focused, the rest anywhere (some of which happen to hold the box).
    o, holds = window_origins(focus, 64, 32, torch.Generator().manual_seed(1))
    o, holds = o.view(300, 4, 2), holds.view(300, 4)
    inside = (o[:, 0, 0] <= 40) & (o[:, 0, 0] + 31 >= 49) & (o[:, 0, 1] <= 5)
    assert torch.equal(inside, holds[:, 0]) and 0.33 < inside.float().mean() < 0.6
    assert o[:, 0, 1].max() == 32  # windows far from the stroke too


def test_windowed_batches_cut_every_map_alike_and_move_the_boxes() -> None:
    data = _windowed_data()
    data.size_bounds[0, 2] = (0.0, 0.0)  # class 2 absent from slice 0: that holds in any window
    slices = DeviceSlices(data, torch.device("cpu"), seed=3)
    held = cut = 0
    whole = DeviceSlices(data, torch.device("cpu"), seed=3).batch(4, augment=False)
    for _ in range(12):
        b = slices.batch(4, augment=False, patch=32)
        assert b.images.shape == (4, 1, 32, 32) and b.scribbles is not None and b.labels is not None
        assert b.scribbles.shape == b.labels.shape == (4, 32, 32)
        for j, i in enumerate(b.index.tolist()):
            # Find the window in the whole slice: the image pins it down.
            full = torch.from_numpy(data.images[i])
            window = b.images[j, 0]
            hits = [(r, c) for r in range(33) for c in range(33) if torch.equal(full[r : r + 32, c : c + 32], window)]
            assert len(hits) == 1
            r, c = hits[0]
            assert torch.equal(b.scribbles[j], torch.from_numpy(data.scribbles[i, r : r + 32, c : c + 32]))
            assert torch.equal(b.labels[j], torch.from_numpy(data.labels[i, r : r + 32, c : c + 32]).long())
            if i == 0 and int((b.scribbles[j] == 2).sum()) == 150:
                # The stroke is whole: its box moved with the window, its size bounds did not.
                held += 1
                expected = torch.tensor([[40.0 - r, 49.0 - r], [5.0 - c, 19.0 - c]])
                assert torch.equal(b.centroid_bounds[j, 1], expected)
                assert b.size_bounds[j, 1].tolist() == [100.0, 200.0]
            elif i == 0:  # cut: only the upper bounds still hold
                cut += 1
                assert b.centroid_bounds[j].isnan().all() and b.size_bounds[j, :, 0].isnan().all()
                assert b.size_bounds[j, 1, 1] == 200.0
            if i == 0:  # absence is an upper bound: it holds in any window
                assert b.size_bounds[j, 2, 1] == 0.0
    assert held and cut
    assert not np.isnan(data.size_bounds[0, 1]).any() and not np.isnan(data.centroid_bounds[0, 1]).any()
    # Windows leave the whole-slice stream alone, and augmentation applies to the window.
    assert torch.equal(whole.index, DeviceSlices(data, torch.device("cpu"), seed=3).batch(4, augment=False).index)
    assert slices.batch(4, augment=True, patch=32).images.shape == (4, 1, 32, 32)
    assert slices.batch(4, augment=False, patch=64).images.shape == (4, 1, 64, 64)  # the whole slice


def test_thin_scribbles_survive_shrinking() -> None:
    s = np.zeros((1, 120, 120), dtype=np.uint8)
    s[0, 60, 10:110] = 3  # a one-pixel line
    s[0, 20:100, 30] = 1
    geom = SliceGeometry.full((120, 120), 32)
    small = geom.scribbles_to_network(s)
    assert (small == 3).sum() >= 25 and (small == 1).sum() >= 20
    assert (geom.labels_to_network(s) == 3).sum() < 5  # majority vote drops them, as intended for labels


def test_a_painted_share_keeps_shrunk_strokes_off_their_neighbours_pixels() -> None:
    s = np.zeros((1, 8, 8), dtype=np.uint8)
    s[0, 1:3, 0:4] = 2  # a two-pixel-wide stroke on rows 1-2: half of each 2x2 block it touches
    s[0, 4, 4] = s[0, 5, 7] = 3  # a thin diagonal stroke: a quarter of each block it touches
    anywhere = resize_labels(s, (4, 4), scribbles=True)
    assert (anywhere[0, 0:2, 0:2] == 2).all() and (anywhere[0, 2, 2:4] == 3).all()  # the stroke spreads
    half = resize_labels(s, (4, 4), scribbles=True, min_share=0.5)
    assert (half[0, 0:2, 0:2] == 2).all()  # half-covered pixels stay
    assert (half == 3).sum() == 0 and (half[0, 2:] == 0).all()  # quarter-covered ones go
    assert (resize_labels(s, (4, 4), scribbles=True, min_share=0.25) == anywhere).all()
    with pytest.raises(ValueError, match="min_share"):
        resize_labels(s, (4, 4), scribbles=True, min_share=1.5)


def test_label_majority_vote_shrinks_without_shifting() -> None:
    lab = np.zeros((1, 64, 64), dtype=np.uint8)
    lab[0, 16:48, 16:48] = 2
    small = SliceGeometry.full((64, 64), 16).labels_to_network(lab)
    assert small[0, 4:12, 4:12].min() == 2 and (small == 2).sum() == 64
