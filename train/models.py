"""The models. One contract for all: int64 context [B, block_size] -> logits [B, vocab_size]."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class Bigram(nn.Module):
    """Normalised bigram counts: logits are the log-probabilities of the next character."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.block_size = 1
        self.log_probs = nn.Parameter(torch.zeros(vocab_size, vocab_size), requires_grad=False)

    @torch.no_grad()
    def fit(self, x: torch.Tensor, y: torch.Tensor, smoothing: float) -> None:
        """Count (previous, next) pairs, add `smoothing` to every cell and normalise rows."""
        vocab_size = self.log_probs.shape[0]
        counts = torch.zeros(vocab_size * vocab_size, dtype=torch.float64)
        counts.index_add_(0, x[:, -1] * vocab_size + y, torch.ones(len(y), dtype=torch.float64))
        counts = counts.view(vocab_size, vocab_size) + smoothing
        self.log_probs.copy_((counts / counts.sum(dim=1, keepdim=True)).log())

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        return self.log_probs[context[:, -1]]


class BigramNN(nn.Module):
    """One linear layer over the one-hot of the previous character, learned by gradient descent.

    one_hot(prev) @ W picks row `prev` of W, so the forward pass is that row lookup.
    """

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.block_size = 1
        self.weight = nn.Parameter(torch.zeros(vocab_size, vocab_size))

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        return F.embedding(context[:, -1], self.weight)


class MLP(nn.Module):
    """Bengio et al. 2003: embed each context character, concatenate, tanh hidden layer, logits.

    Initialised as in the lectures so training starts near the uniform loss: Kaiming-tanh hidden
    weights (gain 5/3), a small output layer and zero output bias.
    """

    def __init__(self, vocab_size: int, block_size: int, n_embd: int, n_hidden: int, dropout: float = 0.0) -> None:
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

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        emb = self.embedding(context).flatten(1)
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

    def __init__(
        self, vocab_size: int, block_size: int, n_embd: int, n_hidden: int, norm: str = "batch", dropout: float = 0.0
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

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        return self.output(self.levels(self.embedding(context)).flatten(1))


def build_model(kind: str, vocab_size: int, config: dict) -> nn.Module:
    """The model of `kind` for a vocabulary size and a checkpoint's config."""
    if kind == "bigram":
        return Bigram(vocab_size)
    if kind == "bigram-nn":
        return BigramNN(vocab_size)
    if kind == "mlp":
        return MLP(vocab_size, config["block_size"], config["n_embd"], config["n_hidden"], config.get("dropout", 0.0))
    if kind == "wavenet":
        sizes = (config["block_size"], config["n_embd"], config["n_hidden"])
        return WaveNet(vocab_size, *sizes, config.get("norm", "batch"), config.get("dropout", 0.0))
    raise ValueError(f"unknown model kind {kind!r}")


def cross_entropy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean NLL of targets y given contexts x."""
    return F.cross_entropy(model(x), y)
