"""Anomaly-detection scoring: smoothing, thresholds, point-wise and point-adjusted F1 (numpy)."""

from __future__ import annotations

import numpy as np

__all__ = [
    "attack_ranges",
    "best_f1_threshold",
    "moving_average",
    "point_adjust",
    "precision_recall_f1",
    "range_metrics",
    "threshold_predict",
]


def _scores(scores: np.ndarray, name: str = "scores") -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)  # (N,)
    if s.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per time step), got shape {s.shape}")
    nan = np.flatnonzero(np.isnan(s))
    if len(nan):
        raise ValueError(
            f"{name} contain NaN (first at index {nan[0]}); score only the steps that have a "
            "prediction (e.g. HAIWindows.target_rows) or fill them first"
        )
    return s


def _binary(values: np.ndarray, name: str) -> np.ndarray:
    v = np.asarray(values)  # (N,)
    if v.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {v.shape}")
    off = np.flatnonzero((v != 0) & (v != 1))
    if len(off):
        raise ValueError(f"{name} must hold 0/1, found {v[off[0]]!r} at index {off[0]}")
    return v.astype(bool)


def _pair(pred: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, y = _binary(pred, "pred"), _binary(label, "label")  # (N,) bool each
    if p.shape != y.shape:
        raise ValueError(f"pred and label differ in length: {len(p)} vs {len(y)}")
    return p, y


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "tp": int(tp),
        "fp": int(fp),
        "fn": int(fn),
    }


def attack_ranges(label: np.ndarray) -> np.ndarray:
    """Return the contiguous runs of 1s in a 0/1 label sequence.

    Args:
        label: ``(N,)`` 0/1 labels.

    Returns:
        ``(R, 2)`` int64 array of ``[start, end)`` pairs, in order.
    """
    y = _binary(label, "label").astype(np.int8)  # (N,)
    edges = np.diff(np.concatenate([[0], y, [0]]))  # (N + 1,): +1 at a start, -1 after an end
    return np.column_stack([np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)])  # (R, 2)


def moving_average(scores: np.ndarray, k: int) -> np.ndarray:
    """Smooth anomaly scores with a trailing moving average of ``k`` steps.

    The HAI 2021/2022 competition baselines smoothed the per-step prediction error with a
    moving average before thresholding; isolated error spikes then stop raising alarms.
    The average is causal (step ``t`` uses steps ``t - k + 1 .. t``; the first ``k - 1``
    steps average what there is), so it can run online.

    Args:
        scores: ``(N,)`` anomaly scores.
        k: Window length (``1`` returns the scores unchanged).

    Returns:
        ``(N,)`` float64 smoothed scores.
    """
    s = _scores(scores)  # (N,)
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    k = int(k)
    csum = np.concatenate([[0.0], np.cumsum(s)])  # (N + 1,)
    end = np.arange(1, len(s) + 1)  # (N,)
    start = np.maximum(end - k, 0)  # (N,)
    return (csum[end] - csum[start]) / (end - start)  # (N,)


def threshold_predict(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Flag the steps whose score is strictly above ``threshold``.

    Args:
        scores: ``(N,)`` anomaly scores.
        threshold: Decision threshold.

    Returns:
        ``(N,)`` int64 0/1 predictions.
    """
    return (_scores(scores) > threshold).astype(np.int64)  # (N,)


def precision_recall_f1(pred: np.ndarray, label: np.ndarray) -> dict[str, float]:
    """Point-wise precision, recall and F1 of 0/1 predictions.

    Args:
        pred: ``(N,)`` 0/1 predictions.
        label: ``(N,)`` 0/1 ground truth.

    Returns:
        ``{"precision", "recall", "f1", "tp", "fp", "fn"}``; a ratio with a zero
        denominator is 0.
    """
    p, y = _pair(pred, label)  # (N,) bool each
    tp = int(np.count_nonzero(p & y))
    return _prf(tp, int(np.count_nonzero(p & ~y)), int(np.count_nonzero(~p & y)))


def point_adjust(pred: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Point-adjust predictions: a detected attack counts as detected over its whole range.

    The usual protocol of time-series anomaly-detection papers (Xu et al. 2018, "Donut"):
    if any step of a true attack range is flagged, every step of that range is set to 1;
    predictions outside attack ranges are left as they are.

    Args:
        pred: ``(N,)`` 0/1 predictions.
        label: ``(N,)`` 0/1 ground truth.

    Returns:
        ``(N,)`` int64 adjusted predictions.
    """
    p, y = _pair(pred, label)  # (N,) bool each
    adjusted = p.astype(np.int64)  # (N,)
    for start, end in attack_ranges(y):
        if p[start:end].any():
            adjusted[start:end] = 1
    return adjusted


def range_metrics(pred: np.ndarray, label: np.ndarray) -> dict[str, float]:
    """Point-adjusted precision/recall/F1 plus how many attack ranges were detected.

    HAI's official metric is TaPR (time-series aware precision and recall, Hwang et al.
    2019), which also credits partial overlap and penalises late detection; this is the
    point-adjusted F1, a common and simpler proxy that tends to be more optimistic.

    Args:
        pred: ``(N,)`` 0/1 predictions.
        label: ``(N,)`` 0/1 ground truth.

    Returns:
        ``{"precision", "recall", "f1", "tp", "fp", "fn"}`` after :func:`point_adjust`, and
        ``"range_recall"`` (fraction of attack ranges with at least one flagged step; 0
        when there are none), ``"n_ranges"``, ``"n_detected"``.
    """
    p, y = _pair(pred, label)  # (N,) bool each
    ranges = attack_ranges(y)  # (R, 2)
    detected = sum(bool(p[a:b].any()) for a, b in ranges)
    metrics = precision_recall_f1(point_adjust(p, y), y)
    metrics["range_recall"] = detected / len(ranges) if len(ranges) else 0.0
    metrics["n_ranges"] = len(ranges)
    metrics["n_detected"] = int(detected)
    return metrics


def best_f1_threshold(
    scores: np.ndarray, label: np.ndarray, *, point_adjusted: bool
) -> tuple[float, dict[str, float]]:
    """Find the threshold with the best F1 by an exact sweep over every distinct score.

    Predictions are ``scores > threshold`` (:func:`threshold_predict`). Each distinct score
    is tried as a threshold, plus one just below the minimum (flag everything), in
    ``O(N log N)``; ties go to the highest threshold (fewest alarms). Choosing the threshold
    on the test labels gives an upper bound, as papers that report "best F1" do; for an
    honest number pick it on validation data and apply it to test.

    Args:
        scores: ``(N,)`` anomaly scores.
        label: ``(N,)`` 0/1 ground truth; must contain at least one attack step.
        point_adjusted: Score with :func:`range_metrics` (point-adjusted F1) instead of
            :func:`precision_recall_f1` (point-wise F1).

    Returns:
        ``(threshold, metrics)``, ``metrics`` being what the chosen scoring function returns
        for ``threshold_predict(scores, threshold)``.
    """
    s = _scores(scores)  # (N,)
    y = _binary(label, "label")  # (N,) bool
    if s.shape != y.shape:
        raise ValueError(f"scores and label differ in length: {len(s)} vs {len(y)}")
    n_pos = int(y.sum())
    if n_pos == 0:
        raise ValueError("label has no attack steps: F1 is undefined, no threshold to choose")
    values = np.unique(s)  # (U,) ascending
    # Threshold values[j] flags values[j + 1:]; the top value would flag nothing.
    thresholds = np.concatenate([[np.nextafter(values[0], -np.inf)], values[:-1]])  # (U,)

    neg = np.sort(s[~y])  # (N - n_pos,)
    fp = len(neg) - np.searchsorted(neg, thresholds, side="right")  # (U,)
    if point_adjusted:
        ranges = attack_ranges(y)  # (R, 2)
        peak = np.array([s[a:b].max() for a, b in ranges])  # (R,) a range is hit iff peak > thr
        order = np.argsort(peak)  # (R,)
        # covered[j]: attack steps in the j lowest-peaked ranges, which a threshold misses.
        widths = (ranges[:, 1] - ranges[:, 0])[order]  # (R,)
        covered = np.concatenate([[0], np.cumsum(widths)])  # (R + 1,)
        tp = n_pos - covered[np.searchsorted(peak[order], thresholds, side="right")]  # (U,)
    else:
        pos = np.sort(s[y])  # (n_pos,)
        tp = len(pos) - np.searchsorted(pos, thresholds, side="right")  # (U,)
    precision = np.divide(tp, tp + fp, out=np.zeros(len(tp)), where=(tp + fp) > 0)  # (U,)
    recall = tp / n_pos  # (U,)
    f1 = np.divide(  # (U,)
        2 * precision * recall,
        precision + recall,
        out=np.zeros(len(tp)),
        where=(precision + recall) > 0,
    )
    best = len(f1) - 1 - int(np.argmax(f1[::-1]))  # last maximum = highest threshold
    threshold = float(thresholds[best])
    pred = threshold_predict(s, threshold)  # (N,)
    metrics = range_metrics(pred, y) if point_adjusted else precision_recall_f1(pred, y)
    return threshold, metrics
