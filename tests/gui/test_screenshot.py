"""A screenshot of the viewer mid-training on the cardiac phantom, for the README (docs/screenshot.png)."""

from __future__ import annotations

from pathlib import Path

import pytest

from napari_wss import _demo

pytestmark = pytest.mark.gui

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_screenshot_mid_training(make_widget, qtbot) -> None:  # type: ignore[no-untyped-def]
    viewer, widget = make_widget("phantom", show=True)
    viewer.window._qt_window.resize(1500, 950)
    _demo.configure(widget)
    widget.settings.steps.setValue(400)
    widget.settings.width.setValue(8)
    viewer.layers.selection.active = viewer.layers["scribbles"]
    widget.train()
    # Mid-training: a few previews in, the loss and size panels populated.
    qtbot.waitUntil(lambda: widget.frames_shown >= 4 and widget.last_progress.event.step >= 40, timeout=120_000)
    assert widget.runner.running
    DOCS.mkdir(exist_ok=True)
    path = DOCS / "screenshot.png"
    image = viewer.screenshot(str(path), canvas_only=False, flash=False)
    widget.stop()
    assert path.is_file() and image.shape[0] > 600 and image.shape[1] > 1000
