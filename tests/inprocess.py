"""Run a CLI entry point in this process (fast enough for property-based tests) and capture what a user sees."""

from __future__ import annotations

import io
import sys
import traceback
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass


@dataclass
class Outcome:
    status: int
    stdout: str
    stderr: str


def run_main(main: Callable[[], None], *args: object) -> Outcome:
    """Call main() with sys.argv set to `args`; an exception escaping it is printed as a user would see it."""
    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["prog", *map(str, args)]
    status = 0
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                main()
            except SystemExit as stop:
                status = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
            except BaseException:  # noqa: BLE001 - a traceback is exactly what the tests must never see
                traceback.print_exc()
                status = 1
    finally:
        sys.argv = argv
    return Outcome(status, out.getvalue(), err.getvalue())


def is_usage_error(outcome: Outcome) -> bool:
    """Exit status 2, one line `error: ...` on stderr, no traceback, nothing on stdout."""
    return (
        outcome.status == 2
        and outcome.stderr.startswith("error: ")
        and outcome.stderr.count("\n") == 1
        and "Traceback" not in outcome.stderr
        and outcome.stdout == ""
    )
