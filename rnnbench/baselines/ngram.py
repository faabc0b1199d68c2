"""Count-based language models: unigram and interpolated (modified) Kneser-Ney n-grams.

Written here rather than taken from a library: nltk's ``KneserNeyInterpolated`` uses one
fixed discount, scores n-grams one at a time in Python (minutes to hours on PTB's 82K test
words at order 5) and has had correctness issues (nltk issues #2599, #3065); KenLM needs a
compiled binary. This one is vectorised with numpy and checked against a hand-worked example
in ``tests/baselines/test_ngram.py``.

The model follows Chen & Goodman (1999), "An empirical study of smoothing techniques for
language modeling", section 3.6 (interpolated Kneser-Ney) and 3.7 (modified: three
discounts): for an order-``k`` context ``h`` and word ``w``,

    p_k(w | h) = max(a_k(h w) - D_k(a_k(h w)), 0) / sum_v a_k(h v)  +  gamma_k(h) p_{k-1}(w | h')

with ``a_k`` the raw count at the highest order and the continuation count (number of
distinct words seen before ``h w``) below it, ``gamma_k(h)`` the discounted mass, and the
lowest order interpolated with the uniform distribution over the vocabulary. A context never
seen in training leaves the lower order's distribution unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rnnbench.baselines.base import Baseline, BaselineUnfit, TaskInfo
from rnnbench.baselines.registry import register_baseline

_CHUNK = 1024  # positions scored at once: (chunk, V) float64 work arrays


def token_segments(batches: Iterable[Any]) -> tuple[np.ndarray, np.ndarray]:
    """The training tokens as the data module lays them out, cut into documents.

    Row ``i`` of a TBPTT stream continues across batches; its tokens are the inputs of every
    window plus the last target. Rows (and documents, where ``Batch.reset`` marks them) are
    kept apart, as the recurrent models see them: no n-gram spans two.

    Returns:
        ``tokens (N,)`` int64 and ``pos (N,)`` int64, each token's position in its document.
    """
    inputs, resets, last = [], [], None
    for b in batches:
        inputs.append(b.inputs.detach().cpu())  # (B, T)
        resets.append(None if b.reset is None else b.reset.detach().cpu())
        last = b.targets.detach().cpu()[:, -1:]  # (B, 1)
    if last is None:
        raise BaselineUnfit("the training split has no batches")
    if inputs[0].dim() != 2:
        raise BaselineUnfit(f"n-gram models need token ids (B, T), got inputs of shape "
                            f"{tuple(inputs[0].shape)}")
    tokens = torch.cat([*inputs, last], 1).numpy().astype(np.int64)  # (B, L + 1)
    starts = np.zeros(tokens.shape, dtype=bool)  # (B, L + 1)
    starts[:, 0] = True
    if all(r is not None for r in resets):
        starts[:, :-1] |= torch.cat(resets, 1).numpy().astype(bool)
    flat, flat_starts = tokens.reshape(-1), starts.reshape(-1)  # (N,)
    index = np.arange(len(flat))
    begin = np.maximum.accumulate(np.where(flat_starts, index, 0))  # (N,) start of its doc
    return flat, index - begin


def ngram_ids(tokens: np.ndarray, pos: np.ndarray, order: int, vocab: int
              ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Ids of the n-grams ending at each position, for n = 1 .. ``order``.

    A ``j``-gram is identified by the pair (id of its first ``j - 1`` words, last word),
    encoded as ``prefix_id * vocab + word``; ``keys[j]`` holds those codes sorted, and the
    ``j``-gram's id is its index there. A 1-gram's id is the word itself.

    Returns:
        ``(ids, keys)``: ``ids[j]`` ``(N,)`` the id of the ``j``-gram ending at each position
        (-1 where the document is shorter), ``keys[j]`` ``(n_j,)`` sorted codes (``keys[1]``
        is ``arange(vocab)``); index 0 is unused.
    """
    ids = [np.empty(0, np.int64), tokens.copy()]
    keys = [np.empty(0, np.int64), np.arange(vocab, dtype=np.int64)]
    for j in range(2, order + 1):
        prev = np.full(len(tokens), -1, np.int64)
        prev[1:] = ids[j - 1][:-1]
        ok = (pos >= j - 1) & (prev >= 0)
        codes = prev[ok] * vocab + tokens[ok]
        uniq, inverse = np.unique(codes, return_inverse=True)
        idj = np.full(len(tokens), -1, np.int64)
        idj[ok] = inverse
        ids.append(idj)
        keys.append(uniq)
    return ids, keys


def lookup(keys: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Index of each code in the sorted ``keys``, -1 where absent (or the code is < 0)."""
    if len(keys) == 0:
        return np.full(len(codes), -1, np.int64)
    at = np.minimum(np.searchsorted(keys, codes), len(keys) - 1)
    return np.where((codes >= 0) & (keys[at] == codes), at, -1)


def estimate_discounts(a: np.ndarray, modified: bool) -> np.ndarray:
    """Discounts from counts of counts (Chen & Goodman 1999, eq. 26).

    ``Y = n1 / (n1 + 2 n2)``; one discount ``Y``, or three: ``D_r = r - (r + 1) Y n_{r+1} /
    n_r`` for ``r = 1, 2`` and ``3+``. A discount the counts cannot give (an ``n_r`` of 0)
    falls back to ``min(r, 0.75)``; each is clipped to ``[0, r]`` so no count goes negative.

    Returns:
        ``(3,)`` discounts for counts 1, 2 and 3 or more (all equal when not ``modified``).
    """
    n = np.bincount(np.minimum(a[a > 0], 5), minlength=6).astype(np.float64)  # n[r], r<=4
    with np.errstate(divide="ignore", invalid="ignore"):
        y = n[1] / (n[1] + 2 * n[2])
        if modified:
            d = np.array([1 - 2 * y * n[2] / n[1], 2 - 3 * y * n[3] / n[2],
                          3 - 4 * y * n[4] / n[3]])
        else:
            d = np.full(3, y)
    r = np.array([1.0, 2.0, 3.0])
    d = np.where(np.isfinite(d), d, np.minimum(r, 0.75))
    return np.clip(d, 0.0, r)


@dataclass
class _Order:
    """The order-``k`` part of the model, ``k >= 2``, grouped by context (a CSR layout)."""

    starts: np.ndarray  # (n_ctx + 1,) followers of context h: [starts[h], starts[h + 1])
    words: np.ndarray  # (F,) the follower words
    discounted: np.ndarray  # (F,) max(a - D, 0) / sum_v a(h v)
    gamma: np.ndarray  # (n_ctx,) discounted mass; 0 where the context was never seen
    seen: np.ndarray  # (n_ctx,) bool: the context has followers at this order
    discounts: np.ndarray  # (3,)


class NGramModel:
    """An interpolated Kneser-Ney model over a closed vocabulary of ``vocab`` ids.

    Args:
        order: ``n`` (1 is a Kneser-Ney-discounted unigram interpolated with the uniform).
        vocab: Vocabulary size; ids are ``0 .. vocab - 1``.
        modified: Three discounts per order (modified Kneser-Ney), else one.
        discount: A fixed discount for every order and count instead of the estimates.
    """

    def __init__(self, order: int, vocab: int, *, modified: bool = True,
                 discount: float | None = None) -> None:
        self.order, self.vocab = int(order), int(vocab)
        self.modified, self.discount = modified, discount
        self.keys: list[np.ndarray] = []
        self.orders: dict[int, _Order] = {}
        self.unigram = np.full(self.vocab, 1.0 / self.vocab)  # (V,)
        self.unigram_discounts = np.zeros(3)
        self.size = 0

    def _discounts(self, a: np.ndarray) -> np.ndarray:
        if self.discount is not None:
            return np.clip(np.full(3, float(self.discount)), 0.0, [1.0, 2.0, 3.0])
        return estimate_discounts(a, self.modified)

    def fit(self, tokens: np.ndarray, pos: np.ndarray) -> NGramModel:
        """Counts the n-grams of ``tokens`` (documents marked by ``pos``, see
        :func:`token_segments`)."""
        if len(tokens) and (tokens.min() < 0 or tokens.max() >= self.vocab):
            raise BaselineUnfit(f"token ids must lie in 0..{self.vocab - 1}")
        n_max = self.order
        ids, self.keys = ngram_ids(tokens, pos, n_max, self.vocab)
        # a_k: raw counts at the top order, continuation counts below it.
        adjusted: dict[int, np.ndarray] = {}
        for k in range(1, n_max + 1):
            n_k = len(self.keys[k])
            if k == n_max:
                valid = ids[k] >= 0
                adjusted[k] = np.bincount(ids[k][valid], minlength=n_k)
            else:
                valid = ids[k + 1] >= 0
                _, first = np.unique(ids[k + 1][valid], return_index=True)
                suffix = ids[k][valid][first]  # the k-gram ending each distinct (k+1)-gram
                adjusted[k] = np.bincount(suffix, minlength=n_k)
        a1 = adjusted[1].astype(np.float64)  # (V,)
        d1 = self._discounts(adjusted[1])
        total = a1.sum()
        if total == 0:
            raise BaselineUnfit("no training tokens to count")
        taken = np.where(a1 > 0, d1[np.minimum(a1.astype(np.int64), 3) - 1], 0.0)  # (V,)
        self.unigram = (a1 - taken) / total + taken.sum() / total / self.vocab  # (V,)
        self.unigram_discounts = d1
        self.size = int((a1 > 0).sum())
        for k in range(2, n_max + 1):
            a = adjusted[k]
            keep = a > 0
            ctx = self.keys[k][keep] // self.vocab  # (F,) sorted: keys are
            words = self.keys[k][keep] % self.vocab  # (F,)
            a = a[keep].astype(np.float64)
            d = self._discounts(adjusted[k])
            taken = d[np.minimum(a.astype(np.int64), 3) - 1]  # (F,)
            n_ctx = len(self.keys[k - 1])
            denom = np.bincount(ctx, weights=a, minlength=n_ctx)  # (n_ctx,)
            mass = np.bincount(ctx, weights=taken, minlength=n_ctx)  # (n_ctx,)
            seen = denom > 0
            safe = np.where(seen, denom, 1.0)
            self.orders[k] = _Order(
                starts=np.searchsorted(ctx, np.arange(n_ctx + 1)),
                words=words, discounted=(a - taken) / safe[ctx],
                gamma=np.where(seen, mass / safe, 0.0), seen=seen, discounts=d)
            self.size += int(keep.sum())
        return self

    def history_ids(self, tokens: np.ndarray, starts: np.ndarray) -> list[np.ndarray]:
        """Ids of the n-grams ending at each position of token rows, for the contexts.

        Args:
            tokens: ``(B, L)`` ids, -1 where unknown (before a row's start).
            starts: ``(B, L)`` bool, a document starts there (nothing before it counts).

        Returns:
            ``hist[j]`` ``(B, L)`` for ``j = 1 .. order - 1`` (-1: unseen or too short).
        """
        hist = [np.empty(0, np.int64), np.where(tokens >= 0, tokens, -1)]
        for j in range(2, self.order):
            prev = np.full(tokens.shape, -1, np.int64)
            prev[:, 1:] = hist[j - 1][:, :-1]
            codes = np.where((prev >= 0) & (tokens >= 0) & ~starts,
                             prev * self.vocab + tokens, -1)
            hist.append(lookup(self.keys[j], codes.reshape(-1)).reshape(tokens.shape))
        return hist

    def log_probs(self, hist: list[np.ndarray], n_pos: int) -> np.ndarray:
        """``log p(next | context)`` over the vocabulary for each position.

        Args:
            hist: What :meth:`history_ids` returns, each flattened to ``(P,)``.
            n_pos: ``P``.

        Returns:
            ``(P, V)`` float32.
        """
        # p = sum over orders of each order's discounted counts, scaled by the gammas of the
        # orders above it, plus the unigram scaled by every gamma: one dense pass per chunk.
        vocab = self.vocab
        out = np.empty((n_pos, vocab), np.float32)
        for lo in range(0, n_pos, _CHUNK):
            n = min(lo + _CHUNK, n_pos) - lo
            scale = np.ones(n)  # (n,) product of the gammas of the orders above
            cells, weights = [], []
            for k in range(self.order, 1, -1):
                part = self.orders[k]
                h = hist[k - 1][lo:lo + n]  # (n,) the (k-1)-gram ending at each position
                rows = np.flatnonzero(h >= 0)
                rows = rows[part.seen[h[rows]]]
                if not len(rows):
                    continue
                ctx = h[rows]
                begin, end = part.starts[ctx], part.starts[ctx + 1]
                lens = end - begin
                # Every follower of every context, as flat indices into words/discounted.
                flat = np.arange(lens.sum()) + np.repeat(begin - (np.cumsum(lens) - lens), lens)
                at = np.repeat(rows, lens)
                cells.append(at * vocab + part.words[flat])
                weights.append(part.discounted[flat] * scale[at])
                scale[rows] *= part.gamma[ctx]
            p = np.outer(scale, self.unigram)  # (n, V)
            if cells:
                p += np.bincount(np.concatenate(cells), weights=np.concatenate(weights),
                                 minlength=n * vocab).reshape(n, vocab)
            np.log(p, out=out[lo:lo + n], casting="same_kind")
        return out


def _check_vocab(task: TaskInfo) -> int:
    vocab = task.options.get("vocab_size")
    if not isinstance(vocab, int) or vocab < 1:
        raise BaselineUnfit("the language-model task gives no vocab_size")
    return vocab


@register_baseline("unigram")
class Unigram(Baseline):
    """Every word with its frequency among the training targets, whatever came before.

    Args:
        alpha: Pseudo-count added to every vocabulary entry. ``None``: 0 (the maximum
            likelihood estimate) when every entry occurs in training, else 1 (add-one), so
            that no test word gets probability 0.
    """

    tasks = ("lm",)
    summary = "unigram: training word frequencies"

    def __init__(self, alpha: float | None = None) -> None:
        if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, (int, float))
                                  or alpha < 0):
            raise ValueError(f"unigram: alpha must be a non-negative number, got {alpha!r}")
        self.alpha = alpha
        self.used_alpha = 0.0
        self.log_p: torch.Tensor | None = None  # (V,)

    def fit(self, train: Iterable[Any], task: TaskInfo) -> None:
        vocab = _check_vocab(task)
        # The training targets: every token the trained models learn to predict, once.
        targets = np.concatenate([b.targets.detach().cpu().reshape(-1).numpy() for b in train])
        counts = np.bincount(targets.astype(np.int64), minlength=vocab).astype(np.float64)
        alpha = self.alpha if self.alpha is not None else (0.0 if counts.all() else 1.0)
        if alpha == 0 and not counts.all():
            raise BaselineUnfit("unigram: alpha 0 leaves words unseen in training at "
                                "probability 0; use alpha > 0")
        self.used_alpha = float(alpha)
        self.log_p = torch.from_numpy(np.log((counts + alpha) / (counts.sum() + alpha * vocab)))

    def predict(self, batch: Any) -> torch.Tensor:
        b, t = batch.inputs.shape[:2]
        return self.log_p.float().expand(b, t, -1)  # (B, T, V) log-probabilities

    @property
    def num_parameters(self) -> int:
        return 0 if self.log_p is None else int(self.log_p.numel())

    def options(self) -> dict[str, Any]:
        return {"alpha": self.used_alpha}

    def describe(self) -> str:
        how = "maximum likelihood" if self.used_alpha == 0 else f"add-{self.used_alpha:g}"
        return f"unigram: training word frequencies ({how})"


@register_baseline("kneser_ney")
class KneserNey(Baseline):
    """Interpolated Kneser-Ney n-gram model (modified: three discounts per order, estimated
    from the counts of counts), what Mikolov et al. (2011) call KN5 at order 5.

    It reads the same token rows as the recurrent models: n-grams do not cross the rows of
    the TBPTT layout or marked document boundaries, and at a row's start the context is
    empty, as the cells' state is zero.

    Args:
        order: ``n`` (3-5 are usual; 5 is Mikolov et al.'s KN5).
        modified: Modified Kneser-Ney (three discounts) or the original (one).
        discount: One fixed discount for every order instead of the estimates.
    """

    tasks = ("lm",)
    summary = "interpolated Kneser-Ney n-gram model"

    def __init__(self, order: int = 5, modified: bool = True,
                 discount: float | None = None) -> None:
        if isinstance(order, bool) or not isinstance(order, int) or not 1 <= order <= 9:
            raise ValueError(f"kneser_ney: order must be an integer in 1..9, got {order!r}")
        if discount is not None and (isinstance(discount, bool) or not 0 <= discount <= 1):
            raise ValueError(f"kneser_ney: discount must lie in [0, 1], got {discount!r}")
        self.order, self.modified, self.discount = order, bool(modified), discount
        self.model: NGramModel | None = None
        self._history: np.ndarray | None = None  # (B, order - 1) last tokens of each row

    def fit(self, train: Iterable[Any], task: TaskInfo) -> None:
        vocab = _check_vocab(task)
        tokens, pos = token_segments(train)
        self.model = NGramModel(self.order, vocab, modified=self.modified,
                                discount=self.discount).fit(tokens, pos)

    def start(self) -> None:
        self._history = None

    def predict(self, batch: Any) -> torch.Tensor:
        tokens = batch.inputs.detach().cpu().numpy().astype(np.int64)  # (B, T)
        b, t = tokens.shape
        keep = self.order - 1
        if self._history is None or self._history.shape[0] != b:
            self._history = np.full((b, keep), -1, np.int64)  # a new pass: no context
        starts = np.zeros((b, keep + t), dtype=bool)
        if batch.reset is not None:
            starts[:, keep:] = batch.reset.detach().cpu().numpy().astype(bool)
        rows = np.concatenate([self._history, tokens], 1)  # (B, keep + T)
        hist = self.model.history_ids(rows, starts)
        flat = [h if i == 0 else h[:, keep:].reshape(-1) for i, h in enumerate(hist)]
        out = self.model.log_probs(flat, b * t).reshape(b, t, -1)  # (B, T, V)
        # The next batch's context: the last tokens, none before a document start.
        tail = rows[:, -keep:].copy() if keep else rows[:, :0]
        if keep and batch.reset is not None:
            tail_starts = starts[:, -keep:]
            last = np.where(tail_starts.any(1), keep - 1 - np.argmax(tail_starts[:, ::-1], 1),
                            0)  # (B,) index of the last start within the tail
            tail[np.arange(keep)[None, :] < last[:, None]] = -1
        self._history = tail
        return torch.from_numpy(out).to(batch.inputs.device)

    @property
    def num_parameters(self) -> int:
        return 0 if self.model is None else self.model.size

    def options(self) -> dict[str, Any]:
        return {"order": self.order, "modified": self.modified, "discount": self.discount}

    def describe(self) -> str:
        kind = "modified " if self.modified and self.discount is None else ""
        return f"interpolated {kind}Kneser-Ney {self.order}-gram"

    def published_as(self) -> str | None:
        return f"kn{self.order}" if self.modified and self.discount is None else None


__all__ = ["KneserNey", "NGramModel", "Unigram", "estimate_discounts", "ngram_ids",
           "token_segments"]
