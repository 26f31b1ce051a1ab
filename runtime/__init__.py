"""The torch-free runtime: sample and score makemore ONNX models with onnxruntime + numpy.

onnxruntime writes device-id files under ~/.cache and $TMPDIR when imported, unless telemetry
is off; we turn it off here (keeping any value the user set), before anything imports it.
"""

import os
from typing import TYPE_CHECKING

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

from makemore.contract import ModelFileError, ModelInfo  # noqa: E402
from makemore.runtime.options import SamplingError, SamplingOptions  # noqa: E402
from makemore.runtime.sampling import Sampler, Stopped  # noqa: E402

if TYPE_CHECKING:  # what the lazy import below gives, for a type checker
    from makemore.runtime.onnx_sampler import OnnxSampler

__all__ = ["ModelFileError", "ModelInfo", "OnnxSampler", "Sampler", "SamplingError", "SamplingOptions", "Stopped"]


def __getattr__(name: str) -> object:  # imports onnxruntime only when OnnxSampler is asked for
    if name == "OnnxSampler":
        from makemore.runtime.onnx_sampler import OnnxSampler

        return OnnxSampler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
