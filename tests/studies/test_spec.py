"""Study files and search spaces: parsing, per-cell overrides, clear errors."""

from __future__ import annotations

import pytest

from rnnbench.experiment import ConfigError
from rnnbench.studies.space import build_space, parse_param
from rnnbench.studies.spec import StudySpec, Variant


def test_tiny_study_parses(tiny):
    spec = tiny()
    assert spec.name == "jsb_tiny"
    assert [v.name for v in spec.variants] == ["rnn_tanh", "lstm", "gru"]
    assert spec.trials_per_variant == 3
    assert spec.seeds == [1, 2]  # after the search seed 0
    assert spec.sampler == {"name": "tpe", "seed": 0, "n_startup_trials": 2}
    assert "study" not in spec.config
    lr = spec.space_for("lstm").params["lr"]
    assert (lr.kind, lr.low, lr.high, lr.log, lr.path) == ("float", 1e-3, 3e-2, True, "optim.lr")
    # the per-cell override lowers the ceiling for the vanilla RNN only, keeping low and log
    tanh = spec.space_for("rnn_tanh").params["lr"]
    assert (tanh.low, tanh.high, tanh.log) == (1e-3, 1e-2, True)


def test_variants_cross_product_and_names(tiny):
    spec = tiny("study.variants={cells: [lstm, gru], num_layers: [1, 2], "
                "bidirectional: [false]}")
    assert [v.name for v in spec.variants] == ["lstm", "lstm-l2", "gru", "gru-l2"]
    assert Variant("gru", 3, True).name == "gru-l3-bi"
    explicit = tiny("study.variants=[lstm, {cell: gru, num_layers: 2}]")
    assert [v.name for v in explicit.variants] == ["lstm", "gru-l2"]


def test_spec_round_trips_through_storage_form(tiny):
    spec = tiny()
    again = StudySpec.from_dict(spec.to_dict())
    assert again.to_dict() == spec.to_dict()
    assert again.fingerprint() == spec.fingerprint()
    # hardware and logging may change between runs of the same study
    other = tiny("trainer.accelerator=gpu", "logging.csv=false", "study.seeds=[0, 1, 2]")
    assert other.fingerprint() == spec.fingerprint()
    assert tiny("optim.clip=5.0").fingerprint() != spec.fingerprint()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["study.variants={cells: [lstm, lsmt]}"], "unknown cell 'lsmt'"),
        (["study.overrides={lsmt: {lr: 0.1}}"], "unknown cell or variant 'lsmt'"),
        (["study.trials_per_variant=0"], "trials_per_variant must be a positive integer"),
        (["study.trials_per_variant=-3"], "trials_per_variant must be a positive integer"),
        (["study.metric=test/nll"], "must be a validation metric"),
        (["study.test_metric=val/nll"], "must name a test-split metric"),
        (["study.sampler=cmaes"], "unknown sampler 'cmaes'"),
        (["study.pruner={name: median, patience: 3}"], "study.pruner (median)"),
        (["study.storage=redis://localhost:6379"], "unknown scheme 'redis'"),
        (["study.space.lrr={low: 0.1, high: 1}"], "unknown hyper-parameter 'lrr'"),
        (["study.space.num_layers=[1, 2]"], "variant axis"),
        (["study.space.lr={low: 0, high: 1, log: true}"], "log-scaled, so low must be > 0"),
        (["study.overrides.gru={param_budget: 5000}"], "cannot differ between variants"),
        (["study.overrides.gru={trainer.max_epochs: 5}"], "cannot differ between variants"),
        (["study.sampler=grid"], "continuous range"),
        (["study.seeds=[0, 0]"], "lists a seed twice"),
        (["study.bogus=1"], "unknown study option"),
        (["study.paper=chung2014"], "study.paper must be {source: ..., dataset: ...}"),
        (["study.paper={source: bai2018, dataset: jsb_chorales, versus: tcn}"],
         "optionally against: VARIANT"),
        (["study.variants={cells: [lstm], num_layers: [0]}"], "must be a positive integer"),
    ],
)
def test_bad_study_files_give_clear_errors(tiny, overrides, message):
    with pytest.raises(ConfigError) as err:
        tiny(*overrides)
    assert message in str(err.value)
    assert "Traceback" not in str(err.value)


def test_empty_search_space_is_refused(tiny):
    from rnnbench.studies.spec import parse_study

    cfg = tiny().config
    with pytest.raises(ConfigError, match="search space is empty"):
        parse_study({"variants": ["lstm"], "space": {}}, cfg)
    with pytest.raises(ConfigError, match="search space is empty"):
        parse_study({"variants": ["lstm"]}, cfg)
    # a space whose entries are all fixed searches nothing either
    with pytest.raises(ConfigError, match="search space of variant lstm is empty"):
        parse_study({"variants": ["lstm"], "space": {"lr": 0.01}}, cfg)


def test_grid_needs_enough_points(tiny):
    spec = tiny("study.sampler=grid", "study.space.lr=[0.001, 0.01]",
                "study.overrides.rnn_tanh.lr=[0.001, 0.003]")
    assert spec.space_for("gru").grid() == {"lr": [0.001, 0.01], "optimizer": ["adam",
                                                                                 "rmsprop"]}
    with pytest.raises(ConfigError, match="has 4 point"):
        tiny("study.sampler=grid", "study.space.lr=[0.001, 0.01]",
             "study.overrides.rnn_tanh.lr=[0.001, 0.003]", "study.trials_per_variant=5")


def test_space_entries():
    p = parse_param("lr", {"low": "1e-4", "high": "1e-1", "log": True})  # YAML 1.1 strings
    assert (p.kind, p.low, p.high) == ("float", 1e-4, 1e-1)
    assert parse_param("bptt", {"low": 20, "high": 70, "step": 5}).kind == "int"
    assert parse_param("dropout", {"low": 0, "high": 0.5}).kind == "float"
    assert parse_param("dropout", {"type": "float", "low": 0, "high": 1}).kind == "float"
    assert parse_param("optimizer", ["adam", "sgd"]).choices == ("adam", "sgd")
    assert parse_param("clip", 5.0).kind == "fixed"
    assert parse_param("optim.scheduler.factor", [0.25, 0.5]).path == "optim.scheduler.factor"
    with pytest.raises(ConfigError, match="choices must be numbers"):
        parse_param("scheduler", [{"name": "plateau"}])
    space = build_space({"lr": {"low": 1e-3, "high": 1e-1, "log": True}, "dropout": 0.1},
                        [("lstm", {"lr": {"high": 1e-2}, "dropout": None,
                                   "optim.clip": [1.0, 5.0]})])
    assert space.params["lr"].high == 1e-2 and space.params["lr"].log
    assert "dropout" not in space.params
    cfg = space.apply({"optim": {"lr": 1.0}}, {"lr": 0.005, "optim.clip": 1.0})
    assert cfg == {"optim": {"lr": 0.005, "clip": 1.0}}


def test_extremes_are_the_values_preflight_builds():
    # Both ends of a range, the top as Optuna rounds it down to the step; every choice.
    assert parse_param("lr", {"low": 1e-4, "high": 1e-2, "log": True}).extremes() == [1e-4, 1e-2]
    assert parse_param("bptt", {"low": 20, "high": 72, "step": 5}).extremes() == [20, 70]
    assert parse_param("dropout", {"low": 0.0, "high": 0.55, "step": 0.1}).extremes() == \
        pytest.approx([0.0, 0.5])
    assert parse_param("optimizer", ["adam", "sgd"]).extremes() == ["adam", "sgd"]
    assert parse_param("clip", 5.0).extremes() == [5.0]
    assert parse_param("hidden_size", {"low": 2, "high": 2}).extremes() == [2]


def test_the_direction_comes_from_the_task_only():
    from types import SimpleNamespace

    from rnnbench.studies.checks import _direction

    module = SimpleNamespace(monitor="val/ppl", monitor_mode="min",
                             task=SimpleNamespace(name="lm"))
    assert _direction("val/ppl", module) == "minimize"
    assert _direction("val/acc", SimpleNamespace(monitor="val/acc", monitor_mode="max",
                                                 task=module.task)) == "maximize"
    with pytest.raises(ConfigError, match="set study.direction=minimize or"):
        _direction("val/nll", module)  # logged, but the task defines no direction for it
