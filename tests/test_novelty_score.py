"""Novelty of sampled names (in train, in val/test, new) and mm-eval --score, torch-free."""

from __future__ import annotations

import subprocess
import sys

import pytest
from clirun import assert_usage_error, run
from makemore.data import Split, read_words
from makemore.runtime.novelty import count_novelty, format_novelty, model_split


def test_count_novelty_labels_each_name_once():
    split = Split(train=["emma", "olivia", "ava", "mia"], val=["mia", "zoe"], test=["liam"])
    names = ["emma", "mia", "zoe", "liam", "xqzt", "emma", "bob", "ava"]
    stats = count_novelty(names, split)
    # emma, mia (also in val: train wins), emma, ava | zoe, liam | xqzt, bob
    assert (stats.samples, stats.in_train, stats.in_heldout, stats.new) == (8, 4, 2, 2)
    assert stats.mean_len == pytest.approx(sum(map(len, names)) / 8)
    assert stats.data_mean_len == pytest.approx((4 + 6 + 3 + 3) / 4)
    assert stats.share(stats.in_heldout) == pytest.approx(0.25)


def test_format_novelty_shows_counts_and_shares():
    stats = count_novelty(["ab", "cd", "zz", "q"], Split(train=["ab", "abc"], val=["cd"], test=["e"]))
    text = format_novelty(stats)
    assert "in train     1   25.0%" in text
    assert "in val/test  1   25.0%" in text
    assert "new          2   50.0%" in text
    assert "mean length  1.75 (train words: 2.50)" in text


def test_model_split_follows_the_model_config(names_path):
    from makemore.contract import ModelInfo
    from makemore.data import Vocab, split_words

    words = read_words(names_path)[:1000]
    info = ModelInfo(
        kind="mlp",
        vocab=Vocab.from_words(words),
        block_size=3,
        config={"split_seed": 7, "split_fractions": [0.5, 0.3, 0.2]},
    )
    assert model_split(info, words) == split_words(words, 7, (0.5, 0.3, 0.2))
    assert len(model_split(info, words).val) == 300


def parse_scores(stdout: str) -> dict[str, float]:
    rows = [line.split("\t") for line in stdout.splitlines()]
    return {name: float(score) for score, name in rows}


def test_eval_score_matches_torch_and_ranks_names(model_files):
    from makemore.train.sampler import TorchSampler

    pt, onnx_path = model_files["mlp"]
    names = ["emma", "xqzt", "olivia", "zzzzzz"]
    proc = run("mm-eval", onnx_path, "--score", *names)
    assert proc.returncode == 0, proc.stderr
    scores = parse_scores(proc.stdout)
    assert list(scores) == names
    expected = TorchSampler(pt).score(names)
    assert [scores[n] for n in names] == pytest.approx(expected, abs=1e-5)
    assert scores["emma"] < scores["xqzt"]
    assert scores["olivia"] < scores["zzzzzz"]


def test_eval_score_is_torch_free(model_files):
    _, onnx_path = model_files["mlp"]
    code = (
        "import sys\n"
        "from makemore.runtime.cli import eval_main\n"
        f"sys.argv = ['mm-eval', {str(onnx_path)!r}, '--score', 'emma']\n"
        "try:\n    eval_main()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "assert 'torch' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.endswith("\temma\n")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--score"], "--score needs at least one name"),
        (["emma"], "to score names, add --score"),
        (["--score", "emma", "--samples", "10"], "choose one of --score and --samples"),
        (["--score", "em3a"], "not in the vocabulary"),
        (["--score", ""], "cannot score an empty name"),
        (["--samples", "0"], "--samples"),
        (["--workers", "2"], "--workers applies to --samples"),  # it did nothing
        (["--score", "emma", "--workers", "2"], "--workers applies to --samples"),
        (["--score", "emma", "--data", "missing.txt"], "--data applies to a split's loss"),  # it was not read
        (["--score", "emma", "--split", "test"], "--split applies to a split's loss"),
        (["--samples", "3", "--split", "foo"], "--split applies to a split's loss"),  # nor checked
    ],
)
def test_eval_bad_modes_fail_in_one_line(model_files, args, message):
    proc = run("mm-eval", model_files["mlp"][1], *args)
    assert_usage_error(proc)
    assert message in proc.stderr


def test_eval_samples_counts_the_model_samples(model_files, names_path):
    from makemore.runtime.onnx_sampler import OnnxSampler

    _, onnx_path = model_files["mlp"]
    proc = run("mm-eval", onnx_path, "--samples", 300)
    assert proc.returncode == 0, proc.stderr
    sampler = OnnxSampler(onnx_path)
    expected = count_novelty(sampler.sample(300, seed=0), model_split(sampler.info, read_words(names_path)))
    assert proc.stdout == format_novelty(expected) + "\n"
    assert expected.in_train + expected.in_heldout > 0 and expected.new > 0  # a 400-step model copies and invents


def test_gen_stats_keeps_stdout_and_reports_on_stderr(model_files, names_path):
    _, onnx_path = model_files["mlp"]
    plain = run("mm-gen", onnx_path, "--n", 50, "--seed", 3)
    with_stats = run("mm-gen", onnx_path, "--n", 50, "--seed", 3, "--stats", "--data", names_path)
    assert with_stats.returncode == 0, with_stats.stderr
    assert with_stats.stdout == plain.stdout
    names = plain.stdout.split()
    from makemore.runtime.onnx_sampler import OnnxSampler

    split = model_split(OnnxSampler(onnx_path).info, read_words(names_path))
    assert with_stats.stderr == format_novelty(count_novelty(names, split)) + "\n"
    assert "samples      50" in with_stats.stderr


def test_gen_stats_warns_on_other_data(model_files, tmp_path):
    data = tmp_path / "other.txt"
    data.write_text("anna\nbob\ncarl\ndora\n")
    proc = run("mm-gen", model_files["mlp"][1], "--n", 5, "--seed", 0, "--stats", "--data", data)
    assert proc.returncode == 0, proc.stderr
    assert "is not the data this model was trained on" in proc.stderr
    assert "samples      5" in proc.stderr


def test_gen_data_without_stats_is_refused(model_files, names_path):
    """--data is read by --stats alone: without it, the flag would be ignored."""
    assert_usage_error(run("mm-gen", model_files["mlp"][1], "--n", 2, "--data", names_path))
