"""Download files and verify their SHA-256 digests (atomic writes, nothing half-written)."""

from __future__ import annotations

import functools
import hashlib
import os
import re
import sys
import tempfile
import urllib.request
from pathlib import Path

__all__ = [
    "BUNDLED_DIR",
    "ChecksumError",
    "bundled_sha256",
    "fetch",
    "read_sha256sums",
    "sha256_file",
    "verify_bundled",
    "verify_file",
]

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"
"""Folder of the data shipped inside the package (see its README.md)."""

_CHUNK = 1 << 20
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


class ChecksumError(ValueError):
    """A file's SHA-256 digest differs from the expected one.

    Attributes:
        path: The file that failed the check.
        expected: The digest it should have.
        actual: The digest it has.
    """

    def __init__(self, path: str | os.PathLike, expected: str, actual: str, hint: str = ""):
        self.path = Path(path)
        self.expected = expected.lower()
        self.actual = actual.lower()
        hint = hint or (
            "The file is corrupt, truncated or a different version: delete it and download it "
            "again, or, if you trust this version, pass its checksum instead."
        )
        super().__init__(
            f"SHA-256 mismatch for {self.path}:\n"
            f"  expected {self.expected}\n"
            f"  actual   {self.actual}\n"
            f"{hint}"
        )


def _check_digest(sha256: str) -> str:
    if not isinstance(sha256, str) or not _HEX64.match(sha256):
        raise ValueError(
            f"sha256 must be a 64-character hexadecimal string, got {sha256!r}; "
            "compute it with `sha256sum FILE` or rnnbench.data.download.sha256_file(FILE)"
        )
    return sha256.lower()


def sha256_file(path: str | os.PathLike) -> str:
    """Return the SHA-256 digest of a file as lower-case hex, reading it in 1 MiB chunks.

    Args:
        path: File to hash.

    Returns:
        The 64-character hexadecimal digest.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: str | os.PathLike, sha256: str) -> None:
    """Check that a file has the expected SHA-256 digest.

    Args:
        path: File to check.
        sha256: Expected digest (hex, any case).

    Raises:
        FileNotFoundError: If the file does not exist.
        ChecksumError: If the digests differ; the message names the file and both digests.
        ValueError: If ``sha256`` is not a 64-character hex string.
    """
    expected = _check_digest(sha256)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"cannot verify {path}: no such file")
    actual = sha256_file(path)
    if actual != expected:
        raise ChecksumError(path, expected, actual)


def read_sha256sums(path: str | os.PathLike) -> dict[str, str]:
    """Parse a ``sha256sum``-style checksum file.

    Args:
        path: File with lines ``<hex digest>  <relative path>`` (``*`` before the path, for
            binary mode, is accepted; blank lines and ``#`` comments are skipped).

    Returns:
        Mapping from relative path (``/``-separated, as written) to lower-case digest.

    Raises:
        ValueError: If a line is malformed (the message gives the line number).
    """
    sums: dict[str, str] = {}
    for lineno, line in enumerate(Path(path).read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not _HEX64.match(parts[0]):
            raise ValueError(
                f"{path}, line {lineno}: expected '<sha256 hex>  <path>', got {line!r}"
            )
        sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


@functools.cache
def _bundled_sums() -> dict[str, str]:
    return read_sha256sums(BUNDLED_DIR / "SHA256SUMS")


def bundled_sha256(relpath: str) -> str:
    """Return the digest recorded in the bundled ``SHA256SUMS`` for ``relpath``.

    Args:
        relpath: Path relative to :data:`BUNDLED_DIR`, e.g. ``"ptb/ptb.train.txt.gz"``.

    Raises:
        KeyError: If ``SHA256SUMS`` has no entry for it.
    """
    sums = _bundled_sums()
    if relpath not in sums:
        raise KeyError(f"{relpath!r} is not listed in {BUNDLED_DIR / 'SHA256SUMS'}")
    return sums[relpath]


def verify_bundled(relpath: str) -> Path:
    """Verify a bundled file against the bundled ``SHA256SUMS`` and return its path.

    Args:
        relpath: Path relative to :data:`BUNDLED_DIR`, e.g. ``"ptb/ptb.train.txt.gz"``.

    Returns:
        The absolute path of the verified file.

    Raises:
        ChecksumError: If the file was modified; reinstall the package to restore it.
        FileNotFoundError: If the file is missing.
    """
    path = BUNDLED_DIR / relpath
    expected = bundled_sha256(relpath)
    if not path.is_file():
        raise FileNotFoundError(
            f"bundled data file {path} is missing; reinstall rnnbench to restore it"
        )
    actual = sha256_file(path)
    if actual != expected:
        raise ChecksumError(
            path,
            expected,
            actual,
            hint="The bundled copy was modified or damaged: reinstall rnnbench to restore it.",
        )
    return path


def _report(done: int, total: int | None, name: str) -> None:
    if total:
        msg = f"\r{name}: {done / 2**20:.1f} / {total / 2**20:.1f} MiB ({100 * done / total:.0f}%)"
    else:
        msg = f"\r{name}: {done / 2**20:.1f} MiB"
    sys.stderr.write(msg)
    sys.stderr.flush()


def fetch(
    url: str,
    dest: str | os.PathLike,
    sha256: str,
    *,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` and verify its SHA-256 digest.

    The data go to a temporary file in ``dest``'s folder, are hashed while they are
    written, and are renamed onto ``dest`` only when the digest matches, so ``dest`` is
    never left half-written: on any failure (network error, bad checksum, interrupt) the
    temporary file is removed and an existing ``dest`` is left untouched. When ``dest``
    already exists with the right digest nothing is downloaded.

    Args:
        url: Source URL; anything ``urllib.request.urlopen`` accepts (``https://``,
            ``file://``, ...).
        dest: Target file path; missing parent folders are created.
        sha256: Expected SHA-256 digest of the file (hex).
        progress: Write a progress line to stderr while downloading.
        timeout: Socket timeout in seconds.

    Returns:
        ``dest`` as a :class:`~pathlib.Path`.

    Raises:
        ChecksumError: If the downloaded data have a different digest (nothing is kept).
        ValueError: If ``sha256`` is not a 64-character hex string.
        urllib.error.URLError: If the download fails.
    """
    expected = _check_digest(sha256)
    dest = Path(dest)
    if dest.is_file() and sha256_file(dest) == expected:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)

    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        done = 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            for chunk in iter(lambda: resp.read(_CHUNK), b""):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress:
                    _report(done, total, dest.name)
            out.flush()
            os.fsync(out.fileno())
        if progress:
            sys.stderr.write("\n")
        actual = digest.hexdigest()
        if actual != expected:
            raise ChecksumError(
                dest,
                expected,
                actual,
                hint=(
                    f"The data downloaded from {url} were discarded. The server may have sent "
                    "a different version or an error page: check the URL, try again, or pass "
                    "the right checksum if this version is the one you want."
                ),
            )
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a data file should be readable by all
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest
