"""The n-gram language models: a hand-worked Kneser-Ney example, an independent reference
implementation on real PTB text, discounts, streaming state and document boundaries."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from rnnbench.baselines import KneserNey, NGramModel, TaskInfo, Unigram
from rnnbench.baselines.ngram import estimate_discounts, token_segments
from rnnbench.data.batch import Batch

A, B, C = 0, 1, 2


def _model(tokens, order, vocab=3, **kw):
    tokens = np.asarray(tokens, np.int64)
    return NGramModel(order, vocab, **kw).fit(tokens, np.arange(len(tokens)))


def _probs(model, rows):
    """Next-word distributions after each position of ``rows`` (B, L), no prior context."""
    rows = np.asarray(rows, np.int64)
    hist = model.history_ids(rows, np.zeros(rows.shape, bool))
    flat = [h if i == 0 else h.reshape(-1) for i, h in enumerate(hist)]
    return np.exp(model.log_probs(flat, rows.size)).reshape(*rows.shape, -1)


# Corpus "a b a b c a", vocabulary {a, b, c}, one fixed discount D = 0.5 (original KN).
CORPUS = [A, B, A, B, C, A]


def test_hand_worked_bigram():
    # Bigrams: ab x2, ba, bc, ca. Continuation counts of the unigrams (distinct words
    # before them): a 2 (b, c), b 1 (a), c 1 (b); total 4.
    # p1(w) = max(N1+(.w) - D, 0) / 4 + (D * 3 / 4) / 3: a 0.5, b 0.25, c 0.25.
    m = _model(CORPUS, 2, discount=0.5)
    assert np.allclose(m.unigram, [0.5, 0.25, 0.25])
    p = _probs(m, [[A, B, C]])[0]
    # after a: c(ab) = 2 of 2; gamma(a) = 0.5 * 1 / 2 = 0.25.
    #   p(b|a) = 1.5/2 + 0.25 * 0.25 = 0.8125, p(a|a) = 0.25 * 0.5, p(c|a) = 0.25 * 0.25.
    assert np.allclose(p[0], [0.125, 0.8125, 0.0625])
    # after b: ba 1, bc 1 of 2; gamma(b) = 0.5 * 2 / 2 = 0.5.
    #   p(a|b) = 0.5/2 + 0.5 * 0.5 = 0.5, p(b|b) = 0.5 * 0.25, p(c|b) = 0.25 + 0.125.
    assert np.allclose(p[1], [0.5, 0.125, 0.375])
    # after c: ca 1 of 1; gamma(c) = 0.5.  p(a|c) = 0.5 + 0.25, p(b|c) = p(c|c) = 0.125.
    assert np.allclose(p[2], [0.75, 0.125, 0.125])


def test_hand_worked_trigram_uses_continuation_counts_below_the_top():
    m = _model(CORPUS, 3, discount=0.5)
    # Order 2 now counts distinct left words: ab 1 (b; the first ab starts the text),
    # ba 1 (a), bc 1 (a), ca 1 (b). After a: p2(b|a) = 0.5/1 + 0.5 * 0.25 = 0.625,
    # p2(a|a) = 0.5 * 0.5 = 0.25, p2(c|a) = 0.125. After b and c: as in the bigram model.
    # Order 3, raw counts: aba, bab, abc, bca, once each.
    #   after "a b": a 1, c 1 of 2, gamma 0.5: p(a) = 0.25 + 0.5 * 0.5 = 0.5,
    #     p(b) = 0.5 * 0.125 = 0.0625, p(c) = 0.25 + 0.5 * 0.375 = 0.4375.
    #   after "b a": b 1 of 1, gamma 0.5: p(b) = 0.5 + 0.5 * 0.625 = 0.8125,
    #     p(a) = 0.5 * 0.25 = 0.125, p(c) = 0.5 * 0.125 = 0.0625.
    #   after "c b" (never seen): the order-2 distribution after b.
    p = _probs(m, [[A, B, A, C, B]])[0]
    assert np.allclose(p[0], [0.25, 0.625, 0.125])          # only "a" so far: order 2
    assert np.allclose(p[1], [0.5, 0.0625, 0.4375])         # "a b"
    assert np.allclose(p[2], [0.125, 0.8125, 0.0625])       # "b a"
    assert np.allclose(p[4], [0.5, 0.125, 0.375])           # "c b": backs off to p2(.|b)
    assert np.allclose(p.sum(-1), 1.0)


def test_estimated_discounts_follow_chen_and_goodman():
    # counts of counts n1..n4 = 4, 2, 2, 1: Y = 4 / (4 + 4) = 0.5;
    # D1 = 1 - 2 * 0.5 * 2/4 = 0.5, D2 = 2 - 3 * 0.5 * 2/2 = 0.5, D3+ = 3 - 4 * 0.5 * 1/2 = 2.
    a = np.array([1, 1, 1, 1, 2, 2, 3, 3, 4, 0])
    assert np.allclose(estimate_discounts(a, modified=True), [0.5, 0.5, 2.0])
    assert np.allclose(estimate_discounts(a, modified=False), [0.5, 0.5, 0.5])
    # n3 = 0 makes D2 undefined: the fallback min(r, 0.75), clipped to [0, r].
    d = estimate_discounts(np.array([1, 1, 2]), modified=True)
    assert np.all(np.isfinite(d)) and np.all((d >= 0) & (d <= [1, 2, 3]))


# ------------------------------------------------------------------ a reference on real text
def _reference(docs, order, vocab):
    """Interpolated modified Kneser-Ney, written the slow obvious way with dicts."""
    grams = [Counter() for _ in range(order + 1)]
    for doc in docs:
        for k in range(1, order + 1):
            for i in range(len(doc) - k + 1):
                grams[k][tuple(doc[i:i + k])] += 1
    adjusted = [Counter() for _ in range(order + 1)]
    adjusted[order] = Counter(grams[order])
    for k in range(1, order):
        for g in grams[k + 1]:
            adjusted[k][g[1:]] += 1  # one more distinct word before g
    discounts = {}
    for k in range(1, order + 1):
        n = Counter(adjusted[k].values())  # n[r]: how many have exactly r
        y = n[1] / (n[1] + 2 * n[2])
        discounts[k] = [1 - 2 * y * n[2] / n[1], 2 - 3 * y * n[3] / n[2],
                        3 - 4 * y * n[4] / n[3]]
    followers = [dict() for _ in range(order + 1)]
    for k in range(1, order + 1):
        for g, c in adjusted[k].items():
            followers[k].setdefault(g[:-1], {})[g[-1]] = c

    def d(k, c):
        return discounts[k][min(c, 3) - 1]

    def prob(w, h):
        k = len(h) + 1
        f = followers[k].get(h)
        if not f:
            return prob(w, h[1:]) if k > 1 else 1.0 / vocab
        total = sum(f.values())
        gamma = sum(d(k, c) for c in f.values()) / total
        lower = prob(w, h[1:]) if k > 1 else 1.0 / vocab
        c = f.get(w, 0)
        return (c - d(k, c) if c else 0.0) / total + gamma * lower

    return prob


@pytest.fixture(scope="module")
def ptb_slice():
    from rnnbench.data.datasets.ptb import load_ptb

    corpus = load_ptb()
    train = corpus.train[:6000].numpy()
    ids, inverse = np.unique(train, return_inverse=True)
    return inverse.astype(np.int64), len(ids)  # renumbered 0..V-1


def test_matches_a_reference_implementation_on_ptb_text(ptb_slice):
    tokens, vocab = ptb_slice
    docs = [tokens[:3500], tokens[3500:]]  # two documents: no n-gram spans them
    pos = np.concatenate([np.arange(len(d)) for d in docs])
    model = NGramModel(3, vocab).fit(np.concatenate(docs), pos)
    ref = _reference([list(map(int, d)) for d in docs], 3, vocab)
    rows = np.concatenate([docs[1][100:140], docs[0][:3]])[None, :]  # seen and unseen contexts
    got = _probs(model, rows)[0]  # (L, V)
    assert np.allclose(got.sum(-1), 1.0, atol=1e-5)
    for t in (0, 1, 7, 20, 39, 40, 42):
        h = tuple(int(x) for x in rows[0, max(0, t - 1):t + 1])
        want = np.array([ref(w, h) for w in range(vocab)])
        assert np.allclose(got[t], want, rtol=1e-4, atol=1e-9), t


# ------------------------------------------------------------------ through batches
def _stream_batches(tokens, batch, bptt, resets=None):
    tokens = torch.as_tensor(tokens)
    rows = (len(tokens) - 1) // batch
    x = tokens[:batch * rows].view(batch, rows)
    y = tokens[1:batch * rows + 1].view(batch, rows)
    r = None if resets is None else torch.as_tensor(resets)[:batch * rows].view(batch, rows)
    return [Batch(x[:, s:s + bptt], y[:, s:s + bptt],
                  reset=None if r is None else r[:, s:s + bptt]) for s in range(0, rows, bptt)]


def test_token_segments_rebuild_the_rows_and_cut_documents():
    tokens = np.arange(21) % 7
    resets = np.zeros(21, bool)
    resets[5] = True
    flat, pos = token_segments(_stream_batches(tokens, 2, 4, resets))
    # 2 rows of 10 steps: row 0 = tokens 0..10, row 1 = tokens 10..20 (each + its last target)
    assert flat.tolist() == [*(tokens[:11]), *(tokens[10:21])]
    assert pos.tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5, *range(11)]


def test_carried_context_equals_one_long_batch(ptb_slice):
    tokens, vocab = ptb_slice
    task = TaskInfo("lm", {"vocab_size": vocab}, streaming=True)
    kn = KneserNey(order=4)
    kn.fit(_stream_batches(tokens[:5000], 4, 25), task)
    test = tokens[5000:5401]
    whole = _stream_batches(test, 4, 100)[0]
    kn.start()
    one = kn.predict(whole)
    kn.start()
    parts = torch.cat([kn.predict(b) for b in _stream_batches(test, 4, 7)], 1)
    assert torch.allclose(one, parts, atol=1e-6)
    # A reset empties the context: the steps after it see only what follows it, as a fresh
    # row does; without the reset they see the text before it (training text: seen n-grams).
    resets = torch.zeros(1, 30, dtype=torch.bool)
    resets[0, 10] = True
    x = torch.as_tensor(tokens[100:130])[None]
    kn.start()
    with_reset = kn.predict(Batch(x, x, reset=resets))
    kn.start()
    fresh = kn.predict(Batch(x[:, 10:], x[:, 10:]))
    assert torch.allclose(with_reset[:, 10:], fresh, atol=1e-6)
    kn.start()
    carried = kn.predict(Batch(x, x))
    assert torch.allclose(carried[:, :10], with_reset[:, :10])
    assert not torch.allclose(carried[:, 10:13], fresh[:, :3], atol=1e-3)


def test_unigram_counts_the_training_targets():
    batches = _stream_batches(np.array([0, 1, 1, 2, 1, 0, 1, 1, 2]), 2, 2)
    # rows: [0 1 1 2 | 1] and [1 0 1 1 | 2]: targets 1 1 2 1 and 0 1 1 2 -> 0:1, 1:5, 2:2
    u = Unigram()
    u.fit(batches, TaskInfo("lm", {"vocab_size": 3}, True))
    assert u.options() == {"alpha": 0.0}
    assert np.allclose(u.log_p.exp().numpy(), [1 / 8, 5 / 8, 2 / 8])
    u4 = Unigram()
    u4.fit(batches, TaskInfo("lm", {"vocab_size": 4}, True))  # id 3 never seen: add-one
    assert u4.options() == {"alpha": 1.0}
    assert np.allclose(u4.log_p.exp().numpy(), [2 / 12, 6 / 12, 3 / 12, 1 / 12])
    assert math.isclose(float(u4.predict(batches[0]).exp().sum(-1)[0, 0]), 1.0, rel_tol=1e-6)
