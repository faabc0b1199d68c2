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


def _variant(name, test, val, *, baseline=False, published_as=None):
    runs = [{"number": i, "seed": i + 1, "state": "COMPLETE", "value": v,
             "metrics": {"val/ppl": v, "test/ppl": t}, "fail_reason": None, "run_dir": None}
            for i, (v, t) in enumerate(zip(val, test))]
    row = {"variant": name, "cell": None if baseline else name, "num_layers": 1,
           "bidirectional": False, "hidden_size": None, "num_parameters": 10,
           "trials": {"budget": 1, "done": 1, "complete": 1, "pruned": 0, "failed": 0,
                      "retried": 0, "pending": 0},
           "failures": [], "best": {"number": 0, "value": min(val), "params": {}},
           "final": {"seeds": [1, 2], "runs": runs, "metric": None, "test_metric": None}}
    if baseline:
        row.update(baseline=True, published_as=published_as, description="a baseline")
    return row


def test_table_verdicts_against_paper_baseline_and_best():
    from rnnbench.report.tables import build_table, display_rows, to_csv

    results = {
        "study": "ptb", "metric": "val/ppl", "test_metric": "test/ppl",
        "direction": "minimize", "seeds": [1, 2], "trials_per_variant": 1, "trials": [],
        "variants": [
            _variant("lstm", [79.50, 79.52], [82.0, 82.4]),
            _variant("rnn_tanh", [120.0, 130.0], [125.0, 131.0]),
            _variant("unigram", [639.8, 639.8], [685.0, 685.0], baseline=True),
            _variant("kneser_ney", [141.1, 141.1], [147.8, 147.8], baseline=True,
                     published_as="kn5"),
        ]}
    table = build_table(results, {"source": "bai2018", "dataset": "ptb"})
    d = table.data.set_index("variant")
    assert table.best == "lstm" and table.best_baseline == "kneser_ney"
    assert list(d["baseline"]) == [False, False, True, True]
    # LSTM 79.51 +- 0.014 (n=2): interval [79.38, 79.64], entirely above Bai et al.'s 78.93.
    assert d.loc["lstm", "published"] == 78.93
    assert d.loc["lstm", "verdict_vs_published"] == FALLS_SHORT
    assert d.loc["lstm", "verdict_vs_baseline"] == BEATS  # entirely below KN5's 141.1
    # The tanh RNN: interval [~-2, ~252] contains both Bai et al.'s 114.5 and 141.1.
    assert d.loc["rnn_tanh", "verdict_vs_published"] == MATCHES
    assert d.loc["rnn_tanh", "verdict_vs_baseline"] == MATCHES
    assert d.loc["rnn_tanh", "verdict_vs_best"] in (MATCHES, FALLS_SHORT)
    # The KN baseline's published figure comes from Mikolov et al. (2011), named in a note.
    assert d.loc["kneser_ney", "published"] == 141.2
    assert any("Mikolov" in n for n in table.notes)
    assert d.loc["unigram", "verdict_vs_baseline"] == FALLS_SHORT
    headers, cells = display_rows(table)
    assert headers[-1] == "vs kneser_ney" and headers[-2] == "vs bai2018"
    rows = {c[0]: c for c in cells}
    assert rows["kneser_ney (baseline)"][-1] == "reference"
    assert rows["lstm"][-1] == "beats (n=2)"
    assert rows["lstm"][headers.index("vs best (Welch)")] == "best"
    assert "verdict_vs_published" in to_csv(table).splitlines()[0]


def test_paper_against_holds_every_trained_variant_against_one_published_row():
    """``study.paper.against: tcn``: the target to beat is Bai et al.'s TCN (8.10 on JSB), not
    each cell's own published figure; a baseline keeps its own."""
    from rnnbench.report.tables import build_table, display_rows

    results = {
        "study": "jsb", "metric": "val/nll", "test_metric": "test/nll",
        "direction": "minimize", "seeds": [1, 2], "trials_per_variant": 1, "trials": [],
        "variants": [
            _nll(_variant("gru", [8.00, 8.02], [8.0, 8.01])),  # [7.88, 8.14]: holds 8.10
            _nll(_variant("lstm", [8.30, 8.32], [8.3, 8.31])),  # [8.18, 8.44]: above 8.10
        ]}
    paper = {"source": "bai2018", "dataset": "jsb_chorales", "against": "tcn"}
    d = build_table(results, paper).data.set_index("variant")
    assert list(d["published"]) == [8.10, 8.10]
    assert d.loc["gru", "verdict_vs_published"] == MATCHES
    assert d.loc["lstm", "verdict_vs_published"] == FALLS_SHORT
    own = build_table(results, {"source": "bai2018", "dataset": "jsb_chorales"}).data
    assert list(own.set_index("variant")["published"]) == [8.43, 8.45]  # each cell's own
    headers, _ = display_rows(build_table(results, paper))
    assert "bai2018 tcn test/nll" in headers and "vs bai2018 tcn" in headers


def _nll(row):
    for r in row["final"]["runs"]:
        r["metrics"] = {"val/nll": r["metrics"]["val/ppl"], "test/nll": r["metrics"]["test/ppl"]}
    return row


def test_paper_flag_takes_an_optional_row():
    from rnnbench.report.tables import ReportError, parse_paper

    assert parse_paper("bai2018:jsb_chorales:tcn") == {
        "source": "bai2018", "dataset": "jsb_chorales", "against": "tcn"}
    assert parse_paper("bai2018:jsb_chorales") == {"source": "bai2018", "dataset": "jsb_chorales"}
    with pytest.raises(ReportError, match="no jsb_chorales row 'tnc'; its rows: gru, lstm"):
        parse_paper("bai2018:jsb_chorales:tnc")
