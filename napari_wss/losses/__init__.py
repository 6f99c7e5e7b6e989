"""Losses for weakly supervised segmentation: partial cross-entropy, size/centroid penalties, absence."""

from napari_wss.losses.constraints import (
    CentroidConstraint,
    SizeConstraint,
    bound_penalty,
    bound_violation,
)
from napari_wss.losses.functional import (
    absence_loss,
    entropy,
    gated_crf_energy,
    log_barrier_extension,
    log_barrier_penalty,
    mixed_pseudo_label_loss,
    partial_cross_entropy,
    quadratic_penalty,
    ruled_out_loss,
    soft_centroid,
    soft_dice_loss,
    soft_size,
    stroke_balance,
)

__all__ = [
    "CentroidConstraint",
    "SizeConstraint",
    "absence_loss",
    "bound_penalty",
    "bound_violation",
    "entropy",
    "gated_crf_energy",
    "log_barrier_extension",
    "log_barrier_penalty",
    "mixed_pseudo_label_loss",
    "partial_cross_entropy",
    "quadratic_penalty",
    "ruled_out_loss",
    "soft_centroid",
    "soft_dice_loss",
    "soft_size",
    "stroke_balance",
]
