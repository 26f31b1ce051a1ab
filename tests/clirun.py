"""Run the console scripts (mm-train, mm-export, mm-gen, mm-eval) in a subprocess and check their errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent  # the venv's bin folder, where the console scripts are installed


def run(script: str, *args: object, **kwargs) -> subprocess.CompletedProcess:
    """Run `script args...` and capture its output as text."""
    return subprocess.run([str(BIN / script), *map(str, args)], capture_output=True, text=True, **kwargs)


def assert_usage_error(result: subprocess.CompletedProcess) -> None:
    """Exit status 2, one line `error: ...` on stderr, no traceback, nothing on stdout."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stderr.startswith("error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
