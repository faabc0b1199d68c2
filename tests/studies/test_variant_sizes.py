"""Per-variant hidden sizes (``study.variants.hidden_size``): each variant's runs get its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnbench.experiment import ConfigError
from rnnbench.studies.spec import StudySpec
from rnnbench.studies.trials import FINAL, all_values, trial_config

ROOT = Path(__file__).resolve().parents[2]
CHUNG = ROOT / "configs" / "study" / "chung2014_jsb.yaml"
SIZES = "study.variants={cells: [rnn_tanh, gru, lstm], hidden_size: {rnn_tanh: 100, gru: 46, lstm: 36}}"  # noqa: E501
NO_BUDGET = "model.param_budget=null"


def _hidden(spec: StudySpec, name: str, kind: str = "search") -> int:
    v = spec.variant(name)
    values = all_values(spec, v, {"lr": 0.01, "optimizer": "adam"})
    return trial_config(spec, v, values, seed=3, kind=kind)["model"]["hidden_size"]


def test_each_variant_trains_at_its_own_size_in_search_and_final_runs(tiny):
    spec = tiny(NO_BUDGET, SIZES)
    assert {v.name: _hidden(spec, v.name) for v in spec.variants} == {
        "rnn_tanh": 100, "gru": 46, "lstm": 36}
    assert _hidden(spec, "gru", FINAL) == 46
    # fixed, not searched: the sampler never sees them
    assert "hidden_size" not in spec.space_for("gru").distributions()
    # the stored form (what remote workers read) keeps them
    again = StudySpec.from_dict(spec.to_dict())
    assert _hidden(again, "lstm") == 36
    # and they are part of what a resumed study must not change
    other = tiny(NO_BUDGET, SIZES.replace("gru: 46", "gru: 47"))
    assert other.fingerprint() != spec.fingerprint()


def test_list_form_and_variant_names(tiny):
    spec = tiny(NO_BUDGET, "study.variants=[{cell: gru, hidden_size: 46}, "
                "{cell: gru, num_layers: 2, hidden_size: 30}, {cell: lstm, hidden_size: 36}]")
    assert [(v.name, _hidden(spec, v.name)) for v in spec.variants] == [
        ("gru", 46), ("gru-l2", 30), ("lstm", 36)]
    # a variant name wins over its cell's size
    mixed = tiny(NO_BUDGET, "study.variants={cells: [gru], num_layers: [1, 2], "
                 "hidden_size: {gru: 46, gru-l2: 30}}")
    assert (_hidden(mixed, "gru"), _hidden(mixed, "gru-l2")) == (46, 30)


def test_sizes_merge_with_the_files_other_overrides(tiny):
    spec = tiny(NO_BUDGET, SIZES)
    tanh = spec.space_for("rnn_tanh")  # jsb_tiny lowers the tanh RNN's lr ceiling
    assert tanh.params["lr"].high == 1.0e-2 and tanh.params["hidden_size"].value == 100


def test_the_real_preset_measures_the_papers_sizes():
    from rnnbench.studies.pool import preflight
    from rnnbench.studies.spec import load_study

    spec = load_study(CHUNG, quick=True)
    sizes = preflight(spec)
    assert {k: v["hidden_size"] for k, v in sizes.items()} == {
        "rnn_tanh": 100, "gru": 46, "lstm": 36}
    cfg = trial_config(spec, spec.variant("gru"), all_values(spec, spec.variant("gru"),
                                                             {"lr": 1e-3}), seed=1)
    assert cfg["model"]["weight_noise"] == 0.075 and cfg["optim"]["optimizer"] == "rmsprop"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ([SIZES], "model.param_budget is also set"),
        ([NO_BUDGET, "study.variants={cells: [gru, lstm], hidden_size: {gru: 46}}"],
         "gives no size for lstm"),
        ([NO_BUDGET, "study.variants={cells: [gru], hidden_size: {gur: 46}}"],
         "names ['gur'], which no variant"),
        ([NO_BUDGET, "study.variants={cells: [gru], hidden_size: {gru: 0}}"],
         "hidden_size of gru must be a positive integer"),
        ([NO_BUDGET, "study.variants={cells: [gru], hidden_size: {gru: 4.5}}"],
         "must be a positive integer"),
        ([NO_BUDGET, "study.variants={cells: [gru], hidden_size: 46}"],
         "set model.hidden_size instead"),
        ([NO_BUDGET, "study.variants={cells: [gru], hidden_size: {gru: 46}}",
          "study.space.hidden_size=[8, 16]"], "study.space searches hidden_size too"),
        ([NO_BUDGET, "study.variants={cells: [gru], hidden_size: {gru: 46}}",
          "study.overrides={gru: {hidden_size: 8}}"], "keep one"),
    ],
)
def test_bad_sizes_give_clear_errors(tiny, overrides, message):
    with pytest.raises(ConfigError) as err:
        tiny(*overrides)
    assert message in str(err.value)


def test_a_registered_cell_left_out_keeps_its_size(tiny):
    # Narrowing the cells on the command line must not break a file that sizes all three.
    spec = tiny(NO_BUDGET, "study.variants={cells: [gru], hidden_size: {gru: 46, lstm: 36}}")
    assert [v.name for v in spec.variants] == ["gru"] and _hidden(spec, "gru") == 46
