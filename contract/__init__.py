"""The file-format contract between training, export and the runtime (numpy-free, torch-free).

What a checkpoint and an ONNX file must hold: format versions, ONNX input/output names, metadata
keys, and the validation of every metadata field. A model file is untrusted input: nothing here
trusts its metadata until `ModelInfo.from_metadata` and `check_window_signature` have passed.
"""

from makemore.contract.metadata import (
    CHECKPOINT_FORMAT_VERSION,
    CONTRACTS,
    MAX_BLOCK_SIZE,
    MAX_LEN_LIMIT,
    MAX_VOCAB,
    METADATA_PREFIX,
    ONNX_FORMAT_VERSION,
    WINDOW,
    ModelFileError,
    ModelInfo,
)
from makemore.contract.signature import CONTEXT, LOGITS, IOSpec, check_window_signature

__all__ = [
    "CHECKPOINT_FORMAT_VERSION",
    "CONTEXT",
    "CONTRACTS",
    "IOSpec",
    "LOGITS",
    "MAX_BLOCK_SIZE",
    "MAX_LEN_LIMIT",
    "MAX_VOCAB",
    "METADATA_PREFIX",
    "ModelFileError",
    "ModelInfo",
    "ONNX_FORMAT_VERSION",
    "WINDOW",
    "check_window_signature",
]
