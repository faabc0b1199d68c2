"""Tests for the synthetic tasks: adding problem, copy memory, digits, splits."""

import pytest
import torch
from sklearn.datasets import load_digits

from rnnbench.data.datasets.synthetic import (
    COPY_MARKER,
    adding_problem,
    copy_memory,
    digits_sequences,
    split_indices,
)


def test_adding_problem_definition():
    x, y = adding_problem(512, 50, seed=3)
    assert x.shape == (512, 50, 2) and x.dtype == torch.float32
    assert y.shape == (512,) and y.dtype == torch.float32
    values, markers = x[..., 0], x[..., 1]
    assert ((values >= 0) & (values < 1)).all()
    assert set(markers.unique().tolist()) == {0.0, 1.0}
    assert (markers.sum(1) == 2).all()  # two distinct marked positions
    assert torch.allclose((values * markers).sum(1), y)
    first = markers.argmax(1)
    assert (first < 25).any() and (markers[:, 25:].sum(1) == 2).any()  # anywhere, not halves


def test_adding_problem_baseline_mse_is_about_one_sixth():
    _, y = adding_problem(20_000, 10, seed=0)
    assert abs(float(((y - 1) ** 2).mean()) - 1 / 6) < 0.01


def test_copy_memory_definition():
    T = 30
    x, y = copy_memory(64, T, seed=1)
    assert x.shape == y.shape == (64, T + 20)
    assert x.dtype == y.dtype == torch.long
    digits = x[:, :10]
    assert ((digits >= 1) & (digits <= 8)).all()
    assert (x[:, 10 : 10 + T - 1] == 0).all()
    assert (x[:, T + 9] == COPY_MARKER).all()
    assert (x[:, T + 10 :] == 0).all()
    assert (y[:, : T + 10] == 0).all()
    assert torch.equal(y[:, -10:], digits)
    assert set(digits.unique().tolist()) == set(range(1, 9))


@pytest.mark.parametrize("make", [adding_problem, copy_memory])
def test_generators_are_deterministic_under_seed(make):
    a, b, c = make(16, 20, seed=7), make(16, 20, seed=7), make(16, 20, seed=8)
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])


@pytest.mark.parametrize("make", [adding_problem, copy_memory])
def test_generators_reject_bad_sizes(make):
    with pytest.raises(ValueError, match="positive"):
        make(0, 10, seed=0)
    with pytest.raises(ValueError, match="positive"):
        make(4, -1, seed=0)


def test_adding_problem_needs_two_steps():
    with pytest.raises(ValueError, match="T >= 2"):
        adding_problem(4, 1)


def test_digits_sequences():
    x, y = digits_sequences(seed=0)
    assert x.shape == (1797, 8, 8) and x.dtype == torch.float32
    assert y.shape == (1797,) and y.dtype == torch.long
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert set(y.tolist()) == set(range(10))
    x2, y2 = digits_sequences(seed=0)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    xs, ys = digits_sequences(seed=None)
    assert ys[:10].tolist() == list(range(10))  # scikit-learn's order
    images = torch.from_numpy(load_digits().images).float() / 16  # (n, rows, columns)
    assert torch.equal(xs, images)  # time step t = image row t
    # The shuffle is a permutation of the same samples.
    assert torch.equal(
        torch.sort(xs.flatten(1).sum(1)).values, torch.sort(x.flatten(1).sum(1)).values
    )


def test_split_indices_partition_and_determinism():
    parts = split_indices(1797)
    assert [len(p) for p in parts] == [1437, 179, 181]
    assert torch.equal(torch.sort(torch.cat(parts)).values, torch.arange(1797))
    again = split_indices(1797)
    assert all(torch.equal(a, b) for a, b in zip(parts, again, strict=True))
    other = split_indices(1797, seed=1)
    assert not torch.equal(parts[1], other[1])
    assert [len(p) for p in split_indices(100, (0.71, 0.29))] == [71, 29]


@pytest.mark.parametrize("fractions", [(0.5, 0.4), (1.2, -0.2), ()])
def test_split_indices_rejects_bad_fractions(fractions):
    with pytest.raises(ValueError, match="sum to 1"):
        split_indices(10, fractions)
