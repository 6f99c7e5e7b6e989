"""The one training loop (a generator), prediction and checkpoints.

``train(...)`` yields a small :class:`TrainEvent` after every optimisation step. The napari widget
runs it in a worker thread, the CLI and the tests iterate it directly; stopping means closing the
generator (or simply not asking for the next event). New bounds can be sent into the running
generator (``gen.send(BoundsUpdate(...))``) and apply from the next step.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from napari_wss.config import (
    INTERACTIVE_SIZE,
    INTERACTIVE_SIZE_FP32,
    TTA_CHOICES,
    ClassPrior,
    Mode,
    Penalty,
    TrainConfig,
)
from napari_wss.data import Batch, DeviceSlices, Normalization, SliceDataset, SliceGeometry, crop_around
from napari_wss.errors import InputError
from napari_wss.losses.constraints import CentroidConstraint, SizeConstraint, bound_violation
from napari_wss.losses.functional import (
    absence_loss,
    entropy,
    gated_crf_energy,
    mixed_pseudo_label_loss,
    partial_cross_entropy,
    ruled_out_loss,
    soft_centroid,
    soft_dice_loss,
    soft_size,
    stroke_balance,
)
from napari_wss.metrics import dice_per_class
from napari_wss.models.unet import build_model
from napari_wss.postprocess import (
    LARGEST_COMPONENT,
    clear_absent,
    enclosures,
    heart_rules,
    keep_largest_component,
    limit_myocardium_brightness,
    lv_hull_classes,
    septum_classes,
)

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "napari-wss-checkpoint"
MIN_STEPS_PER_EPOCH = 20  # t grows at most every 20 steps when no epoch length is set
CHECKPOINT_VERSION = 1


class TrainingError(InputError):
    """Training cannot go on; the message says why and what to change."""


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit device that is missing is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:  # torch's own message is a long list of device types
        raise InputError(f"device must be auto, cpu, cuda, cuda:N or mps, got {name!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' was asked for but no CUDA GPU is available; use 'auto' or 'cpu'")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError("device 'mps' was asked for but Apple's MPS is not available; use 'auto' or 'cpu'")
    return dev


def bf16_fast(device: torch.device) -> bool:
    """Whether bf16 autocast (and channels_last) speeds this device up.

    True on CUDA, and on CPUs with native bf16 arithmetic: AMX tiles (a 2-core Intel Xeon: bf16
    convolutions about five times faster than fp32) or AVX512-BF16 (a 2-core AMD EPYC: a training
    step of the interactive network 294 -> 177 ms, of the width-32 one at 256² 15.4 -> 5.3 s).
    """
    if device.type == "cuda":
        return True
    if device.type == "cpu":
        probes = (getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"))
        return any(bool(probe and probe()) for probe in probes)
    return False


def interactive_size(device: torch.device) -> int:
    """The widget's network size for ``device`` (its *auto* setting): ``config.INTERACTIVE_SIZE``, or
    ``config.INTERACTIVE_SIZE_FP32`` on a CPU where :func:`bf16_fast` is false."""
    return INTERACTIVE_SIZE_FP32 if device.type == "cpu" and not bf16_fast(device) else INTERACTIVE_SIZE


# --------------------------------------------------------------------------------------------
# State and checkpoints


@dataclass
class TrainState:
    """Everything needed to continue a run or to predict with it (mutated in place by train())."""

    model: nn.Module
    config: TrainConfig
    class_names: tuple[str, ...]
    priors: tuple[ClassPrior, ...] = ()
    normalization: Normalization = field(default_factory=Normalization)
    arch: str = "unet"
    step: int = 0
    t: float = 0.0
    optimizer_state: dict[str, Any] | None = None
    geometry: SliceGeometry | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        config: TrainConfig,
        class_names: Sequence[str],
        *,
        priors: Sequence[ClassPrior] = (),
        arch: str = "unet",
        normalization: Normalization | None = None,
    ) -> TrainState:
        torch.manual_seed(config.seed)
        model = build_model(
            len(class_names), width=config.width, depth=config.depth, arch=arch, aux_decoder=config.aux_decoder
        )
        return cls(
            model,
            config,
            tuple(class_names),
            tuple(priors),
            normalization or Normalization(),
            arch,
            t=config.t0,
        )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        module = self.model.module if hasattr(self.model, "module") else self.model
        module = getattr(module, "_orig_mod", module)
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "arch": self.arch,
            "model": {k: v.detach().cpu() for k, v in module.state_dict().items()},
            "config": self.config.to_dict(),
            "class_names": list(self.class_names),
            "priors": [p.to_dict() for p in self.priors],
            "normalization": self.normalization.to_dict(),
            "step": self.step,
            "t": self.t,
            "optimizer": self.optimizer_state,
            "geometry": None if self.geometry is None else self.geometry.to_dict(),
            "extra": self.extra,
        }


def save_checkpoint(state: TrainState, path: str | os.PathLike[str]) -> Path:
    """Write weights, config, bounds, class names and normalisation to one file, atomically.

    The file is written next to its destination under a temporary name, flushed to disk and then
    renamed over the destination, so a crash mid-write leaves the previous checkpoint intact.

    Raises:
        InputError: the folder is missing or not writable.
        TrainingError: the weights are NaN or infinite (the destination is left as it was).
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"cannot save the model: folder {folder} does not exist")
    payload = state.to_dict()
    if not all(bool(torch.isfinite(v).all()) for v in payload["model"].values() if v.is_floating_point()):
        # A step whose gradients overflowed leaves NaN weights while its loss was still finite;
        # writing them would replace the last good model with a useless one.
        raise TrainingError(
            f"the model's weights became NaN or infinite by step {state.step}: not saved, so {path.name} keeps the "
            f"last good model; lower the learning rate (now {state.config.lr:g}) or the penalty weights, and check "
            "the bounds"
        )
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise InputError(f"cannot save the model in {folder}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise InputError(f"cannot save the model to {path}: {exc.strerror or exc}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path: str | os.PathLike[str], *, num_classes: int | None = None) -> TrainState:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises:
        InputError: missing, damaged or foreign file, or a class count other than ``num_classes``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"model file {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for damaged files
        log.debug("checkpoint load failed", exc_info=True)
        raise InputError(f"{path.name} is not a napari-wss model file or is damaged ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path.name} is not a napari-wss model file")
    names = tuple(payload["class_names"])
    if num_classes is not None and len(names) != num_classes:
        raise InputError(
            f"the model in {path.name} segments {len(names)} classes ({', '.join(names)}) "
            f"but {num_classes} are defined here"
        )
    config = TrainConfig.from_dict(payload["config"])
    if not isinstance(payload.get("model"), dict):
        raise InputError(f"{path.name} holds no network weights (damaged file?)")
    model = build_model(
        len(names),
        width=config.width,
        depth=config.depth,
        arch=payload.get("arch", "unet"),
        aux_decoder=any(k.startswith("aux.") for k in payload["model"]),
    )
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError:
        raise InputError(f"the weights in {path.name} do not fit its own network settings (damaged file?)") from None
    geometry = payload.get("geometry")
    return TrainState(
        model,
        config,
        names,
        tuple(ClassPrior.from_dict(p) for p in payload.get("priors", [])),
        Normalization(**payload.get("normalization", {})),
        payload.get("arch", "unet"),
        int(payload.get("step", 0)),
        float(payload.get("t", config.t0)),
        payload.get("optimizer"),
        None if geometry is None else SliceGeometry.from_dict(geometry),
        dict(payload.get("extra", {})),
    )


# --------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True)
class BoundsUpdate:
    """New bounds for every training slice, in network pixels: ``(N, K, 2)`` and ``(N, K, 2, 2)``."""

    size_bounds: np.ndarray
    centroid_bounds: np.ndarray


@dataclass(frozen=True)
class TrainEvent:
    """What one step reports. Sizes and centroids are in network pixels, batch means.

    Attributes:
        step: steps done so far (1 after the first).
        epoch: epochs done so far (t grows at each epoch end).
        t: the log-barrier parameter used in this step.
        loss: the total loss.
        parts: the weighted loss terms (``ce``, ``absence``, ``size``, ``centroid``, ``crf``, ``entropy``, ``mixed``,
            ``ruled_out``).
        sizes: ``(K,)`` soft sizes.
        size_bounds: ``(K, 2)`` mean bounds of the batch's slices (NaN = unbounded).
        size_violation: ``(K,)`` mean distance of the size outside its bounds (pixels).
        centroids: ``(K, 2)`` soft centroids.
        centroid_violation: ``(K,)`` mean distance of the centroid outside its box (pixels).
        preview: ``(P, S, S)`` uint8 predicted labels of the preview slices, or None.
        preview_index: dataset rows of the preview slices.
        dice: ``(K,)`` Dice of the preview against the dataset's labels, when it has them.
        elapsed: seconds since the generator started.
        slices_per_s: training slices per second over the last step.
    """

    step: int
    epoch: int
    t: float
    loss: float
    parts: dict[str, float]
    sizes: np.ndarray
    size_bounds: np.ndarray
    size_violation: np.ndarray
    centroids: np.ndarray
    centroid_violation: np.ndarray
    preview: np.ndarray | None = None
    preview_index: np.ndarray | None = None
    dice: np.ndarray | None = None
    elapsed: float = 0.0
    slices_per_s: float = 0.0


# --------------------------------------------------------------------------------------------
# Loss


@dataclass
class Objective:
    """The weighted sum of the terms a mode uses, computed in float32."""

    config: TrainConfig

    def __post_init__(self) -> None:
        c = self.config
        kind = c.penalty if c.uses_priors else Penalty.NONE
        self.size = SizeConstraint(kind, c.size_weight)
        self.centroid = CentroidConstraint(kind, c.centroid_weight)

    def __call__(
        self,
        logits: Tensor,
        batch: Batch,
        t: Tensor | float,
        ramp: float = 1.0,
        aux_logits: Tensor | None = None,
        mix: float | None = None,
    ) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """Returns ``(total, parts, probs)``; ``ramp`` in [0, 1] scales every term but the cross-entropy.

        ``aux_logits``: the second decoder's output when ``mixed_pseudo_weight`` is on; it learns
        the strokes too, and ``mix`` (default: drawn from [0, 1]) weighs the main decoder in the
        mixed pseudo-label.
        """
        c = self.config
        logits = logits.float()
        probs = F.softmax(c.temperature * logits, dim=1)
        parts: dict[str, Tensor] = {}
        if c.mode == Mode.FULL:
            if batch.labels is None:
                raise InputError("mode 'full' needs dense labels (a ground-truth mask)")
            onehot = F.one_hot(batch.labels, probs.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)
            parts["ce"] = c.ce_weight * (
                F.cross_entropy(c.temperature * logits, batch.labels) + soft_dice_loss(probs, onehot)
            )
        elif c.uses_scribbles:
            if batch.scribbles is None:
                raise InputError(f"mode '{c.mode.value}' needs scribbles")
            weights = stroke_balance(batch.scribbles, logits.shape[1]) if c.balanced_ce else None
            parts["ce"] = c.ce_weight * partial_cross_entropy(
                logits, batch.scribbles, temperature=c.temperature, class_weights=weights
            )
            if aux_logits is not None:
                aux_logits = aux_logits.float()
                aux_ce = partial_cross_entropy(
                    aux_logits, batch.scribbles, temperature=c.temperature, class_weights=weights
                )
                parts["ce"] = 0.5 * (parts["ce"] + c.ce_weight * aux_ce)
        if c.uses_priors:
            size_bounds = batch.size_bounds
            if c.absence_weight > 0:
                # Absent classes (a size bound of 0) get their own term instead of the size penalty.
                absent = size_bounds[..., 1] == 0
                parts["absence"] = c.absence_weight * absence_loss(probs, absent).mean()
                size_bounds = torch.where(absent.unsqueeze(-1), torch.full_like(size_bounds, float("nan")), size_bounds)
            if c.size_weight > 0:
                parts["size"] = self.size(probs, size_bounds, t)
            if c.centroid_weight > 0:
                parts["centroid"] = self.centroid(probs, batch.centroid_bounds, t)
        if c.mode != Mode.FULL:
            if c.crf_weight > 0:
                parts["crf"] = c.crf_weight * gated_crf_energy(probs, batch.images)
            if c.entropy_weight > 0:
                parts["entropy"] = c.entropy_weight * entropy(probs).mean()
            if c.ruled_out_weight > 0 and batch.ruled_out is not None:
                parts["ruled_out"] = c.ruled_out_weight * ruled_out_loss(probs, batch.ruled_out)
            if c.mixed_pseudo_weight > 0 and aux_logits is not None:
                parts["mixed"] = c.mixed_pseudo_weight * mixed_pseudo_label_loss(
                    probs, F.softmax(c.temperature * aux_logits, dim=1), mix
                )
        if ramp < 1.0:
            parts = {name: (v if name == "ce" else ramp * v) for name, v in parts.items()}
        total = torch.stack(list(parts.values())).sum() if parts else logits.sum() * 0.0
        return total, parts, probs


# --------------------------------------------------------------------------------------------
# The loop


def _default_preview(n: int, limit: int = 16) -> np.ndarray:
    return np.arange(n) if n <= limit else np.linspace(0, n - 1, limit).round().astype(int)


def _check_supervision(data: SliceDataset, config: TrainConfig, names: Sequence[str]) -> None:
    if len(data) == 0:
        raise InputError("there are no slices to train on")
    if config.mode == Mode.FULL and data.labels is None:
        raise InputError("mode 'full' needs dense labels (a ground-truth mask)")
    if config.uses_scribbles:
        if data.scribbles is None or not (data.scribbles > 0).any():
            raise InputError("no scribbles are painted: paint a few strokes of each class first")
        painted = {int(v) - 1 for v in np.unique(data.scribbles) if v > 0}
        has_bound = ~np.all(np.isnan(data.size_bounds), axis=(0, 2)) | ~np.all(
            np.isnan(data.centroid_bounds), axis=(0, 2, 3)
        )
        lonely = [names[c] for c in range(data.num_classes) if c not in painted and not has_bound[c]]
        if lonely:
            raise InputError(
                f"class {', '.join(repr(n) for n in lonely)} has neither scribbles nor bounds: "
                "paint it, give it a size or position bound, or remove it"
            )
    if config.ruled_out_weight > 0 and config.mode != Mode.FULL and data.ruled_out is None:
        raise InputError("a ruled-out weight needs a ruled-out map (data.rule_out_brighter); none was made")
    if config.mode == Mode.PRIORS and np.all(np.isnan(data.size_bounds)) and np.all(np.isnan(data.centroid_bounds)):
        raise InputError("mode 'priors' needs at least one size or centroid bound")


def train(
    data: SliceDataset,
    config: TrainConfig,
    *,
    class_names: Sequence[str] | None = None,
    state: TrainState | None = None,
    preview_index: Sequence[int] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 0,
    arch: str = "unet",
    wrap_model: Callable[[nn.Module], nn.Module] | None = None,
    shard: tuple[int, int] = (0, 1),
    is_main: bool = True,
    sync_ok: Callable[[bool], bool] | None = None,
) -> Generator[TrainEvent, Any, TrainState]:
    """Train and yield a :class:`TrainEvent` after every step; return the final :class:`TrainState`.

    Args:
        data: slices at network resolution with scribbles / labels / bounds.
        config: the settings; ``config.steps`` counts the steps of this call.
        class_names: names of the K classes (default ``class0..``); ignored when ``state`` is given.
        state: continue from a state (e.g. a loaded checkpoint); it is updated in place, so the
            caller can save or predict with it after stopping the generator at any point.
        preview_index: dataset rows shown in previews (default: up to 16 spread over the data).
        checkpoint: a path written atomically every ``checkpoint_every`` steps and at the end.
        checkpoint_every: 0 = only at the end.
        arch: ``unet`` or ``shallow`` for a new state.
        wrap_model: wraps the device model for the step (e.g. DistributedDataParallel).
        shard: ``(rank, world_size)``: this process trains on its share of every global batch.
        is_main: only the main process writes checkpoints and computes previews.
        sync_ok: called every step with whether this process's loss is finite, before the
            optimiser step; returns whether every process's was (an all-reduce), so all
            processes stop at the same step instead of leaving some waiting in a collective.

    Sending a :class:`BoundsUpdate` into the generator replaces the bounds from the next step.

    Raises:
        InputError / TrainingError: bad supervision, a diverging loss, or no GPU memory left.
    """
    k = data.num_classes
    if state is None:
        names = tuple(class_names) if class_names is not None else tuple(f"class{i}" for i in range(k))
        if len(names) != k:
            raise InputError(f"{len(names)} class names for bounds of {k} classes")
        _check_supervision(data, config, names)
        state = TrainState.create(config, names, arch=arch)
    else:
        _check_supervision(data, config, state.class_names if state.num_classes == k else [str(c) for c in range(k)])
        if state.num_classes != k:
            raise InputError(
                f"the model segments {state.num_classes} classes but the data defines {k}; "
                "load a model trained for these classes or start a new one"
            )
        state.config = config
    if config.aux_decoder and getattr(state.model, "aux", None) is None:
        raise InputError(
            "the mixed pseudo-label term needs a network with a second decoder; this model was built "
            "without one: start a new model or set the term's weight to 0"
        )
    device = resolve_device(config.device)
    torch.manual_seed(config.seed + state.step)
    on_cuda = device.type == "cuda"
    amp = config.amp and bf16_fast(device)
    if on_cuda:
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick its fastest kernels
    model = state.model.to(device)
    if amp:
        model = model.to(memory_format=torch.channels_last)
    step_model: nn.Module = model if wrap_model is None else wrap_model(model)
    if config.compile and on_cuda:
        step_model = torch.compile(step_model)  # type: ignore[assignment]
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True if on_cuda else None
    )
    if state.optimizer_state is not None:
        with contextlib.suppress(ValueError, KeyError):
            optimizer.load_state_dict(state.optimizer_state)
            for group in optimizer.param_groups:
                group["lr"] = config.lr
    slices = DeviceSlices(data, device, seed=config.seed + state.step, shard=shard)
    objective = Objective(config)
    global_batch = config.batch_size * shard[1]  # every process draws its own batch_size slices
    steps_per_epoch = config.steps_per_epoch or max(MIN_STEPS_PER_EPOCH, math.ceil(len(data) / global_batch))
    preview = np.asarray(preview_index if preview_index is not None else _default_preview(len(data)))
    preview_images = torch.from_numpy(data.images[preview]).to(device)
    preview_labels = None if data.labels is None else data.labels[preview]
    calibration = _calibration_images(slices, config)
    t_tensor = torch.tensor(state.t, device=device)
    started = time.perf_counter()
    last = started
    stop_at = state.step + config.steps
    try:
        while state.step < stop_at:
            model.train()
            batch = slices.batch(
                config.batch_size, augment=config.augment, rotate=config.rotate, zoom=config.zoom, patch=config.patch
            )
            x = batch.images
            if amp:
                x = x.contiguous(memory_format=torch.channels_last)
            t_tensor.fill_(state.t)
            if config.lr_schedule == "cosine":
                progress = (state.step - (stop_at - config.steps)) / config.steps
                for group in optimizer.param_groups:
                    group["lr"] = config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
            optimizer.zero_grad(set_to_none=True)
            try:
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    out = step_model(x, aux=True) if config.aux_decoder else step_model(x)
                logits, aux_logits = out if config.aux_decoder else (out, None)
                ramp = min(1.0, (state.step + 1) / config.penalty_warmup) if config.penalty_warmup else 1.0
                loss, parts, probs = objective(logits, batch, t_tensor, ramp, aux_logits)
                loss.backward()
            except torch.cuda.OutOfMemoryError:
                optimizer.zero_grad(set_to_none=True)
                del batch, x
                release_memory()
                raise TrainingError(
                    f"the GPU ran out of memory at batch {config.batch_size}, width {config.width}, "
                    f"size {config.size}: lower the batch size (e.g. {max(1, config.batch_size // 2)}) "
                    "or the network width, or train on the CPU"
                ) from None
            with torch.no_grad():
                stats = _step_stats(loss, parts, probs.detach(), batch)
            values = stats.cpu().numpy()  # the step's one host synchronisation
            finite = bool(np.isfinite(values[0]))
            if sync_ok is not None and not sync_ok(finite) and finite:
                optimizer.zero_grad(set_to_none=True)
                raise TrainingError(
                    f"training stopped at step {state.step + 1}: the loss became NaN or infinite in another "
                    f"process; lower the learning rate (now {config.lr:g}) or the penalty weights, and check "
                    "the bounds"
                )
            if not finite:
                optimizer.zero_grad(set_to_none=True)
                raise TrainingError(
                    f"training diverged at step {state.step + 1} (the loss became {values[0]}): lower the "
                    f"learning rate (now {config.lr:g}) or the penalty weights, and check the bounds "
                    "(a lower bound above what the image can hold?)"
                )
            optimizer.step()
            state.step += 1
            t_used = state.t
            if state.step % steps_per_epoch == 0:
                state.t = min(state.t * config.t_growth, config.t_max)
            now = time.perf_counter()
            event = _make_event(values, list(parts), k, state, t_used, steps_per_epoch, now - started)
            event = _with_rate(event, global_batch / max(now - last, 1e-9))
            last = now
            if is_main and config.preview_every and (state.step % config.preview_every == 0 or state.step == stop_at):
                labels = predict_slices(
                    model,
                    preview_images,
                    batch_size=max(config.batch_size, 8),
                    amp=config.amp,
                    calibrate_on=calibration,
                ).argmax(1)
                pv = labels.to(torch.uint8).cpu().numpy()
                dice = None if preview_labels is None else dice_per_class(pv, preview_labels, k)
                event = _with_preview(event, pv, preview, dice)
            if is_main and checkpoint is not None and checkpoint_every and state.step % checkpoint_every == 0:
                state.optimizer_state = optimizer.state_dict()
                save_checkpoint(state, checkpoint)
            update = yield event
            if isinstance(update, BoundsUpdate):
                slices.set_bounds(update.size_bounds, update.centroid_bounds)
                data.size_bounds = np.asarray(update.size_bounds, dtype=np.float32)
                data.centroid_bounds = np.asarray(update.centroid_bounds, dtype=np.float32)
        calibrate_batchnorm(model, calibration, amp=config.amp)
        state.optimizer_state = optimizer.state_dict()
        if is_main and checkpoint is not None:
            save_checkpoint(state, checkpoint)
    except (GeneratorExit, KeyboardInterrupt):
        # Stopped by the caller (the widget's Stop, Ctrl-C): what it keeps should predict as well
        # as the network can, so the statistics are brought up to date before handing it back.
        with contextlib.suppress(Exception):
            calibrate_batchnorm(model, calibration, amp=config.amp)
        raise
    finally:
        state.optimizer_state = _cpu_state(optimizer.state_dict())
        state.model = model.to("cpu").to(memory_format=torch.contiguous_format)
        del optimizer, slices, preview_images, calibration
        release_memory()
    return state


def _cpu_state(opt_state: dict[str, Any]) -> dict[str, Any]:
    def move(v: Any) -> Any:
        if isinstance(v, Tensor):
            return v.detach().cpu()
        if isinstance(v, dict):
            return {kk: move(vv) for kk, vv in v.items()}
        if isinstance(v, list):
            return [move(vv) for vv in v]
        return v

    return move(opt_state)  # type: ignore[no-any-return]


def release_memory() -> None:
    """Give cached GPU memory back to the driver (training ended, stopped or failed)."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        clear = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
        if clear is not None:  # cuBLAS keeps a workspace per thread (64 MB seen on an H100)
            clear()


def _step_stats(loss: Tensor, parts: dict[str, Tensor], probs: Tensor, batch: Batch) -> Tensor:
    sizes = soft_size(probs)
    cents = soft_centroid(probs)
    size_v = bound_violation(sizes, batch.size_bounds).mean(0)
    cent_v = bound_violation(cents, batch.centroid_bounds).norm(dim=-1).mean(0)
    bounds = torch.nanmean(batch.size_bounds, dim=0).flatten()
    return torch.cat(
        [
            loss.detach().view(1),
            torch.stack([p.detach() for p in parts.values()]) if parts else loss.new_zeros(0),
            sizes.mean(0),
            cents.mean(0).flatten(),
            size_v,
            cent_v,
            bounds,
        ]
    ).float()


def _make_event(
    values: np.ndarray, names: list[str], k: int, state: TrainState, t: float, steps_per_epoch: int, elapsed: float
) -> TrainEvent:
    i = 1 + len(names)
    parts = {n: float(v) for n, v in zip(names, values[1:i])}
    sizes = values[i : i + k]
    cents = values[i + k : i + 3 * k].reshape(k, 2)
    size_v = values[i + 3 * k : i + 4 * k]
    cent_v = values[i + 4 * k : i + 5 * k]
    bounds = values[i + 5 * k : i + 7 * k].reshape(k, 2)
    return TrainEvent(
        step=state.step,
        epoch=state.step // steps_per_epoch,
        t=t,
        loss=float(values[0]),
        parts=parts,
        sizes=sizes,
        size_bounds=bounds,
        size_violation=size_v,
        centroids=cents,
        centroid_violation=cent_v,
        elapsed=elapsed,
    )


def _with_rate(event: TrainEvent, rate: float) -> TrainEvent:
    return replace(event, slices_per_s=rate)


def _with_preview(event: TrainEvent, preview: np.ndarray, index: np.ndarray, dice: np.ndarray | None) -> TrainEvent:
    return replace(event, preview=preview, preview_index=index, dice=dice)


# --------------------------------------------------------------------------------------------
# Prediction


CALIBRATION_SLICES = 64  # batch-norm statistics are re-estimated on at most this many slices


def _calibration_images(slices: DeviceSlices, config: TrainConfig) -> Tensor:
    """``(N, S, S)`` slices to re-estimate batch norm on: up to :data:`CALIBRATION_SLICES` spread
    over the data, whole; with ``config.patch``, windows cut from them as training cuts its own
    (a fixed draw): the statistics the network learnt with are those of windows, and whole slices
    (more of the dark surroundings) would shift every normalised feature at prediction."""
    idx = torch.from_numpy(_default_preview(len(slices), CALIBRATION_SLICES)).to(slices.device)
    if not config.patch:
        return slices.images[idx]
    generator = torch.Generator(device=slices.device).manual_seed(config.seed)
    return slices.windows(idx, config.patch, generator).images[:, 0]


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, images: Tensor | np.ndarray, *, amp: bool = True) -> None:
    """Set every batch-norm layer's running statistics to those of ``images`` (``(N, S, S)``).

    During training batch norm normalises with each small batch's statistics and keeps running
    averages (momentum 0.1) for prediction. While the weights still change fast — the first
    minutes of interactive training — those averages lag behind the network, and a prediction
    with them is worse than the network is ("precise batch norm", Wu & Johnson 2021). One forward
    pass over the unaugmented slices in training mode, with cumulative averaging, replaces them
    by the current network's statistics on the data it segments. Uses no labels; restores the
    model's mode and momenta. A model without batch norm is left as it is, and so are the layers
    the plain forward pass does not reach (the second decoder of ``aux_decoder``, which would
    otherwise keep reset statistics: mean 0, variance 1).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    param = next(model.parameters())
    x = torch.as_tensor(images, dtype=torch.float32).to(param.device)
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.shape[0] > CALIBRATION_SLICES:
        x = x[_default_preview(x.shape[0], CALIBRATION_SLICES)]
    amp = amp and bf16_fast(param.device)
    if amp:
        x = x.contiguous(memory_format=torch.channels_last)
    momenta = [m.momentum for m in norms]
    kept = [{k: v.clone() for k, v in m.state_dict().items()} for m in norms]
    was_training = model.training
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
        model.train()
        for i in range(0, x.shape[0], 16):
            with torch.autocast(param.device.type, dtype=torch.bfloat16, enabled=amp):
                model(x[i : i + 16])
    finally:
        for m, momentum, before in zip(norms, momenta, kept):
            m.momentum = momentum
            if int(m.num_batches_tracked) == 0:  # not on the forward path (or the pass failed): as it was
                m.load_state_dict(before)
        model.train(was_training)


# The eight symmetries of the square as (quarter turns, column flip: applied first), in the order
# test-time averaging takes them: 2 = left-right mirror, 4 = the four flips, 8 = all of them.
SYMMETRIES = ((0, False), (0, True), (2, False), (2, True), (1, False), (3, False), (1, True), (3, True))


def _check_tta(tta: int) -> None:
    if tta not in TTA_CHOICES:
        raise InputError(f"test-time averaging takes one of {TTA_CHOICES} symmetries, got {tta}")


def _turn(x: Tensor, turns: int, flip: bool) -> Tensor:
    x = x.flip(-1) if flip else x
    return torch.rot90(x, turns, dims=(-2, -1)) if turns else x


def _unturn(x: Tensor, turns: int, flip: bool) -> Tensor:
    x = torch.rot90(x, -turns, dims=(-2, -1)) if turns else x
    return x.flip(-1) if flip else x


@torch.no_grad()
def predict_slices(
    model: nn.Module,
    images: Tensor | np.ndarray,
    *,
    batch_size: int = 16,
    temperature: float = 1.0,
    amp: bool = True,
    calibrate_on: Tensor | np.ndarray | None = None,
    tta: int = 1,
) -> Tensor:
    """Probabilities ``(N, K, S, S)`` of network-resolution slices ``(N, S, S)``, on the model's device.

    Runs the model in eval mode (batch-norm running statistics) and restores its previous mode.
    ``amp`` allows bf16 autocast where the device is fast at it (see :func:`bf16_fast`).
    ``calibrate_on``: slices to re-estimate those statistics on first (:func:`calibrate_batchnorm`),
    as every preview during training does.
    ``tta`` (one of :data:`TTA_CHOICES`): average the probabilities over that many of the square's
    symmetries (:data:`SYMMETRIES`; each slice is turned / mirrored, predicted and turned back) —
    test-time augmentation with the flips and quarter turns training draws from; costs ``tta``
    forward passes.
    """
    _check_tta(tta)
    if calibrate_on is not None:
        calibrate_batchnorm(model, calibrate_on, amp=amp)
    param = next(model.parameters())
    x = torch.as_tensor(images, dtype=torch.float32).to(param.device)
    if x.ndim == 3:
        x = x.unsqueeze(1)
    was_training = model.training
    model.eval()
    amp = amp and bf16_fast(param.device)
    outs = []
    try:
        for i in range(0, x.shape[0], batch_size):
            chunk = x[i : i + batch_size]
            if amp:
                chunk = chunk.contiguous(memory_format=torch.channels_last)
            total = None
            for turns, flip in SYMMETRIES[:tta]:
                with torch.autocast(param.device.type, dtype=torch.bfloat16, enabled=amp):
                    logits = model(_turn(chunk, turns, flip))
                probs = _unturn(F.softmax(temperature * logits.float(), dim=1), turns, flip)
                total = probs if total is None else total + probs
            outs.append(total / tta)
    finally:
        model.train(was_training)
    return torch.cat(outs)


_warming = threading.Lock()


def warm_up(config: TrainConfig, num_classes: int) -> float:
    """One throw-away training step and one prediction with ``config``'s shapes on its device.

    The first step a process runs pays one-off set-up: on CUDA the context, cuDNN's choice of
    kernels for every new shape (``cudnn.benchmark``) and lazy module loading; on a CPU oneDNN's
    kernel compilation. Run in the background while the user paints, it takes that cost off the
    first press of Train. Random data, its own model; the global random state is restored, and
    :func:`after_warm_up` lets a real run wait for it, so the two never interleave.
    Returns the seconds it took.
    """
    from napari_wss.data import bounds_from_labels, prepare_volume

    t0 = time.perf_counter()
    with _warming:
        device = resolve_device(config.device)
        cuda = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            rng = np.random.default_rng(0)
            n, side = max(2, config.batch_size), config.size
            labels = rng.integers(0, num_classes, size=(n, side, side)).astype(np.uint8)
            scribbles = np.where(rng.random(labels.shape) < 0.01, labels + 1, 0).astype(np.uint8)
            sizes, cents = bounds_from_labels(labels, num_classes, margin=0.2)
            data, _ = prepare_volume(
                rng.random(labels.shape).astype(np.float32),
                num_classes=num_classes,
                size=side,
                scribbles=scribbles,
                labels=labels,
                size_bounds=sizes,
                centroid_bounds=cents,
            )
            cfg = replace(config, steps=1, preview_every=0)
            state = TrainState.create(cfg, [f"class{c}" for c in range(num_classes)])
            for _ in train(data, cfg, state=state):
                pass
            predict_slices(state.model.to(device), data.images, amp=cfg.amp, calibrate_on=data.images)
    return time.perf_counter() - t0


def after_warm_up() -> None:
    """Return once a :func:`warm_up` running in another thread has finished (at once if none is)."""
    with _warming:
        pass


def prediction_geometry(
    state: TrainState, shape: tuple[int, int], scribbles: np.ndarray | None = None
) -> tuple[SliceGeometry | None, str | None]:
    """Where a model predicts an image of in-plane ``shape`` with these strokes, and a caution.

    A model trained on whole slices predicts whole slices: ``(None, None)``. One trained on a crop
    (the widget's default, around the trained image's strokes) has seen only that crop's field of
    view at that scale. On the trained grid it keeps its box (``None``: the trained image, or
    another frame of the same heart, where that box scored as well as or better than a crop around
    the frame's own strokes). On another grid an image with foreground strokes (``scribbles`` as
    painted, class c as c + 1, background strokes ignored) is cut around them as Train would cut
    it (:func:`~napari_wss.data.crop_around`), so another painted heart lands where the model
    expects one; without strokes :func:`predict_volume` falls back to the whole slice, and the
    second item says why that is poor (``benchmarks/placement.py``; docs/measurements.md,
    "Predicting another heart").
    """
    own = state.geometry
    shape = (int(shape[0]), int(shape[1]))
    if own is None or own.is_full or shape == own.source_shape:
        return None, None
    box = None
    if scribbles is not None:
        marks = np.asarray(scribbles)
        box = crop_around(marks.reshape(-1, *marks.shape[-2:]))
    if box is not None:
        return SliceGeometry(shape, box, own.size), None
    return None, (
        f"the model learnt a crop around the strokes of a {own.source_shape[0]}×{own.source_shape[1]} image; this "
        f"{shape[0]}×{shape[1]} one has no strokes to place that crop, so it is predicted as a whole slice, which "
        "such a model segments poorly: paint a few strokes of each structure on it first"
    )


def predict_volume(
    state: TrainState,
    image: np.ndarray,
    *,
    geometry: SliceGeometry | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 16,
    return_probs: bool = False,
    largest_component: str | None = None,
    scribbles: np.ndarray | None = None,
    lv_hull: bool = False,
    max_wall_mm: float | None = None,
    spacing_yx: tuple[float, float] | None = None,
    absent: np.ndarray | None = None,
    myo_ceiling: float | str | None = None,
    septum_factor: float | None = None,
    tta: int = 1,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Segment a (Z, Y, X) or (Y, X) image slice by slice, back on its own grid.

    The image is normalised as at training time, cut to ``geometry``'s box (default: the state's
    box when the source shape matches, else the whole slice), resized to the network size, and the
    probabilities are resized back bilinearly before the arg-max. ``tta``: those probabilities are
    averaged over that many of the square's symmetries (:func:`predict_slices`).
    ``largest_component``: ``"volume"`` keeps each class's largest 3D connected component,
    ``"slice"`` its largest in every slice (a stack of separate images), None keeps everything
    (:func:`~napari_wss.postprocess.keep_largest_component`; the probabilities are not changed).
    ``scribbles`` (the strokes on the image's grid, class c painted as c + 1): with
    ``largest_component``, a class keeps the components its own strokes mark instead of its largest;
    an LV cavity without strokes keeps the component its myocardium rings
    (:func:`~napari_wss.postprocess.enclosures`), classes found by name.
    ``lv_hull``: then, on every slice, the myocardium inside the LV cavity's convex hull joins the
    cavity (papillary muscles; :func:`~napari_wss.postprocess.fill_lv_hull`, classes found by name).
    ``absent`` ``(Z, K)`` booleans: first, each class is cleared from the slices where it is marked
    absent (:func:`~napari_wss.postprocess.clear_absent`; the probabilities are not changed).
    ``myo_ceiling`` (an intensity, :func:`~napari_wss.postprocess.myocardium_ceiling`, or
    ``postprocess.FROM_PREDICTION``: the prediction's own wall / blood threshold): after the
    islands, the myocardium brighter than that goes to its nearest other class
    (:func:`~napari_wss.postprocess.limit_myocardium_brightness`).
    ``septum_factor``: after the convex cavity, the myocardium farther from the LV cavity than that
    many times the septum's thickness on this prediction becomes background
    (:func:`~napari_wss.postprocess.limit_wall_to_septum`; classes named RV, myocardium and LV;
    distances in ``spacing_yx``, in pixels without it).
    ``max_wall_mm`` (with the in-plane ``spacing_yx`` in mm): last, the myocardium farther than that
    from the LV cavity becomes background (:func:`~napari_wss.postprocess.limit_wall_thickness`).

    Returns:
        uint8 labels shaped like ``image`` (and float32 probabilities ``(Z, K, Y, X)`` if asked).
    """
    if largest_component not in (None, *LARGEST_COMPONENT):
        raise InputError(f"largest_component must be one of {LARGEST_COMPONENT} or None, got {largest_component!r}")
    _check_tta(tta)
    if lv_hull or max_wall_mm is not None:
        lv_hull_classes(state.class_names)  # a model without LV / myocardium is refused before predicting
    if max_wall_mm is not None and (spacing_yx is None or not max_wall_mm > 0):
        raise InputError("a maximum wall thickness needs a positive number of mm and the image's voxel size")
    if septum_factor is not None:
        septum_classes(state.class_names)  # refused before predicting, as above
    img = np.asarray(image)
    squeeze = img.ndim == 2
    if squeeze:
        img = img[None]
    if img.ndim != 3:
        raise InputError(f"expected a 2D image or a 3D (Z, Y, X) volume, got shape {img.shape}")
    if scribbles is not None and np.shape(scribbles) != np.shape(image):
        raise InputError(f"the scribbles have shape {np.shape(scribbles)} but the image {np.shape(image)}")
    if absent is not None and np.shape(absent) != (img.shape[0], state.num_classes):
        raise InputError(f"absent must have shape {(img.shape[0], state.num_classes)}, got {np.shape(absent)}")
    h, w = img.shape[1:]
    size = state.config.size
    if geometry is None:
        if state.geometry is not None and state.geometry.source_shape == (h, w):
            geometry = state.geometry
        else:
            geometry = SliceGeometry.full((h, w), size)
    dev = resolve_device(str(device)) if device is not None else resolve_device(state.config.device)
    model = state.model.to(dev)
    x = geometry.image_to_network(state.normalization(img))
    labels = np.empty(img.shape, dtype=np.uint8)
    probs_out = np.empty((img.shape[0], state.num_classes, h, w), dtype=np.float32) if return_probs else None
    for i in range(0, img.shape[0], batch_size):
        probs = predict_slices(
            model,
            x[i : i + batch_size],
            batch_size=batch_size,
            temperature=state.config.temperature,
            amp=state.config.amp,
            tta=tta,
        )
        full = geometry.probs_to_source(probs)
        labels[i : i + batch_size] = full.argmax(1).to(torch.uint8).cpu().numpy()
        if probs_out is not None:
            probs_out[i : i + batch_size] = full.cpu().numpy()
    if absent is not None:
        labels = clear_absent(labels, absent)
    if largest_component is not None:
        marks = None if scribbles is None else np.asarray(scribbles).reshape(img.shape)
        labels = keep_largest_component(
            labels,
            state.num_classes,
            per_slice=largest_component == "slice",
            scribbles=marks,
            enclosed=enclosures(state.class_names),
        )
    if myo_ceiling is not None:
        labels = limit_myocardium_brightness(labels, img, myo_ceiling, state.class_names)
    labels = heart_rules(
        labels,
        state.class_names,
        lv_hull=lv_hull,
        max_wall_mm=max_wall_mm,
        spacing_yx=spacing_yx,
        septum_factor=septum_factor,
    )
    if squeeze:
        labels = labels[0]
        if probs_out is not None:
            probs_out = probs_out[0]
    if return_probs:
        return labels, probs_out  # type: ignore[return-value]
    return labels
