"""One table of bounds (data/bounds.py): the CLIs, the server, the trainer and the page all check against it."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from makemore.data.bounds import SAMPLING, TRAINING, Bound, is_finite
from makemore.runtime.options import SamplingError, SamplingOptions, check_option
from makemore.train.config import check_values
from makemore.train.kinds import ConfigError
from webfiles import site_info

ROOT = Path(__file__).resolve().parents[1]
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-(10**400), max_value=10**400),  # past a float's range: not finite, never an OverflowError
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(
        [0, 1, 2, 1024, 1025, 2**20, 2**20 + 1, 0.0, 1.0, 1e-12, 1e12, 5e-324, 2**64 - 1, 2**64, 10**400, -(10**400)]
    ),
)


def test_every_sampling_option_has_its_bound() -> None:
    assert [field.name for field in dataclasses.fields(SamplingOptions)] == list(SAMPLING)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(SAMPLING)), value=VALUES)
def test_sampling_options_admit_exactly_what_the_table_admits(name: str, value: object) -> None:
    bound = SAMPLING[name]
    try:
        check_option(name, value, bound)
        admitted = True
    except SamplingError as err:
        assert err.field == name
        admitted = False
    assert admitted == bound.admits(value)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(TRAINING)), value=VALUES)
def test_the_trainer_admits_exactly_what_the_table_admits(name: str, value: object) -> None:
    bound = TRAINING[name]
    try:
        check_values({name: value})
        admitted = True
    except ConfigError as err:
        assert str(err).startswith(f"--{name.replace('_', '-')} must be ")
        admitted = False
    finite = bound.kind is not float or not isinstance(value, (int, float)) or is_finite(value)
    expected = value is not None and bound.admits(value) and finite
    if bound.kind is float and bound.has_type(value) and not isinstance(value, bool) and finite:
        expected = bound.admits(float(value))  # the trainer takes any real number, an int as a float
    assert admitted == expected


def test_the_page_reads_the_table_from_the_site_json() -> None:
    from makemore.runtime.web.site import MAX_COUNT, site_json

    bounds = site_json(site_info("mlp", block_size=3, longest_name=100_000), "0" * 64)["bounds"]  # type: ignore[arg-type]
    assert bounds == {"count": Bound(int, 1, MAX_COUNT).to_json(), **{k: b.to_json() for k, b in SAMPLING.items()}}
    assert bounds["seed"]["high"] == str(2**64 - 1)  # exact in JavaScript (BigInt of the digits)
    script = (ROOT / "runtime" / "web" / "static" / "options.js").read_text(encoding="utf-8")
    assert "SEED_MAX" not in script and "site.bounds" in script


@pytest.mark.parametrize(
    ("bound", "inside", "outside"),
    [
        (Bound(float, 0.0, 1.0, low_open=True), [1.0, 0.5, 5e-324], [0.0, 1.5, math.nan, math.inf]),
        (Bound(float, 0.0, 1.0, high_open=True), [0.0, 0.999], [1.0, -0.0001]),
        (Bound(float, 0.0, None), [0, 10**300, 1e308], [10**400, math.inf, -1]),  # past a float's range: not finite
        (Bound(int, 1, 3, nullable=True), [None, 1, 3], [0, 4, True, 2.0, "2"]),
        (Bound(str, 0, 2), ["", "ab"], ["abc", None, 1]),
    ],
)
def test_a_bound_admits_its_interval(bound: Bound, inside: list, outside: list) -> None:
    assert all(bound.admits(value) for value in inside)
    assert not any(bound.admits(value) for value in outside)
