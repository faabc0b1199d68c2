"""Tests for anomaly scoring: smoothing, thresholds, point-wise and point-adjusted F1."""

import numpy as np
import pytest

from rnnbench.tasks.anomaly import (
    attack_ranges,
    best_f1_threshold,
    moving_average,
    point_adjust,
    precision_recall_f1,
    range_metrics,
    threshold_predict,
)

LABEL = np.array([0, 0, 1, 1, 1, 0, 0, 1, 1, 0, 1])


def test_attack_ranges():
    assert attack_ranges(LABEL).tolist() == [[2, 5], [7, 9], [10, 11]]
    assert attack_ranges(np.zeros(4, int)).shape == (0, 2)
    assert attack_ranges(np.ones(3, int)).tolist() == [[0, 3]]


def test_moving_average_is_trailing():
    s = np.array([0.0, 3.0, 6.0, 3.0, 0.0])
    np.testing.assert_allclose(moving_average(s, 3), [0, 1.5, 3, 4, 3])
    np.testing.assert_allclose(moving_average(s, 1), s)
    np.testing.assert_allclose(moving_average(s, 10), np.cumsum(s) / np.arange(1, 6))
    rng = np.random.default_rng(0)
    long = rng.normal(size=1000)
    expected = np.convolve(long, np.ones(20) / 20, mode="full")[19:1000]
    np.testing.assert_allclose(moving_average(long, 20)[19:], expected)
    with pytest.raises(ValueError, match="positive"):
        moving_average(s, 0)
    with pytest.raises(ValueError, match="NaN"):
        moving_average(np.array([1.0, np.nan]), 2)


def test_threshold_predict_is_strict():
    assert threshold_predict(np.array([0.1, 0.5, 0.9]), 0.5).tolist() == [0, 0, 1]


def test_precision_recall_f1():
    pred = np.array([0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0])
    m = precision_recall_f1(pred, LABEL)
    assert (m["tp"], m["fp"], m["fn"]) == (2, 1, 4)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 6)
    assert m["f1"] == pytest.approx(2 * (2 / 3) * (1 / 3) / (2 / 3 + 1 / 3))
    none = precision_recall_f1(np.zeros_like(LABEL), LABEL)
    assert none["precision"] == none["recall"] == none["f1"] == 0.0


def test_point_adjust_fills_detected_ranges_only():
    pred = np.array([1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1])
    assert point_adjust(pred, LABEL).tolist() == [1, 0, 1, 1, 1, 0, 0, 0, 0, 0, 1]


def test_range_metrics():
    pred = np.array([1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1])
    m = range_metrics(pred, LABEL)
    assert (m["tp"], m["fp"], m["fn"]) == (4, 1, 2)
    assert m["n_ranges"] == 3 and m["n_detected"] == 2
    assert m["range_recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 * 0.8 * (4 / 6) / (0.8 + 4 / 6))
    assert range_metrics(np.zeros(3, int), np.zeros(3, int))["range_recall"] == 0.0


def brute_force(scores, label, point_adjusted):
    best_t, best = None, -1.0
    for t in np.concatenate([[scores.min() - 1], np.unique(scores)]):
        pred = threshold_predict(scores, t)
        f1 = (range_metrics if point_adjusted else precision_recall_f1)(pred, label)["f1"]
        if f1 >= best:
            best_t, best = t, f1
    return best_t, best


@pytest.mark.parametrize("point_adjusted", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_best_f1_threshold_matches_brute_force(point_adjusted, seed):
    rng = np.random.default_rng(seed)
    label = (rng.random(300) < 0.03).astype(int)
    label = np.convolve(label, np.ones(8), mode="same").clip(0, 1).astype(int)  # ranges
    scores = np.round(rng.random(300) + 0.6 * label * rng.random(300), 2)  # with ties
    threshold, metrics = best_f1_threshold(scores, label, point_adjusted=point_adjusted)
    ref_t, ref_f1 = brute_force(scores, label, point_adjusted)
    assert metrics["f1"] == pytest.approx(ref_f1)
    pred = threshold_predict(scores, threshold)
    expected = (range_metrics if point_adjusted else precision_recall_f1)(pred, label)
    assert metrics == expected
    assert threshold == pytest.approx(ref_t) or ref_t < scores.min()


def test_best_f1_threshold_separable_and_errors():
    scores = np.array([0.1, 0.2, 0.9, 0.8, 0.1])
    label = np.array([0, 0, 1, 1, 0])
    threshold, metrics = best_f1_threshold(scores, label, point_adjusted=False)
    assert threshold == 0.2 and metrics["f1"] == 1.0
    threshold, metrics = best_f1_threshold(scores, label, point_adjusted=True)
    assert threshold == pytest.approx(0.8) and metrics["f1"] == 1.0  # one hit is enough
    with pytest.raises(ValueError, match="no attack"):
        best_f1_threshold(scores, np.zeros(5, int), point_adjusted=False)
    with pytest.raises(ValueError, match="0/1"):
        best_f1_threshold(scores, np.array([0, 2, 1, 0, 0]), point_adjusted=False)
    with pytest.raises(ValueError, match="length"):
        best_f1_threshold(scores[:4], label, point_adjusted=False)
