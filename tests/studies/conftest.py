"""Shared helpers: the real tiny study file, shrunk further per test, and its runners."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "study" / "jsb_tiny.yaml"


@pytest.fixture(autouse=True)
def _no_wandb_network(monkeypatch):
    # No test may reach the W&B servers; the W&B test sets offline mode itself.
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("WANDB_SILENT", "true")


@pytest.fixture(autouse=True)
def _own_study_index(tmp_path, monkeypatch):
    # `study run` records where each study lives (for `study status NAME` from anywhere):
    # in the test's folder, never the user's home.
    monkeypatch.setenv("RNNBENCH_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture
def tiny(tmp_path):
    """``tiny(*overrides)`` -> a StudySpec of configs/study/jsb_tiny.yaml writing to tmp."""
    from rnnbench.studies.spec import load_study

    def make(*overrides: str):
        return load_study(TINY, [f"logging.dir={tmp_path / 'runs'}", *overrides])

    return make


def rnnbench(*args: str, env: dict[str, str] | None = None, timeout: float = 300,
             **kwargs) -> subprocess.CompletedProcess:
    """Runs the real ``rnnbench`` command in a fresh process."""
    full_env = {**os.environ, "WANDB_MODE": "disabled", **(env or {})}
    return subprocess.run([sys.executable, "-m", "rnnbench", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def states(storage_url: str, name: str) -> dict[str, list]:
    """``{optuna study name: [FrozenTrial...]}`` of every study under ``name``."""
    from rnnbench.studies.storage import open_storage

    storage = open_storage(storage_url, create=False)
    out = {}
    for s in storage.get_all_studies():
        if s.study_name.startswith(name + "/"):
            sid = storage.get_study_id_from_name(s.study_name)
            out[s.study_name] = sorted(storage.get_all_trials(sid), key=lambda t: t.number)
    return out


@pytest.fixture(scope="session")
def pruned_study(tmp_path_factory):
    """One finished tiny study, run once by the real CLI and read by several tests: one
    variant (gru), two grid points with the hopeless one second, so the median pruner stops
    it after epoch 1; no final runs; W&B offline; ``--threads 1``.

    Returns:
        ``{"runs", "url", "env", "output", "wandb"}``: the runs folder, the storage URL, the
        environment the study ran with, launcher output + worker log, the W&B folder.
    """
    tmp = tmp_path_factory.mktemp("pruned_study")
    env = {"RNNBENCH_STATE_DIR": str(tmp / "state"), "WANDB_MODE": "offline",
           "WANDB_DIR": str(tmp / "wandb_home"), "WANDB_SILENT": "true"}
    (tmp / "wandb_home").mkdir()
    proc = rnnbench(
        "study", "run", str(TINY), "--no-report", "--threads", "1",
        f"logging.dir={tmp / 'runs'}", "logging.wandb=true", "study.variants=[gru]",
        "study.trials_per_variant=2", "study.seeds=0",
        "study.space={lr: [1.0e-7, 0.03], optimizer: adam}", "study.sampler=grid",
        "study.pruner={name: median, n_startup_trials: 1}", "trainer.max_epochs=2", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = (tmp / "runs" / "jsb_tiny" / "logs" / "worker-0.log").read_text()
    return {"runs": tmp / "runs", "url": f"sqlite:///{tmp}/runs/jsb_tiny/study.db",
            "env": env, "output": proc.stdout + log, "wandb": tmp / "wandb_home" / "wandb"}
