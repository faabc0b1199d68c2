"""An unfinished study is flagged with the command that resumes it; figures keep honest axes;
importance needs 8 complete trials."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest

from rnnbench.cli import main
from rnnbench.report.plots import (
    MIN_IMPORTANCE_TRIALS,
    _pyplot,
    clipped_errors,
    floor_at_zero,
    importance,
)
from rnnbench.studies.ledger import StudyRun
from rnnbench.studies.results import collect
from rnnbench.studies.spec import load_study
from tests.report.conftest import TINY, run_study


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """gru, 2 trials and 1 seed, stopped after its first trial (as Ctrl-C would leave it)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_MODE", "disabled")
    try:
        return run_study(tmp_path_factory.mktemp("stopped") / "runs", "study.name=half",
                         "study.variants=[gru]", "study.trials_per_variant=2",
                         "study.seeds=1", max_trials=1)
    finally:
        mp.undo()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rnnbench", *args], capture_output=True,
                          text=True, timeout=600)


def test_an_unfinished_study_is_flagged_with_its_resume_command(stopped, tmp_path, capsys):
    assert json.loads((stopped / "results.json").read_text())["complete"] is False
    assert main(["report", str(stopped), "--no-plots", "--format", "terminal,markdown",
                 "--out", str(tmp_path)]) == 0
    stdout = capsys.readouterr().out
    assert "unfinished: study 'half' is unfinished (gru 1/2 search trials, 0/1 final runs)" \
        in " ".join(stdout.split())
    line = next(x.strip() for x in stdout.splitlines()
                if x.strip().startswith("rnnbench study run"))
    words = shlex.split(line)
    url = f"sqlite:///{stopped}/study.db"
    assert words[:4] == ["rnnbench", "study", "run", str(TINY)] and words[-2:] == [
        "--storage", url]
    # The command rebuilds the stored study exactly (what resuming checks, and refuses on).
    again = load_study(words[3], words[4:-2]).to_dict()
    stored = StudyRun.attach(url, "half").spec.to_dict()
    for key in ("metric", "direction", "test_metric"):  # filled in once the task is known
        again.pop(key), stored.pop(key)
    assert again == stored
    md = (tmp_path / "report.md").read_text()
    assert "**Unfinished.**" in md and f"`{line}`" in md
    assert "none completed" not in md  # its one trial completed


@pytest.mark.slow
def test_the_resume_command_finishes_the_study(stopped):
    done = _cli("report", str(stopped), "--no-plots", "--format", "terminal")
    line = next(x.strip() for x in done.stdout.splitlines()
                if x.strip().startswith("rnnbench study run"))
    words = shlex.split(line)
    run = _cli(*words[1:], "--no-live", "--no-report")
    assert run.returncode == 0, run.stdout + run.stderr
    assert json.loads((stopped / "results.json").read_text())["complete"] is True


def test_importance_needs_eight_complete_trials(tmp_path):
    import optuna

    spec = load_study(TINY, [f"logging.dir={tmp_path}", "study.variants=[gru, lstm]"])
    spec.metric, spec.direction = "val/nll", "minimize"
    run = StudyRun.create(spec, f"sqlite:///{tmp_path}/study.db")
    lr = optuna.distributions.FloatDistribution(1e-3, 3e-2, log=True)
    opt = optuna.distributions.CategoricalDistribution(["adam", "rmsprop"])
    for v, n in zip(spec.variants, (MIN_IMPORTANCE_TRIALS, 3)):
        for i in range(n):  # lr decides the value; the optimiser is noise
            x = 1e-3 * 1.5 ** i
            run.study(v, "search").add_trial(optuna.trial.create_trial(
                params={"lr": x, "optimizer": ("adam", "rmsprop")[i % 2]},
                distributions={"lr": lr, "optimizer": opt}, value=(x - 0.01) ** 2))
    fig = importance(run, collect(run))
    assert fig.files["png"][:4] == b"\x89PNG"
    assert fig.notes == [f"lstm: 3 complete search trial(s), no importance: it needs >= "
                         f"{MIN_IMPORTANCE_TRIALS}, since fANOVA fitted to fewer splits on "
                         "noise (from 2 trials one parameter gets all of it)"]


def test_non_negative_metrics_stay_above_zero():
    # docs/long_range_adding.png: the LSTM at T=50 has MSE 0.086 +- 0.119
    assert clipped_errors([0.086, 0.5], [0.119, 0.1], "test/mse") == [[0.086, 0.1],
                                                                       [0.119, 0.1]]
    assert clipped_errors([0.086], [0.119], "test/score") == [[0.119], [0.119]]  # unknown
    plt = _pyplot()
    fig, ax = plt.subplots()
    ax.errorbar([1, 2], [0.086, 0.5], yerr=[0.119, 0.1])
    floor_at_zero(ax, "val/nll")
    assert ax.get_ylim()[0] == 0
    plt.close(fig)


def test_matched_budgets_look_matched():
    from rnnbench.report.plots import MIN_PARAM_SPAN, _param_axis

    plt = _pyplot()
    fig, ax = plt.subplots()
    ax.plot([1953, 1968], [1.0, 2.0], "o")
    _param_axis(ax, [1953, 1968])
    low, high = ax.get_xlim()
    assert low <= (1 - MIN_PARAM_SPAN) * 1953 and high >= (1 + MIN_PARAM_SPAN) * 1968
    assert 15 / (high - low) < 0.05  # the 15-parameter gap is under 5% of the axis
    plt.close(fig)
