"""``napari-wss``: the headless commands over the same core the plugin uses.

    napari-wss make-samples [DIR]
    napari-wss train --image IMG [--scribbles S] [--labels GT] --out model.pt [...]
    torchrun --nproc_per_node N -m napari_wss.cli train ...   (data-parallel, see distributed.py)
    napari-wss predict --model model.pt --image IMG --out labels.nii.gz
    napari-wss evaluate --pred P --ref GT [--csv scores.csv]
    napari-wss measure LABELS [--es LABELS_ES]     (volumes in mL; with --es: EDV, ESV, EF, mass)
    napari-wss reproduce {toy,toy2,acdc} [...]
    napari-wss demo [--headless]

Bad input (a missing file, a wrong layout, a NaN image, mismatched shapes, a lower bound above
its upper bound...) prints ONE line ``napari-wss: error: <message>`` on stderr and exits with
status 2; ``--verbose`` also shows the traceback. Ctrl-C exits with 130 and leaves the last saved
checkpoint intact (checkpoints are written atomically).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_wss.config import TTA_CHOICES
from napari_wss.errors import InputError

log = logging.getLogger("napari_wss.cli")

PROG = "napari-wss"
DEFAULT_CLASSES_4 = ("background", "RV", "myocardium", "LV")
ACDC_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "acdc"


# --------------------------------------------------------------------------------------------
# Output helpers (the CLI's user-facing text goes to stdout; progress and errors to stderr)


def _echo(text: str = "") -> None:
    sys.stdout.write(f"{text}\n")
    sys.stdout.flush()


def _progress_factory(enabled: bool | None) -> Any:
    """A factory ``(description, total) -> context manager yielding an event sink`` drawing tqdm bars."""
    from tqdm import tqdm

    @contextlib.contextmanager
    def factory(description: str, total: int) -> Iterator[Any]:
        bar = tqdm(
            total=total,
            desc=description,
            unit="step",
            disable=None if enabled is None else not enabled,
            file=sys.stderr,
            dynamic_ncols=True,
            leave=False,
        )

        def sink(event: Any) -> None:
            bar.update(1)
            bar.set_postfix(
                loss=f"{event.loss:.4g}", t=f"{event.t:.3g}", sps=f"{event.slices_per_s:.1f}", refresh=False
            )

        try:
            yield sink
        finally:
            bar.close()

    return factory


# --------------------------------------------------------------------------------------------
# Reading images and label maps


@dataclass
class Loaded:
    """An image (or label map) read from the command line, in (Z, Y, X) order.

    ``kind`` is ``nifti``, ``png`` (one file, Z = 1) or ``pngdir`` (a folder of PNG slices whose
    file names are kept in ``names``); ``affine`` is the NIfTI's (identity scaled by the spacing
    for PNGs).
    """

    data: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray
    kind: str
    path: Path
    names: tuple[str, ...] = ()
    layout: dict[str, Path | None] | None = None  # seed layout: the weak/ and gt/ folders, if complete


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith((".nii", ".nii.gz"))


def _png_affine(spacing: tuple[float, float, float]) -> np.ndarray:
    dz, dy, dx = spacing
    return np.diag([dx, dy, dz, 1.0])


def load_image(
    path: str | os.PathLike[str],
    *,
    what: str = "image",
    spacing: tuple[float, float] | None = None,
    frame: int | None = None,
) -> Loaded:
    """Read a NIfTI file, a PNG file, a folder of PNGs or the seed's PNG layout (``img/ gt/ weak/``).

    ``frame`` picks the time frame of a 4D NIfTI file (``--frame``); a 4D file without it is refused.

    Raises:
        InputError: missing path, an unsupported file, or a folder that is none of the above.
    """
    from napari_wss import io

    p = Path(path)
    yx = (1.0, 1.0) if spacing is None else (float(spacing[0]), float(spacing[1]))
    png_spacing = (1.0, *yx)
    if not p.exists():
        raise InputError(f"{what} not found: {p}")
    if p.is_file():
        if _is_nifti(p):
            try:
                vol = io.read_nifti(p, frame=frame)
            except InputError as exc:  # the core names its keyword argument; the user types --frame
                raise InputError(str(exc).replace("frame=", "--frame ")) from exc
            return Loaded(vol.data, vol.spacing, vol.affine, "nifti", p)
        if frame is not None:
            raise InputError(f"--frame {frame} was given but {what} {p} is not a 4D NIfTI file; leave --frame out")
        if p.suffix.lower() == ".png":
            return Loaded(io.read_png(p)[None], png_spacing, _png_affine(png_spacing), "png", p)
        raise InputError(f"{what} {p} is not a NIfTI (.nii, .nii.gz) or PNG file")
    pngs = sorted((f for f in p.iterdir() if f.is_file() and f.suffix.lower() == ".png"), key=io.natural_sort_key)
    if pngs:
        data = io.read_png_stack(pngs)
        return Loaded(data, png_spacing, _png_affine(png_spacing), "pngdir", p, tuple(f.name for f in pngs))
    if (p / "img").is_dir() or any((d / "img").is_dir() for d in p.iterdir() if d.is_dir()):
        dataset = io.find_png_dataset(p)
        split = "train" if "train" in dataset else next(iter(dataset))
        samples = dataset[split]
        data = io.read_png_stack([s.image for s in samples])
        layout = {
            "weak": samples[0].weak.parent if all(s.weak is not None for s in samples) else None,  # type: ignore[union-attr]
            "gt": samples[0].gt.parent if all(s.gt is not None for s in samples) else None,  # type: ignore[union-attr]
        }
        names = tuple(s.name for s in samples)
        return Loaded(
            data, png_spacing, _png_affine(png_spacing), "pngdir", p / split if split != "all" else p, names, layout
        )
    if _looks_like_acdc(p):
        raise InputError(f"{p} is an ACDC folder; pass it with --acdc {p} (and --patients) instead of --{what}")
    raise InputError(
        f"{what} folder {p} holds no PNG files and is not the seed's layout (img/, gt/, weak/) nor an ACDC folder"
    )


def _looks_like_acdc(p: Path) -> bool:
    from napari_wss import io

    try:
        io.find_acdc_cases(p)
    except InputError:
        return False
    return True


def load_map(path: str | os.PathLike[str], image: Loaded, *, what: str, frame: int | None = None) -> np.ndarray:
    """Read scribbles or labels and check they lie on the image's grid. ``frame``: the image's
    time frame (``--frame``), taken from the map too when it is a 4D file."""
    if frame is not None and Path(path).is_file() and _is_nifti(Path(path)):
        from napari_wss import io

        frame = frame if io.nifti_frame_count(path) > 1 else None
    else:
        frame = None
    m = load_image(path, what=what, frame=frame)
    if m.data.shape != image.data.shape:
        raise InputError(
            f"{what} {m.path.name} has shape {m.data.shape} but the image {image.path.name} has shape "
            f"{image.data.shape}"
        )
    if m.kind == "pngdir" and image.kind == "pngdir" and m.names != image.names:
        raise InputError(f"{what} folder {m.path} does not hold the same file names as the image folder {image.path}")
    if m.kind == "nifti" and image.kind == "nifti":
        from napari_wss import io

        io.check_same_grid(
            io.Volume(image.data, image.spacing, image.affine, image.path),
            io.Volume(m.data, m.spacing, m.affine, m.path),
            what,
        )
    if m.data.dtype.kind == "f" and not np.all(np.isfinite(m.data)):
        raise InputError(f"{what} {m.path.name} contains NaN or infinite values")
    return m.data


# --------------------------------------------------------------------------------------------
# Parsing bounds from flags


def _class_index(token: str, names: Sequence[str], flag: str) -> int:
    token = token.strip()
    if token in names:
        return names.index(token)
    lowered = [n.lower() for n in names]
    if token.lower() in lowered:
        return lowered.index(token.lower())
    if token.isdigit() and int(token) < len(names):
        return int(token)
    raise InputError(
        f"{flag}: unknown class {token!r}; classes are {', '.join(names)} (or their index 0..{len(names) - 1})"
    )


def _floats(text: str, n: int, flag: str, spec: str) -> tuple[float, ...]:
    parts = text.split(":")
    try:
        values = tuple(float(v) for v in parts)
    except ValueError:
        values = ()
    if len(values) != n:
        raise InputError(f"{flag} expects {spec}, got {text!r}")
    return values


def parse_size_flags(items: Sequence[str], names: Sequence[str], flag: str) -> dict[int, tuple[float, float]]:
    """``CLASS=LO:HI`` items → {class: (lo, hi)}; lower > upper is caught by :class:`ClassPrior`."""
    out: dict[int, tuple[float, float]] = {}
    for item in items:
        cls, sep, rng = item.partition("=")
        if not sep:
            raise InputError(f"{flag} expects CLASS=LOWER:UPPER, got {item!r}")
        lo, hi = _floats(rng, 2, flag, "CLASS=LOWER:UPPER")
        out[_class_index(cls, names, flag)] = (lo, hi)
    return out


def parse_centroid_flags(
    items: Sequence[str], names: Sequence[str]
) -> dict[int, tuple[tuple[float, float], tuple[float, float]]]:
    """``CLASS=r0:r1,c0:c1`` items → {class: ((r0, r1), (c0, c1))} in source pixels."""
    out: dict[int, tuple[tuple[float, float], tuple[float, float]]] = {}
    for item in items:
        cls, sep, box = item.partition("=")
        rows, comma, cols = box.partition(",")
        if not sep or not comma:
            raise InputError(f"--centroid expects CLASS=ROW0:ROW1,COL0:COL1 (pixels), got {item!r}")
        r0, r1 = _floats(rows, 2, "--centroid", "CLASS=ROW0:ROW1,COL0:COL1")
        c0, c1 = _floats(cols, 2, "--centroid", "CLASS=ROW0:ROW1,COL0:COL1")
        out[_class_index(cls, names, "--centroid")] = ((r0, r1), (c0, c1))
    return out


def _class_names(arg: str | None, k_seen: int) -> tuple[str, ...]:
    from napari_wss.config import ClassPrior, class_names_from

    if arg:
        names = tuple(n.strip() for n in arg.split(","))
        class_names_from([ClassPrior(n) for n in names])
        if len(names) < k_seen:
            raise InputError(f"--classes names {len(names)} classes but the scribbles/labels use {k_seen}")
        return names
    k = max(k_seen, 2)
    if k == 4:
        return DEFAULT_CLASSES_4
    return ("background", *(f"class{i}" for i in range(1, k)))


# --------------------------------------------------------------------------------------------
# Commands


def cmd_make_samples(args: argparse.Namespace) -> int:
    from napari_wss import toy

    out = Path(args.dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder")
    written = toy.write_samples(out)
    total = sum(p.stat().st_size for p in written)
    _echo(f"wrote {len(written)} files ({total / 1024:.0f} KiB) under {out}")
    return 0


@dataclass
class _TrainVolume:
    image: Loaded
    scribbles: np.ndarray | None
    labels: np.ndarray | None
    name: str


def _train_volumes(args: argparse.Namespace, need_scribbles: bool) -> list[_TrainVolume]:
    from napari_wss import io

    vols: list[_TrainVolume] = []
    if args.acdc:
        from napari_wss.experiments import parse_patients, select_cases

        if args.image:
            raise InputError("give either --image or --acdc, not both")
        cases = select_cases(
            args.acdc, parse_patients(args.patients), need_scribbles=need_scribbles, limit=args.max_train_volumes
        )
        for case in cases:
            img = load_image(case.image)
            scr = load_map(case.scribble, img, what="scribbles") if case.scribble is not None else None
            lab = load_map(case.gt, img, what="labels") if case.gt is not None else None
            vols.append(_TrainVolume(img, scr, lab, case.image.name))
        return vols
    if not args.image:
        raise InputError("no training data: give --image IMG (NIfTI, PNG or a PNG folder) or --acdc ROOT")
    for flag in ("scribbles", "labels"):
        given = getattr(args, flag)
        if given and len(given) != len(args.image):
            raise InputError(f"{len(args.image)} images but {len(given)} --{flag} files; give one per image")
    for i, path in enumerate(args.image):
        img = load_image(path, spacing=args.spacing, frame=args.frame)
        scr = lab = None
        if args.scribbles:
            scr = load_map(args.scribbles[i], img, what="scribbles", frame=args.frame)
        if args.labels:
            lab = load_map(args.labels[i], img, what="labels", frame=args.frame)
        if img.layout is not None:  # the seed's PNG layout carries its weak labels and masks
            if scr is None and img.layout["weak"] is not None:
                scr = load_map(img.layout["weak"], img, what="scribbles")
            if lab is None and img.layout["gt"] is not None:
                lab = load_map(img.layout["gt"], img, what="labels")
        if scr is None and need_scribbles and img.kind == "nifti":
            _, sibling = io.acdc_siblings(img.path)
            if sibling is not None:
                log.warning("using the scribbles next to the image: %s", sibling.name)
                scr = load_map(sibling, img, what="scribbles")
        vols.append(_TrainVolume(img, scr, lab, img.path.name))
    return vols


def _volume_bounds(
    vol: _TrainVolume, names: Sequence[str], args: argparse.Namespace, estimate: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    from napari_wss.config import ClassPrior
    from napari_wss.data import bounds_from_labels, bounds_from_priors

    _, dy, dx = vol.image.spacing
    mm2 = parse_size_flags(args.size_mm2 or [], names, "--size-mm2")
    px = parse_size_flags(args.size_px or [], names, "--size-px")
    both = sorted(set(mm2) & set(px))
    if both:
        raise InputError(f"class {names[both[0]]!r} has both --size-mm2 and --size-px; give one")
    if args.cardiac_sizes:  # the textbook ranges where the user stated none
        from napari_wss.metrics import cardiac_size_ranges

        if vol.image.kind != "nifti" and args.spacing is None:
            raise InputError(f"--cardiac-sizes are areas in mm²: give --spacing DY DX (mm) for {vol.name}")
        for c, size in cardiac_size_ranges(names).items():
            if c not in mm2 and c not in px:
                mm2[c] = size
    cents = parse_centroid_flags(args.centroid or [], names)
    priors = []
    for c, name in enumerate(names):
        if c in mm2:
            priors.append(ClassPrior.from_mm2(name, mm2[c], (dy, dx), cents.get(c)))
        else:
            priors.append(ClassPrior(name, px.get(c), cents.get(c)))
    n, h, w = vol.image.data.shape
    sizes, centroids = bounds_from_priors(
        priors,
        n,
        (h, w),
        scribbles=vol.scribbles,
        absent_from_scribbles=not args.keep_absent,
    )
    if estimate is not None:
        est_sizes, _ = bounds_from_labels(estimate, len(names), margin=args.margin)
        sizes = est_sizes
    return sizes, centroids, priors


def cmd_train(args: argparse.Namespace) -> int:
    """Train on one device; under torchrun with several processes, data-parallel (DDP)."""
    from napari_wss import distributed

    if args.sync_bn and distributed.launched() is None:
        log.warning("--sync-bn only applies to several processes started by torchrun; ignored")
    return distributed.run_if_launched(
        lambda ctx: _train(args, ctx), args.device, sync_bn=args.sync_bn, timeout_s=args.dist_timeout
    )


def _train(args: argparse.Namespace, ctx: Any) -> int:
    """The train command in one process; ``ctx`` is its DistContext under torchrun, else None."""
    from napari_wss import experiments
    from napari_wss.config import PENALTY_WEIGHTS, Mode, Penalty, TrainConfig
    from napari_wss.data import SliceDataset, check_labels, prepare_volume
    from napari_wss.training import TrainState, _check_supervision, load_checkpoint, train

    out = Path(args.out)
    if not out.parent.is_dir():
        raise InputError(f"cannot save the model: folder {out.parent} does not exist")
    if out.is_dir():
        raise InputError(f"--out {out} is a folder; expected a model file name such as model.pt")
    mode = Mode(args.mode)
    need_scribbles = mode in (Mode.PARTIAL, Mode.CONSTRAINED)
    vols = _train_volumes(args, need_scribbles)
    for v in vols:
        if out.resolve() == v.image.path.resolve():
            raise InputError(f"--out {out} is the training image; choose another file name")
        inputs = [Path(p) for p in (*(args.scribbles or ()), *(args.labels or ()))]
        if v.image.kind == "nifti":
            from napari_wss import io

            inputs += [p for p in io.acdc_siblings(v.image.path) if p is not None]
        for given in inputs:
            if out.resolve() == given.resolve():
                raise InputError(f"--out {out} is an input file ({given.name}); choose another name such as model.pt")
        if need_scribbles and v.scribbles is None:
            raise InputError(f"mode '{mode.value}' needs scribbles for {v.name}: give --scribbles")
        if mode == Mode.FULL and v.labels is None:
            raise InputError(f"mode 'full' needs dense labels for {v.name}: give --labels")
    state = load_checkpoint(args.resume) if args.resume else None
    k_seen = 2
    for v in vols:
        if v.scribbles is not None and v.scribbles.size:
            k_seen = max(k_seen, int(v.scribbles.max()))
        if v.labels is not None and v.labels.size:
            k_seen = max(k_seen, int(v.labels.max()) + 1)
    if state is not None and k_seen > state.num_classes:
        raise InputError(
            f"the model in {Path(args.resume).name} segments {state.num_classes} classes "
            f"({', '.join(state.class_names)}) but the scribbles/labels use {k_seen}; leave out --resume to train a "
            "new model"
        )
    if state is None and not args.classes and k_seen > 64:
        raise InputError(
            f"the scribbles/labels would make {k_seen} classes; scribbles are 0 = not annotated and c + 1 = class c, "
            "labels 0..K-1 (a 0/255 mask? divide it by 255; or name the classes with --classes)"
        )
    names = state.class_names if state is not None else _class_names(args.classes, k_seen)
    if state is not None and args.classes and tuple(n.strip() for n in args.classes.split(",")) != names:
        raise InputError(f"--classes differ from the classes of the model in {args.resume}: {', '.join(names)}")

    estimates: list[np.ndarray | None] = [None] * len(vols)
    if args.estimate_bounds_from:
        for i, v in enumerate(vols):
            if args.estimate_bounds_from == "gt":
                if v.labels is None:
                    raise InputError(
                        f"--estimate-bounds-from gt needs labels for {v.name} (--labels or ACDC _gt files)"
                    )
                estimates[i] = v.labels
            else:
                if len(vols) > 1:
                    raise InputError("--estimate-bounds-from FILE works with one image; use 'gt' with several")
                estimates[i] = load_map(args.estimate_bounds_from, v.image, what="ground truth", frame=args.frame)
            estimates[i] = check_labels(estimates[i], len(names), v.image.data.shape)

    default_weights = PENALTY_WEIGHTS[Penalty(args.penalty)]
    config = TrainConfig(
        mode=mode,
        penalty=args.penalty,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        size_weight=default_weights[0] if args.size_weight is None else args.size_weight,
        centroid_weight=default_weights[1] if args.centroid_weight is None else args.centroid_weight,
        t0=args.t0,
        temperature=args.temperature,
        penalty_warmup=args.penalty_warmup,
        absence_weight=TrainConfig.absence_weight if args.absence_weight is None else args.absence_weight,
        mixed_pseudo_weight=args.mixed_pseudo,
        width=args.width,
        depth=args.depth,
        size=args.net_size,
        augment=not args.no_augment,
        rotate=args.rotate,
        zoom=args.zoom,
        amp=not args.no_amp,
        compile=args.compile,
        device=args.device if ctx is None else ctx.config_device(args.device),
        seed=args.seed,
        preview_every=args.preview_every,
    )
    if state is not None:
        keep = {k: getattr(state.config, k) for k in ("width", "depth", "size")}
        config = config.with_(**keep)
    parts, priors = [], None
    for i, v in enumerate(vols):
        sizes, cents, vol_priors = _volume_bounds(v, names, args, estimates[i])
        priors = priors or vol_priors
        ds, _ = prepare_volume(
            v.image.data,
            num_classes=len(names),
            size=config.size,
            scribbles=v.scribbles,
            labels=v.labels,
            size_bounds=sizes,
            centroid_bounds=cents,
            volume_index=i,
        )
        parts.append(ds)
    data = SliceDataset.concat(parts)
    # train() checks this on its first step too; here a refusal comes before any warning, so the
    # user sees one line.
    _check_supervision(data, config, names)
    _check_every_class_taught(vols, names, priors or [], config, bool(args.estimate_bounds_from))
    if mode == Mode.CONSTRAINED and np.all(np.isnan(data.size_bounds)) and np.all(np.isnan(data.centroid_bounds)):
        log.warning("mode 'constrained' without any size or centroid bound trains like 'partial'")
    main = ctx is None or ctx.is_main  # under torchrun only process 0 prints, draws bars and saves
    if main:
        _echo(
            f"training {mode.value} ({config.penalty.value}) on {len(data)} slices of {len(vols)} volume(s), "
            f"classes: {', '.join(names)}; network {config.size}x{config.size} width {config.width}"
            + ("" if ctx is None else f"; {ctx.world_size} processes x batch {config.batch_size}")
        )
    if state is None:
        state = TrainState.create(config, names, priors=priors or (), arch=args.arch)
    started = time.perf_counter()
    gen = train(
        data,
        config,
        class_names=names,
        state=state,
        checkpoint=out,
        checkpoint_every=args.checkpoint_every,
        arch=args.arch,
        **({} if ctx is None else ctx.train_kwargs()),
    )
    state = experiments.run_training(gen, config.steps, "train", _progress_factory(args.progress if main else False))
    elapsed = time.perf_counter() - started
    if not main:
        return 0
    _echo(f"saved {out} after {state.step} steps in {elapsed:.1f} s")
    if any(v.labels is not None for v in vols):
        _report_training_fit(state, vols, names)
    return 0


def _check_every_class_taught(
    vols: Sequence[_TrainVolume], names: Sequence[str], priors: Sequence[Any], config: Any, estimated: bool
) -> None:
    """Refuse a class that is never scribbled and has no bound: nothing would teach it (as the widget)."""
    if not config.uses_scribbles or estimated:
        return
    painted: set[int] = set()
    for v in vols:
        if v.scribbles is not None:
            painted |= {int(x) - 1 for x in np.unique(v.scribbles) if x > 0}
    for c, name in enumerate(names):
        bounded = c < len(priors) and (priors[c].size is not None or priors[c].centroid is not None)
        if c not in painted and not (bounded and config.uses_priors):
            raise InputError(
                f"class '{name}' has neither scribbles nor bounds: scribble it, give it --size-mm2, --size-px or "
                "--centroid (with a penalty), or leave it out of --classes"
            )


def _report_training_fit(state: Any, vols: Sequence[_TrainVolume], names: Sequence[str]) -> None:
    from napari_wss.metrics import dice_per_class
    from napari_wss.training import predict_volume

    scores = []
    for v in vols:
        if v.labels is not None:
            pred = predict_volume(state, v.image.data, device=state.config.device)
            scores.append(dice_per_class(np.asarray(pred), v.labels.astype(np.uint8), len(names)))
    d = np.nanmean(np.stack(scores), axis=0)
    per = ", ".join(f"{n} {x:.3f}" for n, x in zip(names[1:], d[1:]))
    _echo(f"Dice on the training volumes (against --labels): {per}")


def cmd_predict(args: argparse.Namespace) -> int:
    from napari_wss import io
    from napari_wss.training import load_checkpoint, predict_volume

    state = load_checkpoint(args.model)
    if args.tta > 1 and not state.config.augment:
        sys.stderr.write(
            "napari-wss: caution: this model trained without flips and turns (--no-augment), so --tta shows it "
            "orientations it never saw\n"
        )
    if args.heart:  # Predict volume's clean-up, as the widget ticks it by default
        args.largest_component = args.lv_hull = args.dark_myocardium = args.septum_wall = True
    if args.lv_hull or args.max_wall_mm is not None:
        from napari_wss.postprocess import lv_hull_classes

        lv_hull_classes(state.class_names)  # refused before any file is read or written
    if args.max_wall_mm is not None and not args.max_wall_mm > 0:
        raise InputError(f"--max-wall-mm must be a positive number of mm, got {args.max_wall_mm:g}")
    if args.septum_wall:
        from napari_wss.postprocess import septum_classes

        septum_classes(state.class_names)  # refused before any file is read or written
    if args.dark_myocardium:
        from napari_wss.postprocess import dark_myocardium_classes

        dark_myocardium_classes(state.class_names)  # refused before any file is read or written
    if args.acdc:
        return _predict_acdc(args, state)
    cohort = _cohort_images(args.image)
    if cohort:
        return _predict_cohort(args, state, cohort)
    args.image = args.image[0] if args.image else None
    if args.frame == "all":
        return _predict_cine(args, state)
    if not args.image or not args.out:
        raise InputError("predict needs --image IMG and --out OUT (or --acdc ROOT --out DIR)")
    img = load_image(args.image, spacing=args.spacing, frame=args.frame)
    if args.max_wall_mm is not None and img.kind != "nifti":
        raise InputError("--max-wall-mm needs a NIfTI image: its voxel size says what a millimetre is")
    out = Path(args.out)
    if out.resolve() == img.path.resolve():
        raise InputError(f"refusing to write the prediction onto the source image {img.path}; choose another --out")
    for sibling in io.acdc_siblings(img.path) if img.kind == "nifti" else ():
        if sibling is not None and out.resolve() == sibling.resolve():
            raise InputError(
                f"refusing to write the prediction over {sibling.name}, the image's ground truth or scribbles; "
                "choose another --out"
            )
    if img.kind == "pngdir":
        if out.exists() and not out.is_dir():
            raise InputError(f"--out {out} must be a folder for a folder of PNG images")
        clashes = [n for n in img.names if (out / n).exists()]
        if clashes and not args.overwrite:
            raise InputError(f"{out / clashes[0]} already exists; choose another folder or pass --overwrite")
    elif _is_nifti(out):
        if out.exists() and not args.overwrite:
            raise InputError(f"{out} already exists; choose another name or pass --overwrite")
    elif out.suffix.lower() == ".png":
        if img.kind != "png":
            raise InputError(f"--out {out} is a PNG but the image is a volume; write .nii.gz")
        if out.exists() and not args.overwrite:
            raise InputError(f"{out} already exists; choose another name or pass --overwrite")
    else:
        raise InputError(f"--out {out} must end in .nii.gz, .nii or .png (a folder for a PNG folder)")
    keep = ("slice" if img.kind == "pngdir" else "volume") if args.largest_component else None
    strokes = marks = absent = None
    if args.scribbles:
        from napari_wss.data import absent_classes, check_scribbles

        strokes = check_scribbles(load_map(args.scribbles, img, what="scribbles", frame=args.frame), state.num_classes)
        if keep is not None:  # they choose the objects kept, and clear what they say is absent
            marks = strokes
            n = marks.shape[0] if marks.ndim == 3 else 1
            absent = absent_classes(n, state.num_classes, scribbles=marks)  # as the widget's Predict volume
    geometry = _placed(state, img.data, img.path.name, strokes)
    heart = _predict_options(args, img.spacing)
    if args.dark_myocardium and strokes is not None:
        from napari_wss.postprocess import myocardium_ceiling

        from_strokes = myocardium_ceiling(img.data, strokes, state.class_names)
        if from_strokes is not None:
            heart["myo_ceiling"] = from_strokes
    labels = np.asarray(
        predict_volume(
            state,
            img.data,
            geometry=geometry,
            device=args.device,
            largest_component=keep,
            scribbles=marks,
            absent=absent,
            **heart,
        )
    )
    if img.kind == "pngdir":
        out.mkdir(parents=True, exist_ok=True)
        for name, lab in zip(img.names, labels):
            io.write_png(out / name, lab, overwrite=args.overwrite)
    elif out.suffix.lower() == ".png":
        io.write_png(out, labels[0], overwrite=args.overwrite)
    else:
        io.write_nifti(out, labels, img.affine, spacing=img.spacing, source=img.path, overwrite=args.overwrite)
    counts = np.bincount(labels.ravel(), minlength=state.num_classes)
    summary = ", ".join(f"{n} {int(c)}" for n, c in zip(state.class_names, counts))
    _echo(f"wrote {out} ({labels.shape[0]} slice(s); voxels per class: {summary})")
    return 0


def _placed(
    state: Any, image: np.ndarray, name: str, strokes: np.ndarray | None = None, beside: Path | None = None
) -> Any:
    """Where the model predicts ``image`` (:func:`~napari_wss.training.prediction_geometry`: around
    its ``strokes`` for a model trained on a crop; ``beside``: the image file, whose ``*_scribble``
    file, ACDC's layout, gives the strokes when it lies on the image's shape). Says on stderr when
    the model can only see the image as a whole slice."""
    from napari_wss import io
    from napari_wss.training import prediction_geometry

    geometry, caution = prediction_geometry(state, np.shape(image)[-2:], strokes)
    scribble = io.acdc_siblings(beside)[1] if caution is not None and beside is not None else None
    if scribble is not None:  # read only when the model has no other way to see this image
        found = io.read_nifti(scribble).data
        if found.shape == np.shape(image):
            geometry, caution = prediction_geometry(state, np.shape(image)[-2:], found)
    if caution is not None:
        sys.stderr.write(f"napari-wss: {name}: {caution}\n")
    return geometry


def _predict_options(args: argparse.Namespace, spacing_zyx: tuple[float, float, float]) -> dict[str, Any]:
    """``predict_volume``'s options: ``--tta`` and the heart rules from ``--lv-hull`` / ``--septum-wall`` /
    ``--max-wall-mm`` / ``--dark-myocardium`` (the ceiling from the prediction: the single-image path puts
    its strokes' in when it has them) and the image's voxel size."""
    from napari_wss.postprocess import FROM_PREDICTION, SEPTUM_FACTOR

    return {
        "myo_ceiling": FROM_PREDICTION if args.dark_myocardium else None,
        "lv_hull": args.lv_hull,
        "max_wall_mm": args.max_wall_mm,
        "spacing_yx": tuple(spacing_zyx[1:]),
        "septum_factor": SEPTUM_FACTOR if args.septum_wall else None,
        "tta": args.tta,
    }


def _cohort_images(given: Sequence[str] | None) -> list[Path]:
    """The NIfTI images of a cohort prediction: several ``--image`` files, or one folder holding
    NIfTI files (its ``_gt`` / ``_scribble`` label files left out); [] for one image or a PNG folder."""
    from napari_wss import io

    if not given:
        return []
    if len(given) > 1:
        paths = [Path(g) for g in given]
        for path in paths:
            if not path.is_file() or not _is_nifti(path):
                raise InputError(f"with several --image files each must be a NIfTI file; {path} is not")
        if len({p.resolve() for p in paths}) < len(paths):
            raise InputError("an --image file is given twice")
        return paths
    folder = Path(given[0])
    if not folder.is_dir():
        return []
    files = [f for f in folder.iterdir() if f.is_file() and _is_nifti(f) and not io.is_acdc_label_file(f)]
    return sorted(files, key=io.natural_sort_key)


def _predict_cohort(args: argparse.Namespace, state: Any, images: list[Path]) -> int:
    """``predict --image A B ...`` (or a folder of NIfTI files): each image into ``--out/<its name>``.
    Every target is checked before the first prediction; an image that cannot be read is named on
    stderr and skipped, the others are written, and the exit status then says some failed."""
    from napari_wss import io
    from napari_wss.training import predict_volume

    if not args.out:
        raise InputError("predicting several images needs --out DIR, the folder for their predictions")
    if args.frame == "all" or args.scribbles:
        raise InputError("--frame all and --scribbles take one image; predict the others one by one")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} must be a folder when predicting several images")
    if len({p.name for p in images}) < len(images):
        raise InputError("two --image files share a file name: their predictions would overwrite each other")
    targets = [out / p.name for p in images]
    for src, target in zip(images, targets):
        if target.resolve() == src.resolve() or any(target.resolve() == p.resolve() for p in images):
            raise InputError(f"--out {out} would overwrite the image {src.name}; choose another folder")
        if target.exists() and not args.overwrite:
            raise InputError(f"{target} already exists; choose another folder or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    keep = "volume" if args.largest_component else None
    failed = []
    for src, target in zip(images, targets):
        try:
            img = load_image(src, frame=args.frame)
            labels = predict_volume(
                state,
                img.data,
                geometry=_placed(state, img.data, src.name, beside=src),
                device=args.device,
                largest_component=keep,
                **_predict_options(args, img.spacing),
            )
            io.write_nifti(target, np.asarray(labels), img.affine, spacing=img.spacing, source=src, overwrite=True)
        except InputError as exc:
            failed.append(src.name)
            sys.stderr.write(f"napari-wss: skipped {src.name}: {exc}\n")
            continue
        _echo(f"wrote {target} ({img.data.shape[0]} slice(s))")
    if failed:
        raise InputError(
            f"{len(failed)} of {len(images)} images could not be predicted ({', '.join(failed)}), see above"
        )
    _echo(f"wrote {len(images)} predictions to {out}")
    return 0


def _frame_arg(text: str) -> int | str:
    """``--frame``: a 0-based frame number, or ``all``."""
    if text.strip().lower() == "all":
        return "all"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a frame number (0, 1, ...) or 'all', got {text!r}") from None


def _predict_cine(args: argparse.Namespace, state: Any) -> int:
    """``predict --frame all``: every frame of a 4D cine into one 4D labels file on its grid, then
    the volume curve and the indices of the frames it finds as end-diastole and end-systole."""
    from tqdm import tqdm

    from napari_wss import io
    from napari_wss.training import predict_volume

    if not args.image or not args.out:
        raise InputError("predict --frame all needs --image CINE (a 4D NIfTI file) and --out OUT.nii.gz")
    if args.scribbles:
        raise InputError("--scribbles belong to one frame: with --frame all use --largest-component without them")
    src, out = Path(args.image), Path(args.out)
    if not _is_nifti(src):
        raise InputError(f"--frame all needs a 4D NIfTI image; {src.name} is not NIfTI")
    if not _is_nifti(out):
        raise InputError(f"--out {out} must end in .nii.gz or .nii: the prediction of a cine is a 4D NIfTI file")
    if out.exists() and not args.overwrite:  # before minutes of prediction, not after
        raise InputError(f"{out} already exists; choose another name or pass --overwrite")
    if out.resolve() == src.resolve():
        raise InputError(f"refusing to write the prediction onto the source image {src}; choose another --out")
    if io.nifti_frame_count(src) == 1:
        raise InputError(f"{src.name} is not a 4D cine: leave out --frame all to predict it as one volume")
    frames, step = io.read_nifti_frames(src)
    grid = frames[0]
    heart = _predict_options(args, grid.spacing)
    keep = "volume" if args.largest_component else None
    bar = tqdm(
        frames,
        desc="predict",
        unit="frame",
        disable=None if args.progress is None else not args.progress,
        file=sys.stderr,
        dynamic_ncols=True,
        leave=False,
    )
    geometry = _placed(state, grid.data, src.name)  # one grid: every frame where the model was trained
    labels = []
    for vol in bar:
        labels.append(
            np.asarray(
                predict_volume(state, vol.data, geometry=geometry, device=args.device, largest_component=keep, **heart)
            )
        )
    cine = np.stack(labels)
    io.write_nifti(out, cine, grid.affine, spacing=grid.spacing, source=src, overwrite=args.overwrite, frame_step=step)
    _echo(f"wrote {out} ({len(frames)} frames of {cine.shape[1]} slice(s))")
    _report_cine(cine, state.class_names, grid.spacing, csv=None)
    return 0


def _report_cine(
    cine: np.ndarray, names: Sequence[str], spacing: tuple[float, float, float], csv: str | None
) -> list[tuple[str, float, str]]:
    """Print every frame's class volumes and, with cardiac classes, the indices of the frames of
    the largest and smallest ventricle (end-diastole, end-systole); returns them as CSV items."""
    from napari_wss import io
    from napari_wss.experiments import ResultTable
    from napari_wss.metrics import cine_indices, cine_items, class_volumes_ml, index_items

    ml = np.stack([class_volumes_ml(frame.astype(np.int64), len(names), spacing) for frame in cine])
    indices, ed, es = cine_indices(ml, names)
    rows = tuple((t, *map(float, v[1:]), "ED" if t == ed else "ES" if t == es else "") for t, v in enumerate(ml))
    columns = ("frame", *(f"{n} (mL)" for n in names[1:]), "phase")
    note = f"voxel {' x '.join(f'{s:g}' for s in spacing)} mm"
    text = ResultTable("volume of every class, frame by frame", columns, rows, (note,)).format()
    _echo(text[: text.rfind("\nwall time")])
    if indices:
        _echo(
            f"cardiac indices, end-diastole = frame {ed} and end-systole = frame {es} "
            "(the largest and smallest ventricle):\n"
            + "\n".join(f"  {key:<9} {_one_decimal(value):>8} {unit}" for key, value, unit in index_items(indices))
        )
    items = cine_items(ml, names)
    if csv:
        io.write_csv(csv, ("item", "value", "unit"), items)
        _echo(f"wrote {csv}")
    return items


def _predict_acdc(args: argparse.Namespace, state: Any) -> int:
    from napari_wss import io
    from napari_wss.experiments import parse_patients, select_cases
    from napari_wss.training import predict_volume

    out = Path(args.out) if args.out else None
    if out is None or (out.exists() and not out.is_dir()):
        raise InputError("with --acdc, --out must name a folder for the predictions")
    cases = select_cases(args.acdc, parse_patients(args.patients))
    targets = [out / c.image.name for c in cases]
    clashes = [t for t in targets if t.exists()]
    if clashes and not args.overwrite:
        raise InputError(f"{clashes[0]} already exists; choose another folder or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    for case, target in zip(cases, targets):
        vol = io.read_nifti(case.image)
        keep = "volume" if args.largest_component else None
        heart = _predict_options(args, vol.spacing)
        geometry = _placed(state, vol.data, case.image.name, beside=case.image)
        labels = np.asarray(
            predict_volume(state, vol.data, geometry=geometry, device=args.device, largest_component=keep, **heart)
        )
        io.write_nifti(target, labels, vol.affine, spacing=vol.spacing, source=case.image, overwrite=args.overwrite)
    _echo(f"wrote {len(cases)} predictions to {out}")
    return 0


@dataclass
class _Pair:
    name: str
    pred: np.ndarray
    ref: np.ndarray
    spacing: tuple[float, float, float]
    in_mm: bool
    patient: int | None = None  # ACDC evaluation: pairs ED and ES frames for the clinical indices
    phase: str = ""


def _strip(name: str) -> str:
    low = name.lower()
    for suffix in (".nii.gz", ".nii", ".png"):
        if low.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _eval_pairs(args: argparse.Namespace) -> list[_Pair]:
    from napari_wss import io

    pairs: list[_Pair] = []
    if args.acdc_pred or args.acdc:
        if not (args.acdc_pred and args.acdc):
            raise InputError("ACDC evaluation needs both --acdc-pred DIR and --acdc ROOT")
        from napari_wss.experiments import parse_patients

        folder = Path(args.acdc_pred)
        if not folder.is_dir():
            raise InputError(f"prediction folder not found: {folder}")
        wanted = set(parse_patients(args.patients)) if args.patients else None
        for case in io.find_acdc_cases(args.acdc):
            if case.gt is None or (wanted is not None and case.patient_id not in wanted):
                continue
            stem = _strip(case.image.name)
            cand = [folder / f"{stem}{tag}{ext}" for tag in ("", "_pred", "_seg") for ext in (".nii.gz", ".nii")]
            pred_path = next((c for c in cand if c.is_file()), None)
            if pred_path is None:
                continue
            ref = io.read_nifti(case.gt)
            pred = io.read_nifti(pred_path)
            pairs.append(_Pair(stem, pred.data, ref.data, ref.spacing, True, case.patient_id, case.phase))
        if not pairs:
            raise InputError(
                f"no prediction in {folder} matches an ACDC case of {args.acdc} (expected patientNNN_frameXX.nii.gz)"
            )
        return pairs
    if not (args.pred and args.ref):
        raise InputError("evaluate needs --pred and --ref (files or folders), or --acdc-pred DIR --acdc ROOT")
    pred_p, ref_p = Path(args.pred), Path(args.ref)
    for p, what in ((pred_p, "prediction"), (ref_p, "reference")):
        if not p.exists():
            raise InputError(f"{what} not found: {p}")
    if pred_p.is_dir() != ref_p.is_dir():
        raise InputError("--pred and --ref must both be files or both be folders")
    if pred_p.is_file():
        files = [(pred_p, ref_p)]
    else:

        def index(folder: Path) -> dict[str, Path]:
            return {
                _strip(f.name): f
                for f in folder.iterdir()
                if f.is_file() and (_is_nifti(f) or f.suffix.lower() == ".png")
            }

        preds, refs = index(pred_p), index(ref_p)
        common = sorted(set(preds) & set(refs), key=io.natural_sort_key)
        if not common:
            raise InputError(f"no file names match between {pred_p} and {ref_p} (NIfTI or PNG files)")
        missing = sorted(set(refs) - set(preds))
        if missing:
            log.warning("%d reference file(s) have no prediction, e.g. %s", len(missing), missing[0])
        files = [(preds[n], refs[n]) for n in common]
    for pf, rf in files:
        ref = load_image(rf, what="reference")
        pred = load_image(pf, what="prediction")
        if pred.data.shape != ref.data.shape:
            raise InputError(
                f"prediction {pf.name} has shape {pred.data.shape} but the reference {rf.name} has {ref.data.shape}"
            )
        pairs.append(_Pair(_strip(rf.name), pred.data, ref.data, ref.spacing, ref.kind == "nifti"))
    return pairs


def cmd_evaluate(args: argparse.Namespace) -> int:
    from napari_wss import io
    from napari_wss.experiments import ResultTable
    from napari_wss.metrics import score_volume

    pairs = _eval_pairs(args)
    for p in pairs:
        _check_label_map(p.pred, f"prediction {p.name}")
        _check_label_map(p.ref, f"reference {p.name}")
    names = _label_class_names(args.classes, max(int(max(p.pred.max(), p.ref.max())) + 1 for p in pairs))
    k = len(names)
    unit = "mm" if all(p.in_mm for p in pairs) else "px"
    columns = (
        "case",
        *(f"Dice {n}" for n in names[1:]),
        "Dice mean",
        *(f"HD95 {n}" for n in names[1:]),
        f"HD95 mean ({unit})",
    )
    rows = []
    dices, hds = [], []
    for p in pairs:
        s = score_volume(p.pred.astype(np.int64), p.ref.astype(np.int64), k, p.spacing)
        dices.append(s.dice)
        hds.append(s.hd95)
        rows.append((p.name, *map(float, s.dice[1:]), s.mean_dice(), *map(float, s.hd95[1:]), s.mean_hd95()))
    with np.errstate(all="ignore"), _quiet_nan_warnings():
        d = np.nanmean(np.stack(dices), axis=0)
        h = np.nanmean(np.stack(hds), axis=0)
        mean_row = ("mean", *map(float, d[1:]), float(np.nanmean(d[1:])), *map(float, h[1:]), float(np.nanmean(h[1:])))
    rows.append(mean_row)
    table = ResultTable(
        f"{len(pairs)} case(s), 3D Dice and HD95 ({unit}) per class; background left out of the means",
        columns,
        tuple(rows),
        ("'-': the class is absent from both (Dice) or from one of them (HD95).",),
    )
    text = table.format()
    _echo(text[: text.rfind("\nwall time")])
    if args.csv:
        if unit == "mm":  # the CSV also carries every class's volume, predicted and reference
            from napari_wss.metrics import class_volumes_ml

            ml = np.array([[class_volumes_ml(a, k, p.spacing)[1:] for a in (p.pred, p.ref)] for p in pairs])
            ml = np.concatenate([ml, ml.mean(axis=0, keepdims=True)])  # (cases + the mean row, 2, K - 1)
            vols = ml.transpose(0, 2, 1).reshape(len(ml), -1)  # per class: predicted, reference
            columns = (*columns, *(f"{n} {w} (mL)" for n in names[1:] for w in ("pred", "ref")))
            rows = [(*row, *map(float, v)) for row, v in zip(rows, vols)]
        io.write_csv(args.csv, columns, rows)
        _echo(f"wrote {args.csv}")
    if unit == "mm":
        _clinical_agreement(pairs, names, args.clinical_csv)
    elif args.clinical_csv:
        raise InputError("--clinical-csv needs NIfTI files (volumes need the voxel spacing in mm)")
    return 0


def _one_decimal(value: float) -> str:
    return f"{value:.1f}" if np.isfinite(value) else "-"


def _label_class_names(arg: str | None, k_seen: int) -> tuple[str, ...]:
    """Class names for label maps whose values go up to ``k_seen - 1`` (refusing an image or a
    0/255 mask given as labels)."""
    if k_seen > 64 and not arg:
        raise InputError(
            f"label values go up to {k_seen - 1}; expected class indices 0..K-1 "
            "(an image instead of labels? a 0/255 mask? divide it by 255)"
        )
    return _class_names(arg, k_seen)


def _check_label_map(arr: np.ndarray, what: str) -> None:
    if arr.dtype.kind == "f" and (not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr))):
        raise InputError(f"{what} holds non-integer values; expected a label map")
    if arr.size and arr.min() < 0:
        raise InputError(f"{what} holds negative labels")


def _clinical_agreement(pairs: Sequence[_Pair], names: Sequence[str], csv_path: str | None) -> None:
    """Print the cardiac indices of the prediction against the reference's, over the ACDC patients
    whose ED and ES frames were both evaluated (bias, 95 % limits of agreement, MAE, r), and write
    them per patient to ``csv_path``."""
    from napari_wss import io
    from napari_wss.experiments import ResultTable
    from napari_wss.metrics import INDEX_UNITS, agreement, cardiac_classes, cardiac_indices, class_volumes_ml

    frames: dict[int, dict[str, _Pair]] = {}
    for p in pairs:
        if p.patient is not None and p.phase in ("ED", "ES"):
            frames.setdefault(p.patient, {})[p.phase] = p
    both = {pid: f for pid, f in sorted(frames.items()) if len(f) == 2}
    if not both or not cardiac_classes(names):
        if csv_path:
            raise InputError("--clinical-csv needs ACDC predictions of both frames (ED and ES) of a patient")
        return
    k = len(names)

    def indices(f: dict[str, _Pair], which: str) -> dict[str, float]:
        ml = {ph: class_volumes_ml(getattr(f[ph], which), k, f[ph].spacing) for ph in ("ED", "ES")}
        return cardiac_indices(ml["ED"], ml["ES"], names)

    pred = [indices(f, "pred") for f in both.values()]
    ref = [indices(f, "ref") for f in both.values()]
    rows = []
    for index in pred[0]:
        a = agreement([i[index] for i in pred], [i[index] for i in ref])
        lo, hi = a.limits
        rows.append((index, INDEX_UNITS[index.split()[-1]], a.bias, f"{lo:.1f} .. {hi:.1f}", a.mae, a.r))
    table = ResultTable(
        f"clinical indices of {len(both)} patient(s) with both frames: prediction - reference",
        ("index", "unit", "bias", "95 % limits", "MAE", "r"),
        tuple(rows),
        ("EF = (EDV - ESV) / EDV; myocardial mass = ED myocardium volume x 1.05 g/mL.",),
    )
    text = table.format()
    _echo(text[: text.rfind("\nwall time")])
    if csv_path:
        keys = list(pred[0])
        columns = ("patient", *(f"{key} {src}" for key in keys for src in ("pred", "ref")))
        per_patient = [(pid, *(v for key in keys for v in (pi[key], ri[key]))) for pid, pi, ri in zip(both, pred, ref)]
        io.write_csv(csv_path, columns, per_patient)
        _echo(f"wrote {csv_path}")


def _measure_cine(args: argparse.Namespace) -> int:
    """``measure CINE_LABELS``: a 4D labels file (``predict --frame all``) measured frame by frame."""
    from napari_wss import io

    if args.es:
        raise InputError(
            f"{Path(args.labels).name} is 4D and holds every frame: leave out --es (or pick one frame with --frame)"
        )
    frames, _ = io.read_nifti_frames(args.labels)
    cine = np.stack([f.data for f in frames])
    _check_label_map(cine, f"label file {Path(args.labels).name}")
    names = _label_class_names(args.classes, int(cine.max()) + 1)
    _report_cine(cine, names, frames[0].spacing, csv=args.csv)
    return 0


def cmd_measure(args: argparse.Namespace) -> int:
    from napari_wss import io
    from napari_wss.experiments import ResultTable
    from napari_wss.metrics import cardiac_classes, cardiac_indices, class_volumes_ml, index_items, volume_items

    if args.frame is None and _is_nifti(Path(args.labels)) and io.nifti_frame_count(args.labels) > 1:
        return _measure_cine(args)
    paths = [args.labels] + ([args.es] if args.es else [])
    loaded = []
    for path in paths:
        lab = load_image(path, what="label file", frame=args.frame)
        if lab.kind != "nifti":
            raise InputError(f"{Path(path).name}: volumes need a NIfTI file (its header gives the voxel size in mm)")
        _check_label_map(lab.data, f"label file {Path(path).name}")
        loaded.append(lab)
    names = _label_class_names(args.classes, max(int(lab.data.max()) + 1 for lab in loaded))
    ml = [class_volumes_ml(lab.data.astype(np.int64), len(names), lab.spacing) for lab in loaded]
    rows = [(Path(path).name, *map(float, v[1:])) for path, v in zip(paths, ml)]
    columns = ("file", *(f"{n} (mL)" for n in names[1:]))
    notes = [
        f"voxel {' x '.join(f'{s:g}' for s in lab.spacing)} mm: {Path(path).name}" for path, lab in zip(paths, loaded)
    ]
    table = ResultTable("volume of every class", columns, tuple(rows), tuple(notes))
    text = table.format()
    _echo(text[: text.rfind("\nwall time")])
    items = [item for path, v in zip(paths, ml) for item in volume_items(Path(path).name, v, names)]
    if cardiac_classes(names):
        indices = index_items(cardiac_indices(ml[0], ml[1] if args.es else None, names))
        frames = (
            "end-diastole (LABELS) and end-systole (--es)" if args.es else "LABELS as end-diastole (--es adds ESV, EF)"
        )
        _echo(
            f"cardiac indices, {frames}:\n"
            + "\n".join(f"  {key:<9} {_one_decimal(value):>8} {unit}" for key, value, unit in indices)
        )
        items += indices
    if args.csv:
        io.write_csv(args.csv, ("item", "value", "unit"), items)
        _echo(f"wrote {args.csv}")
    return 0


@contextlib.contextmanager
def _quiet_nan_warnings() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def cmd_reproduce(args: argparse.Namespace) -> int:
    from napari_wss import experiments

    progress = _progress_factory(args.progress)
    common = {"seed": args.seed, "device": args.device, "progress": progress}
    if args.experiment == "toy":
        table = experiments.run_toy(
            size=args.size,
            epochs=args.epochs,
            n_train=args.n_train,
            n_val=args.n_val,
            batch_size=args.batch_size,
            width=args.width,
            lr=args.lr,
            **common,
        )
    elif args.experiment == "toy2":
        table = experiments.run_toy2(
            size=args.size,
            epochs=args.epochs,
            n_train=args.n_train,
            n_val=args.n_val,
            batch_size=args.batch_size,
            width=args.width,
            lr=args.lr,
            t0=args.t0,
            crf_weight=args.crf_weight,
            size_weight=args.size_weight,
            centroid_weight=args.centroid_weight,
            arch=args.arch,
            **common,
        )
    else:
        root = Path(args.acdc)
        train_p = experiments.parse_patients(args.patients)
        test_p = experiments.parse_patients(args.test_patients)
        if args.folds:
            train_p, test_p = _fold(sorted(set(train_p) | set(test_p)), args.fold, args.folds)
        table = experiments.run_acdc(
            root,
            train_patients=train_p,
            test_patients=test_p,
            modes=args.modes.split(","),
            steps=args.steps,
            batch_size=args.batch_size,
            net_size=args.net_size,
            width=args.width,
            lr=args.lr,
            penalty=args.penalty,
            bounds=args.bounds,
            size_weight=args.size_weight,
            centroid_weight=args.centroid_weight,
            max_train_volumes=args.max_train_volumes,
            max_test_volumes=args.max_test_volumes,
            **common,
        )
    _echo(table.format())
    return 0


def _fold(patients: list[int], fold: int, folds: int) -> tuple[list[int], list[int]]:
    if not 0 <= fold < folds:
        raise InputError(f"--fold must be in 0..{folds - 1}, got {fold}")
    test = [p for i, p in enumerate(patients) if i % folds == fold]
    return [p for p in patients if p not in test], test


def cmd_demo(args: argparse.Namespace) -> int:
    display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if not args.headless and display and importlib.util.find_spec("napari_wss._demo") is not None:
        try:
            from napari_wss import _demo

            _demo.launch()
            return 0
        except Exception as exc:  # a display that Qt cannot use, a missing Qt binding...
            log.debug("napari demo failed", exc_info=True)
            _echo(f"cannot start napari ({_one_line(exc)}): running the headless demo")
    elif not args.headless:
        why = "no display (DISPLAY/WAYLAND_DISPLAY unset)" if not display else "the napari demo is not available"
        _echo(f"{why}: running the headless demo")
    from napari_wss.experiments import run_phantom_demo

    result = run_phantom_demo(
        args.out_dir,
        steps=args.steps,
        net_size=args.net_size,
        width=args.width,
        seed=args.seed,
        device=args.device,
        progress=_progress_factory(args.progress),
    )
    _echo(result.table.format())
    return 0


# --------------------------------------------------------------------------------------------
# The parser


def _add_training_flags(p: argparse.ArgumentParser, *, steps: int, width: int, net_size: int, batch: int) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--steps", type=int, default=steps, help=f"optimisation steps (default {steps})")
    g.add_argument("--batch-size", type=int, default=batch, help=f"slices per step (default {batch})")
    g.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    g.add_argument("--width", type=int, default=width, help=f"channels of the first U-Net stage (default {width})")
    g.add_argument(
        "--net-size",
        type=int,
        default=net_size,
        help=f"slices are resized to this side for the network (default {net_size})",
    )


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda, cuda:N, mps (default auto)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def _common_flags() -> argparse.ArgumentParser:
    """Flags accepted before or after the command name (defaults live on the main parser)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--verbose", "-v", action="store_true", default=argparse.SUPPRESS, help="log details and show tracebacks"
    )
    common.add_argument(
        "--threads",
        type=int,
        default=argparse.SUPPRESS,
        help="CPU threads for torch (default: torch's choice; 1 is faster when other jobs share the cores)",
    )
    bars = common.add_mutually_exclusive_group()
    bars.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=argparse.SUPPRESS,
        help="always draw progress bars (default: only on a terminal)",
    )
    bars.add_argument(
        "--no-progress", dest="progress", action="store_false", default=argparse.SUPPRESS, help="never draw bars"
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common_flags()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Weakly supervised segmentation (scribbles + size/centroid priors), headless.",
        parents=[common],
    )
    parser.set_defaults(verbose=False, progress=None, threads=0)
    try:
        from importlib.metadata import version

        parser.add_argument("--version", action="version", version=f"{PROG} {version('napari-wss')}")
    except Exception:  # not installed: no --version
        pass
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def _add(subparsers: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return subparsers.add_parser(name, parents=[common], **kwargs)  # type: ignore[no-any-return]

    p = _add(sub, "make-samples", help="write the small synthetic sample files")
    p.add_argument("dir", nargs="?", default="sample_data", help="output folder (default sample_data)")
    p.set_defaults(func=cmd_make_samples)

    p = _add(
        sub,
        "train",
        help="train a model on scribbles, priors and/or labels",
        description="Train on images with scribbles (0 = not annotated, c+1 = class c), size/centroid "
        "priors and/or dense labels; the model file holds weights, settings, classes and bounds.",
    )
    d = p.add_argument_group("data")
    d.add_argument("--image", nargs="+", metavar="IMG", help="NIfTI, PNG, a folder of PNGs, or the seed's PNG layout")
    d.add_argument("--scribbles", nargs="+", metavar="S", help="scribbles on the same grid (one per image)")
    d.add_argument("--labels", nargs="+", metavar="GT", help="dense labels (class indices), one per image")
    d.add_argument("--acdc", metavar="ROOT", help="train on ACDC frames under ROOT instead of --image")
    d.add_argument("--patients", default="1-80", help="ACDC patients, e.g. 1-80 or 1-10,15 (default 1-80)")
    d.add_argument(
        "--max-train-volumes", type=int, default=None, help="use at most N ACDC frames (spread over patients)"
    )
    d.add_argument(
        "--spacing",
        type=float,
        nargs=2,
        metavar=("DY", "DX"),
        default=None,
        help="pixel spacing in mm for PNG input (default 1 1)",
    )
    d.add_argument(
        "--frame", type=int, default=None, metavar="T", help="time frame of a 4D (cine) NIfTI image, 0-based"
    )
    d.add_argument("--classes", help="comma-separated class names, background first (default from the data)")
    b = p.add_argument_group("supervision and priors")
    b.add_argument("--mode", default="constrained", choices=["full", "partial", "constrained", "priors"])
    b.add_argument("--penalty", default="log-barrier", choices=["none", "quadratic", "log-barrier"])
    b.add_argument("--size-mm2", action="append", metavar="CLASS=LO:HI", help="size bounds in mm² per slice (repeat)")
    b.add_argument("--size-px", action="append", metavar="CLASS=LO:HI", help="size bounds in pixels per slice (repeat)")
    b.add_argument(
        "--cardiac-sizes",
        action="store_true",
        help="short-axis cine MRI: slice areas of ACDC's 100 patients (1st-99th percentile, widened 10 %%) for the "
        "classes named RV, myocardium and LV that have no --size-mm2 / --size-px",
    )
    b.add_argument("--centroid", action="append", metavar="CLASS=R0:R1,C0:C1", help="centroid box in pixels (repeat)")
    b.add_argument(
        "--estimate-bounds-from",
        metavar="GT",
        help="per-slice size bounds from a ground-truth file (or 'gt': each volume's labels), ± --margin",
    )
    b.add_argument("--margin", type=float, default=0.1, help="relative margin of estimated bounds (default 0.1)")
    b.add_argument(
        "--keep-absent",
        action="store_true",
        help="do not mark a class absent on a scribbled slice without a stroke of it",
    )
    b.add_argument(
        "--absence-weight",
        type=float,
        default=None,
        help="weight of a term that keeps an absent class off its slices instead of a size bound of 0 in the "
        "penalty (default 0: the bound; the widget uses 0.3, see the README)",
    )
    b.add_argument(
        "--size-weight", type=float, default=None, help="default by penalty: 1 (log-barrier), 1e-2 (quadratic)"
    )
    b.add_argument(
        "--centroid-weight", type=float, default=None, help="default by penalty: 100 (log-barrier), 20 (quadratic)"
    )
    b.add_argument("--t0", type=float, default=5.0, help="initial log-barrier t (grows 1.1x per epoch)")
    b.add_argument("--temperature", type=float, default=1.0, help="softmax temperature (the seed used 5)")
    b.add_argument(
        "--penalty-warmup",
        type=int,
        default=0,
        metavar="N",
        help="the prior terms grow from 0 to their weights over the model's first N steps (default 0)",
    )
    b.add_argument(
        "--mixed-pseudo",
        type=float,
        default=0.0,
        metavar="W",
        help="weight of the dual-decoder mixed pseudo-label term (Luo et al. 2022 use 0.5; default 0 = off; "
        "a second decoder, about twice the step time on a CPU; on ACDC it lifted scribble training most without "
        "centroid boxes, which then cost 0.01-0.11 Dice; see the README)",
    )
    _add_training_flags(p, steps=300, width=16, net_size=128, batch=4)
    g = p.add_argument_group("network and run")
    g.add_argument("--depth", type=int, default=4, help="U-Net poolings (default 4)")
    g.add_argument("--arch", default="unet", choices=["unet", "shallow"])
    g.add_argument("--no-augment", action="store_true", help="no flips, rotations or intensity jitter")
    g.add_argument(
        "--rotate", type=float, default=0.0, metavar="DEG", help="also turn slices by up to ±DEG degrees (default 0)"
    )
    g.add_argument(
        "--zoom", type=float, default=0.0, metavar="F", help="also scale slices by 1 ± up to F (default 0; e.g. 0.1)"
    )
    g.add_argument(
        "--no-amp",
        action="store_true",
        help="no bf16 autocast (used on CUDA and on CPUs with AMX or AVX512-BF16 by default)",
    )
    g.add_argument(
        "--compile", action="store_true", help="torch.compile the network on CUDA (faster after a minute's warm-up)"
    )
    g.add_argument("--preview-every", type=int, default=0, help=argparse.SUPPRESS)
    g.add_argument("--resume", metavar="MODEL", help="continue training from a model file")
    g.add_argument("--checkpoint-every", type=int, default=0, help="also save every N steps (default: at the end)")
    g.add_argument(
        "--sync-bn", action="store_true", help="under torchrun on GPUs: batch-norm statistics over all processes"
    )
    g.add_argument(
        "--dist-timeout",
        type=float,
        default=600.0,
        metavar="S",
        help="under torchrun: seconds a process waits for the others before giving up (default 600)",
    )
    _add_run_flags(g)
    p.add_argument("--out", required=True, metavar="MODEL", help="model file to write (atomically)")
    p.set_defaults(func=cmd_train)

    p = _add(sub, "predict", help="segment an image with a trained model")
    p.add_argument("--model", required=True)
    p.add_argument(
        "--image",
        nargs="+",
        metavar="IMG",
        help="NIfTI, PNG or a folder of PNGs; several NIfTI files, or a folder of them, predict a cohort into the "
        "--out folder (each output named as its image)",
    )
    p.add_argument(
        "--frame",
        type=_frame_arg,
        default=None,
        metavar="T",
        help="time frame of a 4D NIfTI image, 0-based; 'all' predicts every frame into a 4D labels file and "
        "reports the volume curve, end-diastole, end-systole and ejection fractions",
    )
    p.add_argument("--acdc", metavar="ROOT", help="predict every ACDC frame of --patients into the --out folder")
    p.add_argument("--patients", default="81-100", help="ACDC patients (default 81-100)")
    p.add_argument("--out", help="labels file (.nii.gz / .png), or a folder for PNG folders and --acdc")
    p.add_argument("--spacing", type=float, nargs=2, metavar=("DY", "DX"), default=None, help=argparse.SUPPRESS)
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument(
        "--largest-component",
        action="store_true",
        help="keep only each class's largest connected object (in 3D; per image for a PNG folder; a class "
        "named LV keeps the object its myocardium rings most, area for area)",
    )
    p.add_argument(
        "--scribbles",
        metavar="S",
        help="the image's strokes: a model trained on a crop (saved from the widget) predicts an image of another "
        "grid in the crop around them, "
        "as Train cuts it (a cohort image or --acdc frame: its *_scribble file, when there is one); with "
        "--largest-component each class keeps the objects its strokes touch, after clearing each class from the "
        "slices where the strokes have none of it but some other",
    )
    p.add_argument(
        "--heart",
        action="store_true",
        help="the widget's Predict volume clean-up for a heart, measured on ACDC: --largest-component --lv-hull "
        "--dark-myocardium --septum-wall (needs classes named RV, myocardium and LV); the widget also averages "
        "the eight flips and turns: add --tta 8",
    )
    p.add_argument(
        "--lv-hull",
        action="store_true",
        help="on every slice the LV cavity takes back the myocardium inside its convex hull (papillary muscles "
        "counted in the cavity, as ACDC's experts do); needs classes named LV and myocardium",
    )
    p.add_argument(
        "--dark-myocardium",
        action="store_true",
        help="the myocardium brighter than 99 %% of the pixels under its strokes in --scribbles (without "
        "myocardium strokes: than the threshold between the predicted wall's and LV cavity's intensities) goes to "
        "the nearest other class (bright-blood cine MRI: the cavities' rims and trabeculae); needs classes named "
        "myocardium and LV; the widget's default",
    )
    p.add_argument(
        "--septum-wall",
        action="store_true",
        help="the myocardium farther from the LV cavity than 1.5 times the septum's thickness (measured on the "
        "prediction, between the two cavities) becomes background; needs classes named RV, myocardium and LV; "
        "the widget's default",
    )
    p.add_argument(
        "--max-wall-mm",
        type=float,
        default=None,
        metavar="MM",
        help="the myocardium farther than MM from the LV cavity becomes background, slice by slice (the wall "
        "thickness you know: ~12 at end-diastole for a heart without hypertrophy); NIfTI only",
    )
    p.add_argument(
        "--tta",
        type=int,
        default=1,
        choices=TTA_CHOICES,
        help="average the probabilities over this many of the square's flips and quarter turns (test-time "
        "augmentation; 8 costs 8 forward passes a slice; default 1 = none)",
    )
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_predict)

    p = _add(
        sub,
        "evaluate",
        help="3D Dice and HD95 per class of predictions against references (ACDC: also EDV, EF, mass agreement)",
    )
    p.add_argument("--pred", help="prediction file or folder")
    p.add_argument("--ref", help="reference file or folder (files matched by name)")
    p.add_argument("--acdc-pred", metavar="DIR", help="folder of ACDC predictions named like the images")
    p.add_argument("--acdc", metavar="ROOT", help="ACDC root holding the _gt files")
    p.add_argument("--patients", default=None, help="restrict ACDC evaluation to these patients")
    p.add_argument("--classes", help="comma-separated class names, background first")
    p.add_argument("--csv", help="also write the table as CSV")
    p.add_argument(
        "--clinical-csv",
        metavar="CSV",
        help="ACDC: write each patient's EDV, ESV, EF and myocardial mass (prediction and reference) as CSV",
    )
    p.set_defaults(func=cmd_evaluate)

    p = _add(
        sub,
        "measure",
        help="volume of every class in mL; for a heart, EDV, ESV, EF and myocardial mass",
        description="Volumes of the classes of a label file (NIfTI). When the class names include LV, RV "
        "or myocardium (the 4-class default: background, RV, myocardium, LV), also the cardiac indices: "
        "end-diastolic volume and myocardial mass from LABELS, and with --es the end-systolic volume, "
        "stroke volume and ejection fraction.",
    )
    p.add_argument("labels", metavar="LABELS", help="label file (NIfTI) of end-diastole, or of any volume")
    p.add_argument("--es", metavar="LABELS_ES", help="label file of end-systole of the same heart")
    p.add_argument(
        "--frame",
        type=int,
        default=None,
        metavar="T",
        help="time frame of 4D label files, 0-based (without it a 4D file is measured frame by frame, end-diastole "
        "and end-systole taken as the frames of the largest and smallest ventricle)",
    )
    p.add_argument("--classes", help="comma-separated class names, background first")
    p.add_argument("--csv", help="also write the volumes and indices as CSV")
    p.set_defaults(func=cmd_measure)

    p = _add(
        sub,
        "reproduce",
        help="the seed's experiments: toy, toy2, acdc",
        description="Reproduce the seed's experiments and print tables beside its numbers. Defaults "
        "fit a 2-core CPU in minutes; see each --help for the full-scale (GPU) settings.",
    )
    rs = p.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    t = _add(
        rs,
        "toy",
        help="TOY: shallow CNN, full / partial CE / partial CE + size",
        epilog="defaults are reduced for a 2-core CPU (128 px); seed scale: --size 256 --epochs 150",
    )
    t.add_argument("--size", type=int, default=128, help="image side (seed: 256; default 128)")
    t.add_argument("--epochs", type=int, default=150)
    t.add_argument("--n-train", type=int, default=10)
    t.add_argument("--n-val", type=int, default=10)
    t.add_argument("--batch-size", type=int, default=2)
    t.add_argument("--width", type=int, default=16)
    t.add_argument("--lr", type=float, default=1e-3)
    _add_run_flags(t)
    t.set_defaults(func=cmd_reproduce)
    t2 = _add(
        rs,
        "toy2",
        help="TOY2: priors only (size + centroid), quadratic vs log-barrier",
        epilog="defaults are reduced for a 2-core CPU; seed scale (GPU): --size 256 --n-train 1000 --n-val 100 "
        "--epochs 20 --batch-size 16 --device cuda",
    )
    t2.add_argument("--size", type=int, default=64, help="image side (seed: 256; default 64)")
    t2.add_argument("--epochs", type=int, default=20)
    t2.add_argument("--n-train", type=int, default=200, help="training images (seed: 1000; default 200)")
    t2.add_argument("--n-val", type=int, default=50, help="validation images (seed: 100; default 50)")
    t2.add_argument("--batch-size", type=int, default=8)
    t2.add_argument("--width", type=int, default=16)
    t2.add_argument("--lr", type=float, default=1e-2)
    t2.add_argument("--t0", type=float, default=5.0)
    t2.add_argument("--size-weight", type=float, default=1e-2, help="size penalty weight (default 1e-2)")
    t2.add_argument("--centroid-weight", type=float, default=1e-2, help="centroid penalty weight (default 1e-2)")
    t2.add_argument(
        "--crf-weight", type=float, default=1e-2, help="also run each penalty with the gated-CRF term (0 = off)"
    )
    t2.add_argument("--arch", default="shallow", choices=["shallow", "unet"])
    _add_run_flags(t2)
    t2.set_defaults(func=cmd_reproduce)
    a = _add(
        rs,
        "acdc",
        help="ACDC: full / partial / constrained Residual U-Net, 3D Dice per class",
        epilog="GPU scale: --net-size 256 --width 32 --steps 4000 --batch-size 16 --max-train-volumes 0 --device cuda",
    )
    a.add_argument("--acdc", default=str(ACDC_DEFAULT), metavar="ROOT", help="ACDC root (default ../shared/data/acdc)")
    a.add_argument("--patients", default="1-80", help="training patients (default 1-80)")
    a.add_argument("--test-patients", default="81-100", help="test patients (default 81-100)")
    a.add_argument("--folds", type=int, default=0, help="k-fold over --patients ∪ --test-patients (0 = off)")
    a.add_argument("--fold", type=int, default=0, help="which fold is the test set")
    a.add_argument("--modes", default="full,partial,constrained")
    a.add_argument("--penalty", default="log-barrier", choices=["quadratic", "log-barrier"])
    a.add_argument("--size-weight", type=float, default=None, help="size penalty weight (default: TrainConfig's)")
    a.add_argument("--centroid-weight", type=float, default=None, help=argparse.SUPPRESS)
    a.add_argument(
        "--bounds",
        default="oracle",
        choices=["oracle", "population"],
        help="oracle: true size ±10%% per slice (the seed); population: mm² ranges from the training masks",
    )
    a.add_argument("--max-train-volumes", type=int, default=40, help="ACDC frames to train on (0 = all; default 40)")
    a.add_argument("--max-test-volumes", type=int, default=0, help="test frames to score (0 = all)")
    _add_training_flags(a, steps=300, width=8, net_size=128, batch=8)
    _add_run_flags(a)
    a.set_defaults(func=cmd_reproduce)

    p = _add(sub, "demo", help="napari with the widget and the phantom, or a headless train-and-predict")
    p.add_argument("--headless", action="store_true", help="run the headless demo even with a display")
    p.add_argument("--out-dir", default="demo_output", help="where the overlay PNG goes (default demo_output)")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--net-size", type=int, default=64)
    p.add_argument("--width", type=int, default=8)
    _add_run_flags(p)
    p.set_defaults(func=cmd_demo)
    return parser


# --------------------------------------------------------------------------------------------
# Entry point


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, InputError):
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        text = f"{exc.strerror or type(exc).__name__}{where}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


@contextlib.contextmanager
def _logging(verbose: bool) -> Iterator[None]:
    """Route the package's log records to stderr for the duration of one command."""
    logger = logging.getLogger("napari_wss")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s: %(message)s"))
    handler.setLevel(logging.DEBUG if verbose else logging.WARNING)
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def _set_threads(n: int) -> None:
    if n < 1:
        raise InputError(f"--threads must be a positive integer, got {n}")
    import torch

    torch.set_num_threads(n)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 2 bad input, 130 interrupted)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors (argparse printed them)
        return int(exc.code) if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if args.command == "reproduce" and getattr(args, "experiment", None) == "acdc":
        args.max_train_volumes = args.max_train_volumes or None
        args.max_test_volumes = args.max_test_volumes or None
    with _logging(args.verbose):
        try:
            if args.threads:
                _set_threads(args.threads)
            return int(args.func(args))
        except (InputError, OSError) as exc:
            log.debug("%s failed", args.command, exc_info=True)
            sys.stderr.write(f"{PROG}: error: {_one_line(exc)}\n")
            return 2
        except KeyboardInterrupt:
            sys.stderr.write(f"{PROG}: interrupted (the last saved model file, if any, is intact)\n")
            return 130


if __name__ == "__main__":
    sys.exit(main())
