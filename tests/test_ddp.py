"""Under DDP every rank trains on its own contiguous rows of the single-process layout."""

import os
import subprocess
import sys
from pathlib import Path

import torch

from rnnbench.data.tbptt import StreamBatches

SCRIPT = Path(__file__).parent / "scripts" / "ddp_rows.py"
ROOT = Path(__file__).resolve().parent.parent


def _run(tmp_path, batch_size):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path), str(batch_size)],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path,
    )


def test_two_process_ddp_sees_single_process_rows_split_by_rank(tmp_path):
    proc = _run(tmp_path, 4)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    single = [b.inputs for b in StreamBatches(torch.arange(401) % 50, 4, 10)]
    assert len(ranks[0]) == len(ranks[1]) == len(single)
    for k, x in enumerate(single):
        assert torch.equal(ranks[0][k], x[:2])
        assert torch.equal(ranks[1][k], x[2:])


def test_batch_not_divisible_by_world_size_is_a_clear_error(tmp_path):
    proc = _run(tmp_path, 5)
    assert proc.returncode != 0
    assert "batch_size=5 is not divisible by the world size 2" in proc.stderr
