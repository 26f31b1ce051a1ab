"""What every CLI shares: one-line errors with exit status 2, and the checks for optional extras."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from typing import NoReturn

from makemore.data import UserError

USAGE_ERROR = 2
INTERRUPTED = 130


def fail(message: str, status: int = USAGE_ERROR) -> NoReturn:
    """Print `error: message` on stderr and exit with `status`."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(status)


def require_extra(command: str, extra: str, modules: tuple[str, ...]) -> None:
    """Exit with one line naming the extra to install when any of `modules` is missing."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        fail(f"{command} needs {' and '.join(missing)}: pip install 'makemore-onnx[{extra}]'")


def require_training_extra(command: str) -> None:
    """require_extra for the commands of the training extra (torch and onnx)."""
    require_extra(command, "train", ("torch", "onnx"))


def run_cli(app: Callable[[], object]) -> None:
    """Run a typer app, turning UserError and Ctrl-C into one line on stderr."""
    try:
        app()
    except UserError as err:
        fail(str(err))
    except KeyboardInterrupt:
        fail("interrupted", INTERRUPTED)


def run_training_cli(app: Callable[[], object], command: str) -> None:
    """run_cli for a command of the training extra; without torch or onnx it names the extra (--help still works)."""
    if not {"-h", "--help"} & set(sys.argv[1:]):
        require_training_extra(command)
    run_cli(app)
