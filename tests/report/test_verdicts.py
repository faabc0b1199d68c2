"""Verdicts: a row's 95% interval against a value, and Welch's test between two variants."""

from __future__ import annotations

import math

import pytest

from rnnbench.report.stats import (
    BEATS,
    FALLS_SHORT,
    MATCHES,
    Summary,
    metric_direction,
    summarize,
    verdict_vs_value,
    verdict_welch,
)


def _row(mean: float, low: float, high: float, n: int = 3) -> Summary:
    return Summary(n=n, mean=mean, std=float("nan"), low=low, high=high)


@pytest.mark.parametrize("direction, low, high, expected", [
    ("minimize", 1.0, 2.0, BEATS),         # entirely below 3: lower is better
    ("minimize", 2.0, 4.0, MATCHES),       # contains 3
    ("minimize", 3.5, 4.0, FALLS_SHORT),   # entirely above
    ("maximize", 3.5, 4.0, BEATS),         # entirely above: higher is better
    ("maximize", 2.0, 4.0, MATCHES),
    ("maximize", 1.0, 2.0, FALLS_SHORT),
    ("minimize", 3.0, 4.0, MATCHES),       # touching the value still contains it
])
def test_interval_against_a_value(direction, low, high, expected):
    v = verdict_vs_value(_row((low + high) / 2, low, high), 3.0, direction)
    assert v.verdict == expected and v.how == "interval" and str(v) == expected


def test_jsb_tanh_row_matches_chung_not_beats():
    # docs/results.md: tanh 8.582 +- 0.089 over n=2 seeds, 95% t-interval [7.779, 9.385];
    # Chung et al. (2014) test NLL 9.10; lower is better. The mean is 0.52 lower, but with
    # two seeds the interval contains 9.10.
    row = Summary(n=2, mean=8.582, std=0.089, low=7.779, high=9.385)
    assert verdict_vs_value(row, 9.10, "minimize").verdict == MATCHES
    # The same from two per-seed values with that mean and std, through summarize().
    half = 0.089 / math.sqrt(2)
    s = summarize([8.582 - half, 8.582 + half])
    assert s.n == 2 and math.isclose(s.std, 0.089, rel_tol=1e-9)
    assert math.isclose(s.low, 7.7823, abs_tol=5e-3) and math.isclose(s.high, 9.3817,
                                                                     abs_tol=5e-3)
    assert verdict_vs_value(s, 9.10, "minimize").verdict == MATCHES
    # The LSTM row of the same table (8.387 +- 0.009, [8.303, 8.471]) beats 8.67.
    lstm = Summary(n=2, mean=8.387, std=0.009, low=8.303, high=8.471)
    assert verdict_vs_value(lstm, 8.67, "minimize").verdict == BEATS


def test_no_verdict_without_an_interval_a_reference_or_a_direction():
    one = summarize([8.0])
    v = verdict_vs_value(one, 9.0, "minimize")
    assert v.verdict is None and "n=1" in v.why and str(v) == "-"
    assert verdict_vs_value(summarize([1.0, 2.0]), None, "minimize").verdict is None
    assert verdict_vs_value(summarize([1.0, 2.0]), float("nan"), "minimize").verdict is None
    assert verdict_vs_value(summarize([1.0, 2.0]), 5.0, None).verdict is None
    with pytest.raises(ValueError, match="direction"):
        verdict_vs_value(summarize([1.0, 2.0]), 5.0, "lower")


def test_welch_verdicts_between_two_variants():
    a = [1.00, 1.01, 0.99, 1.02]
    b = [2.00, 2.02, 1.98, 2.01]
    v = verdict_welch(a, b, "minimize", reference="b")
    assert v.verdict == BEATS and v.p < 0.05 and v.reference == "b" and v.how == "welch"
    assert str(v).startswith("beats (p=")
    assert verdict_welch(b, a, "minimize").verdict == FALLS_SHORT
    assert verdict_welch(a, b, "maximize").verdict == FALLS_SHORT
    close = verdict_welch([1.0, 1.2, 0.9], [1.1, 0.95, 1.15], "minimize")
    assert close.verdict == MATCHES and close.p >= 0.05
    assert verdict_welch([1.0], [2.0, 2.1], "minimize").verdict is None
    assert verdict_welch([1.0, float("nan"), 1.1], [2.0, 2.1, 2.05], "minimize").verdict \
        == BEATS  # non-finite values are left out, as in summarize


def test_metric_directions():
    assert metric_direction("test/nll") == "minimize"
    assert metric_direction("test/ppl") == "minimize"
    assert metric_direction("test/f1_pa") == "maximize"
    assert metric_direction("val/acc") == "maximize"
    assert metric_direction("test/custom") is None
    assert metric_direction("test/custom", known={"custom": "maximize"}) == "maximize"
