"""study.population: a worker trains search trials of one variant as one population, and the
storage cannot tell them from solo trials."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

from rnnbench.config import ConfigError
from rnnbench.studies.ledger import StudyRun
from rnnbench.studies.pool import preflight
from rnnbench.studies.spec import StudySpec
from rnnbench.studies.trials import SEARCH
from rnnbench.studies.worker import Worker

from .conftest import ROOT

GOOD, BEST = {"lr": 0.003, "optimizer": "adam"}, {"lr": 0.03, "optimizer": "adam"}
# trial -> fixed values: a first population (0-2) completes; in the second one trial 3
# diverges (NaN), trial 4 barely moves and is pruned against the completed trials' median,
# and trial 5 repeats the best config (better than the median: it completes). Members of
# one population are pruned against trials completed before it (a median pruner sees no
# completed member mid-fit), so the configs are chosen such that a solo run of the same
# trials prunes the same ones.
FIXED = [GOOD, GOOD, BEST, {"lr": 1.0e38, "optimizer": "sgd"},
         {"lr": 1.0e-8, "optimizer": "sgd"}, BEST]


def _study(tiny, tmp_path, population: str):
    spec = tiny("study.variants=[lstm]", "study.trials_per_variant=6", "study.seeds=0",
                f"study.population={population}", "optim.clip=null",
                "study.space.lr={low: 1.0e-8, high: 1.0e38, log: true}",
                "study.space.optimizer=[adam, sgd]",
                "study.pruner={name: median, n_startup_trials: 0}")
    preflight(spec)  # sets the metric from the task, as `study run` does
    run = StudyRun.create(spec, f"sqlite:///{tmp_path}/study{population}.db")
    run.prepare()
    study = run.study(spec.variants[0], SEARCH)
    for t, values in zip(run.trials(spec.variants[0], SEARCH), FIXED):
        run.storage.set_trial_system_attr(run.trial_id(study, t.number), "fixed_params",
                                          values)
    lines: list[str] = []
    Worker(run, output_dir=spec.output_dir, log=lines.append).loop()
    return run, spec, lines


def test_population_trials_match_solo_trials_in_the_storage(tiny, tmp_path):
    run, spec, lines = _study(tiny, tmp_path, "3")
    assert any("population of 3: trials #0, #1, #2" in line for line in lines)
    assert any("population of 3: trials #3, #4, #5" in line for line in lines)
    trials = run.trials(spec.variants[0], SEARCH)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3 + [
        TrialState.FAIL, TrialState.PRUNED, TrialState.COMPLETE]
    assert trials[3].user_attrs["fail_kind"] == "nonfinite"
    assert "pruned after epoch 1" in trials[4].user_attrs["prune_reason"]
    assert list(trials[4].intermediate_values) == [1]  # stopped after its first epoch
    assert list(trials[5].intermediate_values) == [1, 2]
    assert trials[5].value == pytest.approx(trials[2].value, rel=1e-5)  # same config
    # Reports split a population's wall time among its members (a system attribute).
    from rnnbench.studies.results import _trial_row

    rows = [_trial_row(run, "lstm", SEARCH, t) for t in trials]
    assert [r["population"] for r in rows] == [3] * 6
    # The same run solo: the same states and the same attribute keys, state by state.
    solo, _, _ = _study(tiny, tmp_path, "1")
    solo_trials = solo.trials(spec.variants[0], SEARCH)
    assert {_trial_row(solo, "lstm", SEARCH, t)["population"] for t in solo_trials} == {None}
    assert [t.state for t in solo_trials] == [t.state for t in trials]
    for pop_t, solo_t in zip(trials, solo_trials):
        assert set(pop_t.user_attrs) == set(solo_t.user_attrs)
        assert set(pop_t.user_attrs.get("metrics", {})) == \
            set(solo_t.user_attrs.get("metrics", {}))
        if solo_t.state == TrialState.COMPLETE:
            assert pop_t.value == pytest.approx(solo_t.value, rel=1e-5)


def test_population_must_be_a_positive_count_or_auto(tiny):
    assert tiny("study.population=auto").population == "auto"
    with pytest.raises(ConfigError, match="study.population must be a positive integer"):
        tiny("study.population=0")
    assert tiny("study.population={gru: 4, lstm: auto}").population == {"gru": 4, "lstm": "auto"}
    for bad in ("{lstmm: 2}", "{gru: 0}", "{gru: true}"):
        with pytest.raises(ConfigError, match="study.population must be"):
            tiny(f"study.population={bad}")


def test_a_preset_narrowed_on_the_command_line_sets_its_other_cells_populations_aside(tiny):
    # bai2018_adding maps rnn_tanh and gru to populations; running it for the LSTM alone
    # (study.variants=[lstm]) must not need the mappings rewritten, as with study.overrides.
    spec = tiny("study.variants=[lstm]", "study.population={rnn_tanh: 3, gru: 3}",
                "study.final_population={rnn_tanh: 5, gru: 5, lstm: 2}")
    assert spec.population == {} and spec.final_population == {"lstm": 2}
    assert StudySpec.from_dict(spec.to_dict()).population == {}
    # a name that is no registered cell is still a typo, and so is a run cell at a depth the
    # run does not have (it may be meant for the one-layer LSTM)
    for key in ("population", "final_population"):
        for bad in ("{lstmm: 2}", "{lstm-l2: 2}"):
            with pytest.raises(ConfigError, match=f"study.{key} must be"):
                tiny("study.variants=[lstm]", f"study.{key}={bad}")


def test_population_per_variant_trains_only_the_named_variants_together(tiny, tmp_path):
    """On CPU the LSTM's fused kernel beats a population of LSTMs: ``{gru: 2}`` keeps it solo."""
    spec = tiny("study.variants=[lstm, gru]", "study.trials_per_variant=2", "study.seeds=0",
                "study.population={gru: 2}", "study.pruner={name: none}")
    preflight(spec)
    run = StudyRun.create(spec, f"sqlite:///{tmp_path}/pervariant.db")
    run.prepare()
    lines: list[str] = []
    Worker(run, output_dir=spec.output_dir, log=lines.append).loop()
    assert any("start gru population of 2" in line for line in lines)
    assert not any("lstm population" in line for line in lines)
    assert sum("start lstm trial" in line for line in lines) == 2
    for v in spec.variants:
        assert [t.state for t in run.trials(v, SEARCH)] == [TrialState.COMPLETE] * 2



@pytest.mark.parametrize("path,values,refusal", [
    # Windowed sequences train solo: the members run one at a time and say why.
    ("model.tbptt", (8, 16), "run one at a time: windowed sequences (model.tbptt) train solo"),
    # The music head's dropout is applied per member: the two train as one population.
    ("task.dropout", (0.1, 0.4), None),
])
def test_members_a_population_cannot_hold_run_solo_and_say_so(tiny, tmp_path, path, values,
                                                              refusal):
    """Search trials a population cannot hold run one at a time, and the storage does not
    call them a population; those it can hold are one (their population attribute is 2)."""
    spec = tiny("study.variants=[gru]", "study.trials_per_variant=2", "study.seeds=0",
                "study.population=2", "study.pruner={name: none}",
                f"study.space={{{path}: [{values[0]}, {values[1]}]}}")
    preflight(spec)
    run = StudyRun.create(spec, f"sqlite:///{tmp_path}/fallback.db")
    run.prepare()
    study = run.study(spec.variants[0], SEARCH)
    for t, value in zip(run.trials(spec.variants[0], SEARCH), values):
        run.storage.set_trial_system_attr(run.trial_id(study, t.number), "fixed_params",
                                          {**GOOD, path: value})
    lines: list[str] = []
    Worker(run, output_dir=spec.output_dir, log=lines.append).loop()
    said = any("run one at a time" in line for line in lines)
    assert said == (refusal is not None), lines
    assert refusal is None or any(refusal in line for line in lines), lines
    from rnnbench.studies.results import _trial_row

    trials = run.trials(spec.variants[0], SEARCH)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert sorted(t.params[path] for t in trials) == sorted(values)
    expected = [None, None] if refusal else [2, 2]
    assert [_trial_row(run, "gru", SEARCH, t)["population"] for t in trials] == expected


def test_auto_population_is_sized_by_measured_member_memory(tiny):
    """auto: as many members as fit in the budget, from one member's measured bytes."""
    from rnnbench.population import member_bytes
    from rnnbench.studies import population as pop_mod
    from rnnbench.studies.trials import trial_config

    spec = tiny("study.variants=[lstm]", "study.population=auto", "study.trials_per_variant=9")
    variant = spec.variants[0]
    cfg = trial_config(spec, variant, {}, seed=0)
    need = member_bytes(cfg)
    assert need > 0
    wider = member_bytes({**cfg, "data": {**cfg["data"], "batch_size": 8}})
    assert wider > need  # twice the rows save more for backward
    assert pop_mod.population_size(spec, variant, budget=int(2.5 * need)) == 2
    assert pop_mod.population_size(spec, variant, budget=10**15) == pop_mod.AUTO_CAP
    assert pop_mod.population_size(spec, variant, budget=1) == 1  # never below one
    assert pop_mod.population_size(spec) == pop_mod.AUTO_CAP  # no variant: populations on


def test_auto_population_study_runs_members_together(tiny, tmp_path):
    spec = tiny("study.variants=[lstm]", "study.trials_per_variant=3", "study.seeds=0",
                "study.population=auto")
    preflight(spec)
    run = StudyRun.create(spec, f"sqlite:///{tmp_path}/auto.db")
    run.prepare()
    lines: list[str] = []
    Worker(run, output_dir=spec.output_dir, log=lines.append).loop()
    assert sum("population auto trains up to" in line for line in lines) == 1  # once
    assert any("population of 3" in line for line in lines)
    assert [t.state for t in run.trials(spec.variants[0], SEARCH)] == [TrialState.COMPLETE] * 3


def _finals(tiny, tmp_path, final_population: str):
    spec = tiny("study.variants=[gru]", "study.trials_per_variant=1", "study.seeds=3",
                f"study.final_population={final_population}", "checkpoint.enabled=true",
                "study.space.lr=[0.3]", "study.space.optimizer=[adam]", "trainer.max_epochs=4",
                "study.pruner={name: none}")
    preflight(spec)
    run = StudyRun.create(spec, f"sqlite:///{tmp_path}/finals{final_population}.db")
    run.prepare()
    lines: list[str] = []
    Worker(run, output_dir=tmp_path / f"out{final_population}", log=lines.append).loop()
    return run, spec, lines


def test_final_population_reruns_match_solo_reruns_and_leave_a_usable_model(tiny, tmp_path):
    """study.final_population: the seeds of a variant's best configuration train together,
    each tested with its best-validation weights, stored as solo re-runs are, each leaving a
    best.ckpt that loads; their test figures equal the solo re-runs'."""
    from rnnbench.inference import load_model
    from rnnbench.studies.trials import FINAL

    run, spec, lines = _finals(tiny, tmp_path, "3")
    assert any("population of 3: final re-runs #0, #1, #2" in line for line in lines)
    finals = run.trials(spec.variants[0], FINAL)
    solo, _, solo_lines = _finals(tiny, tmp_path, "1")
    assert not any("population of" in line for line in solo_lines)
    solo_finals = solo.trials(spec.variants[0], FINAL)
    assert [t.state for t in finals] == [TrialState.COMPLETE] * 3 == \
        [t.state for t in solo_finals]
    test_metric = spec.test_metric or spec.metric.replace("val/", "test/")
    for pop_t, solo_t in zip(finals, solo_finals):
        assert pop_t.user_attrs["seed"] == solo_t.user_attrs["seed"]
        assert set(pop_t.user_attrs) == set(solo_t.user_attrs)
        assert set(pop_t.user_attrs["metrics"]) == set(solo_t.user_attrs["metrics"])
        assert pop_t.params == solo_t.params
        assert pop_t.value == pytest.approx(solo_t.value, rel=1e-4)
        assert pop_t.user_attrs["best_epoch"] == solo_t.user_attrs["best_epoch"]
        assert pop_t.user_attrs["metrics"][test_metric] == pytest.approx(
            solo_t.user_attrs["metrics"][test_metric], rel=1e-4)
        # Its metrics.csv has what a solo run's has for the report (curves, tokens/s).
        from rnnbench.report.tables import read_log

        pop_log, solo_log = (read_log(t.user_attrs["run_dir"]) for t in (pop_t, solo_t))
        assert {"epoch", "step", spec.metric, test_metric, "train/tokens_per_s",
                "train/loss_epoch"} <= set(pop_log.columns)
        assert pop_log[spec.metric].dropna().tolist() == pytest.approx(
            solo_log[spec.metric].dropna().tolist(), rel=1e-4)
        assert pop_log["step"].max() == solo_log["step"].max()
        assert pop_log["train/loss_epoch"].dropna().tolist() == pytest.approx(
            solo_log["train/loss_epoch"].dropna().tolist(), rel=1e-4)
        model = load_model(pop_t.user_attrs["run_dir"])
        assert model.checkpoint.name == "best.ckpt"
        assert model.module.hparams.cell == "gru"
    # A member whose best epoch is not its last: testing took its best weights, not its last.
    assert any(t.user_attrs["best_epoch"] < 4 for t in finals)
    seeds = [t.user_attrs["seed"] for t in finals]
    assert len(set(seeds)) == 3  # each member its own seed (and data order)
    values = [t.user_attrs["metrics"][test_metric] for t in finals]
    assert len(set(values)) == 3


def test_final_population_is_a_count_or_a_count_per_variant(tiny):
    assert tiny("study.final_population=4").final_population == {
        "rnn_tanh": 4, "lstm": 4, "gru": 4}
    assert tiny("study.final_population={gru: 5}").final_population == {"gru": 5}
    assert tiny().final_population == {}
    for bad in ("0", "{lstmm: 2}", "{gru: two}"):
        with pytest.raises(ConfigError, match="study.final_population must be"):
            tiny(f"study.final_population={bad}")


def test_a_graphed_streaming_population_stores_what_solo_trials_store(tmp_path):
    """A language-model study (streaming): the population's graphed step (``emulate`` on
    CPU) gives each trial the value and attributes its solo run gives it."""
    from rnnbench.studies.spec import load_study

    def study(population: int, graphs: str):
        spec = load_study(str(ROOT / "configs/experiment/dlfs2_simple_rnnlm.yaml"), [
            f"logging.dir={tmp_path / f'runs{population}'}", "study.name=lm_population",
            "study.variants=[lstm]", "study.trials_per_variant=3", "study.seeds=0",
            f"study.population={population}", f"optim.cuda_graphs={graphs}",
            "study.space={lr: {low: 0.01, high: 0.5, log: true}}",
            "study.sampler={name: random, seed: 0}", "data.limit_tokens=2001", "data.bptt=7",
            "trainer.max_epochs=2", "trainer.limit_val_batches=2", "model.cell=lstm"])
        preflight(spec)
        run = StudyRun.create(spec, f"sqlite:///{tmp_path}/lm{population}.db")
        run.prepare()
        lines: list[str] = []
        Worker(run, output_dir=spec.output_dir, log=lines.append).loop()
        return run.trials(spec.variants[0], SEARCH), lines

    graphed, lines = study(3, "emulate")
    assert any("population of 3: trials #0, #1, #2" in line for line in lines)
    solo, _ = study(1, "false")
    assert [t.state for t in graphed] == [t.state for t in solo] == [TrialState.COMPLETE] * 3
    for g, s in zip(graphed, solo):
        assert g.params == s.params and g.value == pytest.approx(s.value, rel=1e-5)
        assert set(g.user_attrs) == set(s.user_attrs)
        assert g.intermediate_values.keys() == s.intermediate_values.keys() == {1, 2}
