"""SHA-256 digests of data files: the bundled data sets are checked before they are read."""

from __future__ import annotations

import functools
import hashlib
import os
import re
from pathlib import Path

__all__ = [
    "BUNDLED_DIR",
    "ChecksumError",
    "bundled_sha256",
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
