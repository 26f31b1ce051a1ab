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


def build_model(kind: str, vocab_size: int, config: dict) -> nn.Module:
    """The model of `kind` for a vocabulary size and a checkpoint's config."""
    if kind == "bigram":
        return Bigram(vocab_size)
    if kind == "bigram-nn":
        return BigramNN(vocab_size)
    if kind == "mlp":
        return MLP(vocab_size, config["block_size"], config["n_embd"], config["n_hidden"], config.get("dropout", 0.0))
    raise ValueError(f"unknown model kind {kind!r}")


def cross_entropy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean NLL of targets y given contexts x."""
    return F.cross_entropy(model(x), y)
