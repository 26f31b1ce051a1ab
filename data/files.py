"""File helpers shared by every layer (torch-free): safe atomic writes and content hashes."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from makemore.data.errors import UserError, first_line


class OutputError(UserError):
    """An output path that must not be written (a device, a folder, the input itself, ...)."""


def check_output_path(path: str | Path, inputs: Iterable[str | Path] = (), probe: bool = True) -> Path:
    """The real path that an atomic write of `path` will replace, after refusing what no user means.

    Refused: a missing folder, anything that exists and is not a regular file (a device such as
    /dev/full, a folder, a pipe, a socket; a link is judged by what it points to), any of `inputs`, and a folder
    where no file can be made.
    A link to a regular file is followed, so the file it points to is replaced and the link stays.
    """
    path = Path(path)
    real = Path(os.path.realpath(path))
    if not real.parent.is_dir():  # the folder the write lands in: a dangling link's target's, not the link's own
        raise OutputError(f"output folder does not exist: {path.parent if real == path.absolute() else real.parent}")
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
    if probe:  # (atomic_write makes its temporary at once: that is its probe)
        check_writable(real, path)
    return real


def temp_beside(real: Path, shown: Path) -> str:
    """A new empty `.NAME.PID.XXXXXXXX.tmp` beside `real` (0600); OutputError naming `shown` when none can be made."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(real.name), suffix=".tmp", dir=real.parent)
    except OSError as err:
        raise OutputError(f"cannot write {shown}: {err.strerror or first_line(err)}") from None
    os.close(fd)
    return tmp


def check_writable(real: Path, shown: Path) -> None:
    """OutputError when no file can be made in `real`'s folder (read-only, no permission: root ignores the mode
    bits, not a read-only file system), found now by making and removing an empty temporary there, before any
    work (a run of minutes found it at its end)."""
    probe = temp_beside(real, shown)
    try:
        os.unlink(probe)
    except OSError as err:  # a folder where files can be made but not deleted (chattr +a): nor can a write's be
        raise OutputError(f"cannot write {shown}: {err.strerror or first_line(err)}") from None


NAME_IN_TEMP = 120  # bytes of an output's name kept in its temporary's (a name may take 255 bytes; so may no more)


def temp_stem(name: str) -> str:
    """`name` as its temporary files carry it: itself, or a hash of it when it is too long to leave room for the
    rest (`.NAME.PID.XXXXXXXX.tmp` must fit a file name's 255 bytes too)."""
    raw = os.fsencode(name)
    return name if len(raw) <= NAME_IN_TEMP else "~" + hashlib.sha256(raw).hexdigest()[:32]


def temp_prefix(name: str) -> str:
    """The start of the name of a temporary file or folder beside `name`: `.NAME.PID.` (PID: this process's)."""
    return f".{temp_stem(name)}.{os.getpid()}."


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (one of another user's counts as alive)."""
    if pid <= 0:
        return True  # never ours to judge: kill(0) and kill(-n) address groups
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError (another user's) or an id too large for the OS: leave its file alone
        return True
    return True


def stale_temps(folder: Path, name: str) -> list[Path]:
    """The temporary files and folders that writers of `name` in `folder` left when they were killed:
    `.NAME.PID.XXXXXXXX.tmp` or `.old` whose PID no longer runs (a live writer's, and anything else, are not)."""
    pattern = re.compile(rf"\.{re.escape(temp_stem(name))}\.(\d{{1,9}})\.[a-z0-9_]{{8}}\.(?:tmp|old)")
    try:
        entries = sorted(os.listdir(folder))
    except OSError:
        return []
    matches = [(entry, pattern.fullmatch(entry)) for entry in entries]
    return [folder / entry for entry, match in matches if match and not pid_alive(int(match.group(1)))]


def remove_stale_temps(folder: Path, name: str, writers_folder: Callable[[Path], bool] | None = None) -> None:
    """Delete stale_temps(folder, name) that are what the writer makes: regular files, and (for a writer of folders)
    the folders `writers_folder` says are its own (see is_writers_folder); anything else of such a name is a user's
    and stays, and so does one that cannot be deleted (already gone, a read-only folder)."""
    for path in stale_temps(folder, name):
        try:
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode):
                path.unlink(missing_ok=True)
            elif stat.S_ISDIR(mode) and writers_folder is not None and writers_folder(path):
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass


def is_writers_folder(path: Path, contents: frozenset[str]) -> bool:
    """Whether the folder `path` holds nothing but regular files of `contents`' names (what a writer of folders
    makes): a link, a folder or another name in it is a user's."""
    entries = os.listdir(path)
    return set(entries) <= contents and all(stat.S_ISREG(os.lstat(path / entry).st_mode) for entry in entries)


def atomic_write(path: str | Path, write: Callable[[str], object], inputs: Iterable[str | Path] = ()) -> None:
    """Call write(tmp_path) on a temporary file beside `path`, then rename it into place.

    `path` is checked first (check_output_path: never a device, a folder or one of `inputs`). A crash,
    a full disk or Ctrl-C midway leaves `path` as it was: never a half-written file. OS errors become
    one-line OutputErrors. The temporary file is `.NAME.PID.XXXXXXXX.tmp`: one that a killed writer left
    (its PID no longer runs) is deleted by the next write of the same path.
    """
    real = check_output_path(path, inputs, probe=False)
    remove_stale_temps(real.parent, real.name)
    tmp = temp_beside(real, Path(path))
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
