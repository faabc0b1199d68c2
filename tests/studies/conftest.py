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
