"""File helpers shared by every layer (torch-free): safe atomic writes and content hashes."""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from makemore.data.errors import UserError, first_line


class OutputError(UserError):
    """An output path that must not be written (a device, a folder, the input itself, ...)."""


def check_output_path(path: str | Path, inputs: Iterable[str | Path] = ()) -> Path:
    """The real path that an atomic write of `path` will replace, after refusing what no user means.

    Refused: a missing folder, anything that exists and is not a regular file (a device such as
    /dev/full, a folder, a pipe, a socket; a link is judged by what it points to), and any of `inputs`.
    A link to a regular file is followed, so the file it points to is replaced and the link stays.
    """
    path = Path(path)
    real = Path(os.path.realpath(path))
    if not real.parent.is_dir():
        raise OutputError(f"output folder does not exist: {path.parent}")
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as err:
        raise OutputError(f"cannot use output path {path}: {err.strerror}") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise OutputError(f"output path is a directory: {path}")
    if mode is not None and not stat.S_ISREG(mode):
        raise OutputError(f"output path is not a regular file (a device, pipe or socket?): {path}")
    for source in inputs:
        if Path(os.path.realpath(source)) == real:
            raise OutputError(f"output path is the input file itself: {path}")
    return real


def atomic_write(path: str | Path, write: Callable[[str], object], inputs: Iterable[str | Path] = ()) -> None:
    """Call write(tmp_path) on a temporary file beside `path`, then rename it into place.

    `path` is checked first (check_output_path: never a device, a folder or one of `inputs`). A crash,
    a full disk or Ctrl-C midway leaves `path` as it was: never a half-written file. OS errors become
    one-line OutputErrors.
    """
    real = check_output_path(path, inputs)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{real.name}.", suffix=".tmp", dir=real.parent)
    except OSError as err:
        raise OutputError(f"cannot write {path}: {err.strerror}") from None
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)  # mkstemp makes the file 0600; give it the mode a plain open() would
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, real)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {err.strerror or first_line(err)}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (identifies the data a model was trained on), read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
