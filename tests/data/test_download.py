"""Tests for the SHA-256 checks of data files (the bundled sets and any file)."""

import hashlib
import os

import pytest

from rnnbench.data.download import (
    BUNDLED_DIR,
    ChecksumError,
    read_sha256sums,
    sha256_file,
    verify_bundled,
    verify_file,
)

PAYLOAD = b"rnnbench test payload\n" * 100_000  # ~2 MiB: several read chunks


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "src" / "data.bin"
    path.parent.mkdir()
    path.write_bytes(PAYLOAD)
    return path


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_sha256_file_matches_hashlib(source):
    assert sha256_file(source) == digest(PAYLOAD)


def test_verify_file_accepts_right_and_upper_case_digest(source):
    verify_file(source, digest(PAYLOAD))
    verify_file(source, digest(PAYLOAD).upper())


def test_verify_file_message_names_file_digests_and_remedy(source):
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as info:
        verify_file(source, wrong)
    err = info.value
    assert isinstance(err, ValueError)
    msg = str(err)
    assert str(source) in msg and wrong in msg and digest(PAYLOAD) in msg
    assert "delete" in msg and "checksum" in msg
    assert err.expected == wrong and err.actual == digest(PAYLOAD)


def test_verify_file_rejects_malformed_digest_and_missing_file(source, tmp_path):
    with pytest.raises(ValueError, match="64-character"):
        verify_file(source, "abc")
    with pytest.raises(FileNotFoundError):
        verify_file(tmp_path / "nope", digest(PAYLOAD))


def test_bundled_sums_cover_every_bundled_data_file_and_verify():
    sums = read_sha256sums(BUNDLED_DIR / "SHA256SUMS")
    on_disk = {
        os.path.relpath(os.path.join(d, f), BUNDLED_DIR).replace(os.sep, "/")
        for d, _, files in os.walk(BUNDLED_DIR)
        for f in files
        if f not in ("SHA256SUMS", "README.md")
    }
    assert set(sums) == on_disk
    for relpath in sums:
        assert verify_bundled(relpath).is_file()


def test_read_sha256sums_reports_bad_line(tmp_path):
    path = tmp_path / "SHA256SUMS"
    path.write_text(f"{'a' * 64}  ok.bin\nnot a checksum line\n")
    with pytest.raises(ValueError, match="line 2"):
        read_sha256sums(path)
