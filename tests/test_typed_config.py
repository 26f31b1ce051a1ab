"""Typed configs (issue 20): frozen dataclasses per model family, TrainConfig and the run's Config; make_config keeps
its flags, checks and defaults; checkpoints store the config nested (format 2) and still read the flat format 1."""

from __future__ import annotations

import dataclasses
import json
import re

import onnx
import pytest
import torch
from checkpoint_formats import as_format_1
from hypothesis import given, settings
from hypothesis import strategies as st
from inprocess import is_usage_error, run_main
from makemore.contract import CHECKPOINT_FORMAT_VERSION
from makemore.data import UserError
from makemore.export.cli import main as export_main
from makemore.train.checkpoint import CheckpointError, load_checkpoint, load_model
from makemore.train.cli import main as train_main
from makemore.train.config import DEFAULTS, make_config
from makemore.train.config_types import (
    RECORD_KEYS,
    Config,
    ConfigError,
    TrainConfig,
    config_from_dict,
)
from makemore.train.kinds import KINDS, MODEL_KINDS, SEQUENCE_KINDS, build_model
from makemore.train.plot_cli import main as plot_main

# The flat configs' keys of each kind, as checkpoints of format 1 and the ONNX metadata have always held them.
FLAT_KEYS = {
    "bigram": {"block_size", "smoothing"},
    "bigram-nn": {"block_size", "steps", "lr", "optimizer", "weight_decay", "seed", "ema"},
    "mlp": {"block_size", "n_embd", "n_hidden", "dropout", "steps", "batch_size", "lr", "optimizer", "weight_decay"}
    | {"seed", "ema"},
    "wavenet": {"block_size", "n_embd", "n_hidden", "norm", "dropout", "steps", "batch_size", "lr", "optimizer"}
    | {"weight_decay", "seed", "ema"},
    "transformer": {"n_layer", "n_head", "n_embd", "dropout", "steps", "batch_size", "buckets", "lr", "warmup"}
    | {"grad_clip", "beta2", "optimizer", "weight_decay", "seed", "ema"},
}
for _cell in ("rnn", "gru", "lstm"):
    FLAT_KEYS[_cell] = (FLAT_KEYS["transformer"] - {"n_head"}) | {"n_hidden"}

FLAG_VALUES = {  # valid values of every flag make_config takes (a kind ignores the ones it does not use)
    "block_size": st.sampled_from([2, 4, 8]),
    "n_embd": st.integers(1, 64).map(lambda n: 4 * n),
    "n_hidden": st.integers(1, 512),
    "n_layer": st.integers(1, 4),
    "n_head": st.sampled_from([1, 2, 4]),
    "dropout": st.floats(0, 0.9),
    "norm": st.sampled_from(["batch", "layer"]),
    "steps": st.integers(1, 10**6),
    "batch_size": st.integers(2, 4096),
    "buckets": st.integers(1, 16),
    "warmup": st.integers(0, 1000),
    "grad_clip": st.floats(0.1, 10),
    "beta2": st.floats(0.5, 0.999),
    "ema": st.floats(0, 0.9999),
    "lr": st.floats(1e-6, 1.0),
    "optimizer": st.sampled_from(["sgd", "adam", "adamw"]),
    "weight_decay": st.floats(0, 1),
    "smoothing": st.floats(1e-6, 100),
    "seed": st.integers(0, 2**64 - 1),
    "split_seed": st.integers(0, 2**64 - 1),
}
overrides = st.fixed_dictionaries({}, optional=FLAG_VALUES)


def plain(value: object) -> bool:
    """Whether `value` is plain data: None, bool, int, float, str, and lists and str-keyed dicts of these."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, list):
        return all(map(plain, value))
    return isinstance(value, dict) and all(isinstance(k, str) and plain(v) for k, v in value.items())


# --- the classes ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_each_kind_holds_typed_defaults_of_its_family(kind) -> None:
    defaults = KINDS[kind].defaults
    assert isinstance(defaults, Config) and defaults.kind == kind
    assert type(defaults.model).__name__ == KINDS[kind].model + "Config"  # Recurrent -> RecurrentConfig, ...
    assert (defaults.train is None) is KINDS[kind].counted
    assert set(defaults.flat()) == FLAT_KEYS[kind]  # the flat form has today's keys, no more
    assert (defaults.block_size is None) is (kind in SEQUENCE_KINDS)  # a sequence's comes from the data


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_configs_are_frozen(kind) -> None:
    config = make_config(kind)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.kind = "mlp"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.model.block_size = 3  # type: ignore[misc]
    if config.train is not None:
        with pytest.raises(dataclasses.FrozenInstanceError):
            config.train.lr = 1.0  # type: ignore[misc]


def test_replace_names_a_key_that_no_part_has() -> None:
    with pytest.raises(ConfigError, match="a mlp config has no n_heads"):
        DEFAULTS["mlp"].replace(n_heads=3)
    with pytest.raises(ConfigError, match="a bigram config has no steps"):
        DEFAULTS["bigram"].replace(steps=3)
    assert DEFAULTS["mlp"].replace(n_hidden=7, lr=0.5, max_len=9).flat() == {
        **DEFAULTS["mlp"].flat(),
        "n_hidden": 7,
        "lr": 0.5,
        "max_len": 9,
    }


# --- make_config: the same configs as the flat dicts were ---------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(MODEL_KINDS), given_values=overrides)
def test_make_config_sets_what_the_kind_takes_and_keeps_the_rest(kind, given_values) -> None:
    """For every mix of valid flags: the flat form is the defaults with each flag the kind takes (its keys, the
    record's, a sequence's block_size) set; the kind ignores the others, as the flat dicts did."""
    defaults = DEFAULTS[kind].flat()
    takes = set(defaults) | set(RECORD_KEYS) | ({"block_size"} if kind in SEQUENCE_KINDS else set())
    try:
        config = make_config(kind, **given_values)
    except UserError as err:  # combinations a kind refuses: a wavenet's block, a transformer's heads, memory
        assert any(f"--{key.replace('_', '-')}" in str(err) for key in given_values), err
        return
    assert config.flat() == {**defaults, **{k: v for k, v in given_values.items() if k in takes}}
    assert set(config.flat()) - set(RECORD_KEYS) - {"block_size"} == FLAT_KEYS[kind] - {"block_size"}


PRESETS = [(kind, name) for kind, spec in KINDS.items() for name in spec.presets]


@pytest.mark.parametrize(("kind", "preset"), PRESETS)
def test_presets_are_typed_configs_of_their_values(kind, preset) -> None:
    values = KINDS[kind].presets[preset]
    config = make_config(kind, preset)
    assert config.flat() == {**DEFAULTS[kind].flat(), **values}
    assert isinstance(config.train, TrainConfig)
    assert config.train.steps == values.get("steps", DEFAULTS[kind].train.steps)


@pytest.mark.parametrize(("kind", "preset"), PRESETS)
def test_a_flag_beside_a_preset_wins_over_its_value(kind, preset) -> None:
    """As docs/models.md says: `--preset NAME --steps 7` trains the preset's model for 7 steps."""
    config = make_config(kind, preset, steps=7, seed=11)
    assert config.train.steps == 7 and config.train.seed == 11
    others = {key: value for key, value in KINDS[kind].presets[preset].items() if key not in ("steps", "seed")}
    assert {key: config.flat()[key] for key in others} == others


def test_a_kind_without_presets_or_an_unknown_preset_is_one_error() -> None:
    with pytest.raises(ConfigError, match="unknown preset 'best' for gru: it has none"):
        make_config("gru", "best")
    with pytest.raises(
        ConfigError, match="unknown preset 'fast' for transformer: choose one of default, best, small, makemore"
    ):
        make_config("transformer", "fast")


def test_values_not_given_keep_the_defaults_of_each_kind() -> None:
    """None means "not given" for every flag, as the CLI passes them."""
    for kind in MODEL_KINDS:
        assert make_config(kind, **dict.fromkeys(FLAG_VALUES)) == DEFAULTS[kind]


@pytest.mark.parametrize(
    ("kind", "values", "message"),
    [
        ("mlp", {"n_hidden": 0}, "--n-hidden must be a positive integer up to 1,048,576, got 0"),
        ("mlp", {"lr": -1.0}, "--lr must be a positive number up to 3.4e38, got -1.0"),
        ("wavenet", {"block_size": 6}, "--block-size of a wavenet must be a power of two (2, 4, 8, ...), got 6"),
        ("transformer", {"n_embd": 30}, "--n-embd (30) must be divisible by --n-head (4)"),
        ("mlp", {"optimizer": "rmsprop"}, "--optimizer must be sgd, adam or adamw, got 'rmsprop'"),
        ("bigram", {"steps": 0}, "--steps must be a positive integer up to 10,000,000, got 0"),  # checked, unused
    ],
)
def test_the_error_messages_stay(kind, values, message) -> None:
    with pytest.raises(ConfigError) as caught:
        make_config(kind, **values)
    assert str(caught.value) == message


# --- the stored forms ----------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(MODEL_KINDS), given_values=overrides, max_len=st.integers(1, 100), done=st.integers(0, 9))
def test_to_dict_is_plain_data_that_comes_back_the_same(kind, given_values, max_len, done) -> None:
    try:
        config = make_config(kind, **given_values)
    except UserError:
        return
    config = config.replace(block_size=config.block_size or 16, split_fractions=[0.8, 0.1, 0.1], max_len=max_len)
    config = config.replace(steps_done=done)
    stored = config.to_dict()
    assert plain(stored) and set(stored) == {"kind", "model", "train", *RECORD_KEYS}
    assert config_from_dict(stored, DEFAULTS[kind]) == config
    assert config_from_dict(json.loads(json.dumps(stored)), DEFAULTS[kind]) == config


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["model"].update(n_labels=2), "config model has an unknown key 'n_labels'"),
        (lambda d: d["train"].pop("lr"), "config train lacks lr"),
        (lambda d: d.pop("model"), "config lacks model"),
        (lambda d: d.update(train=None), "config train must be a dict for a mlp"),
        (lambda d: d.update(extra=1), "config has an unknown key 'extra'"),
    ],
)
def test_config_from_dict_names_what_is_wrong(change, message) -> None:
    stored = make_config("mlp").to_dict()
    change(stored)
    with pytest.raises(ValueError, match=message):
        config_from_dict(stored, DEFAULTS["mlp"])


@pytest.mark.parametrize("kind", ["bigram", "mlp", "transformer"])
def test_a_checkpoint_stores_the_nested_config(model_files, kind) -> None:
    stored = torch.load(model_files[kind][0], weights_only=True)
    assert stored["format_version"] == CHECKPOINT_FORMAT_VERSION == 2
    assert plain(stored["config"]) and stored["config"]["kind"] == kind
    loaded = load_checkpoint(model_files[kind][0])
    assert loaded["config"].to_dict() == stored["config"]
    assert build_model(kind, len(stored["vocab"]) + 1, loaded["config"]).state_dict().keys() == (
        stored["state_dict"].keys()
    )


# --- the previous format (1: a flat config) ------------------------------------------------------------------------


@pytest.fixture(params=["mlp", "transformer"])
def old_checkpoint(request, model_files, tmp_path) -> tuple[str, dict, object]:
    """A checkpoint of format 1 (flat config, version 1) made from a trained one; its kind, stored form and path."""
    kind = request.param
    old = as_format_1(torch.load(model_files[kind][0], weights_only=True))
    path = tmp_path / "old.pt"
    torch.save(old, path)
    return kind, old, path


def test_a_format_1_checkpoint_loads_as_its_format_2_twin(old_checkpoint, model_files) -> None:
    kind, old, path = old_checkpoint
    assert old["format_version"] == 1 and "model" not in old["config"] and "n_embd" in old["config"]
    loaded, twin = load_checkpoint(path), load_checkpoint(model_files[kind][0])
    assert loaded["config"] == twin["config"] and loaded["config"].flat() == old["config"]
    context = torch.zeros(2, 3, dtype=torch.int64) if kind in SEQUENCE_KINDS else torch.zeros(2, 4, dtype=torch.int64)
    with torch.no_grad():
        assert torch.equal(load_model(loaded)(context), load_model(twin)(context))


def test_a_format_1_checkpoint_exports_with_the_same_metadata(old_checkpoint, model_files, tmp_path) -> None:
    kind, old, path = old_checkpoint
    assert run_main(export_main, path, tmp_path / "old.onnx").status == 0
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "old.onnx")).metadata_props}
    assert json.loads(props["makemore.config"]) == old["config"]  # the flat dict, unchanged
    new = {p.key: p.value for p in onnx.load(str(model_files[kind][1])).metadata_props}
    assert props["makemore.config"] == new["makemore.config"]  # the new format exports the same metadata


def test_a_format_1_checkpoint_resumes_into_format_2(old_checkpoint, names_path, tmp_path) -> None:
    kind, old, path = old_checkpoint
    out = tmp_path / "resumed.pt"
    args = ("--resume", path, "--steps", 3, "--out", out, "-q", "--samples", 0)
    outcome = run_main(train_main, kind, *args)
    assert outcome.status == 0, outcome
    stored = torch.load(out, weights_only=True)
    assert stored["format_version"] == 2 and stored["config"]["steps_done"] == old["config"]["steps_done"] + 3
    resumed = load_checkpoint(out)["config"]
    assert resumed.block_size == old["config"]["block_size"] and resumed.train.steps == 3
    assert {k: v for k, v in resumed.flat().items() if k not in ("steps", "steps_done")} == {
        k: v for k, v in old["config"].items() if k not in ("steps", "steps_done")
    }


def test_a_format_1_checkpoint_plots(old_checkpoint, tmp_path) -> None:
    _, _, path = old_checkpoint
    for what in ("loss", "embeddings"):
        outcome = run_main(plot_main, what, path, "--out", tmp_path / f"{what}.png")
        assert outcome.status == 0, outcome
        assert (tmp_path / f"{what}.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["config"].pop("n_hidden"), "config lacks n_hidden, which a mlp model needs"),
        (lambda c: c["config"].update(lr=0.0), "config: --lr must be a positive number up to 3.4e38, got 0.0"),
        (lambda c: c["config"].update(n_embd="16"), "config: --n-embd must be a positive integer"),
        (lambda c: c.update(format_version=3), "format version 3; this reads 1 and 2"),
    ],
)
def test_a_bad_format_1_checkpoint_is_refused_in_one_line(model_files, tmp_path, change, message) -> None:
    old = as_format_1(torch.load(model_files["mlp"][0], weights_only=True))
    change(old)
    path = tmp_path / "bad.pt"
    torch.save(old, path)
    with pytest.raises(CheckpointError, match=re.escape(message)):
        load_checkpoint(path)
    outcome = run_main(export_main, path, tmp_path / "bad.onnx")
    assert is_usage_error(outcome) and message in outcome.stderr and not (tmp_path / "bad.onnx").exists()


def test_a_format_1_key_that_the_kind_does_not_take_is_ignored(model_files, tmp_path) -> None:
    """As a resume always did with such keys (make_config took only the kind's); the kind's own are kept."""
    old = as_format_1(torch.load(model_files["mlp"][0], weights_only=True))
    old["config"].update(norm="layer", warmup=5, note="x")
    torch.save(old, tmp_path / "old.pt")
    config = load_checkpoint(tmp_path / "old.pt")["config"]
    assert config.flat() == {k: v for k, v in old["config"].items() if k not in ("norm", "warmup", "note")}


@pytest.mark.parametrize("kind", ["transformer", "mlp"])
def test_a_format_1_config_without_ema_keeps_the_last_weights(kind) -> None:
    """Format 1 predates `ema`: its runs kept the last weights, whatever the kind's default is today."""
    from makemore.train.config import from_flat

    flat = make_config(kind, "makemore" if kind == "transformer" else None).flat()
    del flat["ema"]
    assert from_flat(kind, flat).train.ema == 0.0
    assert from_flat(kind, {**flat, "ema": 0.99}).train.ema == 0.99
