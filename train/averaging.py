"""Weight averaging: an exponential moving average (EMA) of a model's parameters over the training steps, which
becomes the trained model (`--ema DECAY`). Buffers (a wavenet's batch-norm statistics) stay the model's own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class WeightAverage:
    """average <- decay * average + (1 - decay) * weights, after each optimizer step; starts at the weights."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.params = [param.detach().clone() for param in model.parameters()]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for average, param in zip(self.params, model.parameters(), strict=True):
            average.lerp_(param, 1.0 - self.decay)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Make the average the model's parameters."""
        for average, param in zip(self.params, model.parameters(), strict=True):
            param.copy_(average)

    @contextmanager
    def applied(self, model: nn.Module) -> Iterator[None]:
        """The model holds the average inside the block (to evaluate it) and its own weights again after it."""
        with torch.no_grad():
            own = [param.detach().clone() for param in model.parameters()]
        self.copy_to(model)
        try:
            yield
        finally:
            with torch.no_grad():
                for saved, param in zip(own, model.parameters(), strict=True):
                    param.copy_(saved)
