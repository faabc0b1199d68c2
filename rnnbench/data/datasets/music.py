"""Polyphonic music piano rolls (Boulanger-Lewandowski et al., 2012): JSB, Nottingham, ..."""

from __future__ import annotations

import functools
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rnnbench.data.download import ChecksumError, bundled_sha256, sha256_file, verify_bundled

__all__ = ["MUSIC_ALIASES", "MUSIC_DATASETS", "N_KEYS", "load_music", "music_name"]

MUSIC_DATASETS = ("jsb_chorales", "nottingham", "musedata", "piano_midi")
N_KEYS = 88
SPLITS = ("train", "valid", "test")

MUSIC_ALIASES = {
    "jsb": "jsb_chorales",
    "jsbchorales": "jsb_chorales",
    "jsb_chorales": "jsb_chorales",
    "chorales": "jsb_chorales",
    "nottingham": "nottingham",
    "muse": "musedata",
    "musedata": "musedata",
    "muse_data": "musedata",
    "piano": "piano_midi",
    "pianomidi": "piano_midi",
    "piano_midi": "piano_midi",
}
"""Accepted spellings (after lower-casing and mapping ``-``/space to ``_``) -> canonical name."""


def music_name(name: str) -> str:
    """Return the canonical data-set name for ``name`` or an alias (``"jsb"``, ``"Piano-midi"``).

    Raises:
        ValueError: If the name is unknown; the message lists the known names.
    """
    key = str(name).strip().lower().replace("-", "_").replace(" ", "_")
    if key not in MUSIC_ALIASES:
        aliases = ", ".join(sorted(a for a in MUSIC_ALIASES if a not in MUSIC_DATASETS))
        raise ValueError(
            f"unknown music data set {name!r}; known: {', '.join(MUSIC_DATASETS)} "
            f"(aliases: {aliases})"
        )
    return MUSIC_ALIASES[key]


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"cannot read {path} as a .npz archive ({err}); replace it") from err
    for split in SPLITS:
        for key in (split, f"{split}_lengths"):
            if key not in arrays:
                raise ValueError(
                    f"{path} has no array {key!r}; found {sorted(arrays)}. Expected keys "
                    "train/valid/test (frames x 88) and train_lengths/valid_lengths/test_lengths"
                )
        rolls, lengths = arrays[split], arrays[f"{split}_lengths"]
        if rolls.ndim != 2 or rolls.shape[1] != N_KEYS:
            raise ValueError(f"{path}: {split!r} has shape {rolls.shape}, expected (frames, 88)")
        if lengths.ndim != 1 or (lengths <= 0).any() or int(lengths.sum()) != rolls.shape[0]:
            raise ValueError(
                f"{path}: {split}_lengths must be positive and sum to the {rolls.shape[0]} "
                f"frames of {split!r} (they sum to {int(lengths.sum())})"
            )
    return arrays


@functools.lru_cache(maxsize=8)
def _load_arrays(path: str, sha256: str | None, stamp: tuple) -> dict[str, np.ndarray]:
    del stamp  # only part of the cache key, so that a file changed on disk is read again
    if sha256 is not None:
        actual = sha256_file(path)
        if actual != sha256:
            raise ChecksumError(
                path,
                sha256,
                actual,
                hint=(
                    "This is not the standard file: replace it with a good copy, or pass "
                    "verify=False to load different data in the same format."
                ),
            )
    return _read_npz(Path(path))


def load_music(
    name: str, root: str | os.PathLike | None = None, *, verify: bool = True
) -> dict[str, list[Tensor]]:
    """Load a polyphonic music data set as lists of piano-roll pieces.

    Args:
        name: One of :data:`MUSIC_DATASETS` or an alias (``"jsb"``, ``"piano-midi"``, ...).
        root: Folder holding ``{name}.npz`` (canonical name); ``None`` uses the copy
            bundled with the package (always verified against the bundled ``SHA256SUMS``).
        verify: Check a ``root`` file against the bundled digest of the standard file.
            Pass ``False`` to load other data in the same format.

    Returns:
        ``{"train": [...], "valid": [...], "test": [...]}``, each piece a float32
        ``(L_i, 88)`` tensor of 0/1 key states. The raw arrays are cached per process; the
        tensors are new on every call.

    Raises:
        ValueError: If ``name`` is unknown or the file is malformed.
        ChecksumError: If the file's digest is not the expected one.
        FileNotFoundError: If ``{name}.npz`` is missing under ``root``.
    """
    canonical = music_name(name)
    relpath = f"polyphonic/{canonical}.npz"
    if root is None:
        path = verify_bundled(relpath)
        arrays = _load_arrays(str(path), None, ())  # already verified just above
    else:
        path = Path(root).expanduser().resolve() / f"{canonical}.npz"
        if not path.is_file():
            raise FileNotFoundError(f"music data set {canonical!r}: no file {path}")
        st = path.stat()
        expected = bundled_sha256(relpath) if verify else None
        arrays = _load_arrays(str(path), expected, (st.st_size, st.st_mtime_ns))

    out: dict[str, list[Tensor]] = {}
    for split in SPLITS:
        rolls = torch.from_numpy(arrays[split]).to(torch.float32)  # (sum L_i, 88)
        lengths = arrays[f"{split}_lengths"].tolist()
        out[split] = list(torch.split(rolls, lengths))  # each (L_i, 88)
    return out
