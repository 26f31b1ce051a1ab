"""The file-format contract between training, export and the runtime (numpy-free, torch-free).

What a checkpoint and an ONNX file must hold: format versions, ONNX input/output names, metadata
keys, and the validation of every metadata field. A model file is untrusted input: nothing here
trusts its metadata until `ModelInfo.from_metadata` and `check_window_signature` have passed.
"""

from makemore.contract.metadata import (
    BATCH,
    CHECKPOINT_FORMAT_VERSION,
    CONTRACTS,
    MAX_BLOCK_SIZE,
    METADATA_PREFIX,
    ONNX_FORMAT_VERSION,
    PAST,
    STEP,
    WINDOW,
    ModelFileError,
    ModelInfo,
    ModelOutputError,
    StateSpec,
    StateTensor,
)
from makemore.contract.signature import (
    CONTEXT,
    LABEL,
    LOGITS,
    TOKENS,
    IOSpec,
    StepFn,
    check_signature,
    check_window_signature,
    empty_state,
)
from makemore.data import MAX_VOCAB
from makemore.data.bounds import MAX_LEN_LIMIT

__all__ = [
    "BATCH",
    "PAST",
    "CHECKPOINT_FORMAT_VERSION",
    "CONTEXT",
    "CONTRACTS",
    "IOSpec",
    "LABEL",
    "LOGITS",
    "MAX_BLOCK_SIZE",
    "MAX_LEN_LIMIT",
    "MAX_VOCAB",
    "METADATA_PREFIX",
    "ModelFileError",
    "ModelInfo",
    "ModelOutputError",
    "ONNX_FORMAT_VERSION",
    "WINDOW",
    "check_window_signature",
    "check_signature",
    "empty_state",
    "STEP",
    "StateSpec",
    "StateTensor",
    "StepFn",
    "TOKENS",
]
