"""Weight averaging: an exponential moving average (EMA) of a model's parameters over the training steps, which
becomes the trained model (`--ema DECAY`). Buffers (a wavenet's batch-norm statistics) stay the model's own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


def warmed_decay(decay: float, updates: int) -> float:
    """The decay of the update after `updates` others: min(decay, (1 + updates) / (10 + updates)), as TensorFlow's
    ExponentialMovingAverage with num_updates. Early updates move the average most, so a short run is not held
    back near its initial weights (at 0.9995, 40 steps kept 98% of them)."""
    return min(decay, (1 + updates) / (10 + updates))


class WeightAverage:
    """average <- d * average + (1 - d) * weights after each optimizer step, d = warmed_decay(decay, updates so
    far); starts at the weights."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.params = [param.detach().clone() for param in model.parameters()]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        weight = 1.0 - warmed_decay(self.decay, self.updates)
        for average, param in zip(self.params, model.parameters(), strict=True):
            average.lerp_(param, weight)
        self.updates += 1

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
