"""Training (torch): the models, the loop, checkpoints and TorchSampler.

Names are imported on first use, so `mm-train --help` and a base install without torch can
still load `makemore.train.cli`.
"""

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what the lazy imports below give, for a type checker (`X as X`: re-exported)
    from makemore.train.checkpoint import CheckpointError as CheckpointError
    from makemore.train.checkpoint import load_checkpoint as load_checkpoint
    from makemore.train.checkpoint import save_checkpoint as save_checkpoint
    from makemore.train.config import make_config as make_config
    from makemore.train.config_types import Config as Config
    from makemore.train.config_types import TrainConfig as TrainConfig
    from makemore.train.kinds import KINDS as KINDS
    from makemore.train.kinds import MODEL_KINDS as MODEL_KINDS
    from makemore.train.kinds import SEQUENCE_KINDS as SEQUENCE_KINDS
    from makemore.train.kinds import ConfigError as ConfigError
    from makemore.train.kinds import build_model as build_model
    from makemore.train.models import is_sequence as is_sequence
    from makemore.train.sampler import TorchSampler as TorchSampler
    from makemore.train.trainer import train as train

_EXPORTS = {
    "KINDS": "kinds",
    "MODEL_KINDS": "kinds",
    "SEQUENCE_KINDS": "kinds",
    "ConfigError": "kinds",
    "make_config": "config",
    "Config": "config_types",
    "TrainConfig": "config_types",
    "train": "trainer",
    "CheckpointError": "checkpoint",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "build_model": "kinds",
    "is_sequence": "models",
    "TorchSampler": "sampler",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        return getattr(import_module(f"makemore.train.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
