"""Run a CLI entry point in this process (fast enough for property-based tests) and capture what a user sees.

What a user sees is captured at both levels: Python's sys.stdout and sys.stderr, and the file descriptors 1 and 2
that C code (onnxruntime's and torch's loggers) writes to. Python warnings print as in a fresh process (pytest's
own warning capture would hide them), and the torch thread count a command sets is put back afterwards.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass


class Timeout(BaseException):
    """An in-process command ran past its time limit (a BaseException: no `except Exception` of the code under
    test swallows it, and run_main lets it through)."""


@dataclass
class Outcome:
    status: int
    stdout: str
    stderr: str


@contextmanager
def _descriptor(fd: int) -> Iterator[tempfile.SpooledTemporaryFile]:  # type: ignore[type-arg]
    """Point file descriptor `fd` at a temporary file for the duration; yield the file."""
    with tempfile.TemporaryFile() as file:
        saved = os.dup(fd)
        os.dup2(file.fileno(), fd)
        try:
            yield file
        finally:
            os.dup2(saved, fd)
            os.close(saved)


def _read(file: tempfile.SpooledTemporaryFile) -> str:  # type: ignore[type-arg]
    file.seek(0)
    return file.read().decode("utf-8", errors="backslashreplace")


@contextmanager
def _torch_threads_kept() -> Iterator[None]:
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    try:
        yield
    finally:
        if torch is not None and threads is not None and torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def run_main(main: Callable[[], None], *args: object) -> Outcome:
    """Call main() with sys.argv set to `args`; an exception escaping it is printed as a user would see it."""
    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["prog", *map(str, args)]
    status = 0
    sys.stdout.flush(), sys.stderr.flush()
    try:
        with _descriptor(1) as fd_out, _descriptor(2) as fd_err, _torch_threads_kept():
            with redirect_stdout(out), redirect_stderr(err), warnings.catch_warnings():
                warnings.resetwarnings()
                warnings.simplefilter("default")  # as a fresh interpreter: each warning once per place, printed
                try:
                    main()
                except SystemExit as stop:
                    status = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
                except Timeout:
                    raise  # a command past its time limit fails the test as a timeout, not as its traceback
                except BaseException:  # noqa: BLE001 - a traceback is exactly what the tests must never see
                    traceback.print_exc()
                    status = 1
            c_out, c_err = _read(fd_out), _read(fd_err)
    finally:
        sys.argv = argv
    return Outcome(status, c_out + out.getvalue(), c_err + err.getvalue())


def is_usage_error(outcome: Outcome) -> bool:
    """Exit status 2, one line `error: ...` on stderr, no traceback, nothing on stdout."""
    return (
        outcome.status == 2
        and outcome.stderr.startswith("error: ")
        and outcome.stderr.count("\n") == 1
        and "Traceback" not in outcome.stderr
        and outcome.stdout == ""
    )
