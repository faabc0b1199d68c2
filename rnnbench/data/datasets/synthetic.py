"""Synthetic benchmarks: adding problem, copy memory, and row-by-row 8x8 digits."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "COPY_BLANK",
    "COPY_MARKER",
    "COPY_N_SYMBOLS",
    "adding_problem",
    "copy_memory",
    "digits_sequences",
    "split_indices",
]

COPY_BLANK = 0
COPY_MARKER = 9
COPY_N_SYMBOLS = 10  # 0 blank, 1..8 digits, 9 marker: the embedding/output size of the task
_COPY_LEN = 10  # digits to remember


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def adding_problem(n: int, T: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Generate the adding problem (Hochreiter & Schmidhuber 1997; Bai, Kolter & Koltun 2018).

    Each sequence has two input channels: channel 0 holds values drawn uniformly from
    [0, 1]; channel 1 is zero except at two distinct positions drawn uniformly over the
    whole sequence (as in Bai et al.'s generator), where it is 1. The target is the sum
    of the two marked values; always predicting 1 gives MSE about 0.167.

    Args:
        n: Number of sequences.
        T: Sequence length (>= 2).
        seed: Seed of the ``torch.Generator``; equal seeds give equal data.

    Returns:
        ``x`` ``(n, T, 2)`` float32 and ``y`` ``(n,)`` float32.
    """
    _check_positive(n=n, T=T)
    if T < 2:
        raise ValueError(f"the adding problem needs T >= 2 to place two markers, got T={T}")
    g = _generator(seed)
    values = torch.rand(n, T, generator=g)  # (n, T)
    first = torch.randint(0, T, (n,), generator=g)  # (n,)
    second = torch.randint(0, T - 1, (n,), generator=g)  # (n,)
    second = second + (second >= first).long()  # uniform over the T - 1 other positions
    rows = torch.arange(n)
    markers = torch.zeros(n, T)  # (n, T)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = torch.stack([values, markers], dim=-1)  # (n, T, 2)
    y = values[rows, first] + values[rows, second]  # (n,)
    return x, y


def copy_memory(n: int, T: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Generate the copy-memory task (Arjovsky, Shah & Bengio 2016; Bai et al. 2018).

    Input: 10 digits drawn uniformly from 1..8, then ``T - 1`` blanks (0), then the marker
    9, then 10 blanks. Target: blanks everywhere except the last 10 steps, which repeat the
    first 10 digits. Both have length ``T + 20``. Predicting blanks and then uniform digits
    gives cross-entropy ``10 * ln(8) / (T + 20)``, the baseline to beat. (Bai et al.'s
    released code feeds the marker on all of the last 11 steps; we follow the paper's
    definition, a single marker.)

    Args:
        n: Number of sequences.
        T: Delay between the digits and the marker (>= 1).
        seed: Seed of the ``torch.Generator``.

    Returns:
        ``x`` ``(n, T + 20)`` int64 and ``y`` ``(n, T + 20)`` int64, symbols in 0..9.
    """
    _check_positive(n=n, T=T)
    g = _generator(seed)
    digits = torch.randint(1, 9, (n, _COPY_LEN), generator=g)  # (n, 10)
    x = torch.full((n, T + 2 * _COPY_LEN), COPY_BLANK, dtype=torch.long)  # (n, T + 20)
    x[:, :_COPY_LEN] = digits
    x[:, _COPY_LEN + T - 1] = COPY_MARKER
    y = torch.full_like(x, COPY_BLANK)  # (n, T + 20)
    y[:, -_COPY_LEN:] = digits
    return x, y


@functools.cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn, no download

    data = load_digits()
    return data.images.astype(np.float32), data.target.astype(np.int64)


def digits_sequences(seed: int | None = 0) -> tuple[Tensor, Tensor]:
    """Load scikit-learn's 1,797 8x8 handwritten digits as sequences of 8 rows.

    A small sequence-classification task (a miniature of row-by-row MNIST): the network
    reads one image row of 8 pixels per step and predicts the digit after the last row.

    Args:
        seed: Shuffle the samples with this seed (``torch.Generator``); ``None`` keeps
            scikit-learn's order.

    Returns:
        ``x`` ``(1797, 8, 8)`` float32 in [0, 1] (time = image rows) and ``y`` ``(1797,)``
        int64 labels 0..9.
    """
    images, labels = _digits()
    x = torch.from_numpy(images / 16.0)  # (n, 8, 8); pixel values are 0..16
    y = torch.from_numpy(labels.copy())  # (n,)
    if seed is not None:
        perm = torch.randperm(len(y), generator=_generator(seed))
        x, y = x[perm], y[perm]
    return x.contiguous(), y


def split_indices(
    n: int, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> tuple[Tensor, ...]:
    """Split ``range(n)`` at random into disjoint parts of the given fractions.

    Part sizes are ``floor(f * n)`` for all but the last part, which takes the rest, so
    every index is used exactly once. The same ``(n, fractions, seed)`` always gives the
    same split.

    Args:
        n: Number of items.
        fractions: Non-negative fractions summing to 1, one per part (e.g. train/val/test).
        seed: Seed of the ``torch.Generator``.

    Returns:
        One ``(n_k,)`` int64 index tensor per fraction, each sorted ascending.
    """
    _check_positive(n=n)
    fractions = [float(f) for f in fractions]
    if not fractions or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be non-negative and sum to 1, got {fractions}")
    sizes = [int(f * n + 1e-9) for f in fractions[:-1]]  # 0.29 * 100 is 28.999...96
    sizes.append(n - sum(sizes))
    perm = torch.randperm(n, generator=_generator(seed))  # (n,)
    return tuple(part.sort().values for part in torch.split(perm, sizes))
