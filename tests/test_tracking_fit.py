"""`rnnbench fit --wandb`: a named, grouped offline run that carries the whole config."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from rnnbench.tracking import read_offline_run

ROOT = Path(__file__).resolve().parents[1]


def test_fit_wandb_run_is_named_grouped_and_carries_the_composed_config(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path),
           "WANDB_SILENT": "true"}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "rnnbench", "fit", "configs/experiment/quickstart.yaml",
         "--wandb", "--no-test", f"logging.dir={tmp_path / 'runs'}", "trainer.max_epochs=1",
         "data.limit_pieces=8", "trainer.limit_val_batches=1", "logging.progress_bar=false"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The printed time is the command's wall time (imports and W&B start-up included), not
    # the training loop's alone, and its parts add up to it.
    total, train, build, rest = map(float, re.search(
        r"run finished in ([\d.]+) s \(([\d.]+) s training and testing, ([\d.]+) s building "
        r"data, model and trainer, ([\d.]+) s start-up", " ".join(proc.stdout.split())).groups())
    assert train + build <= total <= wall and total > 0.7 * wall
    assert abs(train + build + rest - total) <= 0.15
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    run = read_offline_run(run_dir)
    assert (run["name"], run["group"], run["job_type"]) == \
        ("quickstart-gru-seed0", "quickstart", "fit")
    cfg = run["config"]
    assert cfg["model"]["cell"] == "gru" and cfg["model"]["param_budget"] == 20000
    assert cfg["data"]["limit_pieces"] == 8 and cfg["trainer"]["max_epochs"] == 1
    assert cfg["optim"]["lr"] == 0.01 and cfg["logging"]["wandb"] is True
    assert run["summary"]["epoch"] == 0  # Lightning's metrics reached the run
