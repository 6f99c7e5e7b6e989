"""Loss maths against hand-computed values, gradients and element-by-element references."""

from __future__ import annotations

import math

import pytest
import torch

from napari_wss.config import Penalty
from napari_wss.losses import (
    CentroidConstraint,
    SizeConstraint,
    absence_loss,
    bound_penalty,
    bound_violation,
    gated_crf_energy,
    log_barrier_extension,
    log_barrier_penalty,
    mixed_pseudo_label_loss,
    partial_cross_entropy,
    quadratic_penalty,
    ruled_out_loss,
    soft_centroid,
    soft_size,
    stroke_balance,
)

# probs of class 1 = [[1, .5], [0, .5]]; class 0 is the complement. H·W = 4.
P1 = torch.tensor([[1.0, 0.5], [0.0, 0.5]], dtype=torch.float64)
PROBS = torch.stack([1 - P1, P1]).unsqueeze(0)  # (1, 2, 2, 2)


def _bounds(k: int, cls: int, lo: float, hi: float) -> torch.Tensor:
    b = torch.full((1, k, 2), float("nan"), dtype=torch.float64)
    b[0, cls] = torch.tensor([lo, hi], dtype=torch.float64)
    return b


@pytest.mark.parametrize(
    ("kind", "t", "lo", "hi", "expected"),
    [
        # (3 - 2)^2 / 4
        (Penalty.QUADRATIC, 1.0, 3.0, 4.0, 0.25),
        # inside the bounds: no quadratic penalty
        (Penalty.QUADRATIC, 1.0, 1.0, 3.0, 0.0),
        # (2 - 1.5)^2 / 4 (too big)
        (Penalty.QUADRATIC, 1.0, 0.0, 1.5, 0.0625),
        # psi_1(3 - 2) = 1 - log(1) + 1 = 2 ; psi_1(2 - 4) = -log(2)  -> (2 - ln 2) / 4
        (Penalty.LOG_BARRIER, 1.0, 3.0, 4.0, (2 - math.log(2)) / 4),
        # feasible on both sides with t = 1: -log(1) - log(1) = 0 for bounds (1, 3)
        (Penalty.LOG_BARRIER, 1.0, 1.0, 3.0, 0.0),
        # t = 2, bounds (0, 1): psi_2(-2) = -log(2)/2 ; psi_2(1) = 2 + 2 log 2 / 2 + 1/2
        (Penalty.LOG_BARRIER, 2.0, 0.0, 1.0, (-math.log(2) / 2 + 2 + math.log(2) + 0.5) / 4),
        (Penalty.NONE, 1.0, 3.0, 4.0, 0.0),
    ],
)
def test_size_penalty_hand_values(kind: Penalty, t: float, lo: float, hi: float, expected: float) -> None:
    assert soft_size(PROBS)[0, 1].item() == pytest.approx(2.0)
    loss = SizeConstraint(kind, weight=1.0)(PROBS, _bounds(2, 1, lo, hi), t)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_log_barrier_reference_value() -> None:
    value = soft_size(PROBS)[:, 1]
    assert (log_barrier_penalty(value, 3.0, 4.0, 1.0) / 4).item() == pytest.approx(0.326713, abs=1e-6)


@pytest.mark.parametrize(
    ("mask", "expected"),
    [
        ((slice(2, 5), slice(3, 7)), (3.0, 4.5)),  # filled 3x4 rectangle
        ((slice(0, 8), slice(0, 8)), (3.5, 3.5)),  # the whole slice
        ((slice(6, 7), slice(1, 2)), (6.0, 1.0)),  # one pixel
    ],
)
def test_soft_centroid_of_filled_shapes(mask: tuple[slice, slice], expected: tuple[float, float]) -> None:
    p = torch.zeros(1, 2, 8, 8)
    p[0, 1][mask] = 1.0
    p[0, 0] = 1 - p[0, 1]
    assert soft_centroid(p)[0, 1].tolist() == pytest.approx(list(expected))


def test_soft_centroid_with_little_mass_stays_bounded() -> None:
    p = torch.full((1, 1, 4, 4), 1e-9, dtype=torch.float64, requires_grad=True)
    soft_centroid(p).sum().backward()
    assert torch.isfinite(p.grad).all() and p.grad.abs().max() <= 4 + 4


def test_quadratic_penalty_ignores_missing_bounds() -> None:
    v = torch.tensor([1.0, 5.0, 5.0])
    lo = torch.tensor([2.0, float("nan"), 6.0])
    hi = torch.tensor([float("nan"), 4.0, float("nan")])
    assert quadratic_penalty(v, lo, hi).tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("t", [0.5, 1.0, 5.0, 37.0])
def test_log_barrier_continuous_at_switch(t: float) -> None:
    z0 = -1.0 / t**2
    eps = 1e-7 * abs(z0)
    z = torch.tensor([z0 - eps, z0, z0 + eps], dtype=torch.float64, requires_grad=True)
    psi = log_barrier_extension(z, t)
    assert psi[0].item() == pytest.approx(psi[2].item(), abs=1e-5)
    (grad,) = torch.autograd.grad(psi.sum(), z)
    # slope of -log(-z)/t at -1/t^2 is 1/(t|z|) = t, the slope of the linear branch
    assert grad[0].item() == pytest.approx(t, rel=1e-4)
    assert grad[2].item() == pytest.approx(t, rel=1e-12)


def test_log_barrier_finite_gradients_everywhere() -> None:
    z = torch.tensor([-1e6, -10.0, -1e-3, 0.0, 1e-3, 10.0, 1e6], dtype=torch.float64, requires_grad=True)
    for t in (0.1, 1.0, 100.0):
        (grad,) = torch.autograd.grad(log_barrier_extension(z, t).sum(), z)
        assert torch.isfinite(grad).all()


def test_gradcheck_float64() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    sizes = torch.tensor([[5.0, 12.0], [3.0, 9.0], [float("nan"), 4.0]], dtype=torch.float64).expand(2, 3, 2)
    cents = torch.full((2, 3, 2, 2), float("nan"), dtype=torch.float64)
    cents[:, 1] = torch.tensor([[1.0, 2.0], [2.5, 3.5]], dtype=torch.float64)
    for kind in (Penalty.QUADRATIC, Penalty.LOG_BARRIER):

        def f(x: torch.Tensor, kind: Penalty = kind) -> torch.Tensor:
            p = torch.softmax(x, 1)
            return SizeConstraint(kind, 1.0)(p, sizes, 3.0) + CentroidConstraint(kind, 1.0)(p, cents, 3.0)

        assert torch.autograd.gradcheck(f, (logits,))
    scribbles = torch.randint(0, 4, (2, 5, 6))
    assert torch.autograd.gradcheck(lambda x: partial_cross_entropy(x, scribbles, temperature=2.0), (logits,))


def _penalty_reference(value: torch.Tensor, bounds: torch.Tensor, kind: Penalty, t: float) -> list[float]:
    """One scalar at a time, as the seed's research code did."""
    out = []
    for b in range(value.shape[0]):
        total = 0.0
        for v, (lo, hi) in zip(value[b].flatten().tolist(), bounds[b].reshape(-1, 2).tolist()):
            for z, present in ((lo - v, not math.isnan(lo)), (v - hi, not math.isnan(hi))):
                if not present:
                    continue
                if kind == Penalty.QUADRATIC:
                    total += max(z, 0.0) ** 2
                elif z <= -1 / t**2:
                    total += -math.log(-z) / t
                else:
                    total += t * z - math.log(1 / t**2) / t + 1 / t
        out.append(total)
    return out


@pytest.mark.parametrize("kind", [Penalty.QUADRATIC, Penalty.LOG_BARRIER])
def test_vectorised_equals_scalar_reference(kind: Penalty) -> None:
    g = torch.Generator().manual_seed(3)
    value = torch.rand(4, 3, 2, generator=g, dtype=torch.float64) * 20
    lo = torch.rand(4, 3, 2, generator=g, dtype=torch.float64) * 10
    bounds = torch.stack([lo, lo + torch.rand(4, 3, 2, generator=g, dtype=torch.float64) * 10], -1)
    bounds[0, 1, 0, 0] = float("nan")
    bounds[2, :, 1] = float("nan")
    got = bound_penalty(value, bounds, kind, 2.5).tolist()
    assert got == pytest.approx(_penalty_reference(value, bounds, kind, 2.5), rel=1e-9, abs=1e-9)


def test_penalty_nonzero_for_violated_bound_in_batches() -> None:
    """The seed's quadratic TOY2 penalty was silently zero from a slicing typo; ours is not."""
    probs = torch.softmax(torch.zeros(3, 2, 8, 8), 1)  # size 32 per class
    bounds = torch.full((3, 2, 2), float("nan"))
    bounds[:, 1] = torch.tensor([5.0, 10.0])
    loss = SizeConstraint(Penalty.QUADRATIC, 1.0)(probs, bounds)
    assert loss.item() == pytest.approx((32 - 10) ** 2 / 64)


def test_bound_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="bounds must have shape"):
        bound_penalty(torch.zeros(2, 3), torch.zeros(2, 2, 2), Penalty.QUADRATIC)


def test_violation_is_distance_outside() -> None:
    v = torch.tensor([1.0, 5.0, 9.0])
    b = torch.tensor([[2.0, 4.0], [2.0, 6.0], [float("nan"), 7.0]])
    assert bound_violation(v, b).tolist() == [1.0, 0.0, 2.0]


@pytest.mark.parametrize(
    ("scribbles", "expected"),
    [
        ([[0, 0], [0, 0]], 0.0),  # nothing annotated: 0, not NaN
        ([[1, 0], [0, 0]], -math.log(0.5)),  # uniform logits, one background pixel
        ([[2, 2], [1, 0]], -math.log(0.5)),
    ],
)
def test_partial_cross_entropy_hand_values(scribbles: list[list[int]], expected: float) -> None:
    logits = torch.zeros(1, 2, 2, 2, requires_grad=True)
    loss = partial_cross_entropy(logits, torch.tensor([scribbles]))
    assert loss.item() == pytest.approx(expected)
    loss.backward()
    assert torch.isfinite(logits.grad).all()


def test_partial_cross_entropy_only_annotated_pixels_get_gradient() -> None:
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    scribbles = torch.zeros(1, 4, 4, dtype=torch.long)
    scribbles[0, 1, 2] = 3
    partial_cross_entropy(logits, scribbles).backward()
    touched = logits.grad.abs().sum(1)[0] > 0
    assert touched.sum() == 1 and touched[1, 2]


def test_balanced_partial_cross_entropy_is_the_mean_of_the_class_means() -> None:
    # class 0 painted on 3 pixels, class 1 on 1: unbalanced, the mean of the 4 pixel losses;
    # balanced, the mean of class 0's mean loss and class 1's loss; class 2 not painted: weight 0.
    logits = torch.randn(1, 3, 2, 2, dtype=torch.float64)
    scribbles = torch.tensor([[[1, 1], [1, 2]]])
    pixel = -torch.log_softmax(logits, 1)[0]  # (K, H, W)
    per_pixel = torch.stack([pixel[0, 0, 0], pixel[0, 0, 1], pixel[0, 1, 0], pixel[1, 1, 1]])
    weights = stroke_balance(scribbles, 3)
    assert weights.tolist() == pytest.approx([1 / 3, 1.0, 0.0])
    plain = partial_cross_entropy(logits, scribbles)
    balanced = partial_cross_entropy(logits, scribbles, class_weights=weights.double())
    assert plain.item() == pytest.approx(per_pixel.mean().item())
    assert balanced.item() == pytest.approx(((per_pixel[:3].mean() + per_pixel[3]) / 2).item())


def test_balanced_training_changes_the_step() -> None:
    """TrainConfig.balanced_ce reaches the objective: the same batch gives another cross-entropy."""
    from napari_wss.config import TrainConfig
    from napari_wss.data import Batch
    from napari_wss.training import Objective

    logits = torch.randn(2, 3, 8, 8)
    scribbles = torch.zeros(2, 8, 8, dtype=torch.long)
    scribbles[:, :6, :6] = 1  # a long background stroke
    scribbles[:, 7, 7] = 3  # one pixel of class 2
    nan = torch.full((2, 3, 2), float("nan"))
    batch = Batch(torch.zeros(2, 1, 8, 8), scribbles, None, nan, nan[..., None].expand(2, 3, 2, 2), torch.arange(2))
    plain = Objective(TrainConfig(mode="partial"))(logits, batch, 1.0)[1]["ce"]
    balanced = Objective(TrainConfig(mode="partial", balanced_ce=True))(logits, batch, 1.0)[1]["ce"]
    expected = partial_cross_entropy(logits, scribbles, class_weights=stroke_balance(scribbles, 3))
    assert balanced.item() == pytest.approx(expected.item()) and abs(balanced.item() - plain.item()) > 1e-3


def test_partial_cross_entropy_shape_error() -> None:
    with pytest.raises(ValueError, match="expected logits"):
        partial_cross_entropy(torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 4))


def test_module_equals_function() -> None:
    probs = torch.softmax(torch.randn(2, 3, 6, 6), 1)
    bounds = torch.rand(2, 3, 2).sort(-1).values * 20
    manual = bound_penalty(soft_size(probs), bounds, Penalty.LOG_BARRIER, 4.0).mean() / 36 * 0.5
    assert SizeConstraint(Penalty.LOG_BARRIER, 0.5)(probs, bounds, 4.0).item() == pytest.approx(manual.item())


def test_crf_energy_prefers_edges_that_follow_the_image() -> None:
    image = torch.zeros(1, 1, 8, 8)
    image[..., 4:] = 1.0
    follows = torch.zeros(1, 2, 8, 8)
    follows[:, 1, :, 4:] = 1
    follows[:, 0] = 1 - follows[:, 1]
    crosses = torch.zeros(1, 2, 8, 8)
    crosses[:, 1, 4:, :] = 1
    crosses[:, 0] = 1 - crosses[:, 1]
    assert gated_crf_energy(follows, image) < 0.1 * gated_crf_energy(crosses, image)


def test_absence_loss_hand_values() -> None:
    # class 1 = [[.5, .5], [0, .75]]: mean of -log(1 - p) = (2 ln 2 + 0 + ln 4) / 4 = ln 2
    p1 = torch.tensor([[0.5, 0.5], [0.0, 0.75]], dtype=torch.float64)
    probs = torch.stack([1 - p1, p1]).unsqueeze(0)
    assert absence_loss(probs, torch.tensor([[False, True]])).item() == pytest.approx(math.log(2))
    assert absence_loss(probs, torch.tensor([[False, False]])).item() == 0.0
    both = absence_loss(probs, torch.tensor([[True, True]])).item()  # class 0 = [[.5, .5], [1, .25]] adds its own
    assert both == pytest.approx(math.log(2) + (2 * math.log(2) - math.log(1e-6) - math.log(0.75)) / 4, rel=1e-6)
    with pytest.raises(ValueError, match="absent must have shape"):
        absence_loss(probs, torch.tensor([True, True]))


def test_ruled_out_loss_hand_values() -> None:
    # class 1 = [[.5, .5], [0, .75]], class 0 its complement; rule class 1 out of (0, 0) and (1, 1),
    # class 0 out of (1, 0): mean of -log(1 - p) over the three = (ln 2 + ln 4 + ln(1 / 1e-6)) / 3.
    p1 = torch.tensor([[0.5, 0.5], [0.0, 0.75]], dtype=torch.float64)
    probs = torch.stack([1 - p1, p1]).unsqueeze(0)
    ruled = torch.tensor([[[2, 0], [1, 2]]], dtype=torch.uint8)
    expected = (math.log(2) + math.log(4) - math.log(1e-6)) / 3
    assert ruled_out_loss(probs, ruled).item() == pytest.approx(expected, rel=1e-6)
    assert ruled_out_loss(probs, torch.zeros_like(ruled)).item() == 0.0  # nothing ruled out
    only_first = torch.tensor([[[2, 0], [0, 0]]], dtype=torch.uint8)
    assert ruled_out_loss(probs, only_first).item() == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="ruled_out must have shape"):
        ruled_out_loss(probs, ruled[0])


def test_ruled_out_loss_pulls_only_the_ruled_class_at_the_ruled_pixels() -> None:
    logits = torch.zeros((1, 3, 4, 4), dtype=torch.float64, requires_grad=True)
    ruled = torch.zeros((1, 4, 4), dtype=torch.uint8)
    ruled[0, 1, 2] = 3  # class 2 is not at (1, 2)
    ruled_out_loss(torch.softmax(logits, dim=1), ruled).backward()
    grad = logits.grad[0]
    assert grad[2, 1, 2] > 0  # descending lowers class 2's logit there
    assert grad[0, 1, 2] < 0 and grad[1, 1, 2] < 0  # and raises the others'
    grad[:, 1, 2] = 0
    assert torch.count_nonzero(grad) == 0  # no other pixel moves


@pytest.mark.parametrize("q", [0.01, 0.2])
def test_absence_pull_stays_near_one_where_a_zero_size_bound_grows_with_the_mass(q: float) -> None:
    """On a slice where class 1 is absent but predicted at q everywhere, the absence term's gradient
    summed over the pixels is 1 / (1 - q); the quadratic bound of 0 pulls with 2 q H W (÷ H W)."""
    h = w = 32
    p1 = torch.full((1, 1, h, w), q, dtype=torch.float64, requires_grad=True)
    probs = torch.cat([1 - p1, p1], dim=1)
    absence_loss(probs, torch.tensor([[False, True]])).sum().backward()
    assert p1.grad.sum().item() == pytest.approx(1 / (1 - q))
    p1.grad = None
    bounds = _bounds(2, 1, 0.0, 0.0)
    SizeConstraint(Penalty.QUADRATIC, weight=1.0)(torch.cat([1 - p1, p1], dim=1), bounds).backward()
    assert p1.grad.sum().item() == pytest.approx(2 * q * h * w)


@pytest.mark.parametrize(
    ("mix", "expected"), [(1.0, 0.335951), (0.7, 0.335951), (0.5, 0.316938), (0.2, 0.334453), (0.0, 0.334453)]
)
def test_mixed_pseudo_label_loss_hand_values(mix: float, expected: float) -> None:
    """Two pixels, two classes: the main decoder says (0.8, 0.3) for class 1, the second (0.4, 0.9).
    Mixed with a > 2/3 the label is (1, 0), with a < 1/4 (0, 1), between (1, 1); soft Dice with eps 1
    by hand."""
    p1 = torch.tensor([0.8, 0.3], dtype=torch.float64, requires_grad=True)
    q1 = torch.tensor([0.4, 0.9], dtype=torch.float64, requires_grad=True)
    p = torch.stack([1 - p1, p1]).reshape(1, 2, 1, 2)
    q = torch.stack([1 - q1, q1]).reshape(1, 2, 1, 2)
    loss = mixed_pseudo_label_loss(p, q, mix)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    loss.backward()
    assert p1.grad is not None and q1.grad is not None and p1.grad.abs().sum() > 0 and q1.grad.abs().sum() > 0
    agree = torch.stack([1 - p1, p1]).detach().round().reshape(1, 2, 1, 2)  # both confident and agreeing: no loss
    assert mixed_pseudo_label_loss(agree, agree).item() == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="differ in shape"):
        mixed_pseudo_label_loss(p, q[..., :1])
