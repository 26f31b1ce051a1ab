"""Issue 22, part 2: what a plain `mm-gen` request imports and collects at its cold start, and the sampling step's
cheaper draw and row dropping (the same names)."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys

import hypothesis.strategies as st
import makemore.data
import numpy as np
import pytest
import typer
from hypothesis import given, settings
from makemore.data import BOUNDARY
from makemore.data.cli import freeze_imports, run_cli
from makemore.runtime.pretrained import pretrained_path
from makemore.runtime.sampling import WindowDecoder, count_dtype, draw

# What a plain request (no constraint, beam, label, novelty, shard or server) never needs: each of these once cost
# mm-gen's cold start milliseconds, and a change that imports one again at start-up fails here.
NOT_AT_COLD_START = (
    "makemore.runtime.constraints",
    "makemore.runtime.beam",
    "makemore.runtime.novelty",
    "makemore.runtime.serve",
    "makemore.data.labels",
    "makemore.data.tokens",
    "makemore.data.files",
    "concurrent.futures",  # a pool is started for two chunks or more only (20 names are one)
    "interegular",
    "starlette",
    "uvicorn",
    "torch",
)

PLAIN_REQUEST = """
import io, json, sys
from makemore.runtime.cli import gen_main
sys.argv = ["mm-gen", "--n", "20", "--seed", "1"]
out, sys.stdout = sys.stdout, io.StringIO()
try:
    gen_main()
except SystemExit as stop:
    assert not stop.code, stop.code
names, sys.stdout = sys.stdout.getvalue().split(), out
print(json.dumps({"names": names, "modules": sorted(sys.modules)}))
"""


@pytest.mark.slow  # a process of its own: a fresh interpreter's modules
def test_a_plain_request_imports_none_of_what_it_does_not_need() -> None:
    assert pretrained_path().is_file(), "the shipped model is missing: make pretrained"
    env = {**os.environ, "ORT_DISABLE_TELEMETRY": "1"}
    result = subprocess.run(
        [sys.executable, "-c", PLAIN_REQUEST], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.splitlines()[-1])
    assert len(found["names"]) == 20  # the request ran: these are the modules of a whole request, not an import
    loaded = [name for name in found["modules"] if name.split(".")[0] in {"makemore", "concurrent", "interegular"}]
    loaded += [name for name in found["modules"] if name in NOT_AT_COLD_START]
    assert not [name for name in loaded if name in NOT_AT_COLD_START or name.startswith("makemore.runtime.serve.")]


def test_every_name_of_the_data_package_resolves_to_its_module_object() -> None:
    """data/__init__ imports data.tokens and data.files on first use: every name it lists is still there, the very
    object of its module, and an unknown name is an AttributeError, as for any module."""
    for name in makemore.data.__all__:
        value = getattr(makemore.data, name)
        module = sys.modules[getattr(value, "__module__", None) or "makemore.data"]
        assert getattr(module, name, value) is value, name
    from makemore.data import Tokens, atomic_write  # the from-import form goes through the same lookup

    assert Tokens.__module__ == "makemore.data.tokens" and atomic_write.__module__ == "makemore.data.files"
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        _ = makemore.data.no_such_name  # type: ignore[attr-defined]


def test_the_readers_tables_are_built_on_first_use_and_stay_the_same_object() -> None:
    from makemore.data import reader

    space, not_name = reader.SPACE, reader.NOT_NAME
    assert reader.SPACE is space and reader.NOT_NAME is not_name  # built once
    assert [c for c in range(len(space)) if space[c]] == [c for c in range(len(space)) if chr(c).isspace()]
    expected = [c for c in range(len(not_name)) if c == 0 or reader.is_line_break(chr(c))]
    assert [c for c in range(len(not_name)) if not_name[c]] == expected
    with pytest.raises(AttributeError):
        _ = reader.NO_SUCH_TABLE


def test_a_command_freezes_the_imports_once_a_process(monkeypatch) -> None:
    """run_cli freezes the objects alive at a command's start (none is garbage: imports), once a process; what a
    command makes afterwards is still collected."""
    app = typer.Typer(add_completion=False)
    made: list[object] = []

    @app.command()
    def command() -> None:
        cycle: list[object] = []
        cycle.append(cycle)
        made.append(cycle)

    monkeypatch.setattr(sys, "argv", ["command"])
    run_cli(app)
    frozen = gc.get_freeze_count()
    assert frozen > 0
    run_cli(app)  # a second command in the same process freezes nothing more (frozen objects freed since drop out)
    freeze_imports()
    assert gc.get_freeze_count() <= frozen
    made.clear()  # the second command's cycle, made after the freeze, is garbage a collection finds
    assert gc.collect() >= 1


@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(1, 600),  # across the uint8 and uint16 counts (256 characters and more)
    rows=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
    zeros=st.floats(0, 1),
)
def test_draw_counts_exactly_as_the_sum_of_the_comparison(size: int, rows: int, seed: int, zeros: float) -> None:
    """For every vocabulary size, the draw's narrow count is the bool sum it replaces: the first index whose
    cumulative weight exceeds u * total (never one of weight zero)."""
    rng = np.random.default_rng(seed)
    weights = rng.random((size, rows), dtype=np.float32)
    weights[rng.random((size, rows)) < zeros] = 0.0
    weights[rng.integers(0, size, rows), np.arange(rows)] = 1.0  # every row keeps a character (as a mask does)
    uniforms = rng.random(rows)
    cdf = np.cumsum(weights, axis=0, dtype=np.float32)
    threshold = np.minimum((uniforms * cdf[-1]).astype(np.float32), np.nextafter(cdf[-1], 0))
    expected = (cdf <= threshold).sum(axis=0)
    picks = draw(weights.copy(), uniforms)
    assert picks.dtype == np.int64
    np.testing.assert_array_equal(picks, expected)
    assert (weights[picks, np.arange(rows)] > 0).all()


@pytest.mark.parametrize("size", [1, 255, 256, 65_535, 65_536, 100_000])
def test_the_count_type_holds_every_count_up_to_the_vocabulary(size: int) -> None:
    assert np.iinfo(count_dtype(size)).max >= size
    assert count_dtype(size) is not np.uint8 or size <= 255


@given(rows=st.integers(1, 50), block=st.integers(1, 8), seed=st.integers(0, 2**32 - 1))
def test_a_window_decoder_keeps_the_same_rows_by_mask_or_by_index(rows: int, block: int, seed: int) -> None:
    """The loop drops finished rows by index (cheaper over 2-D state); it is the mask's selection, in its order."""
    rng = np.random.default_rng(seed)
    running = rng.random(rows) < 0.6
    labels = rng.integers(0, 5, rows)
    by_mask, by_index = (WindowDecoder(lambda c, *a: c, block, labels.copy()) for _ in range(2))
    by_mask.start([], rows)
    by_index.start([], rows)
    by_mask.context = by_index.context = rng.integers(0, 27, (rows, block))
    by_mask.keep(running)
    by_index.keep(np.flatnonzero(running))
    np.testing.assert_array_equal(by_mask.context, by_index.context)
    np.testing.assert_array_equal(by_mask.labels.label, by_index.labels.label)
    assert (by_index.context[:, -1] >= BOUNDARY).all()
