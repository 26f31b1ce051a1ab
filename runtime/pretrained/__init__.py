"""The pretrained model shipped in the package: `mm-gen`, `mm-serve` and `mm-web` sample it when no model file is
given. `make pretrained` rebuilds it from the bundled names with a fixed seed (see docs/pretrained.md)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from makemore.contract import ModelFileError

PRETRAINED_FILE = "names.onnx"


def pretrained_path() -> Path:
    """Where the shipped model lies in this install (the file may be missing from a checkout built without it)."""
    return Path(str(resources.files("makemore.runtime.pretrained").joinpath(PRETRAINED_FILE)))


def model_or_pretrained(model: Path | None) -> Path:
    """`model`, or the shipped pretrained model when none is given (ModelFileError when this install lacks it)."""
    if model is not None:
        return model
    path = pretrained_path()
    if not path.is_file():
        raise ModelFileError("no model file given, and this install has no pretrained model: give an ONNX file")
    return path


MODEL_HELP = "ONNX model written by mm-export [default: the pretrained names model shipped with the package]."
