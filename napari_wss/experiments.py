"""The seed's experiments, headless: TOY, TOY2, ACDC, and the phantom demo.

Each ``run_*`` function builds its data with the core modules, consumes the one training
generator (:func:`napari_wss.training.train`) and returns a :class:`ResultTable`: rows of
measured numbers beside the seed's, plus notes saying what was reduced for a CPU budget. The CLI
(``napari-wss reproduce ...``, ``napari-wss demo``) only parses flags, draws progress bars and
prints the tables; benchmarks and tests call these functions directly. No Qt, no napari.

Progress is reported through an optional ``progress(description, total_steps)`` factory that
returns a context manager yielding a callback; the callback receives every
:class:`~napari_wss.training.TrainEvent`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_wss import io, toy
from napari_wss.config import ClassPrior, Mode, Penalty, TrainConfig
from napari_wss.data import SliceDataset, bounds_from_labels, bounds_from_priors, prepare_volume
from napari_wss.errors import InputError
from napari_wss.metrics import dice, score_volume
from napari_wss.training import TrainEvent, TrainState, predict_volume, train

log = logging.getLogger(__name__)

EventSink = Callable[[TrainEvent], None]
ProgressFactory = Callable[[str, int], AbstractContextManager[EventSink]]

ACDC_CLASSES = ("background", "RV", "myocardium", "LV")

# The seed's logged results (its README / training logs), shown beside ours.
SEED_TOY = {"full": 0.995, "partial": 0.976, "partial + size": 0.988}
SEED_ACDC_2D = {"full": 0.852, "partial": 0.722}


# --------------------------------------------------------------------------------------------
# Tables


@dataclass(frozen=True)
class ResultTable:
    """A printable table of results.

    Attributes:
        title: one line naming the experiment and its scale.
        columns: column headers.
        rows: one tuple per row (floats are printed with 3 decimals, NaN as ``-``).
        notes: lines printed under the table (reductions, seed's settings, how to read it).
        wall_s: wall time of the whole experiment in seconds.
        extra: machine-readable extras (e.g. per-case scores) for benchmarks.
    """

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    notes: tuple[str, ...] = ()
    wall_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def format(self) -> str:
        """The table as aligned plain text."""
        cells = [list(self.columns)] + [[_cell(v) for v in row] for row in self.rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.columns))]

        def line(row: list[str]) -> str:
            return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

        rule = "-" * len(line(cells[0]))
        out = [self.title, rule, line(cells[0]), rule, *(line(r) for r in cells[1:]), rule]
        out += list(self.notes)
        out.append(f"wall time: {self.wall_s:.1f} s")
        return "\n".join(out)

    def column(self, name: str) -> list[Any]:
        """The values of one column, row by row."""
        i = self.columns.index(name)
        return [row[i] for row in self.rows]


def _cell(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return "-" if not math.isfinite(float(value)) else f"{float(value):.3f}"
    return str(value)


# --------------------------------------------------------------------------------------------
# Running the generator


def run_training(
    gen: Generator[TrainEvent, Any, TrainState], total: int, description: str, progress: ProgressFactory | None
) -> TrainState:
    """Consume a training generator to its end, feeding every event to the progress callback."""
    ctx: AbstractContextManager[EventSink] = (
        progress(description, total) if progress is not None else contextlib.nullcontext(_ignore)
    )
    with ctx as sink, contextlib.closing(gen):
        while True:
            try:
                event = next(gen)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            sink(event)


def _ignore(_event: TrainEvent) -> None:
    return None


def _epoch_steps(n: int, batch_size: int, epochs: int) -> int:
    return max(1, epochs * math.ceil(n / batch_size))


@contextlib.contextmanager
def _timer() -> Iterator[list[float]]:
    box = [0.0]
    start = time.perf_counter()
    try:
        yield box
    finally:
        box[0] = time.perf_counter() - start


def _nanmean(values: np.ndarray, axis: int | None = None) -> np.ndarray:
    """``np.nanmean`` without the warning for all-NaN slices (they stay NaN: no score defined)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)  # type: ignore[no-any-return]


def _mean_dice(pred: np.ndarray, ref: np.ndarray, cls: int = 1) -> float:
    """Mean over images of the Dice of one class (images where both are empty are left out)."""
    scores = [dice(p == cls, r == cls) for p, r in zip(pred, ref)]
    return float(np.nanmean(scores)) if np.isfinite(scores).any() else float("nan")


# --------------------------------------------------------------------------------------------
# TOY


def run_toy(
    *,
    size: int = 128,
    epochs: int = 150,
    n_train: int = 10,
    n_val: int = 10,
    batch_size: int = 2,
    width: int = 16,
    lr: float = 1e-3,
    seed: int = 0,
    device: str = "auto",
    methods: Sequence[str] = ("full", "partial", "partial + size"),
    progress: ProgressFactory | None = None,
) -> ResultTable:
    """The seed's TOY experiment with its shallow CNN: full / partial CE / partial CE + size.

    The weak label is the seed's: a disc of radius 5 at the centre of the target, nothing on the
    background. "partial + size" adds the quadratic size penalty with tight per-image bounds, the
    true size ± 10 % for both classes (:func:`napari_wss.data.bounds_from_labels`, the seed's
    oracle). Dice of the target on the validation images, averaged over images.
    """
    settings = {
        "full": (Mode.FULL, Penalty.NONE),
        # The seed's weak labels mark only the target, and train() refuses a class with neither
        # scribbles nor bounds in 'partial' mode; 'constrained' with zero penalty weights is exactly
        # partial cross-entropy (the bounds are given but never enter the loss).
        "partial": (Mode.CONSTRAINED, Penalty.QUADRATIC),
        "partial + size": (Mode.CONSTRAINED, Penalty.QUADRATIC),
    }
    unknown = [m for m in methods if m not in settings]
    if unknown:
        raise InputError(f"unknown TOY method {unknown[0]!r}; expected one of {', '.join(settings)}")
    started = time.perf_counter()
    splits = toy.toy_splits("toy", seed=seed, size=size, n_train=n_train, n_val=n_val)
    tr, val = splits["train"], splits["val"]
    sizes, cents = bounds_from_labels(tr.labels, 2, margin=0.1)
    data, _ = prepare_volume(
        tr.images,
        num_classes=2,
        size=size,
        scribbles=tr.scribbles,
        labels=tr.labels,
        size_bounds=sizes,
        centroid_bounds=cents,
    )
    steps = _epoch_steps(len(data), batch_size, epochs)
    rows = []
    for method in methods:
        mode, penalty = settings[method]
        weight = 0.0 if method == "partial" else 1e-2
        config = TrainConfig(
            mode=mode,
            penalty=penalty,
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            width=width,
            size=size,
            depth=1,
            augment=False,
            device=device,
            seed=seed,
            preview_every=0,
            size_weight=weight,
            centroid_weight=0.0,
        )
        with _timer() as took:
            state = run_training(
                train(data, config, class_names=("background", "target"), arch="shallow"),
                steps,
                f"toy {method}",
                progress,
            )
            pred = predict_volume(state, val.images, device=device)
        rows.append((method, _mean_dice(pred, val.labels), SEED_TOY.get(method, float("nan")), f"{took[0]:.1f}"))
    title = (
        f"TOY (shallow CNN): Dice of the target on {len(val)} val images, {size}x{size} px, {len(tr)} train "
        f"images, {epochs} epochs ({steps} steps of batch {batch_size})"
    )
    notes = (
        "seed: 256x256, 10 train + 10 val, 150 epochs; weak label = disc r=5 at the target centre only.",
        "partial + size: quadratic size penalty, bounds = true size +-10 % per image (seed's oracle).",
    )
    if size != 256 or epochs != 150 or n_train != 10:
        notes = (f"REDUCED for this run: size {size}, epochs {epochs}, n_train {n_train}.", *notes)
    return ResultTable(
        title,
        ("method", "Dice (ours)", "Dice (seed)", "train s"),
        tuple(rows),
        notes,
        time.perf_counter() - started,
    )


# --------------------------------------------------------------------------------------------
# TOY2


def toy2_bounds(
    labels: np.ndarray, centers: np.ndarray, *, size_margin: float = 0.1, centroid_margin: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Priors for TOY2: target size ± ``size_margin``, background the rest, a box around the centre.

    Args:
        labels: ``(N, H, W)`` target masks (only their areas are used: the disc's known size).
        centers: ``(N, 2)`` target centres (row, col).
        size_margin: relative tolerance of the size bounds.
        centroid_margin: half-side of the centroid box as a fraction of the image side.

    Returns:
        ``(N, 2, 2)`` size bounds and ``(N, 2, 2, 2)`` centroid bounds in source pixels.
    """
    n, h, w = labels.shape
    area = labels.reshape(n, -1).sum(axis=1).astype(np.float32)
    sizes = np.empty((n, 2, 2), dtype=np.float32)
    sizes[:, 1, 0], sizes[:, 1, 1] = area * (1 - size_margin), area * (1 + size_margin)
    sizes[:, 0, 0], sizes[:, 0, 1] = h * w - sizes[:, 1, 1], h * w - sizes[:, 1, 0]
    cents = np.full((n, 2, 2, 2), np.nan, dtype=np.float32)
    dr, dc = centroid_margin * h, centroid_margin * w
    cents[:, 1, 0] = np.stack([centers[:, 0] - dr, centers[:, 0] + dr], axis=1)
    cents[:, 1, 1] = np.stack([centers[:, 1] - dc, centers[:, 1] + dc], axis=1)
    return sizes, cents


def run_toy2(
    *,
    size: int = 64,
    epochs: int = 20,
    n_train: int = 200,
    n_val: int = 50,
    batch_size: int = 8,
    width: int = 16,
    lr: float = 1e-2,
    t0: float = 5.0,
    centroid_margin: float = 0.05,
    size_weight: float = 1e-2,
    centroid_weight: float = 1e-2,
    crf_weight: float = 1e-2,
    arch: str = "shallow",
    seed: int = 0,
    device: str = "auto",
    penalties: Sequence[Penalty | str] = (Penalty.QUADRATIC, Penalty.LOG_BARRIER),
    progress: ProgressFactory | None = None,
) -> ResultTable:
    """The seed's TOY2 experiment: no pixel labels, only size and centroid priors.

    Every image has a target disc (value 125) and a distractor disc (value 255) of the same size.
    The size prior alone cannot tell them apart; the centroid box around the known target centre
    (``ToySet.centers`` ± ``centroid_margin`` of the side) can. Each penalty is run with the priors
    alone (the seed's setting) and, when ``crf_weight > 0``, with the gated-CRF regulariser added:
    the priors alone constrain only sums of probabilities, which a blurred blob of probability
    ~0.4 over and around the target satisfies as well as a crisp disc, so its arg-max can be empty.

    Reported on the validation images: the target's Dice (arg-max), the fraction of distractor
    pixels predicted as target, and where the target class's probability mass lies (on the target
    disc, on the distractor disc) — the seed's figures show probability maps with only the target.
    """
    started = time.perf_counter()
    splits = toy.toy_splits("toy2", seed=seed, size=size, n_train=n_train, n_val=n_val)
    tr, val = splits["train"], splits["val"]
    sizes, cents = toy2_bounds(tr.labels, tr.centers, centroid_margin=centroid_margin)
    data, _ = prepare_volume(tr.images, num_classes=2, size=size, size_bounds=sizes, centroid_bounds=cents)
    steps = _epoch_steps(len(data), batch_size, epochs)
    # TOY2 has no noise: the distractor is exactly the pixels of value 255.
    distractor = (val.images == 255) & (val.labels == 0)
    target = val.labels == 1
    variants = [(Penalty(p), w) for p in penalties for w in ((0.0, crf_weight) if crf_weight > 0 else (0.0,))]
    rows = []
    for penalty, crf in variants:
        config = TrainConfig(
            mode=Mode.PRIORS,
            penalty=penalty,
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            width=width,
            size=size,
            depth=1 if arch == "shallow" else 4,
            t0=t0,
            size_weight=size_weight,
            centroid_weight=centroid_weight,
            crf_weight=crf,
            augment=False,
            device=device,
            seed=seed,
            preview_every=0,
        )
        name = penalty.value if crf == 0 else f"{penalty.value} + CRF {crf:g}"
        with _timer() as took:
            state = run_training(
                train(data, config, class_names=("background", "target"), arch=arch), steps, f"toy2 {name}", progress
            )
            pred, probs = predict_volume(state, val.images, device=device, return_probs=True)
        p_target = probs[:, 1]
        mass = max(float(p_target.sum()), 1e-9)
        rows.append(
            (
                name,
                _mean_dice(pred, val.labels),
                float(((pred == 1) & distractor).sum() / max(distractor.sum(), 1)),
                float(p_target[target].sum() / mass),
                float(p_target[distractor].sum() / mass),
                f"{state.t:.2f}" if penalty == Penalty.LOG_BARRIER else "-",
                f"{took[0]:.1f}",
            )
        )
    title = (
        f"TOY2 (priors only, {arch} CNN): {size}x{size} px, {len(tr)} train / {len(val)} val images, "
        f"{epochs} epochs ({steps} steps of batch {batch_size}, lr {lr:g})"
    )
    notes = (
        "priors: target size = true area +-10 %, background the rest; target centroid in a box of "
        f"+-{centroid_margin:g} x side around its centre; no pixel labels. Weights: size {size_weight:g}, centroid "
        f"{centroid_weight:g} (penalties / H.W). log-barrier: t0 = {t0:g}, t <- 1.1 t per epoch.",
        "'distractor px as target': fraction of distractor pixels whose arg-max is the target (seed's figures: 0). "
        "'p-mass on ...': share of the target class's probability mass on the target / distractor disc.",
    )
    if size != 256 or n_train != 1000:
        notes = (f"REDUCED from the seed's 256x256, 1000 train images: size {size}, n_train {n_train}.", *notes)
    return ResultTable(
        title,
        (
            "penalty",
            "target Dice",
            "distractor px as target",
            "p-mass on target",
            "p-mass on distractor",
            "final t",
            "train s",
        ),
        tuple(rows),
        notes,
        time.perf_counter() - started,
    )


# --------------------------------------------------------------------------------------------
# ACDC


def parse_patients(spec: str) -> list[int]:
    """``"1-80"`` / ``"1-10,15,90-100"`` → sorted patient numbers.

    Raises:
        InputError: malformed ranges or a range whose start exceeds its end.
    """
    out: set[int] = set()
    for part in (p.strip() for p in str(spec).split(",")):
        if not part:
            continue
        lo_s, sep, hi_s = part.partition("-")
        try:
            lo = int(lo_s)
            hi = int(hi_s) if sep else lo
        except ValueError:
            raise InputError(f"patients must look like '1-80' or '1-10,15', got {spec!r}") from None
        if lo > hi:
            raise InputError(f"patient range {part!r}: start {lo} > end {hi}")
        out.update(range(lo, hi + 1))
    if not out:
        raise InputError(f"no patients selected by {spec!r}")
    return sorted(out)


def select_cases(
    root: str | os.PathLike[str], patients: Sequence[int], *, need_scribbles: bool = False, limit: int | None = None
) -> list[io.AcdcCase]:
    """ACDC cases (both phases) of the given patients that have a ground truth.

    Raises:
        InputError: none of the patients is found.
    """
    wanted = set(patients)
    cases = [
        c
        for c in io.find_acdc_cases(root)
        if c.patient_id in wanted and c.gt is not None and (c.scribble is not None or not need_scribbles)
    ]
    if not cases:
        raise InputError(f"none of the patients {min(wanted)}-{max(wanted)} was found with a ground truth in {root}")
    if limit is not None and limit < len(cases):
        # Spread the reduced set over the patients instead of taking the first ones.
        keep = np.linspace(0, len(cases) - 1, limit).round().astype(int)
        cases = [cases[i] for i in sorted(set(keep.tolist()))]
    return cases


@dataclass
class AcdcVolume:
    """One ACDC frame loaded in napari order."""

    case: io.AcdcCase
    image: np.ndarray
    gt: np.ndarray
    scribbles: np.ndarray | None
    spacing: tuple[float, float, float]
    affine: np.ndarray


def load_acdc_volume(case: io.AcdcCase) -> AcdcVolume:
    img = io.read_nifti(case.image)
    gt = io.read_nifti(case.gt).data if case.gt is not None else None
    if gt is None:
        raise InputError(f"{case.image.name} has no ground truth file")
    scr = io.read_nifti(case.scribble).data if case.scribble is not None else None
    return AcdcVolume(case, img.data, gt.astype(np.uint8), scr, img.spacing, img.affine)


def population_priors(
    volumes: Sequence[AcdcVolume], *, margin: float = 0.1, low: float = 5, high: float = 95
) -> list[tuple[float, float] | None]:
    """Per-class area ranges in mm² over the training slices where the class is present.

    The ``low``–``high`` percentiles of the areas, widened by ``margin``; background unbounded.
    """
    k = len(ACDC_CLASSES)
    areas: list[list[float]] = [[] for _ in range(k)]
    for v in volumes:
        px = v.spacing[1] * v.spacing[2]
        counts = np.stack([(v.gt == c).reshape(len(v.gt), -1).sum(1) for c in range(k)], axis=1) * px
        for c in range(1, k):
            areas[c] += [float(a) for a in counts[:, c] if a > 0]
    out: list[tuple[float, float] | None] = [None]
    for c in range(1, k):
        if not areas[c]:
            out.append(None)
            continue
        lo, hi = np.percentile(areas[c], [low, high])
        out.append((float(lo) * (1 - margin), float(hi) * (1 + margin)))
    return out


def _acdc_dataset(volumes: Sequence[AcdcVolume], *, net_size: int, bounds: str, margin: float) -> SliceDataset:
    k = len(ACDC_CLASSES)
    ranges = population_priors(volumes, margin=margin) if bounds == "population" else None
    parts = []
    for i, v in enumerate(volumes):
        if ranges is None:
            sb, cb = bounds_from_labels(v.gt, k, margin=margin)
        else:
            priors = [
                ClassPrior.from_mm2(name, rng, (v.spacing[1], v.spacing[2])) for name, rng in zip(ACDC_CLASSES, ranges)
            ]
            sb, cb = bounds_from_priors(priors, len(v.image), v.image.shape[1:], scribbles=v.scribbles)
        ds, _ = prepare_volume(
            v.image,
            num_classes=k,
            size=net_size,
            scribbles=v.scribbles,
            labels=v.gt,
            size_bounds=sb,
            centroid_bounds=cb,
            volume_index=i,
        )
        parts.append(ds)
    return SliceDataset.concat(parts)


def run_acdc(
    root: str | os.PathLike[str],
    *,
    train_patients: Sequence[int] = tuple(range(1, 81)),
    test_patients: Sequence[int] = tuple(range(81, 101)),
    modes: Sequence[Mode | str] = (Mode.FULL, Mode.PARTIAL, Mode.CONSTRAINED),
    steps: int = 300,
    batch_size: int = 8,
    net_size: int = 128,
    width: int = 8,
    depth: int = 4,
    lr: float = 1e-3,
    penalty: Penalty | str = Penalty.LOG_BARRIER,
    size_weight: float | None = None,
    centroid_weight: float | None = None,
    bounds: str = "oracle",
    margin: float = 0.1,
    max_train_volumes: int | None = None,
    max_test_volumes: int | None = None,
    seed: int = 0,
    device: str = "auto",
    progress: ProgressFactory | None = None,
) -> ResultTable:
    """Full / partial / constrained Residual U-Net on ACDC; 3D Dice per class on held-out patients.

    Training uses every slice of the training frames (ED and ES) resized to ``net_size``; the
    constrained mode adds size bounds, either the seed's oracle (true size ± ``margin`` per slice)
    or ``population`` ranges in mm² estimated from the training masks (with absent classes taken
    from the scribbles). Test volumes are segmented slice by slice back on their own grid and
    scored with :func:`napari_wss.metrics.score_volume`.
    """
    if not modes:
        raise InputError("no ACDC modes given; expected some of full, partial, constrained")
    if bounds not in ("oracle", "population"):
        raise InputError(f"bounds must be 'oracle' or 'population', got {bounds!r}")
    started = time.perf_counter()
    overlap = set(train_patients) & set(test_patients)
    if overlap:
        raise InputError(f"train and test patients overlap ({len(overlap)} patients, e.g. {min(overlap)})")
    train_cases = select_cases(root, train_patients, need_scribbles=True, limit=max_train_volumes)
    test_cases = select_cases(root, test_patients, limit=max_test_volumes)
    train_vols = [load_acdc_volume(c) for c in train_cases]
    data = _acdc_dataset(train_vols, net_size=net_size, bounds=bounds, margin=margin)
    test_vols = [load_acdc_volume(c) for c in test_cases]
    k = len(ACDC_CLASSES)
    rows = []
    per_case: dict[str, list[dict[str, Any]]] = {}
    for m in modes:
        mode = Mode(m)
        config = TrainConfig(
            mode=mode,
            penalty=Penalty(penalty) if mode == Mode.CONSTRAINED else Penalty.NONE,
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            width=width,
            depth=depth,
            size=net_size,
            device=device,
            seed=seed,
            preview_every=0,
        )
        # None keeps TrainConfig's defaults for the penalty weights.
        weights = {"size_weight": size_weight, "centroid_weight": centroid_weight}
        config = config.with_(**{k: v for k, v in weights.items() if v is not None})
        with _timer() as took:
            state = run_training(train(data, config, class_names=ACDC_CLASSES), steps, f"acdc {mode.value}", progress)
        dices, hds, slice_d = [], [], []
        per_case[mode.value] = []
        for v in test_vols:
            pred = predict_volume(state, v.image, device=device)
            s = score_volume(pred, v.gt, k, v.spacing)
            dices.append(s.dice)
            hds.append(s.hd95)
            slice_d.append(_nanmean(s.slice_dice[:, 1:], axis=0))
            per_case[mode.value].append({"case": v.case.image.name, "dice": s.dice.tolist(), "hd95": s.hd95.tolist()})
        d = _nanmean(np.stack(dices), axis=0)
        h = _nanmean(np.stack(hds), axis=0)
        d2 = float(_nanmean(np.stack(slice_d)))
        label = mode.value if mode != Mode.CONSTRAINED else f"constrained ({bounds}, {Penalty(penalty).value})"
        rows.append(
            (
                label,
                *(float(x) for x in d[1:]),
                float(np.mean(d[1:])),
                float(_nanmean(h[1:])),
                d2,
                SEED_ACDC_2D.get(mode.value, float("nan")),
                f"{took[0]:.1f}",
            )
        )
    title = (
        f"ACDC (Residual U-Net width {width}, {net_size}x{net_size}): {len(train_vols)} train frames "
        f"({len(data)} slices), {len(test_vols)} test frames, {steps} steps of batch {batch_size}"
    )
    last = config
    notes = (
        f"constrained: size weight {last.size_weight:g}, centroid weight {last.centroid_weight:g} (no centroid "
        "bounds are set here); full = CE + soft Dice on dense labels; partial = CE on the scribbles.",
        "3D Dice per class and mean (RV, Myo, LV) on the test frames; HD95 in mm (mean over classes); "
        "2D Dice = mean over slices and classes, as the seed logged it (seed: 20 epochs, 256x256, width 32).",
    )
    return ResultTable(
        title,
        ("mode", "RV", "Myo", "LV", "mean 3D Dice", "HD95 mm", "2D Dice", "seed 2D", "train s"),
        tuple(rows),
        notes,
        time.perf_counter() - started,
        {"per_case": per_case, "train_cases": [c.image.name for c in train_cases]},
    )


# --------------------------------------------------------------------------------------------
# Phantom demo


@dataclass(frozen=True)
class DemoResult:
    """What the headless demo produced."""

    table: ResultTable
    overlay: Path
    prediction: np.ndarray


def phantom_priors(phantom: toy.Phantom, *, margin: float = 0.2) -> list[ClassPrior]:
    """Size priors in mm² from the phantom's labels: the range of a class's area over the slices
    where it is present, widened by ``margin`` (a user would state such ranges from anatomy)."""
    dy, dx = phantom.spacing[1:]
    priors = [ClassPrior(phantom.class_names[0])]
    for c, name in enumerate(phantom.class_names[1:], start=1):
        areas = (phantom.labels == c).reshape(len(phantom.labels), -1).sum(1) * dy * dx
        present = areas[areas > 0]
        rng = (float(present.min()) * (1 - margin), float(present.max()) * (1 + margin))
        priors.append(ClassPrior.from_mm2(name, rng, (dy, dx)))
    return priors


def run_phantom_demo(
    out_dir: str | os.PathLike[str] = "demo_output",
    *,
    n_slices: int = 8,
    size: int = 128,
    net_size: int = 64,
    width: int = 8,
    steps: int = 150,
    batch_size: int = 8,
    size_weight: float = 1e-2,
    seed: int = 0,
    device: str = "auto",
    progress: ProgressFactory | None = None,
) -> DemoResult:
    """Train on the cardiac phantom's scribbles + mm² size priors, predict, draw an overlay, score.

    Returns:
        the Dice table, the overlay PNG path (``out_dir/phantom_overlay.png``) and the prediction.
    """
    started = time.perf_counter()
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the output folder {out}: {exc.strerror or exc}") from None
    ph = toy.cardiac_phantom(n_slices=n_slices, size=size, seed=seed)
    priors = phantom_priors(ph)
    sb, cb = bounds_from_priors(priors, n_slices, (size, size), scribbles=ph.scribbles)
    data, _ = prepare_volume(
        ph.image,
        num_classes=len(priors),
        size=net_size,
        scribbles=ph.scribbles,
        labels=ph.labels,
        size_bounds=sb,
        centroid_bounds=cb,
    )
    config = TrainConfig(
        mode=Mode.CONSTRAINED,
        penalty=Penalty.LOG_BARRIER,
        steps=steps,
        batch_size=batch_size,
        size_weight=size_weight,
        width=width,
        size=net_size,
        device=device,
        seed=seed,
        preview_every=0,
    )
    names = tuple(p.name for p in priors)
    state = run_training(train(data, config, class_names=names), steps, "phantom (constrained)", progress)
    pred = np.asarray(predict_volume(state, ph.image, device=device))
    scores = score_volume(pred, ph.labels, len(names), ph.spacing)
    overlay = save_overlay(out / "phantom_overlay.png", ph.image, pred, ph.scribbles, names)
    rows = tuple(
        (name, float(scores.dice[c]), float(scores.hd95[c]), _mm2_range(p, ph.spacing[1] * ph.spacing[2]))
        for c, (name, p) in enumerate(zip(names, priors))
        if c > 0
    )
    rows += (("mean", scores.mean_dice(), scores.mean_hd95(), ""),)
    table = ResultTable(
        f"Phantom demo: {n_slices} slices {size}x{size} px, constrained (scribbles + mm² size priors, log-barrier), "
        f"U-Net width {width} at {net_size}x{net_size}, {steps} steps",
        ("class", "3D Dice", "HD95 mm", "size prior mm²"),
        rows,
        (f"overlay: {overlay}",),
        time.perf_counter() - started,
    )
    return DemoResult(table, overlay, pred)


def _mm2_range(prior: ClassPrior, pixel_mm2: float) -> str:
    return "" if prior.size is None else f"{prior.size[0] * pixel_mm2:.0f}-{prior.size[1] * pixel_mm2:.0f}"


CLASS_COLORS = ("#000000", "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6")


def save_overlay(
    path: str | os.PathLike[str],
    image: np.ndarray,
    prediction: np.ndarray,
    scribbles: np.ndarray | None,
    class_names: Sequence[str],
    *,
    max_slices: int = 8,
) -> Path:
    """Draw image slices with the predicted contours per class and the scribbles, to a PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot as plt
    from matplotlib.lines import Line2D

    path = Path(path)
    img = np.asarray(image)
    if img.ndim == 2:
        img, prediction = img[None], np.asarray(prediction)[None]
        scribbles = None if scribbles is None else np.asarray(scribbles)[None]
    z = img.shape[0]
    picks = np.unique(np.linspace(0, z - 1, min(z, max_slices)).round().astype(int))
    cols = min(4, len(picks))
    rows = math.ceil(len(picks) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.3 * rows + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    colors = [CLASS_COLORS[c % len(CLASS_COLORS)] for c in range(len(class_names))]
    for ax, zi in zip(axes.flat, picks):
        ax.imshow(img[zi], cmap="gray", interpolation="nearest")
        for c in range(1, len(class_names)):
            mask = prediction[zi] == c
            if mask.any() and not mask.all():
                ax.contour(mask.astype(float), levels=[0.5], colors=[colors[c]], linewidths=1.2)
        if scribbles is not None:
            for c in range(len(class_names)):
                rr, cc = np.nonzero(scribbles[zi] == c + 1)
                ax.scatter(cc, rr, s=1, c=colors[c] if c else "#ffe119", marker="s", linewidths=0)
        ax.set_title(f"slice {zi}", fontsize=9)
    handles = [Line2D([], [], color=colors[c], label=class_names[c]) for c in range(1, len(class_names))]
    handles.append(Line2D([], [], color="#ffe119", marker="s", linestyle="", label="background scribble"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle("napari-wss: predicted contours (lines) and scribbles (dots)", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    tmp = path.with_name(f".{path.name}.tmp.png")
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
        with contextlib.suppress(OSError):
            tmp.unlink()
    return path
