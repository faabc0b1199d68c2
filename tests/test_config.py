"""The typed config schema: types, rules, group switching, interpolation, config.yaml."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from rnnbench.config import ConfigError, ModelConfig, OptimConfig, load_config

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "configs/experiment/quickstart.yaml"


@pytest.mark.parametrize("override,key,value", [
    ("optim.lr=1e-3", "lr", 0.001),
    ("optim.lr=1e30", "lr", 1e30),
    ("optim.clip=null", "clip", None),
    ("optim.cuda_graphs=false", "cuda_graphs", False),
    ("flush_denormal=true", "flush_denormal", True),
    ("seed=7", "seed", 7),
])
def test_values_are_typed(override, key, value):
    cfg = load_config(QUICK, [override])
    got = cfg["optim"][key] if override.startswith("optim.") else cfg[key]
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("override,message", [
    ("optim.lr=fast", "optim.lr: expected a number, got 'fast'"),
    ("model.hidden_size=abc", "model.hidden_size: expected an integer, got 'abc'"),
    ("model.bidirectional=maybe", "model.bidirectional: expected true or false"),
    ("optim.lr=0", "optim.lr: expected a positive number"),
    ("optim.lr=-1", "optim.lr: expected a positive number"),
    ("optim.lr=.inf", "optim.lr: expected a finite number"),
    ("optim.clip=-1", "optim.clip: expected a number >= 0"),
    ("model.dropout=1.0", r"model.dropout: expected a number in \[0, 1\)"),
    ("model.dropout=-0.1", r"model.dropout: expected a number in \[0, 1\)"),
    ("model.num_layers=0", "model.num_layers: expected a positive number"),
    ("optim.lrr=0.1", "unknown config key optim.lrr \\(did you mean 'lr'\\?\\)"),
    ("trainer.max_epoch=3", "unknown config key trainer.max_epoch \\(did you mean 'max_epochs'"),
    ("data.batch_sise=3", "unknown config key data.batch_sise \\(did you mean 'batch_size'"),
    ("data.dataset=jsb", "unknown data set 'jsb'"),
    ("modle.cell=gru", "unknown top-level config key 'modle' \\(did you mean 'model'\\?\\)"),
    ("model=lstm_2x20", "model=lstm_2x20: there is no .*did you mean 'lstm_2x200'"),
    ("seed=-1", "seed: expected a number >= 0, got -1"),
    ("seed=abc", "seed: expected an integer, got 'abc'"),
    # the top level's plain fields go through the same typing as the sections'
    ("flush_denormal=maybe", "flush_denormal: expected true or false, got 'maybe'"),
    ("model.init={bogus: 1}", r"model.init: unknown option\(s\) \['bogus'\]; use uniform"),
    ("optim.scheduler={name: warp}", "optim.scheduler: unknown scheduler 'warp'; choose one "
     "of none, decay_after"),
    ("optim.scheduler={name: step, gama: 0.5}", r"optim.scheduler: unknown option\(s\) "
     r"\['gama'\]; scheduler 'step' takes step_size, factor"),
    ("optim.scheduler={name: step, step_size: abc}", "optim.scheduler: step_size must be an "
     "integer >= 1"),
    ("optim.scheduler={name: plateau, factor: -1}", "factor must be a positive number"),
    ("model.init={uniform: abc}", "model.init: uniform must be a number >= 0"),
    ("model.init={recurrent: ortho}", "model.init: recurrent must be orthogonal or default"),
    ("model.init={embedding_std: 0}", "model.init: embedding_std must be a positive number"),
    # Lightning's counting arguments: refused before any training (Lightning divides by a
    # zero check_val_every_n_epoch at the first epoch's end, and others raise tracebacks)
    ("trainer.check_val_every_n_epoch=0", "trainer.check_val_every_n_epoch must be an "
     "integer >= 1 or null .*got 0"),
    ("trainer.check_val_every_n_epoch=abc", "trainer.check_val_every_n_epoch .*got 'abc'"),
    ("trainer.max_steps=-5", r"trainer.max_steps must be an integer >= -1 or null \(-1: no "
     r"limit\), got -5"),
    ("trainer.max_steps=2.5", "trainer.max_steps .*got 2.5"),
    ("trainer.log_every_n_steps=0", "trainer.log_every_n_steps must be an integer >= 1"),
    ("trainer.accumulate_grad_batches=true", "trainer.accumulate_grad_batches .*got True"),
    ("trainer.limit_val_batches=1.5", "trainer.limit_val_batches must be a number of batches "
     ".*got 1.5"),
    ("trainer.limit_train_batches=-2", "trainer.limit_train_batches .*got -2"),
    ("trainer.val_check_interval=lots", "trainer.val_check_interval .*got 'lots'"),
])
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(QUICK, [override])


@pytest.mark.parametrize("override", [
    "trainer.max_steps=-1", "trainer.max_steps=null", "trainer.check_val_every_n_epoch=null",
    "trainer.limit_val_batches=0.25", "trainer.limit_val_batches=3",
    "trainer.val_check_interval=1.0", "trainer.num_sanity_val_steps=-1",
])
def test_good_trainer_counts_pass(override):
    key, value = override.split("=")
    got = load_config(QUICK, [override])["trainer"][key.split(".")[1]]
    assert got == (None if value == "null" else type(got)(value))


def test_a_group_is_switched_from_the_command_line():
    cfg = load_config(QUICK, ["model=lstm_2x200"])
    assert cfg["model"]["cell"] == "lstm" and cfg["model"]["num_layers"] == 2
    # The experiment file's own model: settings still apply over the switched group.
    assert cfg["model"]["param_budget"] == 20000


def test_values_interpolate():
    cfg = load_config(QUICK, ["data.batch_size=6", "data.eval_batch_size=${data.batch_size}"])
    assert cfg["data"]["eval_batch_size"] == 6


def test_the_schema_and_the_module_signature_agree():
    """The schema's model/optim fields are exactly what RNNModule takes (plus the config-only
    ones), with the same defaults: one source, checked."""
    import dataclasses
    import inspect

    from rnnbench.module import RNNModule

    params = inspect.signature(RNNModule.__init__).parameters
    config_only = {"param_budget", "tie_weights", "embedding_dropout", "embedding_size"}
    schema = {f.name: f for cls in (ModelConfig, OptimConfig) for f in dataclasses.fields(cls)}
    assert set(schema) - config_only == set(params) - {"self", "task", "task_kwargs"}
    for name, f in schema.items():
        if name in params:
            assert f.default == params[name].default, name


def _tiny(tmp_path: Path) -> list[str]:
    return [f"logging.dir={tmp_path}", "logging.progress_bar=false", "trainer.max_epochs=1",
            "data.limit_tokens=3000", "data.batch_size=4", "data.bptt=8",
            "model.hidden_size=8", "model.num_layers=1", "trainer.accelerator=cpu"]


def test_print_config_shows_the_composed_config(capsys):
    from rnnbench.cli import main

    assert main(["fit", str(QUICK), "--print-config", "optim.lr=1e-3"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["optim"]["lr"] == 0.001 and cfg["data"]["dataset"] == "jsb_chorales"


def test_config_yaml_is_saved_and_reruns_the_same_run(tmp_path):
    from rnnbench.cli import main

    zaremba = ROOT / "configs/experiment/zaremba_small.yaml"
    assert main(["fit", str(zaremba), *_tiny(tmp_path)]) == 0
    first = tmp_path / "zaremba_small" / "version_0"
    saved = first / "config.yaml"
    assert saved.is_file()
    assert main(["fit", str(saved)]) == 0
    second = tmp_path / "zaremba_small" / "version_1"
    assert yaml.safe_load(saved.read_text()) == yaml.safe_load(
        (second / "config.yaml").read_text())

    def rows(run: Path) -> list[dict[str, str]]:
        with open(run / "metrics.csv") as fh:  # all but the wall-clock throughput
            return [{k: v for k, v in r.items() if "per_s" not in k}
                    for r in csv.DictReader(fh)]

    assert rows(first) == rows(second)  # same seed, same data, same numbers


def test_the_trainer_argument_list_matches_lightning():
    import inspect

    import lightning as L

    from rnnbench.config import TRAINER_ARGS

    assert TRAINER_ARGS == set(inspect.signature(L.Trainer.__init__).parameters) - {"self"}


def test_names_the_config_check_knows_match_the_builders():
    """The schema lists scheduler names and init options so a config check needs no torch;
    they must be the ones the builders take."""
    from rnnbench.config.schema import INIT_OPTIONS, SCHEDULER_NAMES
    from rnnbench.initialization import INIT_OPTIONS as BUILT
    from rnnbench.optim import SCHEDULERS

    assert SCHEDULER_NAMES == SCHEDULERS and INIT_OPTIONS == BUILT


def test_each_schedulers_options_are_the_keys_its_builder_reads():
    import inspect
    import re

    from rnnbench.config.schema import SCHEDULER_OPTIONS
    from rnnbench.optim import SCHEDULER_TABLE

    for name, build in SCHEDULER_TABLE.items():
        read = set(re.findall(r's\.get\("(\w+)"', inspect.getsource(build)))
        assert read == set(SCHEDULER_OPTIONS[name]), name


def test_switching_the_scheduler_on_the_command_line_keeps_working():
    """A preset's options stay merged in when the name changes: let through, not refused."""
    cfg = load_config(ROOT / "configs/experiment/zaremba_small.yaml",
                      ["optim.scheduler.name=step"])
    assert cfg["optim"]["scheduler"]["name"] == "step"
