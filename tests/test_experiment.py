"""Configs, the data catalogue and `rnnbench fit` end to end on every task, with bad input."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rnnbench.experiment import ConfigError, load_config, run

ROOT = Path(__file__).resolve().parent.parent

TINY = {
    "trainer": {"max_epochs": 1, "accelerator": "cpu", "limit_train_batches": 3,
                "limit_val_batches": 2, "limit_test_batches": 2},
    "logging": {"progress_bar": False},
}


def _cfg(tmp_path, data, model=None, optim=None, **extra):
    over = [f"logging.dir={tmp_path}"]
    cfg = load_config(None, over)
    cfg["data"] = data
    cfg["model"].update(model or {})
    cfg["optim"].update(optim or {"optimizer": "adam", "lr": 0.01})
    for k, v in TINY.items():
        cfg[k].update(v)
    cfg.update(extra)
    return cfg


@pytest.mark.parametrize(
    "data,model,metric",
    [
        ({"dataset": "ptb", "batch_size": 4, "bptt": 8, "limit_tokens": 5000},
         {"hidden_size": 16}, "test/ppl"),
        ({"dataset": "ptb_char", "batch_size": 4, "bptt": 8, "limit_tokens": 5000},
         {"hidden_size": 16}, "test/bpc"),
        ({"dataset": "jsb_chorales", "batch_size": 4, "limit_pieces": 8},
         {"cell": "rnn_tanh", "hidden_size": 16}, "test/nll"),
        ({"dataset": "adding", "T": 30, "n": 200}, {"cell": "gru", "hidden_size": 8},
         "test/mse"),
        ({"dataset": "copy", "T": 20, "n": 200}, {"cell": "lstm", "hidden_size": 8}, "test/ce"),
        ({"dataset": "digits", "batch_size": 16}, {"cell": "gru", "hidden_size": 8,
                                                     "bidirectional": True}, "test/acc"),
        ({"dataset": "hai_synthetic", "n_steps": 3000, "window": 30, "batch_size": 32},
         {"cell": "gru", "hidden_size": 8, "num_layers": 3, "bidirectional": True},
         "test/f1_pa"),
    ],
    ids=["ptb", "ptb_char", "jsb", "adding", "copy", "digits", "hai"],
)
def test_every_task_trains_and_tests(tmp_path, data, model, metric):
    result = run(_cfg(tmp_path, data, model))
    assert metric in result.metrics, sorted(result.metrics)
    assert result.num_parameters > 0
    assert (Path(result.run_dir) / "metrics.csv").exists()
    assert (Path(result.run_dir) / "checkpoints" / "last.ckpt").exists()


def test_anomaly_test_uses_the_threshold_of_the_best_checkpoint(tmp_path):
    # The threshold is picked on each validation pass; the test split must be scored with the
    # one chosen alongside the tested (best val/mse) checkpoint, not the last epoch's.
    import csv

    import torch

    cfg = _cfg(tmp_path, {"dataset": "hai_synthetic", "n_steps": 3000, "n_attacks": 2,
                          "window": 20, "batch_size": 16},
               {"cell": "gru", "hidden_size": 8}, {"optimizer": "adam", "lr": 0.03})
    cfg["trainer"].update({"max_epochs": 4, "limit_train_batches": 4, "limit_val_batches": 1.0,
                           "limit_test_batches": 1.0})
    result = run(cfg)
    rows = list(csv.DictReader(open(Path(result.run_dir) / "metrics.csv")))
    val = [(float(r["val/mse"]), float(r["val/threshold"])) for r in rows if r.get("val/mse")]
    assert len(val) == 4
    best_threshold = min(val)[1]
    saved = torch.load(result.best_checkpoint, map_location="cpu", weights_only=True)
    assert saved["state_dict"]["task._extra_state"]["threshold"] == pytest.approx(best_threshold)
    assert result.metrics["test/threshold"] == pytest.approx(best_threshold)


def test_param_budget_sets_hidden_size(tmp_path):
    cfg = _cfg(tmp_path, {"dataset": "jsb_chorales", "batch_size": 4, "limit_pieces": 4},
               {"cell": "lstm", "param_budget": 20000})
    result = run(cfg, test=False)
    assert result.hidden_size == 34 and abs(result.num_parameters - 20000) < 500


def test_resume_from_the_cli_config(tmp_path):
    cfg = _cfg(tmp_path, {"dataset": "ptb", "batch_size": 4, "bptt": 8, "limit_tokens": 3000},
               {"hidden_size": 8})
    first = run(cfg, test=False)
    cfg["trainer"]["max_epochs"] = 2
    second = run(cfg, resume=True, test=False)
    assert second.run_dir == first.run_dir


def _fit(tmp_path, *args):
    return subprocess.run(
        [sys.executable, "-m", "rnnbench", "fit", *args],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )


def test_cli_fit_runs_a_config(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({
        "data": {"dataset": "jsb_chorales", "batch_size": 4, "limit_pieces": 6},
        "model": {"cell": "gru", "hidden_size": 8},
        "optim": {"optimizer": "adam", "lr": 0.01},
        **TINY,
    }))
    proc = _fit(tmp_path, str(cfg), f"logging.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "test/nll" in proc.stdout
    assert (tmp_path / "tiny" / "version_0" / "metrics.csv").exists()


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["model.cell=lstmm"], "unknown cell 'lstmm' (did you mean 'lstm'?); registered cells"),
        (["data.dataset=ptbb"], "unknown data set 'ptbb' (did you mean 'ptb'?); known data"),
        (["data.bptt=0"], "data.bptt: expected a positive number, got 0"),
        (["data.batch_size=1000", "data.bptt=1000"], "too short for batch_size=1000"),
        (["model.hiden_size=3"], "unknown config key model.hiden_size (did you mean"),
        (["optim.optimizer=lbfgs"], "optim.optimizer: expected one of sgd, adam"),
        (["model.bidirectional=true"], "bidirectional backbone would read"),
        (["data.level=morse"], "level"),
    ],
)
def test_cli_bad_input_is_one_clear_paragraph(tmp_path, capsys, overrides, message):
    from rnnbench.cli import main

    code = main(["fit", str(ROOT / "configs/experiment/zaremba_small.yaml"),
                 f"logging.dir={tmp_path}", "data.limit_tokens=2000", *overrides])
    err = capsys.readouterr().err
    assert code == 2, err[-2000:]
    assert message in err
    assert err.startswith("rnnbench fit: error: ")
    assert not any(tmp_path.rglob("*.ckpt"))  # nothing half-written


def test_missing_config_file():
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("configs/experiment/nope.yaml")


def test_unwritable_log_dir(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the log folder should go")  # fails even for root
    cfg = _cfg(tmp_path, {"dataset": "ptb", "batch_size": 4, "bptt": 8, "limit_tokens": 3000})
    cfg["logging"]["dir"] = str(blocker / "runs")
    with pytest.raises(ConfigError, match="cannot write to .*set logging.dir"):
        run(cfg)


@pytest.mark.slow
def test_zaremba_small_runs_a_few_hundred_steps_on_cpu(tmp_path):
    cfg = load_config(ROOT / "configs/experiment/zaremba_small.yaml",
                      [f"logging.dir={tmp_path}", "trainer.accelerator=cpu",
                       "trainer.limit_train_batches=300", "trainer.limit_val_batches=50",
                       "trainer.limit_test_batches=50", "trainer.max_epochs=1",
                       "logging.progress_bar=false"])
    result = run(cfg)
    # Untrained perplexity is ~10,000; a few hundred SGD steps get well below 1,000.
    assert result.metrics["val/ppl"] < 1000, result.metrics


@pytest.mark.parametrize("override,message", [
    ("optim.cuda_graphs=sometimes", "optim.cuda_graphs: expected one of auto, true, false"),
    ("logging.progress_every=0", "logging.progress_every: expected a positive number"),
    ("optim.check_finite_every=often", "optim.check_finite_every: expected an integer"),
])
def test_graph_and_progress_options_are_checked_before_anything_runs(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("configs/experiment/quickstart.yaml", [override])


def test_fit_flag_turns_cuda_graphs_off(tmp_path):
    from rnnbench.cli import build_parser, fit_config

    parse = build_parser().parse_args
    cfg = fit_config(parse(["fit", "configs/experiment/quickstart.yaml", "--no-cuda-graphs",
                            "model.hidden_size=8"]))
    assert cfg["optim"]["cuda_graphs"] is False and cfg["model"]["hidden_size"] == 8
    cfg = fit_config(parse(["fit", "configs/experiment/quickstart.yaml"]))
    assert cfg["optim"].get("cuda_graphs", "auto") == "auto"
