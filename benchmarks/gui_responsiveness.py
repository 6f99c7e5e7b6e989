"""How responsive napari stays while the widget trains (a script that prints figures, not a test).

Opens napari with the cardiac phantom and the widget (the demo's settings), then runs a 10 ms
QTimer on the GUI thread and records how late each tick fires, first for a few idle seconds and
then while training runs in the worker. Prints the event-loop stall p50 / p99 / max, the overlay
refresh rate (prediction-layer updates per second) and the training speed.

Run it under a display, e.g. on a headless machine::

    QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/gui_responsiveness.py

Goal (issue 3): p99 stall <= 50 ms with >= 2 overlay refreshes per second.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time

import numpy as np


def _stats(late_ms: list[float]) -> dict[str, float]:
    a = np.asarray(late_ms) if late_ms else np.zeros(1)
    return {
        "ticks": len(late_ms),
        "p50_ms": float(np.percentile(a, 50)),
        "p99_ms": float(np.percentile(a, 99)),
        "max_ms": float(a.max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=80, help="training steps (default 80)")
    parser.add_argument("--size", type=int, default=64, help="network size (default 64, as the demo)")
    parser.add_argument("--width", type=int, default=16, help="network width (default 16, as the demo)")
    parser.add_argument("--idle", type=float, default=2.0, help="seconds of idle baseline")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in the worker (default: cores - 1)")
    parser.add_argument("--window", default="1600x1000", help="main window size WxH (default 1600x1000)")
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of text")
    args = parser.parse_args()

    from qtpy.QtCore import Qt, QTimer
    from qtpy.QtWidgets import QApplication

    from napari_wss import _demo

    width, height = (int(v) for v in args.window.lower().split("x"))
    viewer, widget = _demo.bench_viewer(
        "napari-wss responsiveness benchmark", (width, height), steps=args.steps, size=args.size, width=args.width
    )
    app = QApplication.instance()

    interval_ms = 10
    phase = {"name": "idle"}
    late: dict[str, list[float]] = {"idle": [], "training": []}
    last = [time.perf_counter()]
    marks: dict[str, float] = {}

    def tick() -> None:
        now = time.perf_counter()
        late[phase["name"]].append(max(0.0, (now - last[0]) * 1e3 - interval_ms))
        if phase["name"] == "training" and widget.frames_shown and "first_frame" not in marks:
            marks["first_frame"] = len(late["training"])
        last[0] = now

    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(interval_ms)
    timer.timeout.connect(tick)

    floor: list[float] = []

    def poke_label() -> None:
        # The floor: what one repaint of one small label costs while idle (Qt composites the
        # whole window through OpenGL as soon as it holds a GL canvas; software GL makes that slow).
        t0 = time.perf_counter()
        widget.status.setText(f"idle repaint probe {len(floor)}")
        widget.status.repaint()
        floor.append((time.perf_counter() - t0) * 1e3)

    probe = QTimer()
    probe.setInterval(250)
    probe.timeout.connect(poke_label)

    def close_toasts() -> None:
        # napari keeps an info toast up until the window is active, which never happens under a
        # bare Xvfb; on a desktop it fades after a few seconds. Close it so it is not measured.
        from napari._qt.dialogs.qt_notification import NapariQtNotification

        for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
            toast.close()

    def start_training() -> None:
        probe.stop()
        close_toasts()
        phase["name"] = "training"
        widget.frames_shown = 0
        widget.torch_threads = args.threads
        marks["start"] = time.perf_counter()
        widget.train()  # the click itself: checks, slices, model, prediction layer (reported apart)
        marks["click"] = time.perf_counter() - marks["start"]
        last[0] = time.perf_counter()
        if not widget.runner.running:
            app.quit()

    def ended(_state: object) -> None:
        marks["end"] = time.perf_counter()
        timer.stop()
        QTimer.singleShot(200, app.quit)

    widget.runner.ended.connect(ended)
    # Let the window come up and torch import, then measure idle, then train.
    QTimer.singleShot(3000, lambda: (last.__setitem__(0, time.perf_counter()), timer.start(), probe.start()))
    QTimer.singleShot(3000 + int(args.idle * 1000), start_training)
    app.exec()

    duration = marks.get("end", time.perf_counter()) - marks.get("start", time.perf_counter())
    progress = widget.last_progress
    result = {
        "cpu_cores": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "window": args.window,
        "settings": {"steps": args.steps, "size": args.size, "width": args.width, "crop": True},
        "idle": _stats(late["idle"]),
        "idle_repaint_ms": float(np.median(floor)) if floor else None,
        "training": _stats(late["training"]),
        # Without the first preview's draw: a new layer's first frame compiles its shaders (one-off).
        "training_after_first_frame": _stats(late["training"][marks.get("first_frame", 0) + 5 :]),
        "train_click_ms": marks.get("click", 0.0) * 1e3,
        "training_s": duration,
        "steps_per_s": (progress.event.step if progress else 0) / max(duration, 1e-9),
        "overlay_refreshes": widget.frames_shown,
        "overlay_refresh_per_s": widget.frames_shown / max(duration, 1e-9),
        "mean_fg_dice": None if progress is None or progress.dice is None else float(np.nanmean(progress.dice[1:])),
    }
    with contextlib.suppress(RuntimeError):  # the window may be gone with the event loop
        viewer.close()
    if args.json:
        print(json.dumps(result))
        return
    idle, train = result["idle"], result["training"]
    print(
        f"napari-wss GUI responsiveness: {result['cpu_cores']} CPU cores (load average "
        f"{result['load_average_1min']:.1f}), window {args.window}, phantom, {args.steps} steps, "
        f"network {args.size} px, width {args.width}, cropped"
    )
    print(f"  Train click: {result['train_click_ms']:.0f} ms (checks, slices, model, prediction layer)")
    print(
        f"  idle     : stall p50 {idle['p50_ms']:.1f} ms, p99 {idle['p99_ms']:.1f} ms, max {idle['max_ms']:.1f} ms; "
        f"one label repaint (the floor) {result['idle_repaint_ms']:.0f} ms"
    )
    print(
        f"  training : stall p50 {train['p50_ms']:.1f} ms, p99 {train['p99_ms']:.1f} ms, max {train['max_ms']:.1f} ms"
        f" ({train['ticks']} ticks of a 10 ms timer)"
    )
    later = result["training_after_first_frame"]
    print(f"  (after the first preview: p99 {later['p99_ms']:.1f} ms, max {later['max_ms']:.1f} ms)")
    print(
        f"  overlay  : {result['overlay_refreshes']} refreshes in {duration:.1f} s = "
        f"{result['overlay_refresh_per_s']:.2f} per s; training {result['steps_per_s']:.2f} steps/s"
    )
    if result["mean_fg_dice"] is not None:
        print(f"  mean Dice (RV, myocardium, LV) on the phantom after {args.steps} steps: {result['mean_fg_dice']:.3f}")


if __name__ == "__main__":
    main()
