"""``make demo`` / ``napari-wss demo``: napari with the widget docked and the cardiac phantom loaded."""

from __future__ import annotations

from typing import Any

DEMO_SETTINGS = {"size": 64, "width": 16, "steps": 300}
"""Fast enough on a laptop CPU: the phantom's heart, cropped, at 64 px (see the README figures)."""


def launch(*, block: bool = True, estimate_bounds: bool = True, train: bool = False) -> Any:
    """Open napari with the phantom sample and the "Weakly supervised segmentation" widget.

    Args:
        block: run the Qt event loop until the window closes (False returns at once, for tests).
        estimate_bounds: fill the class table from the phantom's ground truth ± 10 %, so the
            size/centroid penalties have something to enforce from the first press of Train.
        train: press Train at once.

    Returns:
        The viewer (after the window closed when ``block``).
    """
    import napari

    viewer = napari.Viewer(title="napari-wss demo: weakly supervised segmentation")
    viewer.open_sample("napari-wss", "phantom")
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-wss", "Weakly supervised segmentation")
    configure(widget, estimate_bounds=estimate_bounds)
    viewer.layers.selection.active = viewer.layers["scribbles"]
    if train:
        widget.train()
    if block:
        napari.run()
    return viewer


def bench_viewer(title: str, window: tuple[int, int], *, steps: int, size: int, width: int) -> tuple[Any, Any]:
    """The benchmarks' set-up: a viewer of ``window`` pixels with the phantom and the demo's widget.

    Returns ``(viewer, widget)`` with the demo's settings except ``steps``, ``size`` and ``width``.
    """
    import napari

    viewer = napari.Viewer(title=title)
    viewer.window._qt_window.resize(*window)
    viewer.open_sample("napari-wss", "phantom")
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-wss", "Weakly supervised segmentation")
    configure(widget)
    widget.settings.steps.setValue(steps)
    widget.settings.size.setValue(size)
    widget.settings.width.setValue(width)
    return viewer, widget


def configure(widget: Any, *, estimate_bounds: bool = True) -> None:
    """The demo's settings: crop to the scribbles, small network, bounds from the ground truth."""
    s = widget.settings
    s.crop.setChecked(True)
    s.size.setValue(DEMO_SETTINGS["size"])
    s.width.setValue(DEMO_SETTINGS["width"])
    s.steps.setValue(DEMO_SETTINGS["steps"])
    if estimate_bounds:
        widget.margin.setValue(0.1)
        widget.classes.estimate_bounds()
