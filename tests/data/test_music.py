"""Tests for the polyphonic music loader on the bundled data."""

import shutil

import numpy as np
import pytest
import torch

from rnnbench.data.datasets.music import MUSIC_DATASETS, N_KEYS, load_music, music_name
from rnnbench.data.download import BUNDLED_DIR, ChecksumError

PIECES = {
    "jsb_chorales": (229, 76, 77),
    "nottingham": (694, 173, 170),
    "musedata": (524, 135, 124),
    "piano_midi": (87, 12, 25),
}


@pytest.mark.parametrize("name", MUSIC_DATASETS)
def test_piece_counts_shapes_and_frames(name):
    data = load_music(name)
    assert tuple(len(data[s]) for s in ("train", "valid", "test")) == PIECES[name]
    raw = np.load(BUNDLED_DIR / f"polyphonic/{name}.npz")
    for split, pieces in data.items():
        assert all(p.dtype == torch.float32 and p.ndim == 2 for p in pieces)
        assert all(p.shape[1] == N_KEYS and p.shape[0] > 0 for p in pieces)
        assert [len(p) for p in pieces] == raw[f"{split}_lengths"].tolist()
        assert np.array_equal(torch.cat(pieces).numpy(), raw[split].astype(np.float32))


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("jsb", "jsb_chorales"),
        ("JSB-Chorales", "jsb_chorales"),
        ("Nottingham", "nottingham"),
        ("muse", "musedata"),
        ("piano-midi", "piano_midi"),
        ("Piano midi", "piano_midi"),
    ],
)
def test_aliases(alias, name):
    assert music_name(alias) == name


def test_alias_loads_the_same_data():
    a, b = load_music("jsb"), load_music("jsb_chorales")
    assert all(torch.equal(x, y) for x, y in zip(a["test"], b["test"], strict=True))


def test_each_call_returns_new_tensors():
    first = load_music("jsb")
    first["train"][0].fill_(7.0)
    assert load_music("jsb")["train"][0].max() <= 1.0


def test_unknown_name_lists_known_sets():
    with pytest.raises(ValueError, match="unknown music") as info:
        load_music("bach_fugues")
    assert all(name in str(info.value) for name in MUSIC_DATASETS)


def test_root_copy_verified(tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    shutil.copy(BUNDLED_DIR / "polyphonic/jsb_chorales.npz", good)
    assert len(load_music("jsb", root=good)["train"]) == 229

    bad = tmp_path / "bad"
    bad.mkdir()
    raw = dict(np.load(BUNDLED_DIR / "polyphonic/jsb_chorales.npz"))
    raw["train"][0, 0] ^= 1  # one flipped key
    np.savez_compressed(bad / "jsb_chorales.npz", **raw)
    with pytest.raises(ChecksumError, match="jsb_chorales.npz"):
        load_music("jsb", root=bad)
    assert len(load_music("jsb", root=bad, verify=False)["train"]) == 229


def test_root_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nottingham.npz"):
        load_music("nottingham", root=tmp_path)
    np.savez(tmp_path / "nottingham.npz", train=np.zeros((3, 88), np.uint8))
    with pytest.raises(ValueError, match="train_lengths"):
        load_music("nottingham", root=tmp_path, verify=False)
