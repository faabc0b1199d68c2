"""Tests for the Penn Treebank loader on the bundled data."""

import gzip
import time

import pytest
import torch

from rnnbench.data.datasets.ptb import EOS, UNK, Corpus, Vocab, load_ptb
from rnnbench.data.download import BUNDLED_DIR, ChecksumError

SPLITS = ("train", "valid", "test")


@pytest.fixture(scope="module")
def word():
    return load_ptb("word")


def write_root(tmp_path, compress, edit=None):
    """Copy the bundled splits into tmp_path (as .txt or .txt.gz), optionally editing train."""
    for split in SPLITS:
        text = gzip.decompress((BUNDLED_DIR / f"ptb/ptb.{split}.txt.gz").read_bytes())
        if edit and split == "train":
            text = edit(text)
        if compress:
            (tmp_path / f"ptb.{split}.txt.gz").write_bytes(gzip.compress(text))
        else:
            (tmp_path / f"ptb.{split}.txt").write_bytes(text)
    return tmp_path


def test_word_level_token_counts_and_vocab(word):
    assert isinstance(word, Corpus)
    assert (len(word.train), len(word.valid), len(word.test)) == (929_589, 73_760, 82_430)
    assert len(word.vocab) == 10_000
    for split in SPLITS:
        ids = getattr(word, split)
        assert ids.dtype == torch.long and ids.ndim == 1
        assert 0 <= int(ids.min()) and int(ids.max()) < len(word.vocab)
    assert EOS in word.vocab and UNK in word.vocab and "N" in word.vocab


def test_word_vocab_is_first_occurrence_order(word):
    first_line = "aer banknote berlitz calloway centrust cluett fromstein gitano".split()
    assert word.vocab.itos[: len(first_line)] == first_line
    assert word.vocab.decode(word.train[:3]) == ["aer", "banknote", "berlitz"]
    eos = word.vocab.stoi[EOS]
    assert int((word.train == eos).sum()) == 42_068  # one per line


def test_vocab_encode_decode_roundtrip_and_unknowns():
    vocab = Vocab(["a", "b", UNK, EOS])
    ids = vocab.encode(["b", "a", EOS, "zzz"])
    assert ids.tolist() == [1, 0, 3, 2]  # unknown -> <unk>
    assert vocab.decode(ids) == ["b", "a", EOS, UNK]
    assert vocab.decode([0, 1]) == ["a", "b"]
    strict = Vocab(["a", "b"], unk_token=None)
    with pytest.raises(KeyError, match="zzz"):
        strict.encode(["a", "zzz"])
    with pytest.raises(ValueError, match="unique"):
        Vocab(["a", "b", "a"])
    assert Vocab.from_tokens("abcab").itos == ["a", "b", "c"]


def test_char_level_symbols_and_separators():
    char = load_ptb("char")
    itos = char.vocab.itos
    assert len(char.vocab) == 49
    assert "_" in itos and EOS in itos and UNK in itos and " " not in itos
    assert len(char.train) == 4_837_402
    text = "".join(char.vocab.decode(char.train[:60]))
    assert text.startswith("aer_banknote_berlitz_calloway")
    second = char.vocab.decode(char.train[:200]).index(EOS) + 1
    line = char.vocab.decode(char.train[second : second + 12])
    assert line[:8] == ["p", "i", "e", "r", "r", "e", "_", UNK]  # <unk> is one symbol


def test_results_are_cached_but_streams_are_fresh_copies(word):
    start = time.perf_counter()
    again = load_ptb("word")
    assert time.perf_counter() - start < 0.5
    assert again.vocab is word.vocab
    again.train[0] = -1
    assert int(load_ptb("word").train[0]) != -1


def test_root_with_plain_text_matches_bundled(tmp_path, word):
    corpus = load_ptb("word", root=write_root(tmp_path, compress=False))
    assert torch.equal(corpus.train, word.train) and torch.equal(corpus.test, word.test)
    assert corpus.vocab.itos == word.vocab.itos


def test_corrupted_root_copy_raises_checksum_error(tmp_path):
    def edit(text):
        return text.replace(b" board ", b" zzqx ", 1)

    root = write_root(tmp_path, compress=True, edit=edit)
    with pytest.raises(ChecksumError, match=r"ptb\.train\.txt\.gz") as info:
        load_ptb("word", root=root)
    assert "verify=False" in str(info.value)
    corpus = load_ptb("word", root=root, verify=False)  # a deliberate variant still loads
    assert "zzqx" in corpus.vocab and len(corpus.vocab) == 10_001


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="word"):
        load_ptb("byte")
    with pytest.raises(FileNotFoundError, match="ptb.train.txt"):
        load_ptb("word", root=tmp_path)
    (tmp_path / "ptb.train.txt.gz").write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="decompress"):
        load_ptb("word", root=tmp_path)


def test_compact_vocab_keeps_only_the_limited_training_words():
    import torch

    from rnnbench.data.catalog import build_data

    full = build_data({"dataset": "ptb", "batch_size": 10, "bptt": 5, "limit_tokens": 1001},
                      seed=0)
    small = build_data({"dataset": "ptb", "batch_size": 10, "bptt": 5, "limit_tokens": 1001,
                        "compact_vocab": True}, seed=0)
    assert full.task_kwargs["vocab_size"] == 10000
    assert small.task_kwargs["vocab_size"] == 418  # the book's chapter-5 vocabulary
    train = torch.as_tensor(small.datamodule.streams["train"])
    assert int(train.max()) == 417 and int(train.min()) == 0
    # Same word sequence, renumbered: equal tokens stay equal, different ones different.
    orig = torch.as_tensor(full.datamodule.streams["train"])
    assert torch.equal(orig[:, None] == orig[None, :], train[:, None] == train[None, :])
    assert int(torch.as_tensor(small.datamodule.streams["test"]).max()) < 418
