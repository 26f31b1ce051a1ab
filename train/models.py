"""The models: one class per kind, each built from its typed model config by `from_config` (train/kinds.py names them).

Window models (bigram, bigram-nn, mlp, wavenet): int64 context [B, block_size] -> logits [B, V].
Sequence models (transformer, rnn, gru, lstm: `SequenceModel`s, `is_sequence = True`): int64 tokens [B, T] ->
logits [B, T, V], and `step(tokens, *state) -> (logits, *new_state)` for incremental decoding from
`empty_state(batch)`.

Conditional models (config `n_labels` > 0) take one more input, `label` int64 [B], and see it at every position:
a learned `label_embedding` [n_labels, n_embd] (zeros at first: training starts from the unlabelled model) added to
every character embedding; the bigram kinds have a per-label table instead. Without `n_labels` a model has no
label parts at all: the same parameters, names and losses as ever.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from makemore.data import UserError
from makemore.train.config_types import (
    BigramConfig,
    BigramNNConfig,
    MLPConfig,
    RecurrentConfig,
    TransformerConfig,
    WaveNetConfig,
)
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence


class Bigram(nn.Module):
    """Normalised bigram counts: logits are the log-probabilities of the next character."""

    is_sequence = False

    @classmethod
    def from_config(cls, kind: str, vocab_size: int, config: BigramConfig, n_labels: int = 0) -> Bigram:
        return cls(vocab_size, n_labels=n_labels)

    def __init__(self, vocab_size: int, n_labels: int = 0) -> None:
        super().__init__()
        self.block_size, self.n_labels = 1, n_labels
        self.log_probs = nn.Parameter(torch.zeros(vocab_size, vocab_size), requires_grad=False)
        if n_labels:  # one table per label: p(next | previous, label)
            self.label_log_probs = nn.Parameter(torch.zeros(n_labels, vocab_size, vocab_size), requires_grad=False)

    @torch.no_grad()
    def fit(self, x: torch.Tensor, y: torch.Tensor, smoothing: float) -> None:
        """Count (previous, next) pairs, add `smoothing` to every cell and normalise rows."""
        vocab_size = self.log_probs.shape[0]
        counts = torch.zeros(vocab_size * vocab_size, dtype=torch.float64)
        counts.index_add_(0, x[:, -1] * vocab_size + y, torch.ones(len(y), dtype=torch.float64))
        self.fit_counts(counts.view(vocab_size, vocab_size), smoothing)

    @torch.no_grad()
    def fit_counts(self, counts: torch.Tensor, smoothing: float) -> None:
        """From counts [V, V] of (previous, next) pairs: add `smoothing` to every cell and normalise rows (in place on
        one float64 copy: a big vocabulary's table is held twice at most, besides the counts)."""
        self.log_probs.copy_(log_frequencies(counts, smoothing, dim=1))

    @torch.no_grad()
    def fit_label_counts(self, counts: torch.Tensor, smoothing: float) -> None:
        """From counts [n_labels, V, V] of (previous, next) pairs per label: every table, and the shared one from
        their sum."""
        self.fit_counts(counts.sum(dim=0), smoothing)
        self.label_log_probs.copy_(log_frequencies(counts, smoothing, dim=2))

    def forward(self, context: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        if check_label(self, label) is None:
            return self.log_probs[context[:, -1]]
        return self.label_log_probs[label, context[:, -1]]


def log_frequencies(counts: torch.Tensor, smoothing: float, dim: int) -> torch.Tensor:
    """log((counts + smoothing) / their sum along `dim`), in float64, computed in place on one copy of the counts."""
    table = counts.to(torch.float64).add_(smoothing)
    return table.div_(table.sum(dim=dim, keepdim=True)).log_()


class BigramNN(nn.Module):
    """One linear layer over the one-hot of the previous character, learned by gradient descent.

    one_hot(prev) @ W picks row `prev` of W, so the forward pass is that row lookup.
    """

    is_sequence = False

    @classmethod
    def from_config(cls, kind: str, vocab_size: int, config: BigramNNConfig, n_labels: int = 0) -> BigramNN:
        return cls(vocab_size, n_labels=n_labels)

    def __init__(self, vocab_size: int, n_labels: int = 0) -> None:
        super().__init__()
        self.block_size, self.n_labels = 1, n_labels
        self.weight = nn.Parameter(torch.zeros(vocab_size, vocab_size))
        if n_labels:  # a per-label table added to the shared one
            self.label_weight = nn.Parameter(torch.zeros(n_labels * vocab_size, vocab_size))

    def forward(self, context: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        logits = F.embedding(context[:, -1], self.weight)
        if (label := check_label(self, label)) is None:
            return logits
        return logits + F.embedding(label * self.weight.shape[0] + context[:, -1], self.label_weight)


class MLP(nn.Module):
    """Bengio et al. 2003: embed each context character, concatenate, tanh hidden layer, logits.

    Initialised as in the lectures so training starts near the uniform loss: Kaiming-tanh hidden
    weights (gain 5/3), a small output layer and zero output bias.
    """

    is_sequence = False

    @classmethod
    def from_config(cls, kind: str, vocab_size: int, config: MLPConfig, n_labels: int = 0) -> MLP:
        return cls(vocab_size, config.block_size, config.n_embd, config.n_hidden, config.dropout, n_labels=n_labels)

    def __init__(
        self, vocab_size: int, block_size: int, n_embd: int, n_hidden: int, dropout: float = 0.0, n_labels: int = 0
    ) -> None:
        super().__init__()
        self.block_size = block_size
        self.embedding = nn.Embedding(vocab_size, n_embd)
        self.hidden = nn.Linear(block_size * n_embd, n_hidden)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(n_hidden, vocab_size)
        with torch.no_grad():
            nn.init.normal_(self.embedding.weight)
            nn.init.kaiming_normal_(self.hidden.weight, nonlinearity="tanh")
            self.hidden.bias.mul_(0.1)
            self.output.weight.mul_(0.1)
            self.output.bias.zero_()
        add_label_embedding(self, n_labels, n_embd)

    def forward(self, context: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        emb = with_label(self, self.embedding(context), label).flatten(1)
        return self.output(self.dropout(torch.tanh(self.hidden(emb))))


class FuseConsecutive(nn.Module):
    """One WaveNet level: fuse neighbouring pairs [B, T, C] -> [B, T/2, 2C], then Linear -> norm -> tanh.

    Batch norm normalises over batch and time (dims 0 and 1) as in the lecture: nn.BatchNorm1d on the
    [B, C, T] transpose, so eval mode exports as one BatchNormalization node with the running statistics.
    """

    def __init__(self, steps: int, n_in: int, n_out: int, norm: str, dropout: float = 0.0) -> None:
        super().__init__()
        self.steps, self.n_in = steps, n_in  # input time steps and channels (static: exports as constants)
        self.linear = nn.Linear(2 * n_in, n_out, bias=False)
        self.norm = nn.BatchNorm1d(n_out) if norm == "batch" else nn.LayerNorm(n_out)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x.reshape(-1, self.steps // 2, 2 * self.n_in))
        if isinstance(self.norm, nn.BatchNorm1d):
            x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        else:
            x = self.norm(x)
        return self.dropout(torch.tanh(x))


class WaveNet(nn.Module):
    """The lecture's hierarchical MLP (makemore part 5): embed block_size characters, fuse them in pairs,
    then pairs of pairs, ... until one vector remains (log2(block_size) levels), then logits.

    block_size must be a power of two. Dropout (training only) follows each level's tanh. The output
    layer starts small so training starts near the uniform loss.
    """

    is_sequence = False

    @classmethod
    def from_config(cls, kind: str, vocab_size: int, config: WaveNetConfig, n_labels: int = 0) -> WaveNet:
        sizes = (config.block_size, config.n_embd, config.n_hidden)
        return cls(vocab_size, *sizes, config.norm, config.dropout, n_labels=n_labels)

    def __init__(
        self,
        vocab_size: int,
        block_size: int,
        n_embd: int,
        n_hidden: int,
        norm: str = "batch",
        dropout: float = 0.0,
        n_labels: int = 0,
    ) -> None:
        super().__init__()
        if block_size < 2 or block_size & (block_size - 1):
            raise ValueError(f"wavenet block_size must be a power of two >= 2, got {block_size}")
        if norm not in ("batch", "layer"):
            raise ValueError(f"wavenet norm must be batch or layer, got {norm!r}")
        self.block_size = block_size
        self.embedding = nn.Embedding(vocab_size, n_embd)
        levels, steps, width = [], block_size, n_embd
        while steps > 1:
            levels.append(FuseConsecutive(steps, width, n_hidden, norm, dropout))
            steps, width = steps // 2, n_hidden
        self.levels = nn.Sequential(*levels)
        self.output = nn.Linear(n_hidden, vocab_size)
        with torch.no_grad():
            self.output.weight.mul_(0.1)
            self.output.bias.zero_()
        add_label_embedding(self, n_labels, n_embd)

    def forward(self, context: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        return self.output(self.levels(with_label(self, self.embedding(context), label)).flatten(1))


class ByteDropout(nn.Dropout):
    """Dropout whose mask costs one random byte per element instead of one float: about 3x faster on CPU,
    where torch's Bernoulli sampling was a quarter of a transformer's training step.

    p is rounded to a multiple of 1/256 (0.1 drops 26/256 = 10.2%; below 1/512 nothing is dropped; from 255/256 on,
    255/256 are); the kept values are scaled by 1/(1 - p). An identity in eval mode, so nothing of it reaches an
    export.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dropped = min(round(self.p * 256), 255)  # 256 of 256 would drop every value (and divide by 0)
        if not self.training or dropped == 0:
            return x
        words = torch.randint(-(2**63), 2**63 - 1, ((x.numel() + 7) // 8,), dtype=torch.int64, device=x.device)
        keep = words.view(torch.uint8)[: x.numel()].view(x.shape) >= dropped
        return x * keep * (256 / (256 - dropped))


class SequenceLengthError(UserError):
    """More positions than a transformer's block_size; the message is one line meant for the user."""


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention over the cached keys/values and the new positions (manual softmax, exports plainly)."""

    def __init__(self, n_embd: int, n_head: int, dropout: float) -> None:
        super().__init__()
        self.n_head, self.head_dim = n_head, n_embd // n_head
        self.qkv = nn.Linear(n_embd, 3 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)
        self.attn_dropout = ByteDropout(dropout)
        self.resid_dropout = ByteDropout(dropout)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, C] -> [B, n_head, T, head_dim]."""
        return x.unflatten(-1, (self.n_head, self.head_dim)).transpose(1, 2)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, past_key: torch.Tensor, past_value: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [B, T, C], mask [T, past + T] (True: hidden) -> (out [B, T, C], key and value [B, H, past + T, D])."""
        q, k, v = (self.heads(t) for t in self.qkv(x).chunk(3, dim=-1))
        key, value = torch.cat([past_key, k], dim=2), torch.cat([past_value, v], dim=2)
        att = (q @ key.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))
        att = self.attn_dropout(att.masked_fill(mask, float("-inf")).softmax(dim=-1))
        out = (att @ value).transpose(1, 2).flatten(2)
        return self.resid_dropout(self.proj(out)), key, value

    def packed(self, x: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """Training's packed rows: x [R, W, C], hidden [R, 1, W, W] (True: a key the query must not see) -> [R, W, C].
        No cache: the query, key and value are one [3, R, H, W, D] view of the qkv projection. Under autocast the
        projections run in its low precision and the attention itself in float32 (faster on CPU, exact softmax)."""
        qkv = self.qkv(x).unflatten(-1, (3, self.n_head, self.head_dim)).permute(2, 0, 3, 1, 4).float()
        q, k, v = qkv.unbind(0)
        with torch.autocast(x.device.type, enabled=False):
            att = (q * (1.0 / math.sqrt(self.head_dim))) @ k.transpose(-2, -1)
            att = self.attn_dropout(att.masked_fill(hidden, float("-inf")).softmax(dim=-1))
            out = (att @ v).transpose(1, 2).flatten(2)
        return self.resid_dropout(self.proj(out))


class Block(nn.Module):
    """Pre-norm transformer block: x + attention(LayerNorm(x)), then x + MLP(LayerNorm(x)) with a 4x GELU layer."""

    def __init__(self, n_embd: int, n_head: int, dropout: float) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd), ByteDropout(dropout)
        )

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, past_key: torch.Tensor, past_value: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out, key, value = self.attn(self.ln_1(x), mask, past_key, past_value)
        x = x + out
        return x + self.mlp(self.ln_2(x)), key, value

    def packed(self, x: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """The block over packed rows (see CausalSelfAttention.packed)."""
        x = x + self.attn.packed(self.ln_1(x), hidden)
        return x + self.mlp(self.ln_2(x))


class SequenceModel(nn.Module):
    """What the sequence models share: tokens [B, T] -> logits [B, T, V], and `step`, which carries a state (the
    key/value caches, the recurrent state) from one call to the next."""

    is_sequence = True

    def state_names(self) -> list[str]:
        """The names of the state tensors, in the order `step` takes and returns them."""
        raise NotImplementedError

    def empty_state(self, batch: int, device: torch.device | None = None) -> list[torch.Tensor]:
        """The state before the first token, for `batch` rows (on `device`, default CPU)."""
        raise NotImplementedError

    def step(
        self, tokens: torch.Tensor, *state: torch.Tensor, label: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        """(tokens [B, T], *state) -> (logits [B, T, V], *new state)."""
        raise NotImplementedError


class Transformer(SequenceModel):
    """Decoder-only GPT (nanoGPT, makemore.py): token + learned position embeddings, pre-norm blocks, LayerNorm, head.

    The state is each layer's key/value cache [B, n_head, past, head_dim]; positions continue from its length,
    so at most block_size positions in all. Initialised as nanoGPT: normal(0, 0.02), residual projections scaled
    by 1/sqrt(2 n_layer), zero biases.
    """

    bf16_devices = frozenset({"cpu", "cuda"})  # where a training step runs in bfloat16 (see trains_in_bfloat16)

    @classmethod
    def from_config(cls, kind: str, vocab_size: int, config: TransformerConfig, n_labels: int = 0) -> Transformer:
        if config.block_size is None:
            raise ValueError("a transformer's block_size comes from the data: set it first (config.with_block_size)")
        sizes = (config.block_size, config.n_layer, config.n_head, config.n_embd)
        return cls(vocab_size, *sizes, config.dropout, n_labels=n_labels)

    def __init__(
        self,
        vocab_size: int,
        block_size: int,
        n_layer: int,
        n_head: int,
        n_embd: int,
        dropout: float = 0.0,
        n_labels: int = 0,
    ) -> None:
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"transformer n_embd {n_embd} is not divisible by n_head {n_head}")
        self.block_size, self.n_layer, self.n_head, self.head_dim = block_size, n_layer, n_head, n_embd // n_head
        self.token_embedding = nn.Embedding(vocab_size, n_embd)
        self.position_embedding = nn.Embedding(block_size, n_embd)
        self.dropout = ByteDropout(dropout)
        self.blocks = nn.ModuleList(Block(n_embd, n_head, dropout) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, vocab_size, bias=False)
        self.apply(_gpt_init)
        for name, param in self.named_parameters():
            if name.endswith(("attn.proj.weight", "mlp.2.weight")):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))
        add_label_embedding(self, n_labels, n_embd)

    def state_names(self) -> list[str]:
        return [f"past.{layer}.{part}" for layer in range(self.n_layer) for part in ("key", "value")]

    def empty_state(self, batch: int, device: torch.device | None = None) -> list[torch.Tensor]:
        """Empty caches: float32 zeros [batch, n_head, 0, head_dim] per key and value (on `device`, default CPU)."""
        return [torch.zeros(batch, self.n_head, 0, self.head_dim, device=device) for _ in self.state_names()]

    def forward(
        self,
        tokens: torch.Tensor,
        label: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        segments: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """tokens [B, T] (and label [B] for a conditional model) -> logits [B, T, V], from the empty cache.

        With `positions` and `segments` [R, W] (training's packed rows, data/packing.py): logits [R, W, V] of
        several words per row, each seeing only its own earlier positions (label [R, W]: each position's).
        """
        if positions is not None and segments is not None:
            return self.forward_packed(tokens, positions, segments, label)
        return self.step(tokens, *self.empty_state(tokens.shape[0], tokens.device), label=label)[0]

    def forward_packed(
        self, tokens: torch.Tensor, positions: torch.Tensor, segments: torch.Tensor, label: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Packed rows tokens, positions, segments [R, W] (and label [R, W]) -> logits [R, W, V]; training only
        (export and sampling use `step`). A position sees the earlier positions of its own segment."""
        if positions.shape[1] > self.block_size:
            raise SequenceLengthError(f"packed rows of {positions.shape[1]} exceed block_size {self.block_size}")
        x = self.token_embedding(tokens) + self.position_embedding(positions)
        if (label := check_label(self, label)) is not None:
            x = x + self.get_submodule("label_embedding")(label)
        hidden = packed_mask(segments)
        x = self.dropout(x)
        for block in self.blocks:
            x = cast(Block, block).packed(x, hidden)
        return self.head(self.ln_f(x))

    def step(
        self, tokens: torch.Tensor, *state: torch.Tensor, label: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        """(tokens [B, T], *caches [B, H, past, D]) -> (logits [B, T, V], *caches [B, H, past + T, D])."""
        if len(state) != 2 * self.n_layer:
            raise ValueError(f"transformer step takes {2 * self.n_layer} state tensors, got {len(state)}")
        past, length = state[0].shape[2], tokens.shape[1]
        # torch.jit.is_tracing is public and documented, but torch.jit.__all__ leaves it out (mypy: not exported)
        if not torch.jit.is_tracing() and past + length > self.block_size:  # type: ignore[attr-defined]
            raise SequenceLengthError(
                f"{past + length} positions exceed the transformer's block_size {self.block_size}"
            )
        query_pos = torch.arange(past, past + length, device=tokens.device)
        keys = torch.arange(past + length, device=tokens.device)
        mask = keys.unsqueeze(0) > query_pos.unsqueeze(1)  # query i sees keys <= past + i
        x = self.dropout(with_label(self, self.token_embedding(tokens), label) + self.position_embedding(query_pos))
        new_state: list[torch.Tensor] = []
        for layer, block in enumerate(self.blocks):
            x, key, value = block(x, mask, state[2 * layer], state[2 * layer + 1])
            new_state += [key, value]
        return (self.head(self.ln_f(x)), *new_state)


def packed_mask(segments: torch.Tensor) -> torch.Tensor:
    """segments [R, W] -> hidden [R, 1, W, W], True where query i must not see key j: j after i, or j of another
    segment (block-diagonal causal; a row's padding, one segment, sees itself, so no softmax row is empty)."""
    width = segments.shape[1]
    later = torch.ones(width, width, dtype=torch.bool, device=segments.device).triu(1)
    return ((segments.unsqueeze(2) != segments.unsqueeze(1)) | later).unsqueeze(1)


def _gpt_init(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


RECURRENT_CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
# Whether training runs the recurrence itself on packed words: torch's packed LSTM on the CPU steps the input
# projection position by position and made a step 1.45x slower, so the LSTM runs padded and packs its outputs.
PACKED_RECURRENCE = {"rnn": True, "gru": True, "lstm": False}
# Where a training step runs the cell in bfloat16 (see trains_in_bfloat16): measured per step on 2 CPU threads,
# lstm 1.3x (oneDNN's bf16 LSTM), gru 1.2x, rnn none (so it keeps float32). Not on CUDA: cuDNN's RNN under autocast
# computes in float16, whatever dtype was asked for, and this loop has no loss scaling.
BF16_RECURRENCE: dict[str, frozenset[str]] = {"rnn": frozenset(), "gru": frozenset({"cpu"}), "lstm": frozenset({"cpu"})}


class Recurrent(SequenceModel):
    """Embedding -> torch's nn.RNN (tanh) / nn.GRU / nn.LSTM (n_layer layers) -> linear head; no length limit.

    The state is the hidden state [n_layer, B, n_hidden] (`state.h`), plus the cell state for an LSTM (`state.c`);
    it starts at zero. Dropout (a byte mask, ByteDropout) on the embeddings, between layers and before the head.
    The head starts small so training starts near the uniform loss.

    Training packs the words (`forward` with `lengths`): the head (and for rnn and gru the recurrence) runs on the
    words' own positions only, not on the padding (about 40% of a batch's positions on names.txt).
    """

    packs_sequences = True  # cross_entropy trains it on packed words (packed_cross_entropy)

    @classmethod
    def from_config(cls, kind: str, vocab_size: int, config: RecurrentConfig, n_labels: int = 0) -> Recurrent:
        sizes = (config.n_embd, config.n_hidden, config.n_layer)
        return cls(kind, vocab_size, *sizes, config.dropout, n_labels=n_labels)

    def __init__(
        self,
        cell: str,
        vocab_size: int,
        n_embd: int,
        n_hidden: int,
        n_layer: int,
        dropout: float = 0.0,
        n_labels: int = 0,
    ) -> None:
        super().__init__()
        if cell not in RECURRENT_CELLS:
            raise ValueError(f"unknown recurrent cell {cell!r}: choose one of {', '.join(RECURRENT_CELLS)}")
        self.cell, self.n_layer, self.n_hidden = cell, n_layer, n_hidden
        self.bf16_devices = BF16_RECURRENCE[cell]
        self.embedding = nn.Embedding(vocab_size, n_embd)
        inner_dropout = dropout if n_layer > 1 else 0.0  # torch applies it between layers only
        self.rnn = RECURRENT_CELLS[cell](n_embd, n_hidden, num_layers=n_layer, batch_first=True, dropout=inner_dropout)
        self.dropout = ByteDropout(dropout)
        self.head = nn.Linear(n_hidden, vocab_size)
        with torch.no_grad():
            self.head.weight.mul_(0.1)
            self.head.bias.zero_()
        add_label_embedding(self, n_labels, n_embd)

    def state_names(self) -> list[str]:
        return ["state.h", "state.c"] if self.cell == "lstm" else ["state.h"]

    def empty_state(self, batch: int, device: torch.device | None = None) -> list[torch.Tensor]:
        """Zero states: float32 [n_layer, batch, n_hidden] each (on `device`, default CPU)."""
        return [torch.zeros(self.n_layer, batch, self.n_hidden, device=device) for _ in self.state_names()]

    def forward(
        self, tokens: torch.Tensor, label: torch.Tensor | None = None, lengths: torch.Tensor | None = None
    ) -> torch.Tensor:
        """tokens [B, T] (and label [B] for a conditional model) -> logits [B, T, V], from the zero state.

        With `lengths` (int64 [B] on the CPU, each in 1..T: the positions of each row that are not padding):
        the logits of those positions only, [sum(lengths), V] in the order of `pack(..., lengths)`.
        """
        if lengths is None:
            return self.step(tokens, *self.empty_state(tokens.shape[0], tokens.device), label=label)[0]
        emb = self.dropout(with_label(self, self.embedding(tokens), label))
        if PACKED_RECURRENCE[self.cell]:
            out = self.rnn(pack(emb, lengths))[0].data  # from the zero state, as step's
        else:  # the padded recurrence, then its words' positions only
            out = pack(self.rnn(emb)[0], lengths).data
        return self.head(self.dropout(out))

    def step(
        self, tokens: torch.Tensor, *state: torch.Tensor, label: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        """(tokens [B, T], *state [n_layer, B, n_hidden]) -> (logits [B, T, V], *new state)."""
        if len(state) != len(self.state_names()):
            raise ValueError(f"{self.cell} step takes {len(self.state_names())} state tensors, got {len(state)}")
        emb = with_label(self, self.embedding(tokens), label)
        out, new_state = self.rnn(self.dropout(emb), state if self.cell == "lstm" else state[0])
        logits = self.head(self.dropout(out))
        return (logits, *new_state) if self.cell == "lstm" else (logits, new_state)


def add_label_embedding(model: nn.Module, n_labels: int, n_embd: int) -> None:
    """Give `model` a zero-initialised `label_embedding` [n_labels, n_embd] when n_labels > 0 (made last: an
    unlabelled model draws the same initial weights as ever); record n_labels."""
    model.n_labels = n_labels  # type: ignore[assignment]  # torch types Module.__setattr__ as tensors and modules only
    if n_labels:
        model.label_embedding = nn.Embedding(n_labels, n_embd)
        nn.init.zeros_(model.label_embedding.weight)


def check_label(model: nn.Module, label: torch.Tensor | None) -> torch.Tensor | None:
    """`label`, which a conditional model needs and an unlabelled one refuses (ValueError)."""
    if bool(getattr(model, "n_labels", 0)) != (label is not None):
        raise ValueError("a conditional model needs a label [B]; an unlabelled model takes none")
    return label


def with_label(model: nn.Module, emb: torch.Tensor, label: torch.Tensor | None) -> torch.Tensor:
    """Embeddings [B, T, C] with the label's embedding added at every position (unchanged without labels)."""
    if (label := check_label(model, label)) is None:
        return emb
    return emb + model.get_submodule("label_embedding")(label).unsqueeze(1)


IGNORE = -100  # target of a padding position (cross_entropy's ignore_index): no loss there


def is_sequence(model: nn.Module) -> bool:
    """A sequence model (tokens [B, T] -> logits [B, T, V], with `step`) rather than a window model."""
    return getattr(model, "is_sequence", False)


def sequence_model(model: nn.Module) -> SequenceModel:
    """`model` as the sequence model it is (TypeError for a window model, which has no `step`)."""
    if not isinstance(model, SequenceModel):
        raise TypeError(f"a {type(model).__name__} is a window model: it has no step")
    return model


def cross_entropy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, label: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean NLL of targets y given inputs x (and labels): per example (window models) or per non-padding position
    (sequences). A model that packs its sequences (the recurrent kinds) is trained on packed words."""
    if model.training and packs_sequences(model):
        return packed_cross_entropy(model, x, y, label)
    logits = model(x) if label is None else model(x, label)
    return F.cross_entropy(logits.flatten(0, -2), y.flatten(), ignore_index=IGNORE)


def trains_in_bfloat16(model: nn.Module, device: torch.device) -> bool:
    """`model` (or the model a DistributedDataParallel wraps) trains on `device` with its forward under bfloat16
    autocast where the device computes bfloat16 (trainer.batch_loss) and torch's fused AdamW: the transformer on
    CPU and CUDA, the cells of BF16_RECURRENCE on the CPU. Other models and devices keep float32 and the for-each
    AdamW."""
    return device.type in getattr(getattr(model, "module", model), "bf16_devices", frozenset())


def packs_sequences(model: nn.Module) -> bool:
    """`model` (or the model a DistributedDataParallel wraps) takes `lengths` and returns packed logits."""
    return getattr(getattr(model, "module", model), "packs_sequences", False)


def pack(padded: torch.Tensor, lengths: torch.Tensor) -> torch.nn.utils.rnn.PackedSequence:
    """The first lengths[i] positions of each row of `padded` [B, T, ...], packed (longest rows first)."""
    return pack_padded_sequence(padded, lengths, batch_first=True, enforce_sorted=False)


def packed_cross_entropy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, label: torch.Tensor | None = None
) -> torch.Tensor:
    """cross_entropy of a sequence model that packs: the logits of the non-padding positions only (padding is
    at the end of each row: IGNORE in y); the same mean NLL over the same positions as the padded batch's."""
    lengths = (y != IGNORE).sum(dim=1).cpu()
    logits = model(x, label, lengths=lengths)
    return F.cross_entropy(logits.float(), pack(y, lengths).data)  # float32 under autocast too
