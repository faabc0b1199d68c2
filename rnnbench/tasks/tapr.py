"""TaPR: time-series aware precision and recall (Hwang et al. 2019), HAI's official metric."""

from __future__ import annotations

import numpy as np

from rnnbench.tasks.anomaly import _binary, _scores, attack_ranges

__all__ = ["ambiguous_weights", "tapr", "tapr_threshold"]


def ambiguous_weights(delta: int) -> np.ndarray:
    """Weights of the ``delta`` steps after an attack (its ambiguous section).

    The effects of an attack may outlast its label, so an alarm just after it is not all
    false: the k-th step after the end (``k = 0 .. delta - 1``) counts
    ``1 / (1 + exp(x_k))`` of an attack step, ``x_k`` running evenly from -6 to 6 over the
    section (from about 1 down to about 0), as in the paper. One step (``delta == 1``)
    sits at -6.

    Args:
        delta: Length of the ambiguous section in steps (0: none).

    Returns:
        ``(delta,)`` float64 weights.
    """
    if delta <= 0:
        return np.zeros(0)
    x = np.linspace(-6.0, 6.0, delta) if delta > 1 else np.array([-6.0])  # (delta,)
    return 1.0 / (1.0 + np.exp(x))


def _owners(label: np.ndarray, delta: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which attack each step belongs to (-1: none) and how much it counts there.

    A step inside attack ``i`` counts 1 for it; a step in the ``delta`` steps after it
    counts :func:`ambiguous_weights`; the ambiguous section stops where the next attack
    starts.
    """
    ranges = attack_ranges(label)  # (R, 2)
    owner = np.full(len(label), -1, dtype=np.int64)  # (N,)
    weight = np.zeros(len(label))  # (N,)
    decay = ambiguous_weights(delta)  # (delta,)
    for i, (a, b) in enumerate(ranges):
        owner[a:b], weight[a:b] = i, 1.0
        nxt = ranges[i + 1, 0] if i + 1 < len(ranges) else len(label)
        stop = min(b + delta, nxt)
        owner[b:stop], weight[b:stop] = i, decay[: stop - b]
    return ranges, owner, weight


def tapr(
    pred: np.ndarray, label: np.ndarray, *, theta: float = 0.5, alpha: float = 0.5,
    delta: int = 0,
) -> dict[str, float]:
    """Time-series aware precision and recall of 0/1 predictions.

    Attacks ``A`` and predictions ``P`` are the runs of 1s in ``label`` and ``pred``. The
    overlap score ``w(a, p)`` of attack ``a`` and prediction ``p`` counts each step of
    ``p`` inside ``a`` as 1 and each step of ``p`` in ``a``'s ambiguous section (the
    ``delta`` steps after it, :func:`ambiguous_weights`) as its weight. Then

    - detection recall ``TaR_d``: the fraction of attacks with
      ``min(1, sum_p w(a, p) / |a|) >= theta`` (an attack counts as found once that
      share of it is flagged);
    - portion recall ``TaR_p``: the mean over attacks of ``min(1, sum_p w(a, p) / |a|)``;
    - detection precision ``TaP_d``: the fraction of predictions with
      ``sum_a w(a, p) / |p| >= theta`` (a prediction counts as correct when that share of
      it lies on attacks);
    - portion precision ``TaP_p``: the mean over predictions of ``sum_a w(a, p) / |p|``;

    ``TaR = alpha * TaR_d + (1 - alpha) * TaR_p``, ``TaP`` likewise, and ``f1`` is their
    harmonic mean. An empty mean is 0. The HAI competitions used ``theta = 0.5`` and
    ``alpha = 0.5`` (the defaults).

    Args:
        pred: ``(N,)`` 0/1 predictions.
        label: ``(N,)`` 0/1 ground truth.
        theta: Share of an attack (or prediction) that must be covered to count.
        alpha: Weight of the detection scores against the portion scores.
        delta: Length of the ambiguous section after each attack, in steps.

    Returns:
        ``{"tap", "tar", "f1", "tap_d", "tap_p", "tar_d", "tar_p", "n_attacks",
        "n_predictions", "n_detected"}``.
    """
    p, y = _binary(pred, "pred"), _binary(label, "label")  # (N,) bool each
    if p.shape != y.shape:
        raise ValueError(f"pred and label differ in length: {len(p)} vs {len(y)}")
    if not 0.0 <= theta <= 1.0 or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"theta and alpha must lie in [0, 1], got {theta!r} and {alpha!r}")
    if int(delta) != delta or delta < 0:
        raise ValueError(f"delta must be a non-negative integer, got {delta!r}")
    ranges, owner, weight = _owners(y, int(delta))
    hit = p & (owner >= 0)  # (N,) flagged steps that count for some attack
    # Predictions never overlap, so summing over them is summing over the flagged steps.
    per_attack = np.bincount(owner[hit], weights=weight[hit], minlength=len(ranges))  # (R,)
    share = np.minimum(per_attack / np.maximum(ranges[:, 1] - ranges[:, 0], 1), 1.0)  # (R,)
    preds = attack_ranges(p)  # (M, 2)
    csum = np.concatenate([[0.0], np.cumsum(np.where(p, weight, 0.0))])  # (N + 1,)
    covered = (csum[preds[:, 1]] - csum[preds[:, 0]]) / (preds[:, 1] - preds[:, 0])  # (M,)
    tar_d = float(np.mean(share >= theta)) if len(ranges) else 0.0
    tar_p = float(np.mean(share)) if len(ranges) else 0.0
    tap_d = float(np.mean(covered >= theta)) if len(preds) else 0.0
    tap_p = float(np.mean(covered)) if len(preds) else 0.0
    tar = alpha * tar_d + (1 - alpha) * tar_p
    tap = alpha * tap_d + (1 - alpha) * tap_p
    f1 = 2 * tap * tar / (tap + tar) if tap + tar else 0.0
    return {"tap": tap, "tar": tar, "f1": f1, "tap_d": tap_d, "tap_p": tap_p,
            "tar_d": tar_d, "tar_p": tar_p, "n_attacks": len(ranges),
            "n_predictions": len(preds), "n_detected": int(np.sum(share >= theta))}


def tapr_threshold(
    scores: np.ndarray, label: np.ndarray, *, candidates: int = 200, theta: float = 0.5,
    alpha: float = 0.5, delta: int = 0,
) -> tuple[float, dict[str, float]]:
    """The threshold that maximises TaPR F1, among quantiles of the scores.

    The threshold rule of the anomaly task: predictions are ``scores > threshold``; the
    candidates are ``candidates`` evenly spaced quantiles of the scores from the median up
    (at most half the steps can be flagged), and ties go to the highest (fewest alarms).
    Unlike point-adjusted F1, TaPR F1 does not reach 1 by flagging a single step of each
    attack, nor by flagging long stretches around them, so the rule does not saturate.

    Args:
        scores: ``(N,)`` anomaly scores.
        label: ``(N,)`` 0/1 ground truth with at least one attack step.
        candidates: Number of quantiles tried.
        theta, alpha, delta: As :func:`tapr`.

    Returns:
        ``(threshold, metrics)``, ``metrics`` being :func:`tapr` at that threshold.
    """
    s = _scores(scores)  # (N,)
    y = _binary(label, "label")  # (N,) bool
    if s.shape != y.shape:
        raise ValueError(f"scores and label differ in length: {len(s)} vs {len(y)}")
    if not y.any():
        raise ValueError("label has no attack steps: TaPR is undefined, no threshold to choose")
    grid = np.unique(np.quantile(s, np.linspace(0.5, 1.0, int(candidates))))  # (C,) ascending
    best, best_metrics = float(grid[-1]), None
    for thr in grid[::-1]:  # from the highest, so a tie keeps the higher threshold
        metrics = tapr(s > thr, y, theta=theta, alpha=alpha, delta=delta)
        if best_metrics is None or metrics["f1"] > best_metrics["f1"]:
            best, best_metrics = float(thr), metrics
    return best, best_metrics
