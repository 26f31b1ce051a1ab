"""The kind registry (train/kinds.py) is the one list of kinds, and each spec tells the truth about its model."""

from __future__ import annotations

import pytest
import torch
from clirun import assert_usage_error, run
from makemore.train import memory
from makemore.train.config import make_config
from makemore.train.config_types import Config
from makemore.train.kinds import KINDS, MODEL_KINDS, ConfigError, build_model, kind_spec, state_spec
from makemore.train.trainer import packs

SMALL = {"n_embd": 8, "n_hidden": 12, "n_layer": 2, "n_head": 2}


def small_config(kind: str, block_size: int = 8) -> Config:
    """A kind's defaults with small sizes (a sequence kind gets the block size its data would give it)."""
    defaults = KINDS[kind].defaults
    return defaults.replace(
        **{key: value for key, value in SMALL.items() if key in defaults.flat()}, block_size=block_size
    )


@pytest.mark.parametrize("kind", MODEL_KINDS)
@pytest.mark.parametrize("vocab_size", [2, 27, 300])
def test_the_parameter_formula_is_the_model_size(kind: str, vocab_size: int) -> None:
    config = small_config(kind)
    model = build_model(kind, vocab_size, config)
    assert memory.param_count(kind, vocab_size, config) == sum(t.numel() for t in model.state_dict().values())


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_the_spec_says_what_the_model_is(kind: str) -> None:
    spec, config = KINDS[kind], small_config(kind)
    model = build_model(kind, 27, config)
    assert getattr(model, "is_sequence", False) is spec.sequence
    assert packs(model) is spec.packed  # the memory estimate bounds a packed batch by its packed rows
    assert memory.activation_floats(kind, 27, config) > 0
    if spec.embedding_table is not None:
        assert model.state_dict()[spec.embedding_table].shape == (27, config.flat()["n_embd"])
    state = state_spec(kind, config)
    assert (state is not None) is spec.sequence
    if state is not None:
        empty = model.empty_state(3, torch.device("cpu"))
        assert [tuple(t.shape) for t in empty] == [tensor.zeros_shape(3) for tensor in state.tensors]


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_the_quick_config_is_a_valid_config(kind: str) -> None:
    config = make_config(kind, **KINDS[kind].quick).flat()
    assert {key: config[key] for key in KINDS[kind].quick} == dict(KINDS[kind].quick)


MLP = KINDS["mlp"].defaults


@pytest.mark.parametrize("call", [kind_spec, lambda kind: build_model(kind, 27, MLP), lambda kind: make_config(kind)])
def test_an_unknown_kind_is_an_error_everywhere(call) -> None:
    with pytest.raises(ConfigError, match="unknown model kind 'nope': choose one of bigram, "):
        call("nope")
    with pytest.raises(ConfigError):
        memory.param_count("nope", 27, MLP)


def test_the_cli_offers_the_registry() -> None:
    help_text = " ".join(run("mm-train", "--help").stdout.split())
    assert all(kind in help_text for kind in MODEL_KINDS)
    refused = run("mm-train", "nope")
    assert_usage_error(refused)
    assert all(kind in refused.stderr for kind in MODEL_KINDS)
