"""Small statistics for the comparison table: mean +- t-interval, Welch's test, verdicts."""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


def t_quantile(df: int, level: float = 0.95) -> float:
    """The two-sided ``level`` quantile of Student's t with ``df`` degrees of freedom."""
    return float(stats.t.ppf(0.5 + level / 2, df))


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


def welch_pvalue(a: Sequence[float], b: Sequence[float]) -> tuple[float, str]:
    """Two-sided p-value that two variants' seeds share a mean (unequal variances).

    Uses ``scipy.stats.ttest_ind(equal_var=False)``.

    Returns:
        ``(p, "welch")``; ``p`` is ``nan`` when either side has fewer than 2 finite values or
        neither varies.
    """
    x = [float(v) for v in a if v is not None and math.isfinite(float(v))]
    y = [float(v) for v in b if v is not None and math.isfinite(float(v))]
    if len(x) < 2 or len(y) < 2 or (np.std(x) == 0 and np.std(y) == 0):
        return float("nan"), "welch"
    with warnings.catch_warnings():
        # A deterministic baseline repeats one value: scipy warns of lost precision in its
        # (zero) variance, which is exact here.
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(x, y, equal_var=False).pvalue), "welch"


# ---------------------------------------------------------------------- verdicts
BEATS, MATCHES, FALLS_SHORT = "beats", "matches", "falls short"
VERDICTS = (BEATS, MATCHES, FALLS_SHORT)
ALPHA = 0.05

# Direction of the metrics the tasks log, by short name (``test/f1_pa`` -> ``f1_pa``): a
# study states the direction of its own metric only, and a report may test another one.
LOWER_IS_BETTER = frozenset({"loss", "nll", "ppl", "bpc", "mse", "mae", "ce"})
HIGHER_IS_BETTER = frozenset({"acc", "f1", "f1_pa", "precision", "recall", "precision_pa",
                              "recall_pa", "tapr_f1", "tap", "tar"})


# Every metric above is a count, a rate, a probability or a mean of squares: never negative.
NONNEGATIVE = LOWER_IS_BETTER | HIGHER_IS_BETTER


def is_nonnegative(metric: str | None) -> bool:
    """Whether a metric (``stage/name`` or ``name``) is known never to be negative, so a plot
    of it starts at 0 at the lowest and its error bars stop there."""
    return bool(metric) and metric.split("/", 1)[-1] in NONNEGATIVE


def metric_direction(metric: str | None, *, known: dict[str, str] | None = None) -> str | None:
    """``"minimize"``, ``"maximize"`` or ``None`` (unknown) for a metric name.

    Args:
        metric: ``stage/name`` or ``name``.
        known: ``{short name: direction}`` that take precedence (a study's own metric).
    """
    if not metric:
        return None
    short = metric.split("/", 1)[-1]
    if known and short in known:
        return known[short]
    if short in LOWER_IS_BETTER:
        return "minimize"
    if short in HIGHER_IS_BETTER:
        return "maximize"
    return None


@dataclass(frozen=True)
class Verdict:
    """How a row compares with a reference, in the only words a report uses.

    Attributes:
        verdict: ``beats``, ``matches`` or ``falls short``; ``None`` when it cannot be
            decided (fewer than 2 values, no reference, unknown direction): ``why`` says why.
        reference: The value or variant compared against.
        how: ``"interval"`` (the row's 95% interval against a value) or ``"welch"``.
        p: Welch's p-value (``how == "welch"``), else ``nan``.
        why: Why there is no verdict (empty when there is one).
    """

    verdict: str | None
    reference: float | str | None
    how: str
    p: float = float("nan")
    why: str = ""

    def __str__(self) -> str:
        if self.verdict is None:
            return "-"
        if self.how == "welch" and math.isfinite(self.p):
            return f"{self.verdict} (p={'<0.001' if self.p < 1e-3 else f'{self.p:.3f}'})"
        return self.verdict


def _better(direction: str) -> float:
    if direction not in ("minimize", "maximize"):
        raise ValueError(f"direction must be minimize or maximize, got {direction!r}")
    return -1.0 if direction == "minimize" else 1.0


def verdict_vs_value(summary: Summary, reference: float | None, direction: str | None
                     ) -> Verdict:
    """A row's verdict against a fixed value (a published figure, the best baseline's).

    ``beats`` when the row's interval lies entirely on the better side of ``reference``,
    ``matches`` when it contains it, ``falls short`` when it lies entirely on the worse side.
    A point estimate without an interval (n < 2) gets no verdict: one seed says nothing
    about the spread.

    Args:
        summary: The row's :func:`summarize` (its ``level`` interval is used).
        reference: The value compared against; ``None``/``nan``: no verdict.
        direction: ``minimize`` (lower is better) or ``maximize``; ``None``: no verdict.
    """
    if reference is None or not math.isfinite(float(reference)):
        return Verdict(None, reference, "interval", why="no reference value")
    if direction is None:
        return Verdict(None, reference, "interval", why="unknown metric direction")
    if summary.n < 2 or not (math.isfinite(summary.low) and math.isfinite(summary.high)):
        return Verdict(None, reference, "interval", why=f"n={summary.n}: no interval")
    sign = _better(direction)
    ref = float(reference)
    # In "better is higher" units the interval is [lo, hi] with lo <= hi.
    lo, hi = sorted((sign * summary.low, sign * summary.high))
    if lo > sign * ref:
        return Verdict(BEATS, ref, "interval")
    if hi < sign * ref:
        return Verdict(FALLS_SHORT, ref, "interval")
    return Verdict(MATCHES, ref, "interval")


def verdict_welch(a: Sequence[float], b: Sequence[float], direction: str | None, *,
                  alpha: float = ALPHA, reference: str | None = None) -> Verdict:
    """The verdict of variant ``a`` against variant ``b`` by Welch's test (two-sided).

    ``beats`` / ``falls short`` when ``p < alpha`` and ``a``'s mean is better / worse than
    ``b``'s, ``matches`` otherwise: with few seeds, "matches" means "not told apart".

    Args:
        a, b: The two variants' values (one per seed).
        direction: ``minimize`` or ``maximize``; ``None``: no verdict.
        alpha: Significance level.
        reference: ``b``'s name, kept in the verdict.
    """
    if direction is None:
        return Verdict(None, reference, "welch", why="unknown metric direction")
    xs = [float(v) for v in a if v is not None and math.isfinite(float(v))]
    ys = [float(v) for v in b if v is not None and math.isfinite(float(v))]
    p, method = welch_pvalue(xs, ys)
    if not math.isfinite(p):
        return Verdict(None, reference, method, p, why="needs >= 2 values on each side "
                       "and some spread")
    diff = _better(direction) * (statistics.fmean(xs) - statistics.fmean(ys))
    if p < alpha and diff > 0:
        return Verdict(BEATS, reference, method, p)
    if p < alpha and diff < 0:
        return Verdict(FALLS_SHORT, reference, method, p)
    return Verdict(MATCHES, reference, method, p)


__all__ = ["ALPHA", "BEATS", "FALLS_SHORT", "MATCHES", "NONNEGATIVE", "VERDICTS", "Summary",
           "Verdict", "is_nonnegative", "metric_direction", "summarize", "t_quantile",
           "verdict_vs_value", "verdict_welch", "welch_pvalue"]
