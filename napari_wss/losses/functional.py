r"""Loss maths as pure tensor functions.

Shape vocabulary (used across the package):

* ``logits`` / ``probs``: ``(B, K, H, W)``; K counts the background as class 0. einsum
  strings use ``bkhw``.
* ``scribbles``: ``(B, H, W)`` integers in the scribble encoding of :mod:`napari_wss.data`:
  0 = not annotated, class ``c`` painted as ``c + 1``.
* ``value``: any shape, e.g. ``(B, K)`` sizes or ``(B, K, 2)`` centroids; ``lower``/``upper``
  broadcast against it. Size bounds per image are ``(B, K, 2)``, centroid bounds ``(B, K, 2, 2)``
  (last axis: lower, upper). ``NaN`` in a bound means "no bound on that side".

Normalisation: the penalties are computed on raw pixel quantities (size in pixels, centroid in
pixel coordinates) and divided by the slice area :math:`H W`, as in Kervadec et al. (MedIA 2019,
"Constrained-CNN losses for weakly supervised segmentation") and the log-barrier paper
(Kervadec et al., "Constrained deep networks: Lagrangian optimization via log-barrier
extensions"). Everything is vectorised: no Python loop runs over images, classes or bounds, and no
value is moved to the host, so a step never synchronises with the device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from napari_wss.data import NOT_ANNOTATED

# Mass below one pixel counts as one pixel in the centroid's denominator, so its gradient stays
# bounded (|d centroid / d p| <= H) when a class is predicted almost nowhere.
_MIN_CENTROID_MASS = 1.0


def _check_probs(probs: Tensor) -> None:
    if probs.ndim != 4:
        raise ValueError(f"expected probs of shape (B, K, H, W), got {tuple(probs.shape)}")


def soft_size(probs: Tensor) -> Tensor:
    r"""Soft size of every class: the sum of its probabilities over the slice.

    .. math:: s_{bk} = \sum_{h,w} p_{bkhw}

    Args:
        probs: ``(B, K, H, W)`` probabilities.

    Returns:
        ``(B, K)`` sizes in pixels.
    """
    _check_probs(probs)
    return probs.sum(dim=(2, 3))


def soft_centroid(probs: Tensor) -> Tensor:
    r"""Soft centroid of every class in pixel coordinates (row, column).

    .. math:: c_{bk} = \frac{\sum_{h,w} p_{bkhw}\,(h, w)}{\max(\sum_{h,w} p_{bkhw}, 1)}

    Args:
        probs: ``(B, K, H, W)`` probabilities.

    Returns:
        ``(B, K, 2)`` centroids; row 0 is the top of the slice.
    """
    _check_probs(probs)
    _, _, h, w = probs.shape
    rows = torch.arange(h, device=probs.device, dtype=probs.dtype)
    cols = torch.arange(w, device=probs.device, dtype=probs.dtype)
    row_mass = probs.sum(dim=3)  # (B, K, H)
    mass = row_mass.sum(dim=2).clamp_min(_MIN_CENTROID_MASS)
    moments = torch.stack((torch.einsum("bkh,h->bk", row_mass, rows), torch.einsum("bkhw,w->bk", probs, cols)), dim=-1)
    return moments / mass.unsqueeze(-1)


def quadratic_penalty(value: Tensor, lower: Tensor | float, upper: Tensor | float) -> Tensor:
    r"""Squared distance to the interval ``[lower, upper]`` (0 inside), element-wise.

    .. math:: q(v) = \max(0, l - v)^2 + \max(0, v - u)^2

    ``NaN`` bounds are treated as absent. Divide by :math:`HW` to get the papers' penalty.
    """
    return _one_side(lower - value, _quadratic_side) + _one_side(value - upper, _quadratic_side)


def log_barrier_extension(z: Tensor, t: Tensor | float) -> Tensor:
    r"""The log-barrier extension :math:`\tilde\psi_t` of a constraint :math:`z \le 0`.

    .. math::
        \tilde\psi_t(z) =
        \begin{cases}
            -\frac{1}{t}\log(-z) & z \le -\frac{1}{t^2} \\
            t z - \frac{1}{t}\log\frac{1}{t^2} + \frac{1}{t} & \text{otherwise}
        \end{cases}

    Value and slope are continuous at :math:`z = -1/t^2`; the linear branch keeps the loss finite
    for violated constraints, so no feasible starting point is needed (Kervadec et al.).

    Args:
        z: constraint values, any shape; ``z <= 0`` means satisfied.
        t: barrier parameter (> 0), a float or a tensor broadcasting against ``z``.

    Returns:
        a tensor shaped like ``z``.
    """
    t = torch.as_tensor(t, dtype=z.dtype, device=z.device)
    threshold = -1.0 / (t * t)
    # Clamp the log's argument so the branch torch.where discards stays finite: a NaN or inf there
    # would leak into the gradient.
    inside = -torch.log(-torch.minimum(z, threshold)) / t
    outside = t * z + 2.0 * torch.log(t) / t + 1.0 / t
    return torch.where(z <= threshold, inside, outside)


def log_barrier_penalty(value: Tensor, lower: Tensor | float, upper: Tensor | float, t: Tensor | float) -> Tensor:
    r"""Both sides of ``lower <= value <= upper`` through the log-barrier extension, element-wise.

    .. math:: b(v) = \tilde\psi_t(l - v) + \tilde\psi_t(v - u)

    The feasible side contributes a negative term that keeps the value away from the bound.
    ``NaN`` bounds are treated as absent.
    """
    return _one_side(lower - value, lambda z: log_barrier_extension(z, t)) + _one_side(
        value - upper, lambda z: log_barrier_extension(z, t)
    )


def _quadratic_side(z: Tensor) -> Tensor:
    return F.relu(z).square()


def _one_side(z: Tensor | float, fn) -> Tensor:  # type: ignore[no-untyped-def]
    """Apply a one-sided penalty where the bound exists (``z`` is NaN where it does not)."""
    z = torch.as_tensor(z)
    missing = torch.isnan(z)
    return torch.where(missing, torch.zeros_like(z), fn(torch.where(missing, torch.zeros_like(z), z)))


def partial_cross_entropy(
    logits: Tensor,
    scribbles: Tensor,
    *,
    temperature: float = 1.0,
    class_weights: Tensor | None = None,
) -> Tensor:
    r"""Cross-entropy on the annotated pixels only, averaged over them.

    .. math:: \mathcal{L} = -\frac{1}{|\Omega_L|} \sum_{i \in \Omega_L} \log p_{i, y_i}

    Pixels with ``scribbles == 0`` (not annotated) do not contribute. A batch with no annotated
    pixel gives 0 (with a gradient of 0), never NaN.

    Args:
        logits: ``(B, K, H, W)`` network outputs.
        scribbles: ``(B, H, W)`` integer scribble encoding (0 = not annotated, c + 1 = class c).
        temperature: the probabilities are ``softmax(temperature * logits)``.
        class_weights: optional ``(K,)`` weights.

    Returns:
        a scalar tensor.
    """
    if logits.ndim != 4 or scribbles.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(
            f"expected logits (B, K, H, W) and scribbles (B, H, W), got {tuple(logits.shape)} "
            f"and {tuple(scribbles.shape)}"
        )
    targets = scribbles.long() - 1
    ignore = NOT_ANNOTATED - 1
    per_pixel = F.cross_entropy(
        temperature * logits, targets, weight=class_weights, ignore_index=ignore, reduction="none"
    )
    annotated = (targets != ignore).to(per_pixel.dtype)
    weights = annotated if class_weights is None else class_weights[targets.clamp_min(0)] * annotated
    norm = weights.sum()
    return per_pixel.sum() / norm.clamp_min(1.0)


def stroke_balance(scribbles: Tensor, num_classes: int) -> Tensor:
    """``(K,)`` class weights for :func:`partial_cross_entropy` under which every class painted in
    ``scribbles`` (the scribble encoding, 0 = not annotated) counts equally: one over the class's
    painted pixels, 0 for a class not painted."""
    counts = torch.bincount(scribbles.reshape(-1).long(), minlength=num_classes + 1)[1 : num_classes + 1]
    counts = counts.to(torch.float32)
    return torch.where(counts > 0, 1.0 / counts.clamp_min(1.0), torch.zeros_like(counts))


def soft_dice_loss(probs: Tensor, onehot: Tensor, eps: float = 1.0) -> Tensor:
    r"""1 − mean soft Dice over classes present in the batch, for dense supervision.

    .. math:: 1 - \frac{1}{K}\sum_k \frac{2\sum p y + \epsilon}{\sum p + \sum y + \epsilon}
    """
    inter = torch.einsum("bkhw,bkhw->k", probs, onehot)
    denom = probs.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
    return 1.0 - ((2.0 * inter + eps) / (denom + eps)).mean()


def mixed_pseudo_label_loss(probs: Tensor, aux_probs: Tensor, mix: float | None = None) -> Tensor:
    r"""Dynamically mixed pseudo-label supervision of two decoders (Luo et al., MICCAI 2022).

    The pseudo-label is :math:`\hat y = \arg\max_k\,(a\,p_k + (1 - a)\,q_k)` with ``a = mix``
    (default: drawn uniformly from [0, 1] at each call), taken without gradient; both outputs are
    pulled towards it by soft Dice: :math:`\tfrac12(\mathrm{Dice}(p, \hat y) + \mathrm{Dice}(q, \hat y))`.

    Args:
        probs, aux_probs: ``(B, K, H, W)`` probabilities of the two decoders.
        mix: the main decoder's share ``a`` in the mixture.
    """
    if probs.shape != aux_probs.shape:
        raise ValueError(f"the two decoders' outputs differ in shape: {tuple(probs.shape)} vs {tuple(aux_probs.shape)}")
    a = float(torch.rand(()).item()) if mix is None else float(mix)
    with torch.no_grad():
        target = (a * probs + (1.0 - a) * aux_probs).argmax(1)
        onehot = F.one_hot(target, probs.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)
    return 0.5 * (soft_dice_loss(probs, onehot) + soft_dice_loss(aux_probs, onehot))


def entropy(probs: Tensor, eps: float = 1e-8) -> Tensor:
    r"""Shannon entropy per pixel, ``(B, H, W)``: :math:`-\sum_k p_k \log p_k`."""
    return -(probs * (probs + eps).log()).sum(dim=1)


def gated_crf_energy(
    probs: Tensor, image: Tensor, *, radius: int = 2, sigma_rgb: float = 0.1, sigma_xy: float = 3.0
) -> Tensor:
    r"""Local pairwise (dense-CRF-like) regularisation energy, normalised per pixel.

    .. math::
        E = \frac{1}{N}\sum_i \sum_{j \in \mathcal{N}_r(i)} w_{ij}\,\big(1 - \langle p_i, p_j\rangle\big),
        \quad w_{ij} = \exp\!\Big(-\frac{\|I_i - I_j\|^2}{2\sigma_{rgb}^2} - \frac{\|x_i - x_j\|^2}{2\sigma_{xy}^2}\Big)

    Neighbours that look alike but are predicted differently cost energy, so labels spread from the
    scribbles up to image edges (the regularised losses of Tang et al., ECCV 2018, and the gated CRF
    loss of Obukhov et al., 2019, restricted to a small window). ``unfold`` builds all neighbours at
    once; memory is ``(2r+1)^2`` times the probabilities.

    Args:
        probs: ``(B, K, H, W)`` probabilities.
        image: ``(B, C, H, W)`` intensities scaled to about [0, 1].
        radius: half-size of the window.
        sigma_rgb: intensity bandwidth.
        sigma_xy: spatial bandwidth in pixels.
    """
    b, k, h, w = probs.shape
    size = 2 * radius + 1
    p_n = F.unfold(probs, size, padding=radius).view(b, k, size * size, h, w)
    i_n = F.unfold(image, size, padding=radius).view(b, image.shape[1], size * size, h, w)
    # Zero padding makes out-of-image neighbours have p = 0, so they cost 1 − 0: mask them out.
    valid = F.unfold(torch.ones_like(image[:, :1]), size, padding=radius).view(b, 1, size * size, h, w)
    offsets = torch.arange(size, device=probs.device, dtype=probs.dtype) - radius
    dist2 = (offsets.view(-1, 1) ** 2 + offsets.view(1, -1) ** 2).reshape(1, 1, size * size, 1, 1)
    affinity = (
        torch.exp(
            -((i_n - image.unsqueeze(2)) ** 2).sum(dim=1, keepdim=True) / (2 * sigma_rgb**2) - dist2 / (2 * sigma_xy**2)
        )
        * valid
    )
    centre = size * size // 2
    affinity[:, :, centre] = 0.0
    agreement = (p_n * probs.unsqueeze(2)).sum(dim=1, keepdim=True)
    return (affinity * (1.0 - agreement)).sum() / (b * h * w)


def absence_loss(probs: Tensor, absent: Tensor, eps: float = 1e-6) -> Tensor:
    r"""Per-image "this class is not on this slice" loss: a negative label on every pixel.

    .. math:: a_b = \sum_{k \in A_b} \frac{1}{HW} \sum_{h,w} -\log(1 - p_{bkhw})

    where :math:`A_b` are the classes ``absent[b]`` marks. Averaged over the pixels, its gradient
    on a slice totals about 1 per absent class whatever the class's predicted mass, where a size
    bound of 0 in the quadratic penalty pushes in proportion to that mass: on a slice the structure
    is not on, a network that still spreads it there gets the same pull, not tens of times the
    scribbles' (which, on small end-systolic hearts, erased the structure everywhere).

    Args:
        probs: ``(B, K, H, W)`` probabilities.
        absent: ``(B, K)`` booleans (or 0/1).

    Returns:
        ``(B,)`` summed over the absent classes.
    """
    _check_probs(probs)
    if absent.shape != probs.shape[:2]:
        raise ValueError(f"absent must have shape {tuple(probs.shape[:2])}, got {tuple(absent.shape)}")
    per_class = -torch.log1p(-probs.clamp(max=1.0 - eps)).mean(dim=(2, 3))  # (B, K)
    return (per_class * absent.to(per_class.dtype)).sum(dim=1)


def ruled_out_loss(probs: Tensor, ruled_out: Tensor, eps: float = 1e-6) -> Tensor:
    r"""Negative labels on single pixels: class c is not at the pixels ``ruled_out`` marks c + 1.

    .. math:: r = \frac{1}{|R|} \sum_{(b,h,w) \in R} -\log(1 - p_{b,c_{bhw},h,w})

    averaged over the ruled-out pixels R of the batch, as the partial cross-entropy averages over
    the painted ones (0 when there are none).

    Args:
        probs: ``(B, K, H, W)`` probabilities.
        ruled_out: ``(B, H, W)`` integers, 0 = nothing ruled out, c + 1 = class c ruled out.
    """
    _check_probs(probs)
    if ruled_out.shape != (probs.shape[0], *probs.shape[2:]):
        raise ValueError(
            f"ruled_out must have shape {(probs.shape[0], *probs.shape[2:])}, got {tuple(ruled_out.shape)}"
        )
    index = ruled_out.long()
    marked = index > 0
    p = probs.gather(1, (index - 1).clamp_min(0).unsqueeze(1)).squeeze(1)
    loss = -torch.log1p(-p.clamp(max=1.0 - eps))
    return (loss * marked).sum() / marked.sum().clamp_min(1)


def barrier_threshold(t: float) -> float:
    """The point ``-1/t²`` where the log-barrier extension switches to its linear branch."""
    return -1.0 / (t * t)


__all__ = [
    "absence_loss",
    "barrier_threshold",
    "entropy",
    "gated_crf_energy",
    "log_barrier_extension",
    "log_barrier_penalty",
    "partial_cross_entropy",
    "quadratic_penalty",
    "soft_centroid",
    "soft_dice_loss",
    "soft_size",
]
