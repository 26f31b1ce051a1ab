"""What every CLI shares: one-line errors with exit status 2, a safe stdout, the checks for optional extras."""

from __future__ import annotations

import gc
import importlib.util
import os
import sys
from collections.abc import Callable
from typing import NoReturn, TextIO

from makemore.data.errors import UserError, first_line

USAGE_ERROR = 2
INTERRUPTED = 130


def fail(message: str, status: int = USAGE_ERROR) -> NoReturn:
    """Print `error: message` on stderr (its characters that a terminal would act on escaped) and exit with
    `status`."""
    if sys.stderr is not None:
        print(f"error: {printable(message)}", file=sys.stderr)
    raise SystemExit(status)


def printable(message: str) -> str:
    """`message` with each character Python calls unprintable written as its escape (`\\x1b`, `\\u202e`), so that
    text from a file or a library (torch's unpickling error is bold: ESC [ 1 m) cannot restyle or reorder the
    user's terminal, nor break the one line; a space stays."""
    if message.isprintable():
        return message
    return "".join(
        ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii") for ch in message
    )


_warnings: list[str] = []  # the running command's, printed when it ends well (run_cli)


def warn(message: str) -> None:
    """A `warning: message` line on stderr once the command has done its work: a command that fails prints its one
    `error:` line alone."""
    _warnings.append(message)


def _print_warnings() -> None:
    while _warnings and sys.stderr is not None:
        print(f"warning: {printable(_warnings.pop(0))}", file=sys.stderr)


def stdout() -> TextIO:
    """sys.stdout, or a UserError when the process was started with stdout closed (`>&-`)."""
    if sys.stdout is None:
        raise UserError("stdout is closed: nowhere to write the output")
    return sys.stdout


def require_extra(command: str, extra: str, modules: tuple[str, ...]) -> None:
    """Exit with one line naming the extra to install when any of `modules` is missing."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        fail(f"{command} needs {' and '.join(missing)}: pip install 'makemore-onnx[{extra}]'")


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null so the interpreter's final flush cannot fail a second time."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


def escape_unencodable() -> None:
    """Make stdout and stderr write what their encoding cannot hold as backslash escapes (`jos\\xe9` on an ASCII
    stdout, `\\udcff` for an argument's undecodable byte) instead of failing with UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)  # a TextIOWrapper's; not a StringIO's
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (OSError, ValueError):  # closed, or already written to in a way that forbids it
                pass


def freeze_imports() -> None:
    """Move every object alive now (the modules, classes and functions of the imports) out of the garbage
    collector's sight, once a process: none of them is ever garbage, yet every full collection walked them all,
    the one at the interpreter's exit included (about 20 ms of mm-gen's cold start). What the command makes
    afterwards is collected as usual."""
    if gc.get_freeze_count() == 0:  # once: a process running several commands (the tests) freezes only its first
        gc.freeze()


def run_cli(app: Callable[..., object]) -> None:
    """Run a typer app: usage errors, UserError, Ctrl-C and a failing stdout become one line on stderr, never
    a traceback. A reader that goes away (`mm-gen | head`) ends the command quietly (click's rule: status 1).
    Characters that stdout's encoding cannot hold are printed as backslash escapes (escape_unencodable). The
    imports' objects are frozen first (freeze_imports). Warnings (`warn`) are printed at the end, and only when the
    command succeeds.
    """
    import typer

    freeze_imports()
    escape_unencodable()
    _warnings.clear()  # a process running several commands (the tests) starts each without the last one's
    try:
        status = app(standalone_mode=False)  # click's errors come to us instead of its multi-line usage text
        if sys.stdout is not None:
            sys.stdout.flush()
        _print_warnings()
        if isinstance(status, int) and status:
            raise SystemExit(status)
    except typer.Abort:
        fail("interrupted", INTERRUPTED)
    except typer.TyperException as err:  # click's errors, as typer vendors them
        if type(err).__name__ == "NoArgsIsHelpError":  # a command group run bare: its help, as click prints it
            err.show()  # type: ignore[attr-defined]  # click's NoArgsIsHelpError has show()
            raise SystemExit(USAGE_ERROR) from None
        message = err.format_message() if hasattr(err, "format_message") else str(err)
        fail(first_line(Exception(message), 500))
    except UserError as err:
        fail(first_line(err, 500))
    except KeyboardInterrupt:
        fail("interrupted", INTERRUPTED)
    except OSError as err:  # a file error that no layer turned into a UserError, or a full or closed stdout
        if err.filename is not None:
            fail(f"{err.filename}: {err.strerror or first_line(err)}")
        _silence_stdout()
        fail(f"cannot write to stdout: {err.strerror or first_line(err)}")
