"""Writing a file so that readers see the old file or the whole new one, never a part.

:func:`write_atomically` writes to a file with no name (Linux ``O_TMPFILE``) and
links it into place when it is complete: a save killed while writing (even by
SIGKILL) leaves nothing behind, and two threads or processes saving to one path
each write their own file, so the path ends up holding one of them whole.  Where
``O_TMPFILE`` or ``/proc`` is missing (macOS, Windows, some network file systems)
it writes to a uniquely named hidden file next to the target and renames it; an
exception removes that file, a SIGKILL leaves it.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["write_atomically"]


def _anonymous(directory: Path) -> int | None:
    """An open, nameless file in *directory*, or None where the system cannot make one."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not Path("/proc/self/fd").is_dir():
        return None
    try:
        return os.open(directory, flag | os.O_RDWR, 0o666)  # the umask applies
    except OSError:  # EOPNOTSUPP, EISDIR (old kernels), EINVAL: not on this file system
        return None


def _temp_name(path: Path) -> str:
    # unique per call: a pid alone let two threads write into one temporary file
    return f".{path.name}.{uuid.uuid4().hex}.tmp"


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(fh)`` with a new binary file and put that file at *path* once it returns.

    Parameters
    ----------
    path:
        The final name; its directory must exist.  An existing file there is
        replaced in one step (``rename``).
    write:
        Writes the whole content to ``fh`` (seekable, readable).  If it raises,
        *path* is left as it was and no file is left behind.
    """
    directory = path.parent
    fd = _anonymous(directory)
    if fd is not None:
        with os.fdopen(fd, "w+b") as fh:
            write(fh)
            fh.flush()
            dirfd = os.open(directory, os.O_RDONLY)
            try:
                name = _temp_name(path)
                # linkat(AT_SYMLINK_FOLLOW) through /proc gives the nameless file a name;
                # a dir fd makes os.link call linkat rather than link (which would not follow)
                os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=dirfd, follow_symlinks=True)
                try:
                    os.replace(name, path.name, src_dir_fd=dirfd, dst_dir_fd=dirfd)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(name, dir_fd=dirfd)
                    raise
            finally:
                os.close(dirfd)
        return
    tmp = directory / _temp_name(path)
    # O_EXCL: never write into someone else's file; mode 0o666 less the umask, as open() gives
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "w+b") as fh:
            write(fh)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
