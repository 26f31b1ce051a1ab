"""The checkpoint file (model.pt): a plain dict, saved atomically, loaded with weights_only=True.

Keys: format_version (1), kind, config, vocab (characters of indices 1..V-1), state_dict,
metrics (train/val/test loss and the loss history), data_sha256.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import torch
from makemore.contract import CHECKPOINT_FORMAT_VERSION, STEP, WINDOW, ModelInfo
from makemore.data import UserError, Vocab, first_line
from makemore.data.files import atomic_write
from makemore.train.kinds import build_model, state_spec
from torch import nn

KEYS = ("format_version", "kind", "config", "vocab", "state_dict", "metrics", "data_sha256")


class CheckpointError(UserError):
    """A checkpoint that cannot be used; the message is one line meant for the user."""


def make_checkpoint(kind: str, config: dict, vocab: Vocab, model: nn.Module, metrics: dict, data_sha256: str) -> dict:
    """The checkpoint dict of a trained model; its tensors are CPU copies, whatever device the model is on."""
    return {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "kind": kind,
        "config": dict(config),
        "vocab": vocab.chars,
        "state_dict": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
        "metrics": dict(metrics),
        "data_sha256": data_sha256,
    }


def save_checkpoint(checkpoint: dict, path: str | Path, inputs: tuple[str | Path, ...] = ()) -> None:
    """Write the checkpoint atomically (a temporary file, then rename); never over one of `inputs`."""
    atomic_write(path, lambda tmp: torch.save(checkpoint, tmp), inputs)


def load_checkpoint(path: str | Path) -> dict:
    """Load and check a checkpoint; untrusted input, so weights_only=True (no code runs)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # e.g. torch's pickle-protocol notice on a foreign file: errors are one line
            warnings.simplefilter("ignore")
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(f"{path} was refused by the safe loader (weights_only): {first_line(err, 160)}") from None
    except Exception as err:  # a damaged or foreign file makes the unpickler raise many types (IndexError, ...)
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(err).__name__})") from None
    if not isinstance(checkpoint, dict) or "format_version" not in checkpoint:
        raise CheckpointError(f"{path} is not a makemore checkpoint")
    if checkpoint["format_version"] != CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {checkpoint['format_version']!r:.40};"
            f" this reads {CHECKPOINT_FORMAT_VERSION}"
        )
    missing = [k for k in KEYS if k not in checkpoint]
    if missing:
        raise CheckpointError(f"{path} lacks checkpoint keys: {', '.join(missing)}")
    return checkpoint


def model_info(checkpoint: dict) -> ModelInfo:
    """The runtime's view of a checkpoint (vocabulary, block size, config, losses; a sequence kind's state)."""
    state = state_spec(checkpoint["kind"], checkpoint["config"])
    return ModelInfo(
        kind=checkpoint["kind"],
        vocab=Vocab(checkpoint["vocab"]),
        block_size=int(checkpoint["config"]["block_size"]),
        config=checkpoint["config"],
        metrics=checkpoint["metrics"],
        data_sha256=checkpoint["data_sha256"],
        contract=WINDOW if state is None else STEP,
        state=state,
    )


def load_model(checkpoint: dict, source: str = "checkpoint") -> nn.Module:
    """Rebuild the model of a checkpoint, in eval mode."""
    try:
        model = build_model(checkpoint["kind"], len(checkpoint["vocab"]) + 1, checkpoint["config"])
        model.load_state_dict(checkpoint["state_dict"])
    except (KeyError, ValueError, TypeError, RuntimeError) as err:
        raise CheckpointError(f"{source} does not match its model kind: {first_line(err, 160)}") from None
    return model.eval()
