"""The recurrent kinds train on packed words: the same loss and gradients as the padded batch, only faster; gru and
lstm train their cell in bfloat16 where the CPU has it; and bench/train_speed.py counts their FLOPs as torch does."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from makemore.data import Vocab, bundled_names_path, read_words, split_words
from makemore.data.tokens import tokenize_split
from makemore.train import trainer
from makemore.train.config import make_config, with_block_size
from makemore.train.evaluate import split_rows
from makemore.train.kinds import KINDS, build_model
from makemore.train.models import (
    IGNORE,
    Recurrent,
    cross_entropy,
    pack,
    packed_cross_entropy,
    packs_sequences,
    trains_in_bfloat16,
)
from makemore.train.trainer import bf16_autocast, make_optimizer, train
from torch.utils.flop_counter import FlopCounterMode
from train_speed import forward_macs_per_token

RECURRENT = tuple(name for name, spec in KINDS.items() if spec.model == "Recurrent")
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VOCAB = 27


def padded_batch(lengths: list[int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random tokens x, y [B, max length]; y is IGNORE after each row's length (padding at the end, as batches)."""
    generator = torch.Generator().manual_seed(seed)
    width = max(lengths)
    x = torch.randint(0, VOCAB, (len(lengths), width), generator=generator)
    y = torch.randint(0, VOCAB, (len(lengths), width), generator=generator)
    y[torch.arange(width) >= torch.tensor(lengths)[:, None]] = IGNORE
    return x, y


def small_model(cell: str, n_layer: int, n_labels: int, dropout: float = 0.2) -> Recurrent:
    """A small recurrent model; a conditional one with non-zero label embeddings (so that labels matter)."""
    torch.manual_seed(0)
    model = Recurrent(cell, VOCAB, 8, 16, n_layer, dropout, n_labels=n_labels)
    if n_labels:
        torch.nn.init.normal_(model.get_submodule("label_embedding").weight)
    return model


def test_every_recurrent_kind_packs() -> None:
    assert RECURRENT  # the registry names them
    for kind in RECURRENT:
        model = build_model(kind, VOCAB, make_config(kind))
        assert packs_sequences(model)


@PROPERTY
@given(
    cell=st.sampled_from(RECURRENT),
    lengths=st.lists(st.integers(1, 12), min_size=1, max_size=9),
    n_layer=st.integers(1, 2),
    labelled=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_packed_loss_equals_the_padded_loss_in_eval_mode(
    cell: str, lengths: list[int], n_layer: int, labelled: bool, seed: int
) -> None:
    """For every batch of lengths: the packed loss (training's) is the padded loss (evaluation's) to 1e-5."""
    model = small_model(cell, n_layer, 3 if labelled else 0).eval()
    x, y = padded_batch(lengths, seed)
    label = torch.randint(0, 3, (len(lengths),)) if labelled else None
    with torch.no_grad():
        padded = cross_entropy(model, x, y, label)  # eval mode: the padded path
        packed = packed_cross_entropy(model, x, y, label)
    assert packed.item() == pytest.approx(padded.item(), abs=1e-5)


@pytest.mark.parametrize("cell", RECURRENT)
def test_training_takes_the_packed_path_with_the_padded_gradients(cell: str) -> None:
    """In training mode (dropout 0: no randomness) cross_entropy packs, and its loss and every gradient are the
    padded batch's."""
    model = small_model(cell, 2, 0, dropout=0.0).train()
    x, y = padded_batch([5, 1, 9, 3, 9, 2], 7)
    calls = []
    original = model.forward

    def spy(*args: object, **kwargs: object) -> torch.Tensor:
        calls.append("lengths" in kwargs and kwargs["lengths"] is not None)
        return original(*args, **kwargs)

    model.forward = spy  # type: ignore[method-assign]
    packed = cross_entropy(model, x, y)
    packed.backward()
    packed_grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    model.forward = original  # type: ignore[method-assign]
    logits = model(x)
    padded = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=IGNORE)
    padded.backward()
    assert calls == [True]
    assert packed.item() == pytest.approx(padded.item(), abs=1e-6)
    for name, param in model.named_parameters():
        torch.testing.assert_close(packed_grads[name], param.grad, atol=1e-6, rtol=1e-5, msg=name)


@pytest.mark.parametrize("kind", RECURRENT)
def test_a_names_batch_has_the_same_eval_loss_packed(kind: str) -> None:
    """A real batch of 64 training words at the default config: packed and padded eval losses agree to 1e-5."""
    words = read_words(bundled_names_path())
    vocab = Vocab.from_words(words)
    split = tokenize_split(split_words(words, 42), vocab)
    config = with_block_size(kind, make_config(kind), split)
    rows = split_rows(kind, split, None)["train"]
    x, y = map(torch.from_numpy, rows.take(np.random.default_rng(0).integers(0, len(rows), 64)))
    assert (y == IGNORE).any()  # the batch has padding to skip
    model = build_model(kind, vocab.size, config).eval()
    with torch.no_grad():
        assert packed_cross_entropy(model, x, y).item() == pytest.approx(cross_entropy(model, x, y).item(), abs=1e-5)


BF16_KINDS = {"transformer", "gru", "lstm"}  # the kinds that train in bfloat16 on the CPU (pinned here)


def test_gru_and_lstm_train_in_bfloat16_on_the_cpu_only() -> None:
    """The cells whose step gains from bfloat16 (not the rnn), on the CPU only: on CUDA cuDNN would run them in
    float16 without loss scaling."""
    for kind in RECURRENT:
        model = build_model(kind, VOCAB, make_config(kind, n_embd=8, n_hidden=16))
        assert trains_in_bfloat16(model, torch.device("cpu")) == (kind in BF16_KINDS)
        assert not trains_in_bfloat16(model, torch.device("cuda"))
        assert not trains_in_bfloat16(model, torch.device("mps"))


@pytest.mark.parametrize("force_bf16", [False, True])
@pytest.mark.parametrize("kind", RECURRENT)
def test_a_training_step_runs_the_cell_in_bfloat16_where_it_pays(kind: str, force_bf16: bool, monkeypatch) -> None:
    """A training step's forward runs under bfloat16 autocast for gru and lstm where the CPU computes bfloat16
    (force_bf16: as if it did, emulated where it does not), else in float32; its loss is float32 either way,
    near the float32 loss."""
    if force_bf16:
        monkeypatch.setattr(trainer, "bf16_autocast", lambda device: torch.autocast("cpu", dtype=torch.bfloat16))
    model = build_model(kind, VOCAB, make_config(kind, n_embd=8, n_hidden=16, dropout=0.0)).train()
    x, y = padded_batch([5, 1, 9, 3, 9, 2], 7)
    seen: list[bool] = []
    model.rnn.register_forward_hook(lambda *_: seen.append(torch.is_autocast_enabled("cpu")))
    loss = trainer.batch_loss(model, (x, y), torch.device("cpu"))
    bf16_here = force_bf16 or isinstance(bf16_autocast(torch.device("cpu")), torch.autocast)
    assert seen == [kind in BF16_KINDS and bf16_here]
    assert loss.dtype == torch.float32
    float32 = packed_cross_entropy(model, x, y)  # outside autocast
    assert loss.item() == pytest.approx(float32.item(), abs=0.02)
    assert (loss.item() == float32.item()) == (not seen[0])


@pytest.mark.parametrize("kind", [*RECURRENT, "transformer", "mlp"])
def test_the_kinds_that_train_in_bfloat16_take_the_fused_adamw(kind: str) -> None:
    """torch's fused AdamW for the transformer, gru and lstm on the CPU; the others keep the for-each AdamW, so
    their numbers do not change; and none on a device without a fused AdamW (meta, here)."""
    config = make_config(kind, block_size=16) if kind == "transformer" else make_config(kind)
    model = build_model(kind, VOCAB, config)
    assert bool(make_optimizer(model, config.train).defaults["fused"]) == (kind in BF16_KINDS)
    assert not make_optimizer(model.to("meta"), config.train).defaults["fused"]


@pytest.mark.parametrize("kind", RECURRENT)
def test_the_bench_counts_the_matrix_products_as_torch_does(kind: str) -> None:
    """bench/train_speed.py's multiply-adds per token (from the config) are torch's FLOP count of a forward pass
    over packed words / 2 per token."""
    config = make_config(kind)
    model = build_model(kind, VOCAB, config).eval()
    x, y = padded_batch([4, 7, 2, 7], 3)
    tokens = int((y != IGNORE).sum())
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():  # the packed recurrence (torch counts its products; not oneDNN's padded LSTM)
        model.head(model.rnn(pack(model.embedding(x), (y != IGNORE).sum(dim=1)))[0].data)
    assert forward_macs_per_token(kind, VOCAB, [1]) == counter.get_total_flops() / 2 / tokens


@pytest.mark.slow
@pytest.mark.parametrize("kind", RECURRENT)
def test_a_seed_still_fixes_training(kind: str) -> None:
    """Two runs of a recurrent kind with the same seed train the same weights (packing and the byte mask draw
    from the seeded generator; bfloat16 autocast is deterministic too)."""
    words = read_words(bundled_names_path())[:3000]
    vocab = Vocab.from_words(words)
    config = make_config(kind, steps=30, n_embd=8, n_hidden=16, batch_size=32, warmup=3)
    first, second = (train(kind, config, split_words(words, 42), vocab).model.state_dict() for _ in range(2))
    for name, tensor in first.items():
        assert torch.equal(tensor, second[name]), name


@pytest.mark.slow
def test_two_processes_train_a_recurrent_kind_on_packed_words(tmp_path) -> None:
    """Under torchrun, DistributedDataParallel passes the lengths through: both ranks train the packed model."""
    from test_distributed import torchrun

    flags = ("--n-embd", 8, "--n-hidden", 16, "--steps", 60, "--batch-size", 16, "--samples", 0)
    result = torchrun(tmp_path, RECURRENT[-1], *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
