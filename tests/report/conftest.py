"""A real tiny comparison study, run once and shared by the report tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnbench.studies.ledger import StudyRun
from rnnbench.studies.pool import preflight
from rnnbench.studies.results import write_results
from rnnbench.studies.spec import load_study
from rnnbench.studies.worker import Worker

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "study" / "jsb_tiny.yaml"
DIVERGE = ("study.overrides.rnn_relu={lr: {low: 1.0e4, high: 1.0e6, log: true}, "
           "optimizer: [sgd]}")


def run_study(runs: Path, *overrides: str, study_file: Path = TINY,
              max_trials: int | None = None) -> Path:
    """Runs a shrunk jsb_tiny study in-process (the real runner) and writes its results;
    ``max_trials`` stops the worker early, leaving the study unfinished."""
    spec = load_study(study_file, [f"logging.dir={runs}", *overrides])
    sizes = preflight(spec)
    run = StudyRun.create(spec, f"sqlite:///{spec.output_dir}/study.db")
    run.prepare()
    Worker(run, output_dir=spec.output_dir, log=lambda _: None).loop(max_trials=max_trials)
    write_results(run, spec.output_dir, sizes)
    return spec.output_dir


@pytest.fixture(scope="session")
def study(tmp_path_factory) -> Path:
    """gru and lstm complete (2 seeds each); every rnn_relu trial diverges and fails."""
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_MODE", "disabled")
    runs = tmp_path_factory.mktemp("report") / "runs"
    try:
        return run_study(runs, "study.name=cmp", "study.variants=[gru, lstm, rnn_relu]",
                         "study.trials_per_variant=2", "study.seeds=2", "optim.clip=null",
                         DIVERGE, "study.paper={source: chung2014, dataset: jsb_chorales}")
    finally:
        mp.undo()
