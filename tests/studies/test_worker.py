"""One in-process worker on real tiny trainings: budgets, pruning, NaN trials, results."""

from __future__ import annotations

import json
import math

import optuna
import pytest
from optuna.trial import TrialState

from rnnbench.studies.ledger import StudyRun
from rnnbench.studies.pool import preflight
from rnnbench.studies.results import collect, results_table, write_results
from rnnbench.studies.trials import FINAL, SEARCH, trial_config
from rnnbench.studies.worker import Worker


def _run_all(spec, tmp_path, url=None):
    sizes = preflight(spec)
    run = StudyRun.create(spec, url or f"sqlite:///{tmp_path}/study.db")
    run.prepare()
    lines: list[str] = []
    Worker(run, output_dir=spec.output_dir, log=lines.append).loop()
    return run, sizes, lines


def test_worker_spends_exactly_the_budget_and_writes_results(tiny, tmp_path):
    spec = tiny("study.variants=[lstm, gru]", "study.trials_per_variant=2", "study.seeds=1")
    run, sizes, _ = _run_all(spec, tmp_path)
    assert spec.metric == "val/nll" and spec.direction == "minimize"  # from the task
    assert run.all_done()
    for v in spec.variants:
        search = run.trials(v, SEARCH)
        assert len(search) == 2 and all(t.state.is_finished() for t in search)
        assert {t.state for t in search} <= {TrialState.COMPLETE, TrialState.PRUNED}
        for t in search:
            # every variant is sized to the same 2000-parameter budget
            assert abs(t.user_attrs["num_parameters"] - 2000) < 100
            assert t.user_attrs["hidden_size"] == sizes[v.name]["hidden_size"]
            assert t.intermediate_values  # the metric was reported each epoch
        final = run.trials(v, FINAL)
        assert [t.state for t in final] == [TrialState.COMPLETE]
        best = run.tally(v, SEARCH).best
        assert final[0].params == best.params and final[0].user_attrs["source_trial"] == \
            best.number
        assert "test/nll" in final[0].user_attrs["metrics"]
        # the reported validation metric is the best epoch's (the tested checkpoint's)
        fm = final[0].user_attrs["metrics"]
        assert fm["val/nll"] == final[0].value and fm["val/nll"] <= fm["val/nll_last"]
    paths = write_results(run, spec.output_dir, sizes)
    results = json.loads(paths["json"].read_text())
    assert results["complete"] and results["metric"] == "val/nll"
    assert [r["variant"] for r in results["variants"]] == ["lstm", "gru"]
    row = results["variants"][0]
    assert row["trials"]["done"] == 2 and row["final"]["metric"]["n"] == 1
    assert math.isfinite(row["final"]["test_metric"]["mean"])
    assert len(results["trials"]) == 6
    assert paths["csv"].read_text().splitlines()[0].startswith("variant,cell,num_layers")
    # the storage alone holds the results too, as system attributes: the one user attribute
    # (what `optuna studies` prints) is a short line
    root = optuna.load_study(study_name=spec.name, storage=run.storage)
    stored = run.storage.get_study_system_attrs(run.storage.get_study_id_from_name(spec.name))
    assert stored["rnnbench:results"]["variants"][1]["variant"] == "gru"
    assert list(root.user_attrs) == ["rnnbench"] and len(root.user_attrs["rnnbench"]) < 200
    launcher_table = results_table(collect(run, sizes))
    assert launcher_table.row_count == 2
    # the winning hyper-parameters are in the launcher's table too
    best_lr = results["variants"][0]["best"]["params"]["lr"]
    cells = launcher_table.columns[-1]._cells
    assert launcher_table.columns[-1].header == "best hyper-parameters"
    assert f"lr={best_lr:.3g}" in cells[0], cells
    # the report's table is built on the same per-variant rows
    from rnnbench.report.tables import build_table
    from rnnbench.studies.results import variant_rows

    rows, table = variant_rows(results), build_table(results)
    for row, (_, rep) in zip(rows, table.data.iterrows()):
        assert (rep["variant"], rep["num_parameters"], rep["complete"], rep["best_val/nll"]) == \
            (row["variant"], row["num_parameters"], row["complete"], row["best_value"])


def test_diverging_trials_fail_with_their_reason(tiny, tmp_path):
    spec = tiny("study.variants=[rnn_relu]", "study.trials_per_variant=2", "study.seeds=1",
                "study.space.lr={low: 1.0e4, high: 1.0e6, log: true}",
                "study.space.optimizer=[sgd]", "optim.clip=null")
    run, _, lines = _run_all(spec, tmp_path)
    assert run.all_done()
    relu = spec.variants[0]
    for t in run.trials(relu, SEARCH):
        assert t.state == TrialState.FAIL and t.user_attrs["fail_kind"] == "nonfinite"
        assert "became nan" in t.user_attrs["fail_reason"] or \
            "became inf" in t.user_attrs["fail_reason"]
    (final,) = run.trials(relu, FINAL)
    assert final.state == TrialState.FAIL and final.user_attrs["fail_kind"] == "no_best"
    results = collect(run)
    assert results["variants"][0]["trials"]["failed"] == 2
    assert results["variants"][0]["best"] is None
    assert any("fail rnn_relu trial" in line for line in lines)


def test_grid_sampler_and_hyperband_pruner(tiny, tmp_path):
    spec = tiny("study.variants=[gru]", "study.sampler=grid", "study.pruner=hyperband",
                "study.space.lr=[0.003, 0.03]", "study.trials_per_variant=4", "study.seeds=0")
    run, _, _ = _run_all(spec, tmp_path, url=f"journal:{tmp_path}/s.journal")
    points = {(t.params["lr"], t.params["optimizer"]) for t in run.trials(spec.variants[0],
                                                                          SEARCH)}
    assert len(points) == 4  # every grid point exactly once


def test_pruning_callback_stops_a_manual_optimisation_run(tiny, tmp_path):
    from rnnbench.experiment import run as run_experiment
    from rnnbench.studies.pruning import PruningCallback

    spec = tiny("study.metric=val/nll")
    lstm = spec.variant("lstm")
    cfg = trial_config(spec, lstm, {"lr": 0.01, "optimizer": "adam"}, seed=0)
    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=0.0))
    trial = study.ask()
    callback = PruningCallback(trial, "val/nll")
    with pytest.raises(optuna.TrialPruned, match="pruned after epoch 1"):
        run_experiment(cfg, callbacks=[callback], test=False, run_dir=tmp_path / "r")
    assert list(study.trials[0].intermediate_values) == [1]
    assert callback.best_epoch == 1
    decision, message = PruningCallback(None, "val/nll")._decide({"val/nll": math.nan}, 2)
    assert "val/nll became nan at epoch 2" in message
    decision, message = PruningCallback(None, "val/acc")._decide({"val/nll": 1.0}, 1)
    assert "val/acc was not logged; this task logs val/nll" in message
