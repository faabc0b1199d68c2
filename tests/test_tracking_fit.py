"""`rnnbench fit --wandb`: a named, grouped offline run that carries the whole config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rnnbench.tracking import read_offline_run

ROOT = Path(__file__).resolve().parents[1]


def test_fit_wandb_run_is_named_grouped_and_carries_the_composed_config(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path),
           "WANDB_SILENT": "true"}
    proc = subprocess.run(
        [sys.executable, "-m", "rnnbench", "fit", "configs/experiment/quickstart.yaml",
         "--wandb", "--no-test", f"logging.dir={tmp_path / 'runs'}", "trainer.max_epochs=1",
         "data.limit_pieces=8", "trainer.limit_val_batches=1", "logging.progress_bar=false"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    run = read_offline_run(run_dir)
    assert (run["name"], run["group"], run["job_type"]) == \
        ("quickstart-gru-seed0", "quickstart", "fit")
    cfg = run["config"]
    assert cfg["model"]["cell"] == "gru" and cfg["model"]["param_budget"] == 20000
    assert cfg["data"]["limit_pieces"] == 8 and cfg["trainer"]["max_epochs"] == 1
    assert cfg["optim"]["lr"] == 0.01 and cfg["logging"]["wandb"] is True
    assert run["summary"]["epoch"] == 0  # Lightning's metrics reached the run
