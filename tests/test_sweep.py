"""mm-sweep: a grid of MLP configs trained for the same steps, reported as a table."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pytest
import torch
from clirun import assert_usage_error, run
from makemore.data import UserError, read_words
from makemore.train.sweep import SweepRow, format_table, grid, iter_sweep, parse_ints


@pytest.fixture(scope="module")
def small_data(tmp_path_factory, names_path) -> Path:
    path = tmp_path_factory.mktemp("sweep") / "names500.txt"
    path.write_text("\n".join(read_words(names_path)[:500]) + "\n")
    return path


def mlp_params(vocab: int, block: int, embd: int, hidden: int) -> int:
    return vocab * embd + block * embd * hidden + hidden + hidden * vocab + vocab


def test_parse_ints_and_grid():
    assert parse_ints("3,4,3", "--block-size") == [3, 4]
    with pytest.raises(UserError, match="comma-separated integers"):
        parse_ints("3,x", "--block-size")
    with pytest.raises(UserError, match="must be positive"):
        parse_ints("0", "--n-embd")
    configs = list(grid([2, 3], [4], [8, 16]))  # a lazy iterator
    assert len(configs) == 4
    assert configs[0] == {"block_size": 2, "n_embd": 4, "n_hidden": 8}
    assert configs[-1] == {"block_size": 3, "n_embd": 4, "n_hidden": 16}


def test_iter_sweep_trains_each_config(small_data):
    vocab = len(set("".join(read_words(small_data)))) + 1
    configs = grid([2], [4, 8], [16])
    rows = list(iter_sweep(configs, data=small_data, steps=50, batch_size=32))
    assert [(r.block_size, r.n_embd, r.n_hidden) for r in rows] == [(2, 4, 16), (2, 8, 16)]
    for row in rows:
        assert row.params == mlp_params(vocab, row.block_size, row.n_embd, row.n_hidden)
        assert 0 < row.train_loss < math.log(vocab)  # learned something in 50 steps
        assert 0 < row.val_loss < math.log(vocab) + 0.5
        assert row.seconds > 0


def test_iter_sweep_checks_the_memory_of_every_config_before_training(small_data):
    """The first config is small; the second cannot fit any machine: refused before the first trains."""
    sweep = iter_sweep(grid([1024], [16], [8, 2**20]), data=small_data, steps=50)
    with pytest.raises(UserError, match="^--n-hidden 1,048,576 needs about .* choose a smaller --n-hidden$"):
        next(sweep)


def test_format_table_marks_the_best_val_loss():
    rows = [SweepRow(3, 10, 200, 11897, 2.1, 2.2, 10.0), SweepRow(4, 16, 300, 28335, 2.0, 2.15, 20.0)]
    lines = format_table(rows).splitlines()
    assert lines[0].startswith("| block | embd | hidden | params |")
    assert lines[2] == "| 3 | 10 | 200 | 11,897 | 2.1000 | 2.2000 | 10.0 |"
    assert lines[3] == "| 4 | 16 | 300 | 28,335 | 2.0000 | **2.1500** | 20.0 |"


def mm_sweep(*args) -> subprocess.CompletedProcess:
    return run("mm-sweep", *args, timeout=300)


def test_mm_sweep_prints_table_and_json(small_data):
    args = ["--steps", 50, "--batch-size", 32, "--block-size", 2, "--n-embd", "4,8", "--n-hidden", 16]
    before = torch.get_num_threads()
    try:
        proc = mm_sweep(*args, "--data", small_data, "--threads", 1)
        assert torch.get_num_threads() == 1  # run in this process: its torch trained on one thread
    finally:
        torch.set_num_threads(before)
    assert proc.returncode == 0, proc.stderr
    table = [line for line in proc.stdout.splitlines() if line.startswith("| 2 |")]
    assert len(table) == 2 and sum("**" in line for line in table) == 1
    assert "50 steps each; best val loss" in proc.stdout
    assert proc.stderr.count("[") == 2  # one progress line per config
    rows = json.loads(mm_sweep(*args, "--data", small_data, "--json").stdout)
    assert [row["n_embd"] for row in rows] == [4, 8]
    assert {"params", "train_loss", "val_loss", "seconds"} <= set(rows[0])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--n-embd", "4,x"], "--n-embd takes comma-separated integers"),
        (["--steps", "0"], "steps must be a positive"),
        (["--seed=-1"], "--seed must be an integer from 0 to 2**64-1"),
        (["--n-hidden", "300,2000000"], "--n-hidden must be a positive integer up to 1,048,576"),
        (["--lr", "nan"], "--lr must be a positive number"),
        (["--batch-size", "1000000000"], "--batch-size must be a positive integer"),
        (["--threads", "0"], "--threads must be from 1 to"),
        ([f"--threads={os.cpu_count() + 1}"], "--threads must be from 1 to"),
    ],
)
def test_mm_sweep_bad_options_fail_in_one_line(args, message):
    proc = mm_sweep(*args)
    assert_usage_error(proc)
    assert message in proc.stderr
