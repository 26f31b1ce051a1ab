"""The training extra's check: its commands name the extra to install when torch or onnx is missing."""

from __future__ import annotations

import sys
from collections.abc import Callable

from makemore.data.cli import require_extra, run_cli


def require_training_extra(command: str) -> None:
    """require_extra for the commands of the training extra (torch and onnx)."""
    require_extra(command, "train", ("torch", "onnx"))


def run_training_cli(app: Callable[[], object], command: str) -> None:
    """run_cli for a command of the training extra; without torch or onnx it names the extra (--help still works)."""
    if not {"-h", "--help"} & set(sys.argv[1:]):
        require_training_extra(command)
    run_cli(app)
