"""TorchSampler: the runtime's sampling loop fed by the torch model (for parity and for training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from makemore.contract import ModelFileError, ModelInfo
from makemore.runtime.parallel import check_workers
from makemore.runtime.sampling import Sampler, StepForward, WindowForward
from makemore.train.checkpoint import load_checkpoint, load_model, model_info
from makemore.train.models import is_sequence
from torch import nn


def torch_forward(model: nn.Module, info: ModelInfo) -> WindowForward | StepForward:
    """The model's forward pass as the runtime calls it (numpy in, numpy out), for either contract."""

    @torch.no_grad()
    def logits(context: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(np.ascontiguousarray(context, dtype=np.int64))).numpy()

    @torch.no_grad()
    def step(tokens: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        tokens = torch.from_numpy(np.ascontiguousarray(tokens, dtype=np.int64))
        out = model.step(tokens, *(torch.from_numpy(np.ascontiguousarray(s)) for s in state))
        return out[0].numpy(), [s.numpy() for s in out[1:]]

    return StepForward(step, info) if is_sequence(model) else WindowForward(logits, info)


class TorchSampler(Sampler):
    """Same `.sample`, `.score` and `.nll` as OnnxSampler, computing logits in torch (with the same cache), and the
    same names for a seed: the same loop and chunk seeds (torch's own threads parallelise each call; `workers`
    threads sample chunks at once as OnnxSampler's do)."""

    def __init__(self, checkpoint_path: str | Path, workers: int = 1) -> None:
        self.workers = check_workers(workers)
        checkpoint = load_checkpoint(checkpoint_path)
        self.info = model_info(checkpoint)
        self.model = load_model(checkpoint, str(checkpoint_path))
        self.forward = torch_forward(self.model, self.info)

    @classmethod
    def from_model(cls, model: nn.Module, info: ModelInfo) -> TorchSampler:
        """Wrap a model in memory (e.g. right after training)."""
        sampler = cls.__new__(cls)
        sampler.info, sampler.model = info, model.eval()
        sampler.forward = torch_forward(sampler.model, info)
        return sampler

    def logits(self, context: np.ndarray) -> np.ndarray:
        """A window model's int64 context [B, block_size] -> float32 logits [B, V]."""
        if self.info.state is not None:
            raise ModelFileError(
                f"a {self.info.kind} is a step model: it has no window logits (use sample, score, nll)"
            )
        return self.forward.logits_fn(context)
