"""Fixtures for the whole suite."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
import torch


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny networks run fastest on one thread, and do not stall when other jobs share the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session", autouse=True)
def workers_end_before_python() -> Iterator[None]:
    """Wait for Qt's pooled worker threads before the interpreter shuts down.

    A plugin test may end the moment a worker reports back, while the worker's thread is still
    freeing its tensors; if Python is finalising by then, that thread's GIL request makes it exit
    through C++ frames and the whole run aborts ("terminate called without an active exception").
    """
    yield
    if "qtpy" in sys.modules:  # only GUI runs start Qt workers
        from qtpy.QtCore import QThreadPool

        QThreadPool.globalInstance().waitForDone(60_000)
