"""Small statistics for the comparison table: mean +- t-interval and Welch's test."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Two-sided 95% Student-t quantiles t_{0.975, df}, used when scipy is not installed.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def _scipy_stats():
    try:
        from scipy import stats
    except ImportError:
        return None
    return stats


def t_quantile(df: int, level: float = 0.95) -> float:
    """The two-sided ``level`` quantile of Student's t with ``df`` degrees of freedom."""
    stats = _scipy_stats()
    if stats is not None:
        return float(stats.t.ppf(0.5 + level / 2, df))
    if level != 0.95:
        raise ValueError("without scipy only the 95% interval is available")
    return _T975[df - 1] if df <= len(_T975) else 1.960 + 2.4 / df  # ~1.98 at df=60


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation and a t-interval of one variant's seeds.

    Attributes:
        n: Number of finite values.
        mean: Their mean (``nan`` when ``n == 0``).
        std: Sample standard deviation (n-1); ``nan`` when ``n < 2``.
        low, high: The ``level`` t-interval of the mean; ``nan`` when ``n < 2``.
    """

    n: int
    mean: float
    std: float
    low: float
    high: float
    level: float = 0.95


def summarize(values: Sequence[float], level: float = 0.95) -> Summary:
    """Mean +- sample std and the t-interval ``mean +- t_{df} * std / sqrt(n)``."""
    xs = [float(x) for x in values if x is not None and math.isfinite(float(x))]
    nan = float("nan")
    if not xs:
        return Summary(0, nan, nan, nan, nan, level)
    mean = statistics.fmean(xs)
    if len(xs) < 2:
        return Summary(1, mean, nan, nan, nan, level)
    std = statistics.stdev(xs)
    half = t_quantile(len(xs) - 1, level) * std / math.sqrt(len(xs))
    return Summary(len(xs), mean, std, mean - half, mean + half, level)


def _welch_t(a: np.ndarray, b: np.ndarray) -> float:
    se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    if se == 0:
        return 0.0 if a.mean() == b.mean() else math.copysign(math.inf, a.mean() - b.mean())
    return float((a.mean() - b.mean()) / se)


def bootstrap_pvalue(a: Sequence[float], b: Sequence[float], *, resamples: int = 10000,
                     seed: int = 0) -> float:
    """Two-sided bootstrap test of equal means with unequal variances (Efron & Tibshirani
    1993, 16.4): both samples are shifted to the pooled mean, resampled within themselves,
    and the Welch statistic of each resample is compared with the observed one.

    Returns:
        The p-value, or ``nan`` when either sample has fewer than 2 values or both are
        constant (no spread to test against).
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) < 2 or len(y) < 2 or (x.std() == 0 and y.std() == 0):
        return float("nan")
    observed = abs(_welch_t(x, y))
    pooled = np.concatenate([x, y]).mean()
    x0, y0 = x - x.mean() + pooled, y - y.mean() + pooled
    rng = np.random.default_rng(seed)
    xs = x0[rng.integers(0, len(x), size=(resamples, len(x)))]  # (R, n_x)
    ys = y0[rng.integers(0, len(y), size=(resamples, len(y)))]  # (R, n_y)
    se = np.sqrt(xs.var(axis=1, ddof=1) / len(x) + ys.var(axis=1, ddof=1) / len(y))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.abs(xs.mean(axis=1) - ys.mean(axis=1)) / se
    t = np.where(se == 0, 0.0, t)  # a degenerate resample shows no difference
    return float((1 + np.sum(t >= observed)) / (resamples + 1))


def welch_pvalue(a: Sequence[float], b: Sequence[float]) -> tuple[float, str]:
    """Two-sided p-value that two variants' seeds share a mean (unequal variances).

    Uses ``scipy.stats.ttest_ind(equal_var=False)`` when scipy is installed, otherwise
    :func:`bootstrap_pvalue`.

    Returns:
        ``(p, method)`` with ``method`` ``"welch"`` or ``"bootstrap"``; ``p`` is ``nan``
        when either side has fewer than 2 finite values or neither varies.
    """
    x = [float(v) for v in a if v is not None and math.isfinite(float(v))]
    y = [float(v) for v in b if v is not None and math.isfinite(float(v))]
    stats = _scipy_stats()
    if stats is None:
        return bootstrap_pvalue(x, y), "bootstrap"
    if len(x) < 2 or len(y) < 2 or (np.std(x) == 0 and np.std(y) == 0):
        return float("nan"), "welch"
    return float(stats.ttest_ind(x, y, equal_var=False).pvalue), "welch"


__all__ = ["Summary", "bootstrap_pvalue", "summarize", "t_quantile", "welch_pvalue"]
