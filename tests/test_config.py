"""Config validation: bad values raise one clear message naming the field, range and value."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_wss.config import ClassPrior, Mode, Penalty, TrainConfig, class_names_from
from napari_wss.errors import InputError


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"lr": 0.0}, r"lr must be in \(0, 1\], got 0.0"),
        ({"lr": float("nan")}, "lr must be in"),
        ({"steps": 0}, r"steps must be an integer in \[1, 10000000\], got 0"),
        ({"batch_size": 2.5}, "batch_size must be an integer"),
        ({"size": 100}, "nearest valid sizes are 96 and 112"),
        ({"t_growth": 0.9}, r"t_growth must be in \[1, 10\]"),
        ({"t0": -1.0}, "t0 must be in"),
        ({"temperature": 0}, "temperature must be in"),
        ({"size_weight": -1e-3}, "size_weight must be in"),
        ({"penalty": "l2"}, "penalty must be one of"),
        ({"mode": "weak"}, "mode must be one of"),
        ({"device": "tpu"}, "device must be auto, cpu, cuda"),
        ({"mode": "priors", "penalty": "none"}, "needs a penalty"),
        ({"width": 1}, "width must be an integer in"),
        ({"amp": 1}, "amp must be true or false"),
        ({"rotate": -5.0}, r"rotate must be in \[0, 180\]"),
        ({"zoom": 0.6}, r"zoom must be in \[0, 0.5\]"),
        ({"patch": 24}, r"patch must be 0 \(whole slices\) or a multiple of 2\^depth = 16 between 16 and size = 128"),
        ({"patch": 256}, "patch must be 0"),
        ({"patch": True}, "patch must be 0"),
    ],
)
def test_train_config_rejects(changes: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        TrainConfig(**changes)


def test_train_config_round_trip() -> None:
    c = TrainConfig(mode="partial", penalty="quadratic", lr=1e-4, width=8)
    assert c.mode is Mode.PARTIAL and c.penalty is Penalty.QUADRATIC
    again = TrainConfig.from_dict(c.to_dict())
    assert again == c
    assert TrainConfig().t_growth == 1.1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": (5, 3)}, "size bounds for 'LV': lower 5 > upper 3"),
        ({"size": (-1, 3)}, "lower -1 is negative"),
        ({"size": (1, float("inf"))}, "finite"),
        ({"size": "big"}, "must be a pair"),
        ({"centroid": ((10, 5), (0, 1))}, "centroid row bounds for 'LV': lower 10 > upper 5"),
        ({"centroid": (1, 2, 3)}, "must be"),
    ],
)
def test_class_prior_rejects(kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        ClassPrior("LV", **kwargs)


def test_class_prior_from_mm2_and_absent() -> None:
    p = ClassPrior.from_mm2("LV", (100.0, 200.0), (2.0, 0.5))
    assert p.size == (100.0, 200.0)
    assert ClassPrior("RV", size=(0, 0)).absent
    with pytest.raises(InputError, match="spacing must be positive"):
        ClassPrior.from_mm2("LV", (1, 2), (0.0, 1.0))
    assert ClassPrior.from_dict(p.to_dict()) == p


def test_class_names_validation() -> None:
    assert class_names_from([ClassPrior("a"), ClassPrior("b")]) == ("a", "b")
    with pytest.raises(InputError, match="at least two classes"):
        class_names_from([ClassPrior("a")])
    with pytest.raises(InputError, match="repeated: a"):
        class_names_from([ClassPrior("a"), ClassPrior("a")])


numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**6), 10**6))


@settings(max_examples=200, deadline=None)
@given(lr=numbers, steps=numbers, size=numbers, t0=numbers, growth=numbers, batch=numbers)
def test_train_config_either_valid_or_input_error(lr, steps, size, t0, growth, batch) -> None:  # type: ignore[no-untyped-def]
    try:
        c = TrainConfig(lr=lr, steps=steps, size=size, t0=t0, t_growth=growth, batch_size=batch)
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    assert 0 < c.lr <= 1 and c.steps >= 1 and c.size % 2**c.depth == 0
    assert math.isfinite(c.t0) and c.t0 > 0 and 1 <= c.t_growth <= 10


@settings(max_examples=200, deadline=None)
@given(lo=numbers, hi=numbers, r0=numbers, r1=numbers)
def test_class_prior_either_valid_or_input_error(lo, hi, r0, r1) -> None:  # type: ignore[no-untyped-def]
    try:
        p = ClassPrior("x", size=(lo, hi), centroid=((r0, r1), (0, 1)))
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    assert p.size is not None and 0 <= p.size[0] <= p.size[1] and math.isfinite(p.size[1])
    assert p.centroid is not None and p.centroid[0][0] <= p.centroid[0][1]


# Anything a file, a form or a script could hand over: numbers of every kind, text, None, containers.
anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**400), 10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.one_of(st.floats(), st.integers(-5, 5), st.text(max_size=2)), max_size=3),
    st.tuples(st.floats(), st.floats()),
    st.tuples(st.tuples(st.floats(), st.floats()), st.tuples(st.integers(-(10**400), 10**400), st.floats())),
)
CONFIG_FIELDS = [f.name for f in __import__("dataclasses").fields(TrainConfig) if f.name != "extra"]


@settings(max_examples=300, deadline=None)
@given(changes=st.dictionaries(st.sampled_from(CONFIG_FIELDS), anything, min_size=1, max_size=4))
def test_train_config_any_field_any_value_is_valid_or_input_error(changes: dict) -> None:
    try:
        c = TrainConfig(**changes)
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    assert TrainConfig.from_dict(c.to_dict()) == c  # what is accepted also survives a checkpoint


@settings(max_examples=300, deadline=None)
@given(name=anything, size=anything, centroid=anything, spacing=anything, from_mm2=st.booleans())
def test_class_prior_any_value_is_valid_or_input_error(name, size, centroid, spacing, from_mm2) -> None:  # type: ignore[no-untyped-def]
    try:
        p = ClassPrior.from_mm2(name, size, spacing, centroid) if from_mm2 else ClassPrior(name, size, centroid)
        p.check_fits((64, 48))
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(p.name, str) and p.name.strip()
    if p.size is not None:
        assert 0 <= p.size[0] <= p.size[1] and math.isfinite(p.size[1])
    if p.centroid is not None:
        assert all(lo <= hi and math.isfinite(lo + hi) for lo, hi in p.centroid)
    assert ClassPrior.from_dict(p.to_dict()) == p


@pytest.mark.parametrize("name", ["LV\n", "R\tV", "my\rocardium", ""])
def test_class_names_must_be_one_printable_line(name: str) -> None:
    for build in (lambda: ClassPrior(name, (1, 2)), lambda: ClassPrior.from_mm2(name, (1, 2), (1.0, 1.0))):
        with pytest.raises(InputError, match="class name") as info:
            build()
        assert "\n" not in str(info.value)
