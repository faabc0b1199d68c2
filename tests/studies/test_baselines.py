"""``study.baselines``: a tiny real study whose results.json and every report format carry
the baseline rows, marked, with verdicts; the option's checks; stored rows are not redone."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest

from rnnbench.cli import main
from rnnbench.experiment import ConfigError
from rnnbench.studies.spec import StudySpec
from tests.studies.conftest import rnnbench

TINY_RUN = ("study.name=withbase", "study.variants=[gru]", "study.trials_per_variant=1",
            "study.seeds=2", "trainer.max_epochs=1", "data.limit_pieces=8",
            "study.baselines=[frequency]")


def test_the_option_is_checked_and_travels_with_the_spec(tiny):
    spec = tiny("study.baselines=[frequency]")
    assert spec.baselines == [{"name": "frequency", "options": {}}]
    again = StudySpec.from_dict(spec.to_dict())
    assert again.baselines == spec.baselines
    # Adding baselines later does not change what a resumed study must keep.
    assert tiny().fingerprint() == spec.fingerprint()
    with pytest.raises(ConfigError, match="did you mean 'frequency'"):
        tiny("study.baselines=[frequncy]")
    with pytest.raises(ConfigError, match="share a name with a variant"):
        from rnnbench.baselines import Baseline, register_baseline
        from rnnbench.baselines.registry import _REGISTRY

        try:
            @register_baseline("gru")
            class Clash(Baseline):
                def fit(self, train, task): ...
                def predict(self, batch): ...
            tiny("study.baselines=[gru]")
        finally:
            _REGISTRY.pop("gru", None)


def test_a_baseline_that_cannot_score_the_task_stops_the_study_before_training(tmp_path):
    r = rnnbench("study", "run", "configs/study/jsb_tiny.yaml", "--no-live",
                 f"logging.dir={tmp_path}", "study.baselines=[persistence]",
                 "study.trials_per_variant=1", "study.variants=[gru]")
    assert r.returncode == 2, r.stderr
    assert "persistence" in r.stderr and "the 'music' task here does not predict" in r.stderr
    assert not list((tmp_path / "jsb_tiny").glob("logs/worker-*.log"))


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """The real ``rnnbench study run`` on a shrunk jsb_tiny with two frequency baselines."""
    runs = tmp_path_factory.mktemp("baselines") / "runs"
    r = rnnbench("study", "run", "configs/study/jsb_tiny.yaml", "--workers", "1",
                 "--no-live", f"logging.dir={runs}", *TINY_RUN, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "baseline frequency (seed 1): val/nll" in r.stdout
    return runs / "withbase"


def test_results_json_carries_the_baseline_rows(study):
    results = json.loads((study / "results.json").read_text())
    rows = {v["variant"]: v for v in results["variants"]}
    assert list(rows) == ["gru", "frequency"]
    base = rows["frequency"]
    assert base["baseline"] is True and not rows["gru"].get("baseline")
    assert base["num_parameters"] == 88 and base["options"] == {"prior": 0.5}
    runs = base["final"]["runs"]
    assert [r["seed"] for r in runs] == [1, 2] and all(r["state"] == "COMPLETE" for r in runs)
    # The same data for both seeds (JSB does not depend on the seed): the same figure.
    assert runs[0]["metrics"]["test/nll"] == runs[1]["metrics"]["test/nll"]
    assert base["final"]["test_metric"]["n"] == 2 and base["final"]["test_metric"]["std"] == 0
    assert set(runs[0]["metrics"]) == {"val/nll", "test/nll"}  # what the variants log
    lines = list(csv.DictReader((study / "results.csv").open()))
    assert [(x["variant"], x["baseline"]) for x in lines] == [("gru", "False"),
                                                              ("frequency", "True")]


def test_every_report_format_carries_the_baselines_and_verdicts(study, tmp_path, capsys):
    out = tmp_path / "report"
    rc = main(["report", str(study), "--out", str(out), "--paper", "chung2014:jsb_chorales"])
    stdout, err = capsys.readouterr()
    assert rc == 0, err
    assert "frequency (baseline)" in stdout and "vs frequency" in stdout
    md = (out / "report.md").read_text()
    assert "| frequency (baseline) |" in md and "| vs frequency |" in md.replace(" |\n", " |")
    assert "reference" in md and "baselines (no recurrence" in md
    tex = (out / "report.tex").read_text()
    assert r"frequency (baseline)" in tex and r"vs frequency" in tex
    data = list(csv.DictReader(io.StringIO((out / "report.csv").read_text())))
    rows = {r["variant"]: r for r in data}
    assert rows["frequency"]["baseline"] == "True" and rows["gru"]["baseline"] == "False"
    verdict = rows["gru"]["verdict_vs_baseline"]
    assert verdict in ("beats", "matches", "falls short")
    # The verdict is the interval's: recompute it from the row's own numbers.
    lo, hi = float(rows["gru"]["test/nll_ci95_low"]), float(rows["gru"]["test/nll_ci95_high"])
    ref = float(rows["frequency"]["test/nll_mean"])
    assert verdict == ("beats" if hi < ref else "falls short" if lo > ref else "matches")
    assert rows["gru"]["verdict_vs_published"] in ("beats", "matches", "falls short")
    assert rows["frequency"]["verdict_vs_published"] == ""  # Chung et al. report none for it
    assert math.isnan(float(rows["frequency"]["published"] or "nan"))
    for name in ("learning_curves", "metric_vs_params", "history"):
        assert b"frequency (baseline" in (out / f"{name}.svg").read_bytes()


def test_a_resumed_study_keeps_its_stored_baselines(study):
    from rnnbench.studies.baselines import run_baselines, stored_baselines
    from rnnbench.studies.ledger import StudyRun

    (storage,) = [p for p in study.iterdir() if p.name in ("study.db", "study.journal")]
    url = f"sqlite:///{storage}" if storage.suffix == ".db" else f"journal:{storage}"
    run = StudyRun.attach(url, "withbase")
    before = stored_baselines(run)
    lines: list[str] = []
    assert run_baselines(run, log=lines.append) == before and lines == []
