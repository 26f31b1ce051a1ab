"""TorchSampler: the runtime's sampling loop fed by the torch model (for parity and for training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from makemore.contract import ModelFileError, ModelInfo
from makemore.contract.signature import StepFn
from makemore.runtime.parallel import check_workers
from makemore.runtime.sampling import Sampler, StepForward, WindowForward, window_inputs
from makemore.runtime.scoring import LogitsFn
from makemore.train.checkpoint import load_checkpoint, load_model, model_info
from makemore.train.models import SequenceModel, is_sequence, sequence_model
from torch import nn


def as_int64(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64))


def torch_forward(model: nn.Module, info: ModelInfo) -> WindowForward | StepForward:
    """The model's forward pass as the runtime calls it (numpy in, numpy out), for either contract."""
    if is_sequence(model):
        return StepForward(torch_step(sequence_model(model)), info)
    return WindowForward(torch_logits(model), info)


def torch_logits(model: nn.Module) -> LogitsFn:
    """A window model's forward pass: logits_fn(context, *label) -> logits, numpy in and out."""

    @torch.no_grad()
    def logits(context: np.ndarray, *label: np.ndarray) -> np.ndarray:
        return model(*map(as_int64, (context, *label))).numpy()

    return logits


def torch_step(model: SequenceModel) -> StepFn:
    """A sequence model's step: step_fn(tokens, state, *label) -> (logits, new state), numpy in and out."""

    @torch.no_grad()
    def step(tokens: np.ndarray, state: list[np.ndarray], *label: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        labels = {"label": as_int64(label[0])} if label else {}
        out = model.step(as_int64(tokens), *(torch.from_numpy(np.ascontiguousarray(s)) for s in state), **labels)
        return out[0].numpy(), [s.numpy() for s in out[1:]]

    return step


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

    def logits(self, context: np.ndarray, label: np.ndarray | None = None) -> np.ndarray:
        """A window model's int64 context [B, block_size] (and a conditional model's label indices [B]) ->
        float32 logits [B, V]."""
        if self.info.state is not None or not isinstance(self.forward, WindowForward):
            raise ModelFileError(
                f"a {self.info.kind} is a step model: it has no window logits (use sample, score, nll)"
            )
        return self.forward.logits_fn(*window_inputs(self.info, context, label))
