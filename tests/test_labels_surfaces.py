"""Labels on the server and in the browser page: /v1/model lists a conditional model's labels, /v1/generate and
/v1/score take a label (as the Python sampler does, 422 otherwise); the page's label draws equal chunk_labels bit for
bit (under node), its label messages equal Python's, and in Chromium its names equal mm-gen's with and without
--label, with constraints, for a window (mlp) and a step (gru) model."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pytest
from conftest import QUICK_OVERRIDES
from makemore.data import read_words
from makemore.data.bounds import SAMPLING
from makemore.runtime.chunks import CHUNK_SIZE, ChunkSpan, chunk_labels
from makemore.runtime.options import SamplingError, SamplingOptions, label_index
from nodejs import run_node

LABELS = ("a-end", "n-end", "other")
QUICK_STEPS = {"mlp": 150, "gru": 100}  # tiny models: the tests compare names, not their quality


def label_of(name: str) -> str:
    return "a-end" if name.endswith("a") else "n-end" if name.endswith("n") else "other"


@pytest.fixture(scope="module")
def labelled_path(names_path, tmp_path_factory) -> Path:
    """2,000 bundled names, each labelled by its last letter."""
    names = read_words(names_path)[::15][:2000]
    path = tmp_path_factory.mktemp("labelled") / "names.tsv"
    path.write_text("".join(f"{label_of(name)}\t{name}\n" for name in names), encoding="utf-8")
    return path


class TinyLabelledModels(Mapping):
    """kind -> the ONNX file of a conditional model trained for a few steps on `labelled_path` (on first use)."""

    def __init__(self, folder: Path, data: Path) -> None:
        self.folder, self.data, self.built = folder, data, {}

    def __getitem__(self, kind: str) -> Path:
        if kind not in self.built:
            from makemore.export.onnx_export import export_checkpoint
            from makemore.train.run import TrainRequest, run_training

            pt, onnx_path = self.folder / f"{kind}.pt", self.folder / f"{kind}.onnx"
            overrides = {**QUICK_OVERRIDES[kind], "steps": QUICK_STEPS[kind]}
            request = TrainRequest(
                kind=kind, data=self.data, out=pt, samples=0, quiet=True, overrides=overrides, labelled=True, threads=1
            )
            assert run_training(request)
            export_checkpoint(pt, onnx_path)
            self.built[kind] = onnx_path
        return self.built[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(QUICK_STEPS)

    def __len__(self) -> int:
        return len(QUICK_STEPS)


@pytest.fixture(scope="module")
def labelled(labelled_path, tmp_path_factory) -> TinyLabelledModels:
    return TinyLabelledModels(tmp_path_factory.mktemp("labelled-models"), labelled_path)


# ---- the page's label draws and label field, under node -----------------------------------------------------------

LABELS_SCRIPT = """
import { readFileSync } from "node:fs";
import { chunkLabels } from "./pcg64.js";
const cases = JSON.parse(readFileSync(0, "utf8"));
const out = cases.map(([seed, index, lo, hi, counts]) =>
  Array.from(chunkLabels(BigInt(seed), BigInt(index), lo, hi, counts), Number));
console.log(JSON.stringify(out));
"""


def label_cases() -> list[tuple[int, int, int, int, tuple[int, ...]]]:
    """(seed, chunk index, lo, hi, counts): random ones, and the edges (labels of count 0, first and last, one label,
    counts beyond 2**53 where float64 rounds, a piece deep in the chunk, seeds and indices past 32 bits)."""
    rng = np.random.default_rng(21)
    cases = []
    for _ in range(60):
        counts = tuple(int(c) for c in rng.integers(0, 40, int(rng.integers(1, 12))))
        counts = counts if any(counts) else (*counts[:-1], 1)
        lo = int(rng.integers(0, CHUNK_SIZE))
        hi = int(rng.integers(lo + 1, min(CHUNK_SIZE, lo + 300) + 1))
        cases.append((int(rng.integers(0, 2**63)) * 2 + int(rng.integers(0, 2)), int(rng.integers(0, 9)), lo, hi, counts))
    cases += [
        (0, 0, 0, 500, (0, 5, 0)),
        (1, 3, 0, 500, (7, 0, 0, 0)),
        (2, 1, 0, 500, (0, 0, 0, 3)),
        (3, 0, 0, 200, (1,)),
        (4, 2, 0, 500, (2**63 - 1, 2**63 - 1, 1, 3 * 2**60 + 5)),
        (5, 0, 0, 500, (1, 2**62)),
        (2**64 - 1, 2**32 + 5, CHUNK_SIZE - 7, CHUNK_SIZE, (3, 1, 4, 1, 5)),
        (2**32, 2**32 - 1, 1000, 1300, tuple(range(0, 300))),
    ]
    return cases


def test_page_label_draws_equal_chunk_labels(tmp_path) -> None:
    cases = label_cases()
    payload = [[str(seed), str(index), lo, hi, list(counts)] for seed, index, lo, hi, counts in cases]
    got = run_node(tmp_path, LABELS_SCRIPT, payload)
    want = [chunk_labels(seed, ChunkSpan(index, lo, hi), counts).tolist() for seed, index, lo, hi, counts in cases]
    assert got == want
    assert all(counts[label] > 0 for (*_, counts), labels in zip(cases, got, strict=True) for label in labels)


PARSE_SCRIPT = """
import { readFileSync } from "node:fs";
import { parseLabel } from "./options.js";
import { rowLabels } from "./sampler.js";
const { cases, rows } = JSON.parse(readFileSync(0, "utf8"));
const out = cases.map(({ value, site }) => {
  try {
    const label = parseLabel(value, site);
    const drawn = rowLabels(site, { label, seed: 9n }, 1, rows);
    return { label, rows: drawn === null ? null : Array.from(drawn, Number) };
  } catch (err) {
    return { error: err.message };
  }
});
console.log(JSON.stringify(out));
"""


class StubInfo:
    """What label_index reads of a model: its labels."""

    def __init__(self, labels: tuple[str, ...]) -> None:
        self.labels, self.labelled = labels, bool(labels)


def python_label(value: str, labels: tuple[str, ...]) -> dict:
    """What the page should make of its label field: Python's index (and each row's label), or its message."""
    if value == "":
        counts = tuple(range(1, len(labels) + 1))
        return {"label": None, "rows": chunk_labels(9, ChunkSpan(1, 0, 40), counts).tolist() if labels else None}
    try:
        index = label_index(SamplingOptions(label=value).label, StubInfo(labels))  # type: ignore[arg-type]
    except SamplingError as err:
        return {"error": str(err)}
    return {"label": index, "rows": [index] * 40}


def test_the_label_field_reads_as_python_does(tmp_path) -> None:
    many = tuple(f"group {i}" for i in range(14))
    label_sets = [LABELS, many, ("x",), ()]
    values = ["", "a-end", "other", "A-END", "a-end ", "group 3", "group 13", "gro'up", 'it\'s "x"', "x", "é\n", "L" * 64]
    values.append("L" * 65)
    cases, want = [], []
    for labels in label_sets:
        site = {"bounds": {"label": SAMPLING["label"].to_json()}, "labels": None}
        if labels:
            site["labels"] = {"input": "label", "names": list(labels), "counts": list(range(1, len(labels) + 1))}
        for value in values:
            cases.append({"value": value, "site": site})
            want.append(python_label(value, labels))
    got = run_node(tmp_path, PARSE_SCRIPT, {"cases": cases, "rows": 40})
    assert got == want
    assert any("error" in case for case in want) and any(case.get("label") for case in want)


def test_site_json_carries_the_labels_and_an_unlabelled_one_none() -> None:
    from dataclasses import replace

    from makemore.contract import ModelInfo
    from makemore.data import Vocab
    from makemore.runtime.web.site import site_json

    info = ModelInfo(kind="mlp", vocab=Vocab.from_words(["anna", "bob"]), block_size=3)
    plain = site_json(info, "0" * 64)
    assert plain["labels"] is None and plain["inputs"] == ["context"]
    conditional = site_json(replace(info, labels=LABELS, label_counts=(5, 0, 7)), "0" * 64)
    assert conditional["labels"] == {"input": "label", "names": list(LABELS), "counts": [5, 0, 7]}
    assert conditional["inputs"] == ["context", "label"]
    assert conditional["bounds"]["label"] == SAMPLING["label"].to_json()
    assert json.loads(json.dumps(conditional)) == conditional  # plain JSON
