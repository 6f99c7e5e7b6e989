"""Settings as frozen dataclasses, validated when they are built.

Everything a run depends on lives here, so a run started in the viewer can be saved with its
checkpoint and repeated headless. Each dataclass checks its fields in ``__post_init__`` and raises
:class:`~napari_wss.errors.InputError` (a ``ValueError``) naming the field, the expected range and
the value it got.

Bounds are stated per class for one slice:

* size ``(lower, upper)`` in pixels of the source slice (``ClassPrior.from_mm2`` converts from
  mm² with the in-plane voxel spacing); ``(0, 0)`` means "absent on this slice";
* centroid ``((row_lo, row_hi), (col_lo, col_hi))`` in pixel coordinates of the source slice.

A class may have neither (then only its scribbles teach it).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field, fields, replace
from enum import Enum
from typing import Any

from napari_wss.errors import InputError

DEFAULT_CLASS_NAMES = ("background", "RV", "myocardium", "LV")
# how many of the square's symmetries prediction may average over (training.predict_slices)
TTA_CHOICES = (1, 2, 4, 8)
INTERACTIVE_SIZE = 96
"""The widget's network size (slices resized to size x size) on a GPU or a CPU with bf16 arithmetic."""
INTERACTIVE_SIZE_FP32 = 80
"""The widget's network size on a CPU without bf16 arithmetic (``training.bf16_fast`` false), where a
step of the 96² network takes about 2.5 times as long (0.46 s against 0.18 s at width 16, batch 4). Measured with
benchmarks/interactive.py on a 2-core AVX2-only EPYC, ten ED volumes, one run after the other:
median Dice of Predict volume (eight symmetries averaged) after 10 / 30 / 60 s 0.781 / 0.854 / 0.881
at 80² (184-224 steps in 60 s) against 0.556 / 0.867 / 0.872 at 96² (115-170 steps;
8 / 6 / 8 of ten volumes better at 80², the single pass after 60 s 0.886 against 0.861, ten of ten);
the ten ES frames 0.520 / 0.830 / 0.868 against 0.452 / 0.733 / 0.854."""


class Penalty(str, Enum):
    """How a violated bound is penalised."""

    NONE = "none"
    QUADRATIC = "quadratic"
    LOG_BARRIER = "log-barrier"


PENALTY_WEIGHTS: dict[Penalty, tuple[float, float]] = {
    Penalty.LOG_BARRIER: (1.0, 100.0),
    Penalty.QUADRATIC: (1e-2, 20.0),
    Penalty.NONE: (0.0, 0.0),
}
"""(size, centroid) weights per penalty. With the ÷ H·W normalisation these put the penalties'
gradients near the partial cross-entropy's on ACDC slices (the quadratic's 1e-2 is the papers')."""


class Mode(str, Enum):
    """Which supervision a run uses.

    * ``full``: dense labels, cross-entropy on every pixel (the ceiling).
    * ``partial``: scribbles only, cross-entropy on painted pixels (the floor).
    * ``constrained``: scribbles plus the size/centroid penalties.
    * ``priors``: no pixel labels at all, penalties only (the seed's TOY2 experiment).
    """

    FULL = "full"
    PARTIAL = "partial"
    CONSTRAINED = "constrained"
    PRIORS = "priors"


def _check_range(name: str, value: float, lo: float, hi: float, *, lo_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{name} must be a number, got {value!r}")
    try:
        ok = math.isfinite(value) and (value > lo if lo_open else value >= lo) and value <= hi
    except OverflowError:  # an integer beyond float range
        ok = False
    if not ok:
        left = "(" if lo_open else "["
        raise InputError(f"{name} must be in {left}{lo:g}, {hi:g}], got {value!r}")


def _check_class_name(name: Any) -> None:
    """A class name is one line of printable text: it appears in messages, tables and CSV headers."""
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"class name must be a non-empty string, got {name!r}")
    if not name.isprintable():
        raise InputError(f"class name must be one line of printable characters, got {name!r}")


def _pair(name: str, value: Any) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{name} must be a pair (lower, upper), got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise InputError(f"{name} must be finite numbers, got ({lo}, {hi})")
    if lo > hi:
        raise InputError(f"{name}: lower {lo:g} > upper {hi:g}")
    return lo, hi


@dataclass(frozen=True)
class ClassPrior:
    """What the user knows about one class on a slice.

    Attributes:
        name: the class name shown to the user.
        size: ``(lower, upper)`` soft size in pixels per slice, or ``None`` for no size bound.
            ``(0, 0)`` states that the class is absent.
        centroid: ``((row_lo, row_hi), (col_lo, col_hi))`` in pixels, or ``None``.
        color: an optional colour for the class (any matplotlib/napari colour string).
    """

    name: str
    size: tuple[float, float] | None = None
    centroid: tuple[tuple[float, float], tuple[float, float]] | None = None
    color: str | None = None

    def __post_init__(self) -> None:
        _check_class_name(self.name)
        if self.size is not None:
            lo, hi = _pair(f"size bounds for '{self.name}'", self.size)
            if lo < 0:
                raise InputError(f"size bounds for '{self.name}': lower {lo:g} is negative")
            object.__setattr__(self, "size", (lo, hi))
        if self.centroid is not None:
            try:
                rows, cols = self.centroid
            except (TypeError, ValueError):
                raise InputError(
                    f"centroid bounds for '{self.name}' must be ((row_lo, row_hi), (col_lo, col_hi)), "
                    f"got {self.centroid!r}"
                ) from None
            rows = _pair(f"centroid row bounds for '{self.name}'", rows)
            cols = _pair(f"centroid column bounds for '{self.name}'", cols)
            object.__setattr__(self, "centroid", (rows, cols))

    @property
    def absent(self) -> bool:
        """True when the size bound says the class is not on the slice."""
        return self.size is not None and self.size[1] == 0

    @classmethod
    def from_mm2(
        cls,
        name: str,
        size_mm2: tuple[float, float] | None,
        spacing_yx: tuple[float, float],
        centroid: tuple[tuple[float, float], tuple[float, float]] | None = None,
        color: str | None = None,
    ) -> ClassPrior:
        """Build a prior from an area range in mm² and the in-plane spacing (dy, dx) in mm."""
        _check_class_name(name)
        try:
            dy, dx = (float(s) for s in spacing_yx)
        except (TypeError, ValueError, OverflowError):
            raise InputError(f"pixel spacing must be two numbers (dy, dx) in mm, got {spacing_yx!r}") from None
        if not (dy > 0 and dx > 0 and math.isfinite(dy * dx)):
            raise InputError(f"pixel spacing must be positive, got ({dy}, {dx}) mm")
        size = None
        if size_mm2 is not None:
            lo, hi = _pair(f"size bounds for '{name}' (mm²)", size_mm2)
            size = (lo / (dy * dx), hi / (dy * dx))
        return cls(name, size, centroid, color)

    def check_fits(self, shape: tuple[int, int]) -> None:
        """Raise when the bounds cannot hold on a slice of ``shape`` (H, W)."""
        h, w = shape
        if self.size is not None and self.size[0] > h * w:
            raise InputError(
                f"size bounds for '{self.name}': lower {self.size[0]:g} px exceeds the slice area {h * w} px"
            )
        if self.centroid is not None:
            (r0, r1), (c0, c1) = self.centroid
            if r1 < 0 or r0 > h - 1 or c1 < 0 or c0 > w - 1:
                raise InputError(
                    f"centroid box for '{self.name}' rows [{r0:g}, {r1:g}] cols [{c0:g}, {c1:g}] "
                    f"lies outside the {h}x{w} image"
                )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClassPrior:
        centroid = d.get("centroid")
        return cls(
            name=d["name"],
            size=tuple(d["size"]) if d.get("size") is not None else None,  # type: ignore[arg-type]
            centroid=(tuple(centroid[0]), tuple(centroid[1])) if centroid is not None else None,  # type: ignore[arg-type]
            color=d.get("color"),
        )


@dataclass(frozen=True)
class TrainConfig:
    """Training settings. Defaults suit interactive CPU use; see the README for the measurements.

    Attributes:
        mode: which supervision to use (:class:`Mode`).
        penalty: how bounds are enforced (:class:`Penalty`); ignored in ``full``/``partial``.
        steps: optimisation steps (the run ends after this many).
        batch_size: slices per step.
        lr: AdamW learning rate.
        lr_schedule: ``constant`` (interactive use) or ``cosine`` (decays to 0 over ``steps``).
        weight_decay: Adam weight decay.
        ce_weight: weight of the (partial) cross-entropy term.
        size_weight: weight of the size penalty. With the ÷ H·W normalisation the quadratic penalty
            takes 1e-2 (the papers' value) and the log-barrier 1.0: at those weights their
            gradients sit at 6× and 0.2× the partial cross-entropy's on ACDC slices at 256².
        centroid_weight: weight of the centroid penalty (100 for the log-barrier, 20 for the
            quadratic: centroid gradients are ~100× smaller than size gradients per unit weight).
        t0: initial log-barrier parameter t.
        t_growth: factor applied to t at the end of each epoch (the paper uses 1.1).
        t_max: t never grows above this (keeps the barrier's slope finite in long runs).
        steps_per_epoch: steps between t updates; ``None`` means one pass over the slices but at
            least 20 steps (on one volume a pass is two or three steps, and t would explode).
        temperature: probabilities are ``softmax(temperature * logits)`` (the seed used 5; we
            default to 1, a plain softmax, which trained more stably in our runs).
        width: channels of the first U-Net stage (32 as the seed; 8–16 for CPU use).
        depth: number of poolings in the U-Net.
        size: the network's input side in pixels (slices are resized to size × size).
        patch: train on random ``patch × patch`` windows of the ``size × size`` slices instead of
            whole slices (0 = whole slices); prediction still runs on whole slices (the network is
            fully convolutional). A step then costs what a ``patch``-sided slice costs while the
            network sees ``size``'s resolution. A third of the windows are placed to hold the
            slice's painted structures (foreground strokes, else the dense labels' foreground), the
            rest anywhere; centroid boxes move with the window, and a window that cuts the
            structures drops their lower size bounds and boxes (``data.window_origins``). Batch norm
            is calibrated on windows. A multiple of 2^depth.
            Measured on ACDC at the CPU budget (128² windows of 256² slices): level with whole
            128² slices at 1200 steps, behind at 2400 (docs/measurements.md); off by default.
        augment: random flips, 90° rotations and intensity jitter.
        rotate: with ``augment``, also turn each slice by an angle drawn from [−rotate, rotate]
            degrees (0 = off; the published ACDC scribble benchmarks use 20).
        zoom: with ``augment``, also scale each slice by a factor drawn from [1 − zoom, 1 + zoom]
            (0 = off); its size bounds scale with it.
        device: ``auto`` (cuda → mps → cpu), ``cpu``, ``cuda``, ``cuda:1``, ``mps``.
        amp: bf16 autocast and channels_last on CUDA and on CPUs with AMX or AVX512-BF16.
        seed: seeds numpy and torch.
        preview_every: a CPU preview of the prediction every N steps (0 = never).
        compile: ``torch.compile`` the model on CUDA.
        crf_weight: weight of the regularised (CRF-like) loss on unlabelled pixels (0 = off).
        entropy_weight: weight of the prediction-entropy minimisation on unlabelled pixels.
        absence_weight: weight of the absence term (a class known not to be on a slice — its size
            bound is ``(0, 0)`` — is pushed off every pixel there with ``-log(1 - p)``, averaged over
            the slice). 0 (the default, the papers' formulation) leaves absence to the size penalty
            as a bound of 0, which pushes in proportion to the class's predicted mass: in the
            widget's one-volume presses it erased small end-systolic ventricles, and the widget
            uses 0.3; on the CPU cohort runs 0 scored better (README, "Absence and small
            structures"). Applies with the priors (a penalty), whatever the size weight.
        ruled_out_weight: weight of the ruled-out term: class c kept off the pixels a dataset's
            ``ruled_out`` map marks c + 1 (``data.rule_out_brighter``: the dark myocardium),
            ``-log(1 - p)`` averaged over those pixels (0 = off). Any mode but ``full``.
        balanced_ce: weigh the partial cross-entropy so that each class painted in a batch counts
            equally, whatever the length of its strokes (each stroke pixel weighted by one over its
            class's stroke pixels in the batch; :func:`~napari_wss.losses.stroke_balance`). Off by
            default (the papers' plain mean over the painted pixels).
        mixed_pseudo_weight: weight of the dynamically mixed pseudo-label term (Luo et al., MICCAI
            2022; 0 = off): the network gets a second decoder fed through dropout, both decoders
            learn the scribbles (the partial cross-entropy is the mean of theirs), and each step
            the arg-max of ``a·p_main + (1 − a)·p_aux`` (``a`` drawn from [0, 1]) is a dense
            target for both, by soft Dice (the paper uses 0.5). The priors act on the main
            decoder, which alone predicts. Any mode but ``full``; a model built without the
            second decoder cannot continue with it. Measured on ACDC (README, *ACDC quality*):
            a large gain for cohort training on scribbles alone, none in the widget's one-volume
            press, where it is not offered.
        penalty_warmup: the prior and regulariser terms (absence, size, centroid, CRF, entropy,
            ruled-out, mixed pseudo-labels) grow linearly
            from 0 to their weights over the model's first this-many steps (a continued model keeps
            full weights; 0 = full weight from the start).
    """

    mode: Mode = Mode.CONSTRAINED
    penalty: Penalty = Penalty.LOG_BARRIER
    steps: int = 300
    batch_size: int = 4
    lr: float = 1e-3
    lr_schedule: str = "constant"
    weight_decay: float = 1e-4
    ce_weight: float = 1.0
    size_weight: float = PENALTY_WEIGHTS[Penalty.LOG_BARRIER][0]
    centroid_weight: float = PENALTY_WEIGHTS[Penalty.LOG_BARRIER][1]
    t0: float = 5.0
    t_growth: float = 1.1
    t_max: float = 1e3
    steps_per_epoch: int | None = None
    temperature: float = 1.0
    width: int = 16
    depth: int = 4
    size: int = 128
    patch: int = 0
    augment: bool = True
    rotate: float = 0.0
    zoom: float = 0.0
    device: str = "auto"
    amp: bool = True
    seed: int = 0
    preview_every: int = 10
    compile: bool = False
    crf_weight: float = 0.0
    entropy_weight: float = 0.0
    penalty_warmup: int = 0
    absence_weight: float = 0.0
    ruled_out_weight: float = 0.0
    balanced_ce: bool = False
    mixed_pseudo_weight: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "mode", Mode(self.mode))
        except ValueError:
            raise InputError(f"mode must be one of {[m.value for m in Mode]}, got {self.mode!r}") from None
        try:
            object.__setattr__(self, "penalty", Penalty(self.penalty))
        except ValueError:
            raise InputError(f"penalty must be one of {[p.value for p in Penalty]}, got {self.penalty!r}") from None
        for name, lo, hi in (
            ("steps", 1, 10_000_000),
            ("batch_size", 1, 4096),
            ("depth", 1, 6),
            ("penalty_warmup", 0, 10_000_000),
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                raise InputError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
        if not isinstance(self.width, int) or isinstance(self.width, bool) or not 2 <= self.width <= 256:
            raise InputError(f"width must be an integer in [2, 256], got {self.width!r}")
        multiple = 2**self.depth
        if not isinstance(self.size, int) or self.size < multiple or self.size > 4096:
            raise InputError(f"size must be an integer in [{multiple}, 4096], got {self.size!r}")
        if self.size % multiple:
            lower = self.size - self.size % multiple
            raise InputError(
                f"size must be a multiple of 2^depth = {multiple} for a {self.depth}-level U-Net, "
                f"got {self.size}; nearest valid sizes are {max(lower, multiple)} and {lower + multiple}"
            )
        if (
            not isinstance(self.patch, int)
            or isinstance(self.patch, bool)
            or not (self.patch == 0 or (multiple <= self.patch <= self.size and self.patch % multiple == 0))
        ):
            raise InputError(
                f"patch must be 0 (whole slices) or a multiple of 2^depth = {multiple} between {multiple} and "
                f"size = {self.size}, got {self.patch!r}"
            )
        _check_range("lr", self.lr, 0.0, 1.0, lo_open=True)
        if self.lr_schedule not in ("constant", "cosine"):
            raise InputError(f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        _check_range("weight_decay", self.weight_decay, 0.0, 1.0)
        for name in (
            "ce_weight",
            "size_weight",
            "centroid_weight",
            "crf_weight",
            "entropy_weight",
            "absence_weight",
            "ruled_out_weight",
            "mixed_pseudo_weight",
        ):
            _check_range(name, getattr(self, name), 0.0, 1e6)
        _check_range("t0", self.t0, 0.0, 1e6, lo_open=True)
        _check_range("rotate", self.rotate, 0.0, 180.0)
        _check_range("zoom", self.zoom, 0.0, 0.5)
        _check_range("t_growth", self.t_growth, 1.0, 10.0)
        _check_range("t_max", self.t_max, self.t0, 1e9)
        _check_range("temperature", self.temperature, 0.0, 100.0, lo_open=True)
        if self.steps_per_epoch is not None and (
            not isinstance(self.steps_per_epoch, int)
            or isinstance(self.steps_per_epoch, bool)
            or self.steps_per_epoch < 1
        ):
            raise InputError(f"steps_per_epoch must be a positive integer or None, got {self.steps_per_epoch!r}")
        if not isinstance(self.preview_every, int) or isinstance(self.preview_every, bool) or self.preview_every < 0:
            raise InputError(f"preview_every must be an integer >= 0, got {self.preview_every!r}")
        for name in ("augment", "amp", "compile", "balanced_ce"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise InputError(f"seed must be an integer, got {self.seed!r}")
        dev = str(self.device)
        if not (dev in ("auto", "cpu", "cuda", "mps") or dev.startswith("cuda:")):
            raise InputError(f"device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")
        if self.mode == Mode.PRIORS and self.penalty == Penalty.NONE:
            raise InputError("mode 'priors' trains on bounds alone and needs a penalty (quadratic or log-barrier)")

    @property
    def uses_scribbles(self) -> bool:
        return self.mode in (Mode.PARTIAL, Mode.CONSTRAINED)

    @property
    def uses_priors(self) -> bool:
        return self.mode in (Mode.CONSTRAINED, Mode.PRIORS) and self.penalty != Penalty.NONE

    @property
    def aux_decoder(self) -> bool:
        """Whether the network needs the second decoder (the mixed pseudo-label term is on)."""
        return self.mixed_pseudo_weight > 0 and self.mode != Mode.FULL

    def with_(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mode"] = self.mode.value
        d["penalty"] = self.penalty.value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def class_names_from(priors: tuple[ClassPrior, ...] | list[ClassPrior]) -> tuple[str, ...]:
    """Validate a class table (at least two classes, unique names) and return the names."""
    names = tuple(p.name for p in priors)
    if len(names) < 2:
        raise InputError(f"at least two classes are needed (background and one structure), got {len(names)}")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(f"class names must be unique, repeated: {', '.join(dupes)}")
    return names
