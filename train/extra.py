"""The training extra's check: its commands name the extra to install when torch or onnx is missing."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout

from makemore.data.cli import require_extra, run_cli
from makemore.train.launch import is_secondary_rank

THREADS_HELP = "torch threads, at most the cores [default: all]; use 1 when other jobs share the CPU."
DEVICE_HELP = "Where to train: auto (cuda, then mps, then cpu), cpu, cuda or mps."
SECONDARY_EXIT_DELAY = 5.0  # seconds a failing rank other than 0 leaves rank 0 to print its error first


def require_training_extra(command: str) -> None:
    """require_extra for the commands of the training extra (torch and onnx)."""
    require_extra(command, "train", ("torch", "onnx"))


def run_training_cli(app: Callable[[], object], command: str) -> None:
    """run_cli for a command of the training extra; without torch or onnx it names the extra (--help still works).

    A torchrun rank other than 0 prints nothing: its one-line errors repeat rank 0's (every rank makes the same
    checks), and it waits SECONDARY_EXIT_DELAY seconds before failing, since torchrun stops every other rank as
    soon as one fails and rank 0 would otherwise lose the race to print its line. An unexpected exception still
    shows its traceback, from whichever rank it happens on.
    """
    if not {"-h", "--help"} & set(sys.argv[1:]):
        require_training_extra(command)
    if "RANK" in os.environ:  # under torchrun: torch's C++ rendezvous logs (retries, stack traces) stay quiet; the
        os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "FATAL")  # ranks' one-line errors say what failed
    if not is_secondary_rank():
        run_cli(app)
        return
    try:
        with open(os.devnull, "w") as sink, redirect_stdout(sink), redirect_stderr(sink):
            run_cli(app)
    except SystemExit as stop:
        if stop.code not in (0, None):
            time.sleep(SECONDARY_EXIT_DELAY)
        raise
