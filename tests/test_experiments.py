"""Tests for napari_wss.experiments: bounds, tables, patient ranges, the overlay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_wss import experiments, toy
from napari_wss.errors import InputError


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("1-3", [1, 2, 3]), ("5", [5]), ("1-2, 7 ,9-10", [1, 2, 7, 9, 10]), ("3-3,3", [3])],
)
def test_parse_patients(spec: str, expected: list[int]) -> None:
    assert experiments.parse_patients(spec) == expected


@pytest.mark.parametrize(("spec", "message"), [("5-1", "start 5 > end 1"), ("a-b", "1-80"), ("", "no patients")])
def test_parse_patients_rejects(spec: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        experiments.parse_patients(spec)


def test_toy2_bounds_hand_computed() -> None:
    labels = np.zeros((1, 10, 20), dtype=np.uint8)
    labels[0, 2:6, 3:8] = 1  # area 20
    sizes, cents = experiments.toy2_bounds(labels, np.array([[3.5, 5.0]]), size_margin=0.1, centroid_margin=0.1)
    np.testing.assert_allclose(sizes[0, 1], [18, 22])
    np.testing.assert_allclose(sizes[0, 0], [200 - 22, 200 - 18])
    np.testing.assert_allclose(cents[0, 1], [[2.5, 4.5], [3.0, 7.0]])  # ±0.1 of 10 rows, ±0.1 of 20 cols
    assert np.isnan(cents[0, 0]).all()


def test_result_table_format() -> None:
    table = experiments.ResultTable(
        "title", ("method", "Dice"), (("full", 0.98765), ("partial", float("nan"))), ("a note",), 1.25
    )
    text = table.format()
    lines = text.splitlines()
    assert lines[0] == "title"
    assert any(line.startswith("full") and line.endswith("0.988") for line in lines)
    assert any(line.startswith("partial") and line.endswith("-") for line in lines)
    assert lines[-2:] == ["a note", "wall time: 1.2 s"]
    assert table.column("Dice")[0] == pytest.approx(0.98765)


def test_phantom_priors_cover_the_true_areas() -> None:
    ph = toy.cardiac_phantom(n_slices=4, size=48, seed=0)
    priors = experiments.phantom_priors(ph, margin=0.2)
    assert [p.name for p in priors] == list(ph.class_names)
    assert priors[0].size is None
    for c, prior in enumerate(priors[1:], start=1):
        areas = (ph.labels == c).reshape(4, -1).sum(1)
        present = areas[areas > 0]
        assert prior.size is not None
        assert prior.size[0] <= present.min() and present.max() <= prior.size[1]


def test_save_overlay(tmp_path: Path) -> None:
    ph = toy.cardiac_phantom(n_slices=3, size=32, seed=0)
    path = experiments.save_overlay(tmp_path / "o.png", ph.image, ph.labels, ph.scribbles, ph.class_names)
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*tmp*"))


def test_run_toy_rejects_unknown_method() -> None:
    with pytest.raises(InputError, match="unknown TOY method 'magic'"):
        experiments.run_toy(size=32, epochs=1, n_train=1, n_val=1, methods=("magic",), device="cpu")
