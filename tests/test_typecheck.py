"""What the type checker over train/ and export/ asked for (issue 20): the narrowing helpers say what they narrow
to and refuse what is not, and the sequence models share their base class."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from makemore.contract.metadata import is_int
from makemore.runtime.sampling import StepForward, WindowForward
from makemore.train.config_types import Config, known
from makemore.train.kinds import KINDS, MODEL_KINDS, SEQUENCE_KINDS, build_model, state_spec
from makemore.train.models import SequenceModel, is_sequence, sequence_model
from makemore.train.sampler import torch_forward

SMALL = {"n_embd": 8, "n_hidden": 12, "n_layer": 1, "n_head": 2}


def small(kind: str) -> tuple[torch.nn.Module, Config]:
    """A kind's model with small sizes (a sequence kind with the block size its data would give it), and its
    config."""
    defaults = KINDS[kind].defaults
    config = defaults.replace(**{k: v for k, v in SMALL.items() if k in defaults.flat()}, block_size=4)
    return build_model(kind, 27, config).eval(), config


@given(st.one_of(st.integers(), st.text(), st.floats(), st.booleans(), st.tuples(st.integers())))
def test_known_gives_back_any_value_that_is_set(value: object) -> None:
    assert known(value, "split_seed") is value


def test_known_names_a_value_that_is_not_set() -> None:
    with pytest.raises(ValueError, match="config block_size is not set yet"):
        known(None, "block_size")


@given(st.one_of(st.integers(), st.booleans(), st.floats(), st.text(), st.none()))
def test_is_int_is_an_int_that_is_not_a_bool(value: object) -> None:
    assert is_int(value) is (type(value) is int)


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_a_model_is_a_sequence_model_exactly_when_its_kind_is_one(kind: str) -> None:
    model, config = small(kind)
    assert isinstance(model, SequenceModel) is is_sequence(model) is (kind in SEQUENCE_KINDS)
    if kind in SEQUENCE_KINDS:
        assert sequence_model(model) is model
        state = state_spec(kind, config)
        assert state is not None and model.state_names() == [t.input for t in state.tensors]
    else:
        with pytest.raises(TypeError, match="is a window model: it has no step"):
            sequence_model(model)


@pytest.mark.parametrize("method", ["state_names", "empty_state", "step"])
def test_the_sequence_base_leaves_its_methods_to_the_models(method: str) -> None:
    args = {"state_names": (), "empty_state": (1,), "step": (torch.zeros(1, 1, dtype=torch.int64),)}[method]
    with pytest.raises(NotImplementedError):
        getattr(SequenceModel(), method)(*args)


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_torch_forward_follows_the_contract_of_the_kind(kind: str) -> None:
    """A sequence model's step fed one token at a time gives its full forward's logits; a window model's logits
    are its forward's."""
    model, _ = small(kind)
    forward = torch_forward(model, None)  # the forward passes read no field of the info
    tokens = np.random.default_rng(0).integers(1, 27, (3, 4), dtype=np.int64)
    with torch.no_grad():
        expected = model(torch.from_numpy(tokens)).numpy()
    if kind in SEQUENCE_KINDS:
        assert isinstance(forward, StepForward)
        state, pieces = [s.numpy() for s in sequence_model(model).empty_state(3)], []
        for pos in range(tokens.shape[1]):
            logits, state = forward.step_fn(tokens[:, pos : pos + 1], state)
            pieces.append(logits)
        np.testing.assert_allclose(np.concatenate(pieces, axis=1), expected, rtol=1e-5, atol=1e-5)
    else:
        assert isinstance(forward, WindowForward)
        np.testing.assert_array_equal(forward.logits_fn(tokens), expected)
