"""experiments/long_range_sweep.py runs one real (tiny) study per T and tabulates them."""

import csv
import importlib.util
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location(
        "long_range_sweep", ROOT / "experiments" / "long_range_sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_baselines():
    sweep = _load()
    assert sweep.baseline("adding", 50) == pytest.approx(1 / 6)
    assert sweep.baseline("copy", 100) == pytest.approx(10 * math.log(8) / 120)


def test_sweep_writes_a_table_and_plot_per_T(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sweep = _load()
    out = tmp_path / "out"
    rc = sweep.main([
        "adding", "--T", "4,6", "--workers", "1", "--out", str(out),
        f"logging.dir={tmp_path / 'runs'}", "data.n=40", "trainer.max_epochs=1",
        "model.param_budget=300", "study.trials_per_variant=1", "study.seeds=1",
        "study.space.lr=[0.003]", "study.variants.cells=[rnn_tanh,gru]",
    ])
    assert rc == 0
    rows = list(csv.DictReader(open(out / "long_range_adding.csv")))
    assert [(r["T"], r["variant"]) for r in rows] == [
        ("4", "rnn_tanh"), ("4", "gru"), ("6", "rnn_tanh"), ("6", "gru")]
    assert all(math.isfinite(float(r["mean"])) for r in rows)
    table = (out / "long_range_adding.md").read_text()
    assert "| cell | T = 4 | T = 6 |" in table and "trivial baseline | 0.1667 | 0.1667" in table
    for ext in ("png", "svg"):
        assert (out / f"long_range_adding.{ext}").stat().st_size > 1000
    assert (tmp_path / "runs" / "adding_T6" / "results.json").exists()


def test_bad_lengths_exit_with_a_message(capsys):
    sweep = _load()
    with pytest.raises(SystemExit) as err:
        sweep.main(["adding", "--T", "10,x"])
    assert err.value.code == 2
    assert "comma-separated integers" in capsys.readouterr().err


def test_a_failing_study_stops_the_sweep_before_writing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sweep = _load()
    with pytest.raises(SystemExit, match="study for T=4 failed"):
        sweep.main(["adding", "--T", "4", "--out", str(tmp_path / "out"),
                    f"logging.dir={tmp_path / 'runs'}", "model.cell_typo=1"])
    assert not (tmp_path / "out").exists()


def test_the_plot_is_redrawn_from_the_csv_without_training(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sweep = _load()
    rows = sweep.read_rows(ROOT / "docs" / "long_range_adding.csv")
    lstm50 = next(r for r in rows if (r["T"], r["variant"]) == (50, "lstm"))
    assert lstm50["std"] > lstm50["mean"] > 0  # the bar that used to go below 0
    assert sweep.main(["adding", "--from-csv", str(ROOT / "docs" / "long_range_adding.csv"),
                       "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "long_range_adding.png").stat().st_size > 1000
    assert not (tmp_path / "runs").exists()  # nothing trained
