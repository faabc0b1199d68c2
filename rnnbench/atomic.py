"""Writing a file whole or not at all: a temporary file in the same folder, then a rename."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: str | Path, write: Callable[[str], None], *,
                 durable: bool = False) -> None:
    """Calls ``write(tmp_path)`` on a temporary file beside ``path``, then renames it over
    ``path``, so a reader never sees a half-written file and a failure leaves the old one.

    The file gets the permissions ``open()`` would give (``mkstemp`` makes 0600). With
    ``durable``, the file is fsynced before the rename and the folder after it, so the new
    file survives a power cut once this returns (checkpoints, metrics).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        if durable:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def fsync_dir(folder: str | Path) -> None:
    """Makes a rename in ``folder`` durable (a no-op where the file system cannot)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a directory; the rename itself is atomic
    finally:
        os.close(fd)


__all__ = ["fsync_dir", "write_atomic"]
