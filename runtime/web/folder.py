"""The output folder of mm-web: which folders it may replace, and a build that appears whole or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from makemore.data import OutputError, first_line
from makemore.data.files import is_writers_folder, remove_stale_temps, stale_temps, temp_prefix

MARKER = "makemore-site.json"  # every site mm-web writes holds it: such a folder may be replaced


def check_site_folder(
    out: str | Path, inputs: tuple[str | Path, ...] = (), site_names: frozenset[str] = frozenset()
) -> Path:
    """The real path of the folder `out` that a build will create or replace, after refusing what no user means.

    Allowed: a path that does not exist (its parent must), an empty folder, or a site written before: a folder
    whose MARKER is a regular file and which holds nothing but `site_names` (the files a site holds), so that a
    user's own files (a `.git`, a CNAME) are never deleted with it. Refused: anything else that exists (a file,
    a device, a folder with other things in it, a site file's name that is a folder, a link or a fifo), the
    current folder or one above it, and a folder that holds one of `inputs` (the model would be deleted with the
    old site).
    """
    path = Path(out)
    real = Path(os.path.realpath(path))
    if not real.parent.is_dir():
        raise OutputError(f"output folder's parent does not exist: {path.parent}")
    if real == real.parent:
        raise OutputError(f"output folder cannot be the root folder: {path}")
    here = Path(os.path.realpath(Path.cwd()))
    if real == here or real in here.parents:
        raise OutputError(f"output folder {path} is the current folder or holds it: write the site elsewhere")
    if os.path.lexists(real):
        if not real.is_dir():
            raise OutputError(f"output path exists and is not a folder: {path}")
        problem = not_a_site(real, site_names)
        if problem is not None:
            raise OutputError(f"output folder {path} {problem}")
    for source in inputs:
        if real in Path(os.path.realpath(source)).parents:
            raise OutputError(f"output folder {path} holds the input {source}: write the site elsewhere")
    return real


def not_a_site(folder: Path, site_names: frozenset[str]) -> str | None:
    """Why the folder `folder` is not one mm-web may delete (None: it is empty, or a site it wrote: a regular MARKER
    and nothing but `site_names`, each a regular file)."""
    try:
        entries = os.listdir(folder)
    except OSError as err:
        return f"cannot be read: {err.strerror}"
    marker = folder / MARKER
    if entries and (os.path.islink(marker) or not os.path.isfile(marker)):
        return f"is not empty and not a site mm-web wrote (no {MARKER})"
    others = sorted(set(entries) - site_names - {MARKER})
    if others:
        return f"holds {others[0]!r:.60}, which no site of mm-web holds"
    odd = [name for name in sorted(entries) if not is_plain_file(folder / name)]
    if odd:
        return f"holds {odd[0]!r:.60} that is not a regular file: not a site"
    return None


def is_plain_file(path: Path) -> bool:
    """A regular file that is not a link (a link, a folder, a fifo or a device is not)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def replace_folder(real: Path, build: Callable[[Path], object], contents: frozenset[str] = frozenset()) -> None:
    """Call build(tmp) on a new folder beside `real`, then put it in `real`'s place (the old one is deleted).

    A failure or Ctrl-C midway leaves `real` as it was and removes the new folder; OS errors become one line.
    The folders beside it are named as atomic_write's temporary files: a killed build's are deleted by the next,
    after its old site is put back in place if the kill came between the two renames (a folder of that name that
    holds anything but `contents`' names, the site's files, is a user's and is left alone).
    """
    old_sites = [
        path
        for path in stale_temps(real.parent, real.name)
        if path.suffix == ".old" and not path.is_symlink() and path.is_dir() and not_a_site(path, contents) is None
    ]  # a folder of that name that is not a site mm-web wrote is a user's: never put in place, never deleted
    if old_sites and not os.path.lexists(real):
        with contextlib.suppress(OSError):  # at worst the old site is deleted below: the new one replaces it
            os.replace(old_sites[-1], real)
    # a killed build's .tmp holds site files; its .old is a site moved aside (its marker) or the empty folder made
    # for one: any other folder of such a name is a user's
    remove_stale_temps(
        real.parent,
        real.name,
        lambda path: (
            is_writers_folder(path, contents) and (path.suffix != ".old" or not_a_site(path, contents) is None)
        ),
    )
    try:
        tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(real.name), suffix=".tmp", dir=real.parent))
    except OSError as err:
        raise OutputError(f"cannot write in {real.parent}: {err.strerror}") from None
    old = None
    try:
        build(tmp)
        umask = os.umask(0)  # mkdtemp makes the folder 0700: give it the mode a plain mkdir would, for a web server
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        if real.is_dir() and os.listdir(real):
            old = Path(tempfile.mkdtemp(prefix=temp_prefix(real.name), suffix=".old", dir=real.parent))
            os.replace(real, old)  # onto the empty folder just made
        os.replace(tmp, real)  # replaces a missing path or an empty folder
    except BaseException as err:
        if old is not None and not os.path.lexists(real):
            os.replace(old, real)  # the old site back in its place
            old = None
        if isinstance(err, OSError):
            raise OutputError(f"cannot write {real}: {err.strerror or first_line(err)}") from None
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
