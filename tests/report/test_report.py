"""``rnnbench report`` on real tiny studies: table, files, published figures, errors."""

from __future__ import annotations

import csv
import json
import math
import shutil

import numpy as np
import pytest

from rnnbench.cli import main
from rnnbench.report import (
    build_table,
    open_source,
    summarize,
    to_latex,
    welch_pvalue,
)
from tests.report.conftest import DIVERGE
from tests.report.conftest import run_study as _run_study


def _report(*args: str, capsys) -> tuple[int, str, str]:
    rc = main(["report", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_table_has_one_row_per_variant_with_counts_and_paper(study):
    source = open_source(str(study))
    assert source.paper == {"source": "chung2014", "dataset": "jsb_chorales"}  # stored
    table = build_table(source.results, source.paper)
    d = table.data.set_index("variant")
    assert list(d.index) == ["gru", "lstm", "rnn_relu"]
    for col in ("hidden_size", "num_parameters", "best_val/nll", "test/nll_mean",
                "test/nll_std", "test/nll_ci95_low", "test/nll_ci95_high", "p_value",
                "complete", "pruned", "failed", "wall_time_s", "tokens_per_s", "published",
                "published_diff"):
        assert col in d.columns, col
    for v in ("gru", "lstm"):
        assert d.loc[v, "test/nll_n"] == 2 and d.loc[v, "complete"] + d.loc[v, "pruned"] == 2
        assert d.loc[v, "test/nll_ci95_low"] < d.loc[v, "test/nll_mean"] < \
            d.loc[v, "test/nll_ci95_high"]
        assert d.loc[v, "tokens_per_s"] > 0 and d.loc[v, "wall_time_s"] > 0
        assert abs(d.loc[v, "num_parameters"] - 2000) < 100
    # the published figure and our difference
    assert d.loc["gru", "published"] == 8.54
    assert math.isclose(d.loc["gru", "published_diff"], d.loc["gru", "test/nll_mean"] - 8.54)
    assert math.isnan(d.loc["rnn_relu", "published"])  # Chung et al. ran no ReLU RNN
    # the diverged variant still renders, with its counts and no numbers
    assert (d.loc["rnn_relu", "complete"], d.loc["rnn_relu", "failed"]) == (0, 2)
    assert d.loc["rnn_relu", "test/nll_n"] == 0
    assert table.best in ("gru", "lstm")
    other = "lstm" if table.best == "gru" else "gru"
    assert 0 <= d.loc[other, "p_value"] <= 1 and math.isnan(d.loc[table.best, "p_value"])
    assert any("rnn_relu: 2 search trial(s) failed (nonfinite)" in n for n in table.notes)
    tex = to_latex(table)
    assert r"\toprule" in tex and r"rnn\_relu" in tex and r"$\pm$" in tex


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_cli_writes_every_format_and_figure(study, tmp_path, capsys):
    out = tmp_path / "out"
    rc, stdout, err = _report(str(study), "--out", str(out), capsys=capsys)
    assert rc == 0, err
    assert "vs best (Welch)" in stdout and "chung2014 test/nll" in stdout
    assert "0/0/2" in stdout and "none completed" in stdout  # rnn_relu's counts
    assert "none completed yet" not in stdout and "unfinished" not in stdout  # all spent
    names = {p.name for p in out.iterdir()}
    # 2 trials per variant: no importance figure (it needs 8), the reason in the report
    figures = {"learning_curves", "history", "metric_vs_params"}
    assert names == {"report.md", "report.csv", "report.tex", "report.html"} | \
        {f"{f}.{x}" for f in figures for x in ("png", "svg")}
    for f in figures:
        assert (out / f"{f}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in (out / f"{f}.svg").read_bytes()[:2000]
    md = (out / "report.md").read_text()
    assert (out / "report.md").stat().st_mode & 0o777 == 0o666 & ~_umask()  # not mkstemp's 0600
    assert "| variant |" in md and "![Learning curves](learning_curves.png)" in md
    assert "| rnn_relu |" in md and "Chung, Gulcehre" in md
    assert "gru: 2 complete search trial(s), no importance: it needs >= 8" in md
    assert "docs/" not in md  # nothing that exists only in a checkout
    # the winning hyper-parameters, in every format
    results = json.loads((study / "results.json").read_text())
    best = {r["variant"]: r["best"]["params"] for r in results["variants"] if r["best"]}
    assert set(best) == {"gru", "lstm"}
    tex = (out / "report.tex").read_text()
    page = (out / "report.html").read_text()
    for name, params in best.items():
        shown = f"lr={params['lr']:.3g}, optimizer={params['optimizer']}"
        row = next(line for line in stdout.splitlines() if line.lstrip("│ ").startswith(name))
        assert shown in row, (shown, row)
        assert shown in next(line for line in md.splitlines()
                             if line.replace("**", "").startswith(f"| {name} |"))
        assert shown in tex and shown in page
    rows = {r["variant"]: r for r in csv.DictReader(open(out / "report.csv"))}
    assert json.loads(rows["gru"]["best_params"]) == best["gru"]
    assert rows["rnn_relu"]["best_params"] == ""
    header = (out / "report.csv").read_text().splitlines()[0].split(",")
    assert header[:2] == ["variant", "cell"] and "p_value" in header and "published" in header


def test_formats_name_lookup_and_results_json_only(study, tmp_path, capsys, monkeypatch):
    # a bare name is looked up in runs/NAME; --no-plots and one format write one file
    monkeypatch.chdir(study.parent.parent)
    rc, stdout, err = _report("cmp", "--format", "csv", "--no-plots", "--paper",
                              "chung2014:nottingham", "--out", str(tmp_path / "a"), capsys=capsys)
    assert rc == 0, err
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["report.csv"]
    assert "vs best (Welch)" not in stdout  # no terminal table
    assert "3.23" in (tmp_path / "a" / "report.csv").read_text()  # the --paper given wins
    # a folder with only results.json still gives the table; importance needs the storage
    only = tmp_path / "only"
    only.mkdir()
    shutil.copy(study / "results.json", only)
    rc, _, err = _report(str(only), "--format", "markdown", capsys=capsys)
    assert rc == 0, err
    md = (only / "report" / "report.md").read_text()
    assert "| gru |" in md and "importance needs the study storage" in md


def test_errors_are_one_paragraph_and_write_nothing(study, tmp_path, capsys, monkeypatch):
    url = f"sqlite:///{study}/study.db"
    rc, _, err = _report("nosuch", "--storage", url, capsys=capsys)
    assert rc == 2 and "no study 'nosuch'" in err and "studies there: cmp" in err
    monkeypatch.chdir(study.parent.parent)
    rc, _, err = _report("nosuch", capsys=capsys)
    assert rc == 2 and "runs/nosuch does not exist" in err and "cmp" in err
    rc, _, err = _report("cmp", "--paper", "chung2014:mnist", capsys=capsys)
    assert rc == 2 and "chung2014:jsb_chorales" in err
    rc, _, err = _report("cmp", "--format", "pdf", capsys=capsys)
    assert rc == 2 and "unknown format(s) pdf" in err
    blocker = tmp_path / "file"
    blocker.write_text("")
    rc, _, err = _report("cmp", "--out", str(blocker / "report"), "--no-plots", capsys=capsys)
    assert rc == 2 and "cannot write the report to" in err
    assert err.count("\n") == 1  # one paragraph
    assert not (study / "report").exists()


def test_study_without_a_complete_trial_shows_counts_and_fails(tmp_path, capsys):
    folder = _run_study(tmp_path / "runs", "study.name=dead", "study.variants=[rnn_relu]",
                        "study.trials_per_variant=1", "study.seeds=1", "optim.clip=null",
                        DIVERGE)
    rc, stdout, err = _report(str(folder), capsys=capsys)
    assert rc == 2 and "no complete trial" in err and "rnn_relu: 0 complete, 0 pruned, " \
        "1 failed" in err
    assert "rnn_relu" in stdout and "0/0/1" in stdout  # the counts still render
    assert not (folder / "report").exists()
    # study run prints its own (launcher's) table only when the report printed none
    from rnnbench.report.render import report_study
    from rnnbench.report.tables import ReportError

    with pytest.raises(ReportError) as err:
        report_study(str(folder), plots=False)
    assert err.value.table_shown
    with pytest.raises(ReportError) as err:
        report_study("nosuch", folder=folder.parent / "nosuch")
    assert not err.value.table_shown


def test_interval_and_tests():
    s = summarize([1.0, 2.0, 3.0])
    assert (s.n, s.mean, s.std) == (3, 2.0, 1.0)
    assert math.isclose(s.high - s.mean, 4.303 / math.sqrt(3), rel_tol=1e-3)  # t_{0.975,2}
    assert summarize([5.0]).n == 1 and math.isnan(summarize([5.0]).low)
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 8), rng.normal(3, 1, 8)
    p, method = welch_pvalue(a, b)
    assert method == "welch" and p < 0.001
    assert welch_pvalue(a, rng.normal(0, 1, 8))[0] > 0.05
    assert math.isnan(welch_pvalue([1.0], [2.0, 3.0])[0])


def test_results_json_matches_report(study):
    results = json.loads((study / "results.json").read_text())
    table = build_table(results)
    assert list(table.data["variant"]) == [r["variant"] for r in results["variants"]]
    assert "published" not in table.data  # no paper given


def test_study_with_failed_and_pruned_trials_renders_their_counts(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    # jsb_tiny's seeded TPE + median pruner prunes an lstm trial; rnn_relu always diverges.
    folder = _run_study(tmp_path / "runs", "study.name=mixed",
                        "study.variants=[lstm, rnn_relu]", "study.seeds=1", "optim.clip=null",
                        DIVERGE)
    table = build_table(open_source("mixed", folder=folder).results)
    d = table.data.set_index("variant")
    assert d.loc["lstm", "pruned"] >= 1 and d.loc["lstm", "complete"] >= 1
    assert d.loc["rnn_relu", "failed"] == 3 and d.loc["rnn_relu", "complete"] == 0
    rc, out, _ = _report(str(folder), "--no-plots", "--format", "terminal", capsys=capsys)
    assert rc == 0
    row = next(line for line in out.splitlines() if "rnn_relu" in line)
    assert "0/0/3" in row


def test_a_study_can_report_another_test_metric(tmp_path, monkeypatch, capsys):
    # Anomaly studies rank trials by val/mse and compare the architectures on test/f1_pa.
    monkeypatch.setenv("WANDB_MODE", "disabled")
    study_file = tmp_path / "hai.yaml"
    study_file.write_text(
        "data: {dataset: hai_synthetic, n_steps: 3000, n_attacks: 2, window: 20, "
        "batch_size: 16}\n"
        "model: {cell: gru, hidden_size: 4}\n"
        "optim: {optimizer: adam, lr: 0.01}\n"
        "trainer: {max_epochs: 1, accelerator: cpu, limit_train_batches: 3}\n"
        "logging: {progress_bar: false}\n"
        "study: {name: hai, variants: [gru], trials_per_variant: 1, seeds: 2, "
        "space: {lr: [0.01]}, sampler: grid, pruner: none, metric: val/mse, "
        "test_metric: test/f1_pa}\n"
    )
    out = _run_study(tmp_path / "runs", study_file=study_file)
    results = json.loads((out / "results.json").read_text())
    assert (results["metric"], results["test_metric"]) == ("val/mse", "test/f1_pa")
    final = results["variants"][0]["final"]
    f1 = [r["metrics"]["test/f1_pa"] for r in final["runs"]]
    assert final["test_metric"]["n"] == 2
    assert final["test_metric"]["mean"] == pytest.approx(float(np.mean(f1)))
    assert final["metric"]["mean"] == pytest.approx(
        float(np.mean([r["metrics"]["val/mse"] for r in final["runs"]])))
    rc, _, _ = _report(str(out), "--format", "markdown", capsys=capsys)
    assert rc == 0 and "final test/f1_pa" in (out / "report" / "report.md").read_text()
