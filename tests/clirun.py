"""Run the console scripts (mm-train, mm-export, mm-gen, mm-eval, ...) and check their errors."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from pathlib import Path

from inprocess import Timeout, run_main

BIN = Path(sys.executable).parent  # the venv's bin folder, where the console scripts are installed


def run(
    script: str, *args: object, timeout: float | None = None, cwd: str | Path | None = None, **kwargs
) -> subprocess.CompletedProcess:
    """Run `script args...` and capture its output as text: in this process (its entry point's main, as
    tests/inprocess.py runs it: about a second faster a call; `timeout` stops it with an alarm, `cwd` is the
    working directory while it runs), or in a subprocess when `kwargs` ask for something only a process has
    (input, env, ...) or `MAKEMORE_TESTS_SUBPROCESS=1` is set."""
    if kwargs or os.environ.get("MAKEMORE_TESTS_SUBPROCESS") == "1":
        return run_process(script, *args, timeout=timeout, cwd=cwd, **kwargs)
    with alarm(timeout), working_directory(cwd):
        outcome = run_main(entry_point(script), *args)
    return subprocess.CompletedProcess([script, *map(str, args)], outcome.status, outcome.stdout, outcome.stderr)


@contextmanager
def working_directory(folder: str | Path | None) -> Iterator[None]:
    """Run the body in `folder` (None: where we are), then go back."""
    if folder is None:
        yield
        return
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


@contextmanager
def alarm(seconds: float | None) -> Iterator[None]:
    """Raise Timeout in the main thread after `seconds` (a blocking read is interrupted too); None: no limit."""
    if seconds is None:
        yield
        return

    def ring(signum: int, frame: object) -> None:
        raise Timeout(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_process(script: str, *args: object, **kwargs) -> subprocess.CompletedProcess:
    """Run the installed console script `script args...` in a subprocess and capture its output as text."""
    return subprocess.run([str(BIN / script), *map(str, args)], capture_output=True, text=True, **kwargs)


@functools.cache
def entry_point(script: str) -> Callable[[], None]:
    """The function the console script `script` calls (pyproject.toml's [project.scripts])."""
    (found,) = entry_points(group="console_scripts", name=script)
    main: Callable[[], None] = found.load()
    return main


def assert_usage_error(result: subprocess.CompletedProcess) -> None:
    """Exit status 2, one line `error: ...` on stderr, no traceback, nothing on stdout."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stderr.startswith("error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
