"""Penn Treebank language-model corpus (Mikolov's split) at word or character level."""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rnnbench.data.download import ChecksumError, verify_bundled

__all__ = [
    "EOS",
    "PTB_LEVELS",
    "PTB_TEXT_SHA256",
    "UNK",
    "Corpus",
    "Vocab",
    "load_ptb",
    "sentence_starts",
]

EOS = "<eos>"
UNK = "<unk>"
WORD_SEP = "_"
PTB_LEVELS = ("word", "char")
SPLITS = ("train", "valid", "test")

PTB_TEXT_SHA256 = {
    "train": "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
    "valid": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
    "test": "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
}
"""SHA-256 of the uncompressed ``ptb.{split}.txt`` files; a ``root`` copy is checked against it."""


class Vocab:
    """A token <-> id mapping; ids follow the order of ``itos``.

    Args:
        itos: The tokens, id ``i`` being ``itos[i]``; must be unique.
        unk_token: Token that :meth:`encode` substitutes for unknown tokens when it is in
            the vocabulary; otherwise unknown tokens raise ``KeyError``.
    """

    def __init__(self, itos: Sequence[str], unk_token: str | None = UNK):
        self.itos: list[str] = list(itos)
        self.stoi: dict[str, int] = {tok: i for i, tok in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            dups = sorted(t for t, n in Counter(self.itos).items() if n > 1)
            raise ValueError(f"vocabulary tokens must be unique; duplicated: {dups[:10]}")
        self.unk_token = unk_token

    @classmethod
    def from_tokens(cls, tokens: Iterable[str], unk_token: str | None = UNK) -> Vocab:
        """Build a vocabulary from a token stream, ids in order of first occurrence."""
        return cls(list(dict.fromkeys(tokens)), unk_token=unk_token)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: object) -> bool:
        return token in self.stoi

    def __repr__(self) -> str:
        head = ", ".join(repr(t) for t in self.itos[:5])
        return f"Vocab(size={len(self)}, itos=[{head}{', ...' if len(self) > 5 else ''}])"

    def encode(self, tokens: Iterable[str]) -> Tensor:
        """Map tokens to ids.

        Args:
            tokens: Tokens to encode.

        Returns:
            ``(N,)`` int64 tensor of ids.

        Raises:
            KeyError: If a token is unknown and the vocabulary has no ``unk_token``.
        """
        stoi = self.stoi
        unk = stoi.get(self.unk_token) if self.unk_token is not None else None
        if unk is None:
            try:
                ids = [stoi[t] for t in tokens]
            except KeyError as err:
                raise KeyError(
                    f"token {err.args[0]!r} is not in the vocabulary ({len(self)} tokens) "
                    "and the vocabulary has no unknown-token entry to map it to"
                ) from None
        else:
            ids = [stoi.get(t, unk) for t in tokens]
        return torch.tensor(ids, dtype=torch.long)  # (N,)

    def decode(self, ids: Tensor | Iterable[int]) -> list[str]:
        """Map ids back to tokens.

        Args:
            ids: ``(N,)`` integer tensor or iterable of ints.

        Returns:
            The ``N`` tokens.
        """
        if isinstance(ids, Tensor):
            ids = ids.reshape(-1).tolist()
        return [self.itos[i] for i in ids]


@dataclass
class Corpus:
    """An encoded language-model corpus.

    Attributes:
        train: ``(N_train,)`` int64 token-id stream.
        valid: ``(N_valid,)`` int64 token-id stream.
        test: ``(N_test,)`` int64 token-id stream.
        vocab: The vocabulary the ids refer to (built from ``train``).
    """

    train: Tensor
    valid: Tensor
    test: Tensor
    vocab: Vocab


def _word_tokens(lines: list[str]) -> list[str]:
    tokens: list[str] = []
    for line in lines:
        tokens.extend(line.split())
        tokens.append(EOS)
    return tokens


_UNK_CODE, _EOS_CODE = "\x01", "\x02"  # one-character stand-ins while encoding


def _char_stream(lines: list[str]) -> np.ndarray:
    """Spell the lines out as code points: ``_`` between words, one code each for <unk>/<eos>."""
    parts = []
    for line in lines:
        if _UNK_CODE in line or _EOS_CODE in line:
            raise ValueError("PTB text must not contain the control characters \\x01 or \\x02")
        words = [_UNK_CODE if w == UNK else w for w in line.split()]
        parts.append(WORD_SEP.join(words) + _EOS_CODE)
    return np.frombuffer("".join(parts).encode("utf-32-le"), dtype=np.uint32)


def _encode_chars(lines: dict[str, list[str]]) -> Corpus:
    # Vectorised: a Python list of ~5M one-character tokens would take seconds to encode.
    streams = {split: _char_stream(lines[split]) for split in SPLITS}
    codes, first = np.unique(streams["train"], return_index=True)
    codes = codes[np.argsort(first)]  # first-occurrence order
    named = {ord(_UNK_CODE): UNK, ord(_EOS_CODE): EOS}
    vocab = Vocab([named.get(int(c), chr(c)) for c in codes])
    if UNK not in vocab:
        vocab.unk_token = None
    order = np.argsort(codes)
    sorted_codes = codes[order]
    encoded = {}
    for split in SPLITS:
        stream = streams[split]
        pos = np.minimum(np.searchsorted(sorted_codes, stream), len(sorted_codes) - 1)
        known = sorted_codes[pos] == stream
        ids = order[pos]
        if not known.all():
            if vocab.unk_token is None:
                bad = chr(int(stream[~known][0]))
                raise KeyError(
                    f"character {bad!r} of the {split} split never occurs in train and the "
                    "vocabulary has no <unk> to map it to"
                )
            ids = np.where(known, ids, vocab.stoi[UNK])
        encoded[split] = torch.from_numpy(ids.astype(np.int64))  # (N_split,)
    return Corpus(encoded["train"], encoded["valid"], encoded["test"], vocab)


def _lines(data: bytes) -> list[str]:
    # Split on "\n" only: str.splitlines also breaks on form feeds and other rare separators.
    lines = data.decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _read_root_file(root: Path, split: str, verify: bool) -> bytes:
    candidates = [root / f"ptb.{split}.txt", root / f"ptb.{split}.txt.gz"]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise FileNotFoundError(
            f"PTB {split} split not found in {root}: looked for "
            + " and ".join(p.name for p in candidates)
        )
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(
                f"cannot decompress {path} ({err}); the file is damaged: replace it"
            ) from err
    if verify:
        actual = hashlib.sha256(raw).hexdigest()
        if actual != PTB_TEXT_SHA256[split]:
            raise ChecksumError(
                path,
                PTB_TEXT_SHA256[split],
                actual,
                hint=(
                    "(digest of the uncompressed text) This is not the standard PTB file: "
                    "replace it with a good copy, or pass verify=False to load a different "
                    "corpus in the same format."
                ),
            )
    return raw


def _file_stamp(root: Path) -> tuple:
    # Part of the cache key, so that files changed on disk are read again.
    stamp = []
    for split in SPLITS:
        for name in (f"ptb.{split}.txt", f"ptb.{split}.txt.gz"):
            p = root / name
            if p.is_file():
                st = p.stat()
                stamp.append((name, st.st_size, st.st_mtime_ns))
    return tuple(stamp)


@functools.lru_cache(maxsize=8)
def _load_cached(level: str, root: str | None, verify: bool, stamp: tuple) -> Corpus:
    del stamp  # only part of the cache key
    texts: dict[str, bytes] = {}
    for split in SPLITS:
        if root is None:
            path = verify_bundled(f"ptb/ptb.{split}.txt.gz")
            texts[split] = gzip.decompress(path.read_bytes())
        else:
            texts[split] = _read_root_file(Path(root), split, verify)
    lines = {split: _lines(texts[split]) for split in SPLITS}
    if level == "char":
        return _encode_chars(lines)
    tokens = {split: _word_tokens(lines[split]) for split in SPLITS}
    vocab = Vocab.from_tokens(tokens["train"])
    encoded = {split: vocab.encode(tokens[split]) for split in SPLITS}  # each (N_split,)
    return Corpus(encoded["train"], encoded["valid"], encoded["test"], vocab)


def load_ptb(
    level: str = "word", root: str | os.PathLike | None = None, *, verify: bool = True
) -> Corpus:
    """Load the Penn Treebank language-model corpus.

    Word level: each line is split on whitespace and ``<eos>`` is appended, giving
    929,589 / 73,760 / 82,430 train / valid / test tokens and 10,000 word types
    (``<eos>`` included, ``<unk>`` is an ordinary word).

    Character level: each line's words are spelt out character by character, joined by
    ``_`` (the word separator of the usual PTB-char set-up), with ``<unk>`` kept as one
    symbol (it is a placeholder, not a word) and ``<eos>`` appended per line; leading and
    trailing spaces are dropped. The vocabulary has 49 symbols (train: 4,837,402
    symbols).

    At both levels the vocabulary is built from train in order of first occurrence, so
    ``<eos>``'s id is fixed by where it first appears (word level: 24). The result is
    cached per process; ``train``/``valid``/``test`` are fresh copies on every call, the
    ``vocab`` object is shared (don't modify it).

    Args:
        level: ``"word"`` or ``"char"``.
        root: Folder holding ``ptb.{train,valid,test}.txt`` or ``.txt.gz``; ``None`` uses
            the copy bundled with the package (verified against the bundled
            ``SHA256SUMS``).
        verify: Check ``root`` files against the SHA-256 of the standard PTB text
            (:data:`PTB_TEXT_SHA256`, digest of the uncompressed text, so ``.txt`` and
            ``.txt.gz`` copies both pass). Pass ``False`` to load another corpus in the
            same format. The bundled files are always verified.

    Returns:
        The encoded :class:`Corpus`; streams are ``(N,)`` int64 tensors.

    Raises:
        ValueError: If ``level`` is unknown or a gzip file cannot be read.
        ChecksumError: If a file's digest is not the expected one.
        FileNotFoundError: If a split is missing under ``root``.
    """
    if level not in PTB_LEVELS:
        raise ValueError(f"unknown PTB level {level!r}; choose one of {PTB_LEVELS}")
    if root is None:
        corpus = _load_cached(level, None, True, ())
    else:
        root_path = Path(root).expanduser().resolve()
        if not root_path.is_dir():
            raise FileNotFoundError(f"PTB root {root_path} is not a folder")
        corpus = _load_cached(level, str(root_path), bool(verify), _file_stamp(root_path))
    return Corpus(corpus.train.clone(), corpus.valid.clone(), corpus.test.clone(), corpus.vocab)


def sentence_starts(stream: Tensor, eos_id: int) -> Tensor:
    """Marks each sentence of a PTB stream as a document: true right after every ``<eos>``.

    A language model carries its state across ``<eos>`` by default; with these marks as
    stream boundaries a row's state is zeroed just before the first token of every new
    sentence, so no sentence conditions on the one before. The ``<eos>`` step itself still
    reads the finished sentence's state (it predicts the next sentence's first token, the
    one prediction that spans two sentences). The first token of the stream starts a
    sentence too.

    Args:
        stream: ``(N,)`` token ids.
        eos_id: The id of ``<eos>`` in ``stream``'s vocabulary.

    Returns:
        ``(N,)`` bool.
    """
    stream = torch.as_tensor(stream)
    starts = torch.zeros(stream.shape, dtype=torch.bool)  # (N,)
    starts[0] = True
    starts[1:] = stream[:-1] == eos_id
    return starts
