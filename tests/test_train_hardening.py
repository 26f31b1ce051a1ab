"""mm-train at the edges: every number checked before any work, memory estimated before allocating,
divergence stopped, resume kept consistent, extreme data bounded after training; nothing written on refusal.
"""

from __future__ import annotations

import inspect
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from clirun import BIN, assert_usage_error, run
from hypothesis import given, settings
from hypothesis import strategies as st
from inprocess import is_usage_error, run_main
from makemore.data import SEED_MAX, UserError, Vocab, bundled_names_path, read_words, split_words
from makemore.data.corpus import read_corpus, split_corpus
from makemore.train import memory
from makemore.train.cli import main as train_main
from makemore.train.cli import train_command
from makemore.train.config import (
    DEFAULTS,
    INT_LIMITS,
    SMOOTHING_RANGE,
    check_config,
    flag,
    make_config,
    size_defaults,
    with_block_size,
)
from makemore.train.kinds import KINDS, MODEL_KINDS, ConfigError, build_model
from makemore.train.run import SAMPLE_MAX_LEN, TrainRequest, resolve_config, run_training
from makemore.train.trainer import TrainingDiverged, check_finite, train

INT_KEYS = tuple(INT_LIMITS)
FLOAT_KEYS = ("lr", "weight_decay", "dropout", "smoothing")
SEED_KEYS = ("seed", "split_seed")
EDGES = [0, 1, -1, 2, 1023, 1024, 1025, 2**20, 2**20 + 1, 10**7, 10**7 + 1, SEED_MAX, SEED_MAX + 1, 10**400]
FLOAT_EDGES = [0.0, -0.0, 1e-300, 5e-324, 1e-12, 1e12, 1e13, 0.999999, 1.0, math.nan, math.inf, -math.inf, 1e308]
DIVERGED = r"training diverged at step \d+ \((val )?loss (nan|inf)\): try a smaller --lr"
numbers = st.one_of(
    st.sampled_from(EDGES),
    st.sampled_from(FLOAT_EDGES),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
)


def names_split() -> dict:
    """The bundled names' tokens, split as mm-train splits them."""
    return split_corpus(read_corpus(bundled_names_path()).tokens)


@pytest.fixture(scope="module")
def small_split():
    words = read_words(bundled_names_path())
    return split_words(words[:300], seed=0), Vocab.from_words(words)


# --- class 1: numbers at their edges, at the config level -------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(
    kind=st.sampled_from(MODEL_KINDS),
    overrides=st.dictionaries(st.sampled_from(INT_KEYS + FLOAT_KEYS + SEED_KEYS), numbers, max_size=4),
)
def test_make_config_is_valid_or_names_the_flag(kind, overrides) -> None:
    """For every mix of numbers: a config within every range, or a one-line UserError naming a flag given."""
    try:
        config = make_config(kind, **overrides)
    except UserError as err:  # any other exception fails the test
        message = str(err)
        assert "\n" not in message and len(message) < 300, message
        assert any(flag(key) in message for key in overrides), message
        return
    check_config(kind, config)
    config = config.flat()
    for key, value in overrides.items():
        if key in DEFAULTS[kind].flat() or key in SEED_KEYS[1:]:
            assert config[key] == value
    for key in INT_KEYS:
        if key in config:
            assert isinstance(config[key], int) and 1 <= config[key] <= INT_LIMITS[key]
    for key in FLOAT_KEYS:
        if key in config:
            assert math.isfinite(config[key])
    for key in SEED_KEYS:
        if key in config:
            assert 0 <= config[key] <= SEED_MAX
    if "smoothing" in config:
        assert config["smoothing"] > 0


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(MODEL_KINDS),
    level=st.integers(1, 4),
    n_embd=st.integers(1, 64),
    n_hidden=st.integers(1, 256),
    steps=st.integers(1, 10**7),
    batch_size=st.integers(2, 1024),
    lr=st.floats(1e-9, 1e3),
    weight_decay=st.floats(0, 10),
    dropout=st.floats(0, 0.99),
    smoothing=st.floats(*SMOOTHING_RANGE),
    seed=st.integers(0, SEED_MAX),
    split_seed=st.integers(0, SEED_MAX),
)
def test_values_in_their_ranges_are_kept(kind, level, **values) -> None:
    values["block_size"] = 2**level
    if kind == "transformer":  # its width must split into its heads: in range, but only as a multiple
        values["n_embd"] *= DEFAULTS[kind].model.n_head
    config = make_config(kind, **values).flat()
    for key, value in values.items():
        if key in DEFAULTS[kind].flat() or key == "split_seed":
            assert config[key] == value, key


@pytest.mark.parametrize(
    ("kind", "overrides", "named"),
    [
        ("mlp", {"seed": -1}, "--seed"),
        ("mlp", {"seed": 2**64}, "--seed"),
        ("bigram", {"seed": -5}, "--seed"),  # checked although a bigram is counted, not seeded
        ("mlp", {"split_seed": -1}, "--split-seed"),
        ("mlp", {"split_seed": 10**30}, "--split-seed"),
        ("mlp", {"batch_size": 10**9}, "--batch-size"),
        ("mlp", {"n_hidden": 10**9}, "--n-hidden"),
        ("wavenet", {"n_embd": 10**8}, "--n-embd"),
        ("mlp", {"block_size": 100_000}, "--block-size"),
        ("mlp", {"steps": 10**12}, "--steps"),
        ("mlp", {"lr": math.nan}, "--lr"),
        ("mlp", {"lr": math.inf}, "--lr"),
        ("mlp", {"weight_decay": math.inf}, "--weight-decay"),
        ("mlp", {"weight_decay": math.nan}, "--weight-decay"),
        ("mlp", {"lr": 1e39}, "--lr"),  # past float32: the optimizers' own numbers overflowed (a traceback)
        ("mlp", {"weight_decay": 1e39}, "--weight-decay"),
        ("wavenet", {"dropout": math.nan}, "--dropout"),
        ("bigram", {"smoothing": 0.0}, "--smoothing"),
        ("bigram", {"smoothing": 5e-324}, "--smoothing"),
        ("bigram", {"smoothing": math.inf}, "--smoothing"),
        ("bigram", {"smoothing": 1e300}, "--smoothing"),
        ("mlp", {"n_hidden": 2**20, "n_embd": 2**20}, "--n-"),  # within the ranges, far beyond any memory
        ("wavenet", {"block_size": 1024, "n_hidden": 2**20}, "--n-hidden"),
    ],
)
def test_numbers_out_of_range_are_refused(kind, overrides, named) -> None:
    with pytest.raises(UserError, match=re.escape(named)):
        make_config(kind, **overrides)


# --- class 1: memory -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "overrides"),
    [
        ("bigram", {}),
        ("bigram-nn", {}),
        ("mlp", {}),
        ("mlp", {"block_size": 7, "n_embd": 3, "n_hidden": 11}),
        ("wavenet", {}),
        ("wavenet", {"block_size": 2, "n_embd": 5, "n_hidden": 6}),
        ("wavenet", {"block_size": 32, "norm": "layer", "n_hidden": 9}),
    ],
)
@pytest.mark.parametrize("vocab_size", [2, 27, 300])
def test_param_count_is_the_model_size(kind, overrides, vocab_size) -> None:
    config = make_config(kind, **overrides)
    model = build_model(kind, vocab_size, config)
    assert memory.param_count(kind, vocab_size, config) == sum(t.numel() for t in model.state_dict().values())


@pytest.mark.parametrize(
    ("key", "value", "limit"),
    [
        ("n_hidden", 2**20, 2**30),
        ("n_embd", 2**20, 2**30),
        ("block_size", 1024, 800 * 2**20),  # no X[N, 1024] any more: about 760 MiB, where the defaults need 600
        ("batch_size", 2**20, 2**30),
    ],
)
def test_memory_error_names_the_flag_that_costs_most(key, value, limit) -> None:
    config, defaults = DEFAULTS["mlp"].replace(**{key: value}), DEFAULTS["mlp"].flat()
    sizes = memory.split_sizes(names_split())
    memory.check_memory("mlp", config, 27, sizes, defaults, limit=2**50)  # fits a petabyte
    memory.check_memory("mlp", DEFAULTS["mlp"], 27, sizes, defaults, limit=limit)  # the defaults fit
    with pytest.raises(memory.MemoryLimitError, match=f"^{re.escape(flag(key))} .* choose a smaller {flag(key)}$"):
        memory.check_memory("mlp", config, 27, sizes, defaults, limit=limit)


def test_memory_counts_the_rows_drawn_for_buckets() -> None:
    """--buckets draws buckets x batch_size rows at once and sorts them: counted, and a memory error can blame it."""
    sizes = memory.split_sizes(names_split())
    config = make_config("rnn", n_embd=1, n_hidden=1, batch_size=2**20)
    plain = memory.needed("rnn", config, 27, sizes)
    bucketed = memory.needed("rnn", config.replace(buckets=1024), 27, sizes)
    assert bucketed - plain >= 1024 * 2**20 * 8 * 3  # the draw, the sort's values and its order, int64 each
    defaults = {**DEFAULTS["rnn"].flat(), "block_size": 16, "batch_size": 2**20}
    with pytest.raises(memory.MemoryLimitError, match="choose a smaller --buckets$"):
        memory.check_memory("rnn", config.replace(buckets=1024), 27, sizes, defaults, limit=bucketed // 2)


def test_memory_error_blames_the_data_when_no_flag_is_raised() -> None:
    config = make_config("bigram-nn")
    sizes = {"train": 10**6, "val": 10**5, "test": 10**5}
    with pytest.raises(memory.MemoryLimitError, match=r"^a bigram-nn on this data \(1,200,000 examples, 20,000 char"):
        memory.check_memory("bigram-nn", config, 20_001, sizes, DEFAULTS["bigram-nn"].flat(), limit=2**34)


def test_memory_estimate_counts_tokens_not_materialised_examples() -> None:
    """A million lines of names (about 8 million examples) are estimated at the tokens' size, whatever the block."""
    sizes = {"train": 6_400_000, "val": 800_000, "test": 800_000}
    small, large = (make_config("mlp", block_size=block) for block in (4, 64))
    data = memory.estimate("mlp", small, 27, sizes, words=1_000_000)["data"]
    assert data == memory.estimate("mlp", large, 27, sizes, words=1_000_000)["data"]
    assert data < 300 * 2**20  # materialised int64 X[N, 4] and Y[N] alone were 305 MiB
    assert memory.estimate("mlp", small, 27, sizes)["data"] > data  # unknown words: assume the most


def test_memory_estimate_grows_with_every_size_flag() -> None:
    sizes = {"train": 1000, "val": 100, "test": 100}
    base = make_config("mlp")
    before = memory.needed("mlp", base, 27, sizes)
    for key in ("block_size", "n_embd", "n_hidden", "batch_size"):
        assert memory.needed("mlp", base.replace(**{key: base.flat()[key] * 2}), 27, sizes) > before, key
    assert memory.needed("mlp", base, 54, sizes) > before
    assert memory.needed("mlp", base, 27, {k: 2 * v for k, v in sizes.items()}) > before


def test_run_training_checks_memory_with_the_data_before_writing(tmp_path, monkeypatch) -> None:
    """Block size 1024 fits the config-level check (tiny data) in a memory too small for it on the names."""
    config = make_config("mlp", block_size=1024, steps=5)
    with_names = memory.needed("mlp", config, 27, memory.split_sizes(names_split()), words=32033)
    between = (memory.needed("mlp", config, 2, {}) + with_names) // 2
    monkeypatch.setattr(memory, "machine_memory", lambda: int(between / memory.MEMORY_FRACTION))
    make_config("mlp", block_size=1024, steps=5)  # fits without the data
    out = tmp_path / "model.pt"
    request = TrainRequest(kind="mlp", out=out, quiet=True, overrides={"block_size": 1024, "steps": 5})
    with pytest.raises(memory.MemoryLimitError, match="^--block-size 1,024 needs about"):
        run_training(request)
    assert list(tmp_path.iterdir()) == []


def test_a_sequence_kinds_block_size_is_blamed_only_above_what_the_data_needs(tmp_path, monkeypatch) -> None:
    """A transformer's block_size comes from the data; one set larger is the flag to lower, the data's own is not."""
    monkeypatch.setattr(memory, "machine_memory", lambda: 2**31)
    request = TrainRequest(kind="transformer", out=tmp_path / "m.pt", quiet=True, overrides={"block_size": 1000})
    with pytest.raises(memory.MemoryLimitError, match="^--block-size 1,000 needs about .* smaller --block-size$"):
        run_training(request)
    split = names_split()
    config = with_block_size("transformer", DEFAULTS["transformer"].replace(batch_size=2**16), split)
    with pytest.raises(memory.MemoryLimitError, match="^--batch-size 65,536 needs about"):
        memory.check_memory("transformer", config, 27, memory.split_sizes(split), size_defaults("transformer", split))
    assert list(tmp_path.iterdir()) == []


# --- class 2: divergence ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "overrides"),
    [
        ("mlp", {"lr": 1e6}),
        ("mlp", {"lr": 1e30}),
        ("mlp", {"lr": 1e6, "optimizer": "sgd"}),
        ("mlp", {"lr": 1.0, "weight_decay": 1e30}),
        ("wavenet", {"lr": 1e6, "n_embd": 8, "n_hidden": 16}),
    ],
)
def test_training_stops_when_the_loss_is_no_longer_finite(small_split, kind, overrides) -> None:
    split, vocab = small_split
    config = make_config(kind, steps=200, batch_size=32, **overrides)
    with pytest.raises(TrainingDiverged, match=f"^{DIVERGED}$"):
        train(kind, config, split, vocab)


def test_non_finite_weights_are_divergence() -> None:
    model = build_model("mlp", 27, make_config("mlp"))
    with torch.no_grad():
        model.output.bias[3] = math.inf
    with pytest.raises(TrainingDiverged, match="output.bias not finite"):
        check_finite(model, {"val_loss": 2.0}, 7, "a smaller --lr")
    with pytest.raises(TrainingDiverged, match=r"^training diverged at step 7 \(val loss nan\)"):
        check_finite(build_model("mlp", 27, make_config("mlp")), {"val_loss": math.nan}, 7, "a smaller --lr")


@pytest.mark.parametrize("smoothing", [SMOOTHING_RANGE[0], 1e-6, 1.0, SMOOTHING_RANGE[1]])
def test_bigram_log_probabilities_are_finite_over_the_smoothing_range(small_split, smoothing) -> None:
    split, vocab = small_split
    result = train("bigram", make_config("bigram", smoothing=smoothing), split, vocab)
    assert torch.isfinite(result.model.log_probs).all()
    assert all(math.isfinite(value) for value in result.metrics.values())


@pytest.mark.parametrize(
    "flags",
    [
        ("mlp", "--n-hidden", "16", "--lr", "1e6"),
        ("mlp", "--n-hidden", "16", "--lr", "3.4e38"),  # Adam's first step, 10 x lr, overflowed float32: a traceback
        ("bigram-nn", "--lr", "1e38"),
        ("mlp", "--n-hidden", "16", "--optimizer", "sgd", "--lr", "1e37", "--weight-decay", "3e38"),
    ],
    ids=" ".join,
)
def test_diverged_run_writes_nothing_and_keeps_the_old_model(tmp_path, flags) -> None:
    (tmp_path / "model.pt").write_bytes(b"the previous model")
    result = run("mm-train", *flags, "--steps", 40, "--samples", 0, cwd=tmp_path)
    assert_usage_error(result)
    overflowed = r"training diverged at step \d+ \(the optimizer's step past float32's range\): try a smaller --lr"
    assert re.match(f"error: ({DIVERGED}|{overflowed})$", result.stderr)
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
    assert (tmp_path / "model.pt").read_bytes() == b"the previous model"


# --- class 1, end to end: one line, exit 2, nothing written ----------------------------------------------------

BAD_NUMBERS = [
    (("mlp", "--seed", -1), "--seed"),
    (("mlp", "--split-seed=-1"), "--split-seed"),
    (("mlp", "--seed", 2**64), "--seed"),
    (("mlp", "--batch-size", 10**9), "--batch-size"),
    (("mlp", "--n-hidden", 10**9), "--n-hidden"),
    (("mlp", "--n-embd", 10**12), "--n-embd"),
    (("wavenet", "--block-size", 100_000), "--block-size"),
    (("mlp", "--steps", 10**15), "--steps"),
    (("mlp", "--threads", 0), "--threads"),
    (("mlp", "--threads", 10**6), "--threads"),
    (("mlp", "--lr", "nan"), "--lr"),
    (("mlp", "--weight-decay", "inf"), "--weight-decay"),
    (("mlp", "--lr", "1e39"), "--lr"),
    (("bigram-nn", "--weight-decay", "1e39"), "--weight-decay"),
    (("wavenet", "--dropout", "nan"), "--dropout"),
    (("bigram", "--smoothing", 0), "--smoothing"),
    (("bigram", "--smoothing=-inf"), "--smoothing"),
    (("mlp", "--samples", -1), "--samples"),
    (("mlp", "--samples", 10**9), "--samples"),
    (("mlp", "--n-hidden", 2**20, "--n-embd", 2**20, "--block-size", 1024), "--n-"),
]


@pytest.mark.parametrize(("args", "named"), BAD_NUMBERS, ids=[" ".join(map(str, a[0])) for a in BAD_NUMBERS])
def test_bad_numbers_are_one_line_and_write_nothing(tmp_path, monkeypatch, args, named) -> None:
    """mm-train's entry point in this process (a subprocess per case costs a second of imports; the console
    script itself is run as a subprocess by the tests of its exit status)."""
    (tmp_path / "model.pt").write_bytes(b"the previous model")
    steps = () if "--steps" in args or "steps" not in KINDS[args[0]].flags else ("--steps", 5)
    monkeypatch.chdir(tmp_path)
    outcome = run_main(train_main, *args, *steps)
    assert is_usage_error(outcome), outcome
    assert outcome.stderr.startswith(f"error: {named}")  # the flag at fault, not another
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
    assert (tmp_path / "model.pt").read_bytes() == b"the previous model"


# --- class 3: resume -------------------------------------------------------------------------------------------


def _resumed(kind: str, split_seed: int = 42, **overrides) -> dict:
    return {"kind": kind, "config": make_config(kind, split_seed=split_seed, **overrides)}


@pytest.mark.parametrize(
    ("kind", "overrides", "named"),
    [
        ("mlp", {"split_seed": 7}, "--split-seed"),
        ("mlp", {"split_seed": 0}, "--split-seed"),
        ("mlp", {"block_size": 3}, "--block-size"),
        ("mlp", {"n_embd": 8}, "--n-embd"),
        ("mlp", {"n_hidden": 301}, "--n-hidden"),
        ("wavenet", {"norm": "layer"}, "--norm"),
        ("wavenet", {"block_size": 16}, "--block-size"),
        ("transformer", {"n_head": 2}, "--n-head"),
    ],
)
def test_resume_refuses_a_change_of_model_or_split(kind, overrides, named) -> None:
    split_seed = overrides.pop("split_seed", None)
    request = TrainRequest(kind=kind, split_seed=split_seed, overrides=overrides)
    with pytest.raises(ConfigError, match=f"^{re.escape(named)} cannot change when resuming"):
        resolve_config(request, _resumed(kind))


# A valid value of every flag of mm-train that sets a config key (whichever kind takes it).
FLAG_VALUES = {
    "seed": 1, "block_size": 4, "n_embd": 16, "n_hidden": 32, "n_layer": 2, "n_head": 2, "dropout": 0.1,
    "norm": "layer", "steps": 5, "batch_size": 8, "buckets": 2, "lr": 0.01, "optimizer": "adam",
    "weight_decay": 0.0, "smoothing": 0.5, "ema": 0.9,
}  # fmt: skip


def test_the_flag_table_is_every_config_flag_of_mm_train() -> None:
    settable = set().union(*(KINDS[kind].defaults.settable() for kind in MODEL_KINDS))
    assert set(inspect.signature(train_command).parameters) & settable == set(FLAG_VALUES) | {"split_seed"}


@pytest.mark.parametrize("kind", MODEL_KINDS)
@pytest.mark.parametrize("key", FLAG_VALUES)
def test_a_flag_the_kind_does_not_take_is_refused_new_or_resumed(kind, key) -> None:
    request = TrainRequest(kind=kind, overrides={key: FLAG_VALUES[key]})
    if key in KINDS[kind].flags:
        assert resolve_config(request, None).flat()[key] == FLAG_VALUES[key]
        return
    for resumed in (None, _resumed(kind)):
        with pytest.raises(ConfigError, match=f"^{re.escape(flag(key))} does not apply to {kind}"):
            resolve_config(request, resumed)


def test_a_flag_the_kind_does_not_take_is_one_line_and_writes_nothing(tmp_path) -> None:
    result = run("mm-train", "mlp", "--n-layer", 8, "--out", tmp_path / "model.pt")
    assert_usage_error(result)
    assert "--n-layer does not apply to mlp (it takes --seed, --block-size, --n-embd" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_resume_keeps_what_matches_and_takes_training_flags() -> None:
    request = TrainRequest(kind="mlp", split_seed=42, overrides={"n_hidden": 300, "lr": 0.01, "steps": 7})
    config = resolve_config(request, _resumed("mlp"))
    assert (config.split_seed, config.model.n_hidden, config.train.lr, config.train.steps) == (42, 300, 0.01, 7)
    assert resolve_config(TrainRequest(kind="mlp"), _resumed("mlp", split_seed=9)).split_seed == 9
    with pytest.raises(ConfigError, match="--preset cannot be used with --resume"):
        resolve_config(TrainRequest(kind="mlp", preset="default"), _resumed("mlp"))


def test_resume_cli_refuses_another_split_and_continues_in_place(tmp_path) -> None:
    model = tmp_path / "model.pt"
    assert run("mm-train", "bigram-nn", "--steps", 3, "--out", model, "-q", "--samples", 0).returncode == 0
    before = model.read_bytes()
    refused = run("mm-train", "bigram-nn", "--resume", model, "--split-seed", 7, "--out", tmp_path / "other.pt")
    assert_usage_error(refused)
    assert "--split-seed cannot change when resuming (checkpoint has 42)" in refused.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"] and model.read_bytes() == before
    in_place = run("mm-train", "bigram-nn", "--resume", model, "--split-seed", 42, "--steps", 3, "--out", model, "-q")
    assert in_place.returncode == 0, in_place.stderr
    assert torch.load(model, weights_only=True)["config"]["steps_done"] == 6  # a record key: top level


# --- class 4: extreme data -------------------------------------------------------------------------------------


def test_printed_samples_are_cut_at_the_bound(tmp_path, capsys, monkeypatch) -> None:
    """Lines of 5,000 'a's: a bigram of them starts with 'a' and continues 'a' with 'a' almost surely."""
    monkeypatch.setenv("COLUMNS", "100000")  # rich would wrap the samples' line at 80 columns
    data = tmp_path / "long.txt"
    data.write_text("a" * 5000 + "\n" + ("a" * 5000 + "\n") * 9 + "b\nc\n", encoding="utf-8")
    out = tmp_path / "model.pt"
    assert run_training(TrainRequest(kind="bigram", data=data, out=out, samples=20, overrides={"smoothing": 1e-6}))
    line = [line for line in capsys.readouterr().err.splitlines() if line.startswith("samples: ")][-1]
    names = line.removeprefix("samples: ").split(", ")
    assert len(names) == 20
    assert max(map(len, names)) == SAMPLE_MAX_LEN  # cut, not naturally short
    assert torch.load(out, weights_only=True)["config"]["max_len"] == 5000  # the recorded longest word stays true


def test_samples_bound_is_in_help_and_docs() -> None:
    help_text = " ".join(run("mm-train", "--help").stdout.split())
    assert f"cut at {SAMPLE_MAX_LEN} characters" in help_text
    models_page = (Path(__file__).parents[1] / "docs" / "models.md").read_text(encoding="utf-8")
    assert f"cut at {SAMPLE_MAX_LEN} characters" in models_page


@pytest.mark.parametrize("kind", ["transformer", "rnn", "gru", "lstm"])
@pytest.mark.parametrize("block_size", [8, 60_001])
def test_a_sequence_kinds_evaluation_chunk_is_what_the_memory_estimate_counts(kind, block_size) -> None:
    """The final evaluation runs eval_rows words at a time (the estimate's count): a long word makes it fewer,
    so a run that passes the memory check cannot meet a 15 GB allocation in its final losses."""
    config = make_config(kind, n_layer=1).replace(block_size=block_size)
    rows = memory.eval_rows(kind, 27, config)
    floats = memory.activation_floats(kind, 27, config)
    assert 1 <= rows <= memory.EVAL_WORDS
    assert rows == 1 or rows * floats <= memory.SEQUENCE_EVAL_FLOATS


def test_one_long_word_trains_a_sequence_kind_in_bounded_memory(tmp_path) -> None:
    data = tmp_path / "long.txt"
    data.write_text("\n".join(["abcde", "fghij", "klmno", "pqrst", "uvwxy"] * 60 + ["a" * 60_000]) + "\n")
    probe = (
        "import resource, subprocess, sys;"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=300);"
        "sys.stderr.write(r.stderr); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);"
        "sys.exit(r.returncode)"
    )
    argv = [str(Path(sys.executable).parent / "mm-train"), "rnn", "--data", data, "--steps", 2, "--batch-size", 2]
    argv += ["--out", tmp_path / "rnn.pt", "--samples", 0, "--quiet"]
    result = subprocess.run([sys.executable, "-c", probe, *map(str, argv)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) < 2 * 1024 * 1024  # KiB: under 2 GiB (before: 7.8 GB, then a 14.8 GB allocation)


def test_a_counted_bigrams_table_takes_no_more_memory_than_its_estimate(tmp_path) -> None:
    """Fitting a bigram's table of a 6,000-character vocabulary (36 million cells) costs no more resident memory than
    the estimate charges it (memory.estimate: 28 bytes a cell): it held the counts and four float64 copies, about 36
    bytes a cell, past the 20% margin the check keeps (found by a review: 13.6 GiB where 11 GiB was estimated)."""
    import random

    from makemore.train.kinds import kind_spec

    rng = random.Random(0)
    chars = [chr(0x4E00 + i) for i in range(6000)]
    words = chars + ["".join(rng.choice(chars) for _ in range(rng.randint(2, 6))) for _ in range(20_000)]
    data = tmp_path / "cjk.txt"
    data.write_text("".join(f"{word}\n" for word in words), encoding="utf-8")

    def peak_mb(*args: object) -> float:
        argv = ["/usr/bin/time", "-f", "maxrss_kb=%M", BIN / "mm-train", "bigram", "-q", "--threads", "1", *args]
        result = subprocess.run(list(map(str, argv)), capture_output=True, text=True, timeout=300, check=False)
        assert result.returncode == 0, result.stderr[-500:]
        return int(result.stderr.rsplit("maxrss_kb=", 1)[1]) / 1024

    table = peak_mb("--data", data, "--out", tmp_path / "big.pt") - peak_mb("--out", tmp_path / "small.pt")
    cells = kind_spec("bigram").params(6001, make_config("bigram").model)
    assert table * 2**20 <= cells * (memory.FLOAT + 3 * 8), (table, cells)


@pytest.mark.parametrize("share", [0.0, 0.01, 0.3, 0.97, 1.0])
@pytest.mark.parametrize(("draws", "steps"), [(1, 1), (16, 100), (40, 10**6)])
def test_long_draws_is_the_binomial_quantile_of_the_runs_risk(share, draws, steps) -> None:
    """The k of long_draws is the smallest with steps * P(K > k) <= RUN_RISK, K ~ Binomial(draws, share), as exact
    rational arithmetic computes it."""
    from fractions import Fraction

    p = Fraction(share)
    tails = [
        sum(math.comb(draws, j) * p**j * (1 - p) ** (draws - j) for j in range(k + 1, draws + 1))
        for k in range(draws + 1)
    ]
    exact = next(k for k, tail in enumerate(tails) if steps * tail <= Fraction(memory.RUN_RISK))
    assert memory.long_draws(share, draws, steps, draws) == exact


@pytest.mark.parametrize(
    ("share", "draws", "steps"),
    [(0.01, 4096, 10**6), (0.3, 4096, 10**6), (0.001, 16384, 10**6), (0.5, 1024, 10**6), (0.05, 16384, 10**7)],
)
def test_long_draws_holds_for_big_batches_and_long_runs(share, draws, steps) -> None:
    """At a risk of 1e-6 over 10**6 or 10**7 steps a tail is 1e-12 or 1e-13: long_draws summed 1 - P(K <= k), whose
    rounding made 4,096 of 93 and 623 of 624 (found by a review). Checked against tails computed term by term in
    50-digit decimals."""
    from decimal import Decimal, getcontext

    getcontext().prec = 50
    p, q = Decimal(share), 1 - Decimal(share)

    def tail(k: int) -> Decimal:  # P(K > k), its terms past mean + 60 sd below 1e-700
        top = min(draws, int(draws * share + 60 * math.sqrt(draws * share * (1 - share))) + 60)
        return sum((math.comb(draws, j) * p**j * q ** (draws - j) for j in range(k + 1, top + 1)), Decimal(0))

    k = memory.long_draws(share, draws, steps, draws)
    assert steps * tail(k) <= Decimal(memory.RUN_RISK) < steps * tail(k - 1)


@settings(max_examples=200, deadline=None)
@given(
    short=st.lists(st.integers(2, 32), min_size=1, max_size=40),
    long=st.lists(st.integers(33, 400), min_size=1, max_size=5),
    batch=st.integers(1, 64),
    k=st.integers(0, 64),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_packed_batch_never_has_more_rows_than_its_bound(short, long, batch, k, seed) -> None:
    """Any batch of at most k long words (the k packed_batch is given) packs (data.packing, best fit decreasing)
    into no more rows than the bound packed_batch gives for its width."""
    from makemore.data.packing import pack_sizes

    sizes = np.array(short + long)
    k = min(k, batch)
    rng = np.random.default_rng(seed)
    drawn = np.concatenate([rng.choice(long, size=k), rng.choice(short, size=batch - k)])
    width = max(32, int(drawn.max()))
    rows = int(pack_sizes(drawn, width)[0].max()) + 1
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(memory, "long_draws", lambda *args: k)
        bounds = dict((w, n) for n, w in memory.packed_batch(sizes, batch, batch, 1, 32))
    assert rows <= bounds.get(width, batch), (rows, bounds, width)


def test_one_long_line_does_not_make_the_default_transformer_ask_for_hundreds_of_gib() -> None:
    """The names and one line of 3,000 characters: a packed batch holds that word in one row of 3,001 positions and
    the names in a few more, not 128 rows as wide (434 GiB estimated, 4.7 GiB measured with the word drawn)."""
    words = read_words(bundled_names_path()) + ["ab" * 1500]
    sizes = np.array([len(word) + 1 for word in words])
    config = make_config("transformer").replace(block_size=3001)
    split = {"train": sum(sizes), "val": 0, "test": 0}
    memory.check_memory(
        "transformer",
        config,
        28,
        split,
        DEFAULTS["transformer"].flat(),
        limit=24 * 2**30,
        words=len(words),
        train_sizes=sizes,
    )
    with pytest.raises(memory.MemoryLimitError):  # every row as wide as the word: what it estimated before
        memory.check_memory(
            "transformer", config, 28, split, DEFAULTS["transformer"].flat(), limit=24 * 2**30, words=len(words)
        )
