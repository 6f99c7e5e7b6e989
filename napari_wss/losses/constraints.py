"""Thin modules that turn per-image bounds into one penalty for a batch.

The maths is in :mod:`napari_wss.losses.functional`; these modules only pick the penalty, apply
its weight and reduce: each image's penalty is summed over classes and bound sides, divided by its
area ``H·W``, and averaged over the batch. Averaging per image (not pooling the batch) keeps the
result independent of how slices are grouped into batches or spread over processes.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from napari_wss.config import Penalty
from napari_wss.losses.functional import (
    log_barrier_penalty,
    quadratic_penalty,
    soft_centroid,
    soft_size,
)


def bound_penalty(value: Tensor, bounds: Tensor, kind: Penalty, t: Tensor | float = 1.0) -> Tensor:
    """Per-image penalty of ``value`` against ``bounds``.

    Args:
        value: ``(B, ...)`` e.g. sizes ``(B, K)`` or centroids ``(B, K, 2)``.
        bounds: ``value.shape + (2,)`` lower/upper; ``NaN`` = no bound on that side.
        kind: the penalty.
        t: the log-barrier parameter.

    Returns:
        ``(B,)`` summed over every axis but the batch (not yet normalised by area).
    """
    if bounds.shape != (*value.shape, 2):
        raise ValueError(f"bounds must have shape {(*value.shape, 2)}, got {tuple(bounds.shape)}")
    lower, upper = bounds[..., 0], bounds[..., 1]
    if kind == Penalty.QUADRATIC:
        pen = quadratic_penalty(value, lower, upper)
    elif kind == Penalty.LOG_BARRIER:
        pen = log_barrier_penalty(value, lower, upper, t)
    else:
        return value.new_zeros(value.shape[0])
    return pen.flatten(1).sum(dim=1)


def bound_violation(value: Tensor, bounds: Tensor) -> Tensor:
    """How far ``value`` lies outside ``bounds`` (0 inside or where unbounded), element-wise."""
    lower, upper = bounds[..., 0], bounds[..., 1]
    below = torch.nan_to_num(lower - value, nan=0.0).clamp_min(0)
    above = torch.nan_to_num(value - upper, nan=0.0).clamp_min(0)
    return below + above


class _BoundConstraint(nn.Module):
    """Penalise ``measure(probs)`` against per-image bounds, ÷ H·W, mean over the batch."""

    measure = staticmethod(soft_size)

    def __init__(self, kind: Penalty, weight: float = 1e-2) -> None:
        super().__init__()
        self.kind = Penalty(kind)
        self.weight = weight

    def forward(self, probs: Tensor, bounds: Tensor, t: Tensor | float = 1.0) -> Tensor:
        area = probs.shape[2] * probs.shape[3]
        return self.weight * bound_penalty(self.measure(probs), bounds, self.kind, t).mean() / area


class SizeConstraint(_BoundConstraint):
    """Keep every class's soft size inside its per-image bounds ``(B, K, 2)``."""

    measure = staticmethod(soft_size)


class CentroidConstraint(_BoundConstraint):
    """Keep every class's soft centroid inside its per-image box ``(B, K, 2, 2)``."""

    measure = staticmethod(soft_centroid)
