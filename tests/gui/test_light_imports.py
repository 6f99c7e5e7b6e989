"""The reader stays light: opening a file never loads torch; the widget loads it when it is used."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.gui

CHECK = """
import sys
import napari_wss._reader, napari_wss._writer, napari_wss._sample_data, napari_wss._widget
heavy = sorted(m for m in ("torch", "napari_wss.training", "napari_wss.data") if m in sys.modules)
print(",".join(heavy))
"""


def test_plugin_modules_do_not_import_torch() -> None:
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "", f"imported at module level: {out.stdout.strip()}"
