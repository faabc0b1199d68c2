"""experiments/cpu_epoch_vs_plain.py --breakdown splits rnnbench fit's epoch by part, beside
the plain loop's, and the parts fit inside the epoch."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_breakdown_prints_every_part_and_they_fit_in_the_epoch(tmp_path):
    proc = subprocess.run(
        [sys.executable, "experiments/cpu_epoch_vs_plain.py", "--breakdown", "--cells", "lstm",
         "--limit", "8", "--epochs", "3", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "WANDB_MODE": "disabled"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {line.split("|")[1].strip(): line.split("|")[2:-1]
            for line in proc.stdout.splitlines() if line.startswith("| ")}
    for part in ("training steps", "validation loop", "collating batches", "checkpoint writes",
                 "Lightning's loop, hooks and logging (the rest)"):
        assert part in rows, proc.stdout
    epoch = float(rows["**epoch**"][0].strip(" *"))
    plain = float(rows["**epoch**"][2].strip(" *"))
    assert epoch > 0 and plain > 0
    steps = float(rows["training steps"][0])
    assert 0 < steps < epoch
    assert float(rows["Lightning's loop, hooks and logging (the rest)"][0]) > -0.05 * epoch
