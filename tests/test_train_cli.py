"""mm-train in a subprocess: help, resume, unusual datasets end to end, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from clirun import assert_usage_error, run
from makemore.data import Vocab


def _unusual_words(n: int = 300) -> list[str]:
    """Words with '.', digits, '-', spaces and accented letters."""
    parts = ["jean", "luc", "zoë", "josé", "maría", "dr.", "r2", "007", "anne", "ñandú", "çelik", "o'neil", "åsa"]
    rng = np.random.default_rng(0)
    words: set[str] = set()
    while len(words) < n:
        a, b = rng.choice(parts, 2)
        words.add(f"{a}{rng.choice([' ', '-', '.', ''])}{b}")
    return sorted(words)


def test_help_is_complete() -> None:
    result = run("mm-train", "--help")
    assert result.returncode == 0
    for flag in ("--data", "--out", "--seed", "--split-seed", "--resume", "--steps", "--n-hidden", "--block-size"):
        assert flag in result.stdout
    for kind in ("bigram", "bigram-nn", "mlp"):
        assert kind in result.stdout


def test_unusual_characters_end_to_end(tmp_path) -> None:
    words = _unusual_words()
    data = tmp_path / "words.txt"
    data.write_text("\n".join(words) + "\n", encoding="utf-8")
    result = run("mm-train", "mlp", "--data", data, "--steps", 40, "--n-hidden", 16, "--samples", 3, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    checkpoint = torch.load(tmp_path / "model.pt", weights_only=True)  # the default --out, in the current folder
    assert checkpoint["vocab"] == Vocab.from_words(words).chars
    assert {" ", "-", ".", "0", "2", "7", "é", "ë", "ñ", "ç", "å", "'"} <= set(checkpoint["vocab"])

    assert run("mm-export", "model.pt", "model.onnx", cwd=tmp_path).returncode == 0
    gen = run("mm-gen", "model.onnx", "--n", 50, "--seed", 1, cwd=tmp_path)
    assert gen.returncode == 0, gen.stderr
    names = gen.stdout.splitlines()
    assert len(names) == 50 and all(names)
    assert set("".join(names)) <= set(checkpoint["vocab"])
    evaluated = run("mm-eval", "model.onnx", "--data", data, cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert float(evaluated.stdout) == pytest.approx(checkpoint["metrics"]["val_loss"], abs=1e-4)


def test_resume_continues_training(tmp_path) -> None:
    first = tmp_path / "first.pt"
    assert run("mm-train", "bigram-nn", "--steps", 5, "--out", first, "-q").returncode == 0
    resumed = tmp_path / "resumed.pt"
    result = run("mm-train", "bigram-nn", "--resume", first, "--steps", 5, "--out", resumed, "-q")
    assert result.returncode == 0, result.stderr
    before, after = torch.load(first, weights_only=True), torch.load(resumed, weights_only=True)
    assert before["config"]["steps_done"] == 5 and after["config"]["steps_done"] == 10
    assert not torch.equal(before["state_dict"]["weight"], after["state_dict"]["weight"])
    assert after["metrics"]["val_loss"] < before["metrics"]["val_loss"]

    mismatch = run("mm-train", "mlp", "--resume", first, "--out", tmp_path / "other.pt")
    assert_usage_error(mismatch)
    assert not (tmp_path / "other.pt").exists()

    done = torch.load(first, weights_only=True)  # a checkpoint at the most steps one records: no step more fits
    done["config"]["steps_done"] = 2**63 - 1
    torch.save(done, tmp_path / "done.pt")
    full = run("mm-train", "bigram-nn", "--resume", tmp_path / "done.pt", "--steps", 1, "--out", tmp_path / "more.pt")
    assert_usage_error(full)
    assert "would pass the most one records" in full.stderr and not (tmp_path / "more.pt").exists()


BAD_INPUTS = {
    "missing-file": ("mlp", "--data", "missing.txt"),
    "empty-file": ("mlp", "--data", "empty.txt"),
    "not-utf8": ("mlp", "--data", "latin1.txt"),
    "one-distinct-word": ("mlp", "--data", "same.txt"),
    "steps-0": ("mlp", "--steps", 0),
    "negative-n-hidden": ("mlp", "--n-hidden", -5),
}


@pytest.mark.parametrize("existing", [False, True], ids=["no-model", "existing-model"])
@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, case, existing) -> None:
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "latin1.txt").write_bytes("josé\nzoë\nanna\nbob\n".encode("latin-1"))
    (tmp_path / "same.txt").write_text("anna\nanna\nanna\n", encoding="utf-8")
    if existing:
        (tmp_path / "model.pt").write_bytes(b"the previous model")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    result = run("mm-train", *BAD_INPUTS[case], cwd=tmp_path)
    assert_usage_error(result)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no model.pt, no temporary file
