"""Self-training strokes: what the network says, cleaned up per volume, never over the user's strokes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from napari_wss.config import TrainConfig
from napari_wss.data import SliceDataset
from napari_wss.errors import InputError
from napari_wss.pseudolabel import pseudo_strokes, with_pseudo_strokes
from napari_wss.training import train

K, S = 3, 16


class _ReadsClasses(nn.Module):
    """Logits that put class ``round(4 · pixel)`` first: 0.25 is class 1, 0.5 class 2; a pixel of
    0.125 sits halfway between background and class 1 (probability ≈ 0.45 each)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(8.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        classes = torch.arange(K, dtype=x.dtype, device=x.device).view(1, K, 1, 1)
        return -self.scale * (4 * x - classes).abs()


def _data() -> SliceDataset:
    """Two volumes of three slices. Volume 0: a class-1 block through all slices with a stroke on
    it, a class-1 stray far away on slice 1, an unsure patch, class 1 stated absent on slice 2.
    Volume 1: a smaller class-1 block, no strokes."""
    images = np.zeros((6, S, S), np.float32)
    images[0:3, 2:8, 2:8] = 0.25
    images[1, 12:15, 12:15] = 0.25  # the stray
    images[0, 12:14, 2:4] = 0.125  # unsure
    images[3:6, 10:13, 10:13] = 0.25  # volume 1's own object, where volume 0 has nothing
    images[3, 0:2, 0:2] = 0.5  # a class-2 patch the user overrules with a class-1 stroke
    scribbles = np.zeros((6, S, S), np.uint8)
    scribbles[0, 4, 3:6] = 2  # class 1 on volume 0's block
    scribbles[3, 0, 0] = 2  # class 1 where the network says class 2
    sizes = np.full((6, K, 2), np.nan, np.float32)
    sizes[2, 1] = (0, 0)  # class 1 absent on volume 0's last slice
    cents = np.full((6, K, 2, 2), np.nan, np.float32)
    return SliceDataset(
        images,
        scribbles,
        None,
        sizes,
        cents,
        np.array([0, 0, 0, 1, 1, 1], np.int32),
        np.array([0, 1, 2, 0, 1, 2], np.int32),
    )


def test_pseudo_strokes_clean_up_per_volume_and_keep_the_users_strokes() -> None:
    data = _data()
    before = data.scribbles.copy()
    strokes = pseudo_strokes(_ReadsClasses(), data, confidence=0.9, amp=False)
    assert strokes.dtype == np.uint8 and strokes.shape == data.images.shape
    np.testing.assert_array_equal(data.scribbles, before)  # the input strokes are not written to
    # volume 0's marked block is painted class 1 (value 2) on the slices where class 1 may be
    assert (strokes[0:2, 2:8, 2:8] == 2).all()
    # class 1 is absent on slice 2: its block there is painted background instead
    assert (strokes[2, 2:8, 2:8] == 1).all()
    # the stray on slice 1 is cleared to background, not left as class 1
    assert (strokes[1, 12:15, 12:15] == 1).all()
    # the unsure patch (probability ≈ 0.45) is left unpainted
    assert (strokes[0, 12:14, 2:4] == 0).all()
    # volume 1 is cleaned up on its own: its smaller unmarked block is its largest and stays
    assert (strokes[3:6, 10:13, 10:13] == 2).all()
    # the user's stroke wins over the network: class 1 where it predicts class 2
    assert strokes[3, 0, 0] == 2 and strokes[3, 1, 1] == 3
    # everything else is confident background
    assert strokes[4, 5, 5] == 1


def test_confidence_zero_paints_every_pixel() -> None:
    strokes = pseudo_strokes(_ReadsClasses(), _data(), confidence=0.0, amp=False)
    assert (strokes > 0).all()


def test_slice_order_not_row_order_connects_slices() -> None:
    """Rows may come in any order: the 3D clean-up follows ``slice``. Listed as slices 0, 2, 1, a
    block on slices 0 and 1 only is one object; read in row order it would be cut in two."""
    images = np.zeros((3, S, S), np.float32)
    images[[0, 2], 2:8, 2:8] = 0.25  # rows 0 and 2 = slices 0 and 1
    images[1, 10:12, 10:12] = 0.25  # row 1 = slice 2: a smaller object, touches nothing
    data = SliceDataset(
        images,
        None,
        None,
        np.full((3, K, 2), np.nan, np.float32),
        np.full((3, K, 2, 2), np.nan, np.float32),
        np.zeros(3, np.int32),
        np.array([0, 2, 1], np.int32),
    )
    strokes = pseudo_strokes(_ReadsClasses(), data, confidence=0.5, amp=False)
    assert (strokes[[0, 2], 2:8, 2:8] == 2).all()
    assert (strokes[1, 10:12, 10:12] == 1).all()


def test_band_paints_background_only_near_the_structures() -> None:
    """With ``band`` 2, volume 0's slice 0 keeps background strokes within 2 px of its block
    (rows 2-7, cols 2-7) and none beyond; a slice without any structure gets only the user's strokes."""
    data = _data()
    data.images[4] = 0.0  # volume 1's middle slice: no structure at all
    data.scribbles[4, 8, 8] = 1  # one background stroke there
    strokes = pseudo_strokes(_ReadsClasses(), data, confidence=0.9, band=2, amp=False)
    s0 = strokes[0]
    assert (s0[2:8, 2:8] == 2).all()
    assert s0[9, 5] == 1 and s0[5, 0] == 1  # 2 px below / left of the block: painted background
    assert s0[10, 5] == 0 and s0[15, 15] == 0  # 3 px below, and far away: left unpainted
    assert s0[4, 3] == 2  # the user's stroke stays
    assert (strokes[4] > 0).sum() == 1 and strokes[4, 8, 8] == 1
    with pytest.raises(InputError, match="band must be"):
        pseudo_strokes(_ReadsClasses(), data, band=-1)


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_confidence_out_of_range_is_refused(bad: float) -> None:
    with pytest.raises(InputError, match="confidence must be in"):
        pseudo_strokes(_ReadsClasses(), _data(), confidence=bad)


def test_a_model_for_other_classes_is_refused() -> None:
    data = _data()
    data = SliceDataset(data.images, data.scribbles, None, data.size_bounds[:, :2], data.centroid_bounds[:, :2])
    with pytest.raises(InputError, match="segments 3 classes but the data defines 2"):
        pseudo_strokes(_ReadsClasses(), data)


def test_with_pseudo_strokes_checks_the_shape_and_trains_as_a_second_press(one_thread: None) -> None:
    data = _data()
    with pytest.raises(InputError, match="strokes of shape"):
        with_pseudo_strokes(data, np.zeros((2, S, S), np.uint8))
    strokes = pseudo_strokes(_ReadsClasses(), data, confidence=0.9, amp=False)
    again = with_pseudo_strokes(data, strokes)
    assert again.scribbles is not data.scribbles and again.images is data.images
    config = TrainConfig(
        mode="constrained",
        penalty="quadratic",
        steps=3,
        batch_size=2,
        size=S,
        width=4,
        depth=2,
        device="cpu",
        preview_every=0,
    )
    gen = train(again, config, class_names=("background", "a", "b"))
    events = list(gen)
    assert len(events) == 3 and np.isfinite(events[-1].loss)
