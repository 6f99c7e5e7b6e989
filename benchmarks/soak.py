"""Long-run soak of the plugin: memory while the real widget trains for half an hour (a script, not a test).

Opens napari with the cardiac phantom and the "Weakly supervised segmentation" widget (the demo's
settings: crop, 64 px, width 16, bounds estimated from the ground truth), presses Train and keeps
training: when a press's steps are done, Train is pressed again (the model continues), until the
time is up. Meanwhile the viewer's slice moves every few seconds, as a user browsing would, and a
bound is edited now and then (the new bounds are sent into the running generator).

Every ``--every`` seconds it samples the process's resident memory (VmRSS from /proc/self/status),
CUDA memory (allocated / reserved, on a GPU), the number of live Python objects and threads, and
the live plot's stored points. At the end it prints the samples and the drift of each series,
``(max - min) / first`` in %, over the samples taken after ``--warmup`` seconds (the first minute
pays one-off costs: torch kernels, shader compilation, allocator pools). Goal (issue 5): RSS and
CUDA memory flat within 5 %.

Run it under a display, e.g. on a headless machine::

    QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/soak.py

``--threads 1`` (the default) trains on one core, so the soak leaves the others to other work.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import threading
import time

import numpy as np


def _proc_status(key: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(f"{key}:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_mib() -> float:
    """Resident memory of this process in MiB (Linux /proc; psutil elsewhere)."""
    kib = _proc_status("VmRSS")
    if kib is not None:
        return kib / 1024
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


def os_threads() -> int:
    """Threads of this process (Qt's pool threads included; threading only sees Python's own)."""
    n = _proc_status("Threads")
    return n if n is not None else threading.active_count()


def cuda_mib() -> tuple[float, float] | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.memory_allocated() / 2**20, torch.cuda.memory_reserved() / 2**20


def drift(values: list[float]) -> float:
    """(max - min) / first, in %."""
    if not values or values[0] == 0:
        return float("nan")
    return (max(values) - min(values)) / values[0] * 100.0


def cpu_name() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
        for line in fh:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to train (default 30)")
    parser.add_argument("--every", type=float, default=60.0, help="seconds between samples (default 60)")
    parser.add_argument(
        "--warmup", type=float, default=60.0, help="samples before this many seconds are not in the drift"
    )
    parser.add_argument("--steps", type=int, default=500, help="steps of one press of Train (default 500)")
    parser.add_argument("--size", type=int, default=64, help="network size (default 64, as the demo)")
    parser.add_argument("--width", type=int, default=16, help="network width (default 16, as the demo)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the worker (default 1)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda (default auto)")
    parser.add_argument("--json", metavar="FILE", help="also write the samples and drifts as JSON")
    args = parser.parse_args()

    import torch
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from napari_wss import _demo
    from napari_wss._qt.class_table import SIZE_HI

    viewer, widget = _demo.bench_viewer(
        "napari-wss soak", (1600, 1000), steps=args.steps, size=args.size, width=args.width
    )
    widget.settings.device.setCurrentText(args.device)
    widget.torch_threads = args.threads
    app = QApplication.instance()
    n_slices = viewer.layers["cardiac phantom"].data.shape[0]
    lv_upper = widget.table.size_bounds(3)[1]

    run: dict = {"presses": 0, "errors": 0, "started": None, "done": False, "steps_before": 0}
    samples: list[dict] = []

    def sample() -> None:
        gc.collect()
        now = time.perf_counter() - run["started"]
        cuda = cuda_mib()
        progress = widget.last_progress
        plot = widget.plot
        samples.append(
            {
                "t_s": round(now, 1),
                "step": run["steps_before"] + (progress.event.step if progress else 0) - widget._first_step,
                "rss_mib": round(rss_mib(), 1),
                "cuda_alloc_mib": None if cuda is None else round(cuda[0], 1),
                "cuda_reserved_mib": None if cuda is None else round(cuda[1], 1),
                "objects": len(gc.get_objects()),
                "threads": os_threads(),
                "plot_points": len(plot._steps) + len(plot._dice_steps),
                "frames_shown": widget.frames_shown,
            }
        )
        s = samples[-1]
        cuda_text = "" if cuda is None else f", CUDA {s['cuda_alloc_mib']:.0f}/{s['cuda_reserved_mib']:.0f} MiB"
        print(
            f"  t={s['t_s'] / 60:5.1f} min  step {s['step']:6d}  RSS {s['rss_mib']:7.1f} MiB{cuda_text}  "
            f"objects {s['objects']:7d}  threads {s['threads']}  plot points {s['plot_points']}",
            flush=True,
        )

    def press() -> None:
        if run["done"]:
            QTimer.singleShot(500, app.quit)
            return
        run["presses"] += 1
        widget.train()
        if not widget.runner.running:
            run["errors"] += 1
            finish()

    def ended(state: object) -> None:
        if state is None:
            run["errors"] += 1
        if widget.last_progress is not None:
            run["steps_before"] += widget.last_progress.event.step - widget._first_step
        if run["done"] or state is None:
            QTimer.singleShot(500, app.quit)
            return
        QTimer.singleShot(0, press)

    def browse() -> None:
        z = (int(viewer.dims.current_step[0]) + 1) % n_slices
        viewer.dims.set_current_step(0, z)

    edits = {"n": 0}

    def edit_bound() -> None:
        # Alternate the LV's upper bound between two values: a BoundsUpdate into the generator.
        edits["n"] += 1
        widget.table.set_cell(3, SIZE_HI, f"{lv_upper * (1.0 + 0.05 * (edits['n'] % 2)):.1f}")

    def finish() -> None:
        run["done"] = True
        sample()
        sample_timer.stop()
        browse_timer.stop()
        edit_timer.stop()
        if widget.runner.running:
            widget.stop()
        else:
            QTimer.singleShot(500, app.quit)

    widget.runner.ended.connect(ended)
    sample_timer = QTimer()
    sample_timer.setInterval(int(args.every * 1000))
    sample_timer.timeout.connect(sample)
    browse_timer = QTimer()
    browse_timer.setInterval(5000)
    browse_timer.timeout.connect(browse)
    edit_timer = QTimer()
    edit_timer.setInterval(47_000)
    edit_timer.timeout.connect(edit_bound)

    def start() -> None:
        print(
            f"napari-wss soak: {args.minutes:g} min of training on the phantom in the widget, "
            f"{os.cpu_count()} CPU cores ({cpu_name()}), torch {torch.__version__}, "
            f"{args.threads} training thread(s), device {args.device}, network {args.size} px width {args.width}, "
            f"{args.steps} steps per press",
            flush=True,
        )
        run["started"] = time.perf_counter()
        press()
        sample()
        sample_timer.start()
        browse_timer.start()
        edit_timer.start()
        QTimer.singleShot(int(args.minutes * 60_000), finish)

    QTimer.singleShot(3000, start)  # the window comes up and torch imports first
    app.exec()

    used = [s for s in samples if s["t_s"] >= args.warmup] or samples
    series = ["rss_mib", "objects"] + (["cuda_alloc_mib", "cuda_reserved_mib"] if samples[0]["cuda_alloc_mib"] else [])
    result = {
        "machine": f"{os.cpu_count()} CPU cores, {cpu_name()}",
        "minutes": args.minutes,
        "presses": run["presses"],
        "errors": run["errors"],
        "steps": samples[-1]["step"] if samples else 0,
        "samples": samples,
        "drift_percent": {k: drift([float(s[k]) for s in used]) for k in series},
        "drift_percent_from_start": {k: drift([float(s[k]) for s in samples]) for k in series},
    }
    with contextlib.suppress(RuntimeError):
        viewer.close()
    print(
        f"{len(samples)} samples, {result['steps']} steps in {run['presses']} presses of Train, {run['errors']} errors"
    )
    rss = [s["rss_mib"] for s in used]
    print(
        f"RSS after warm-up ({used[0]['t_s'] / 60:.1f}-{used[-1]['t_s'] / 60:.1f} min): first {rss[0]:.1f} MiB, "
        f"min {min(rss):.1f}, max {max(rss):.1f}, last {rss[-1]:.1f}; drift (max-min)/first = "
        f"{result['drift_percent']['rss_mib']:.2f} % (from t=0: {result['drift_percent_from_start']['rss_mib']:.2f} %)"
    )
    if "cuda_alloc_mib" in series:
        print(
            f"CUDA allocated drift {result['drift_percent']['cuda_alloc_mib']:.2f} %, "
            f"reserved drift {result['drift_percent']['cuda_reserved_mib']:.2f} %"
        )
    slope = np.polyfit([s["t_s"] / 60 for s in used], rss, 1)[0] if len(used) > 1 else float("nan")
    print(f"RSS trend (least squares): {slope:+.2f} MiB per minute")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
