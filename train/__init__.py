"""Training (torch): the models, the loop, checkpoints and TorchSampler.

Names are imported on first use, so `mm-train --help` and a base install without torch can
still load `makemore.train.cli`.
"""

from importlib import import_module

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


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"makemore.train.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
