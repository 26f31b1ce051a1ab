"""TorchSampler: the runtime's sampling loop fed by the torch model (for parity and for training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from makemore.contract import ModelInfo
from makemore.runtime.sampling import Sampler
from makemore.train.checkpoint import load_checkpoint, load_model, model_info
from torch import nn


class TorchSampler(Sampler):
    """Same `.sample` and `.logits` as OnnxSampler, computing logits in torch."""

    def __init__(self, checkpoint_path: str | Path) -> None:
        checkpoint = load_checkpoint(checkpoint_path)
        self.info = model_info(checkpoint)
        self.model = load_model(checkpoint, str(checkpoint_path))

    @classmethod
    def from_model(cls, model: nn.Module, info: ModelInfo) -> TorchSampler:
        """Wrap a model in memory (e.g. right after training)."""
        sampler = cls.__new__(cls)
        sampler.info, sampler.model = info, model.eval()
        return sampler

    @torch.no_grad()
    def logits(self, context: np.ndarray) -> np.ndarray:
        return self.model(torch.from_numpy(np.ascontiguousarray(context, dtype=np.int64))).numpy()
