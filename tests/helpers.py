"""Helpers shared by the CLI-facing test modules (pytest puts tests/ on the import path)."""

from __future__ import annotations


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    """The CLI's contract for bad input: exit status 2 and one line on stderr naming the problem."""
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("napari-wss: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
