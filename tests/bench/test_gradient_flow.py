"""Gradient flow through time: hand-computed values, decay, and the diagnose command."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnnbench.bench.gradient_flow import CSV_COLUMNS, build_model, flow, step_outputs
from rnnbench.config import load_config

ROOT = Path(__file__).resolve().parents[2]
PRESET = ROOT / "configs" / "experiment" / "gradient_flow.yaml"


def _module(cell: str, hidden: int, T: int):
    cfg = load_config(PRESET, [f"model.hidden_size={hidden}", f"data.T={T}", "data.n=20"])
    return build_model(cfg, cell)


def test_three_steps_equal_hand_computed_jacobians():
    # tanh RNN, 3 steps: dL/dh_3 = dL/dy W_out; dL/dh_t = J_{t+1}^T dL/dh_{t+1} with
    # J_{t+1} = diag(1 - h_{t+1}^2) W_hh, written out without autograd.
    torch.manual_seed(3)
    module = _module("rnn_tanh", hidden=4, T=3).double()
    cell = module.backbone.cells[0]
    x = torch.randn(2, 3, 2, dtype=torch.float64)  # (B, T, I)
    y = torch.randn(2, 1, dtype=torch.float64)  # (B, 1)
    loss, norms = flow(module, x, y)

    w_ih, w_hh = cell.weight_ih, cell.weight_hh  # (H, I), (H, H)
    bias = cell.bias_ih + cell.bias_hh  # (H,)
    head = module.task.head
    with torch.no_grad():
        h = torch.zeros(2, 4, dtype=torch.float64)
        hs = []
        for t in range(3):
            h = torch.tanh(x[:, t] @ w_ih.T + h @ w_hh.T + bias)  # (B, H)
            hs.append(h)
        pred = hs[-1] @ head.weight.T + head.bias  # (B, 1)
        expected_loss = float(((pred - y) ** 2).mean())
        g = 2 * (pred - y) @ head.weight  # (B, H): d(mean over B)/dh_3, scaled by B
        grads = [g]
        for t in (2, 1):
            g = (g * (1 - hs[t] ** 2)) @ w_hh  # (B, H)
            grads.append(g)
        expected = [float(gr.norm(dim=1).mean()) for gr in grads]  # distance 0, 1, 2
    assert loss == pytest.approx(expected_loss, rel=1e-10)
    assert norms == pytest.approx(expected, rel=1e-8)


def test_small_recurrent_weights_make_the_norm_decay():
    torch.manual_seed(0)
    module = _module("rnn_tanh", hidden=8, T=15)
    with torch.no_grad():
        module.backbone.cells[0].weight_hh.mul_(0.1)  # spectral norm well below 1
    x = torch.rand(4, 15, 2)
    _, norms = flow(module, x, torch.ones(4, 1))
    assert all(b < a for a, b in zip(norms, norms[1:]))
    assert norms[-1] < 1e-6 * norms[0]


def test_step_outputs_match_the_backbone():
    torch.manual_seed(1)
    module = _module("gru", hidden=5, T=6)
    x = torch.randn(3, 6, 2)
    y, hs = step_outputs(module.backbone, x)
    ref, _ = module.backbone(x)
    assert len(hs) == 6 and torch.allclose(y, ref, atol=1e-6)


def _run(*argv, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "rnnbench", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_diagnose_cli_writes_csv_and_png(tmp_path):
    out = tmp_path / "flow" / "gf"
    proc = _run("diagnose", "gradient-flow", str(PRESET), "--quick", "--cells", "rnn_tanh,lstm",
                "--T", "6", "--batch", "4", "--train-steps", "2", "--out", str(out),
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    with open(out.with_suffix(".csv")) as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == CSV_COLUMNS
    seen = {(r["cell"], r["stage"], int(r["distance"])) for r in rows}
    assert seen == {(c, s, d) for c in ("rnn_tanh", "lstm") for s in ("init", "trained")
                    for d in range(6)}
    assert all(float(r["grad_norm"]) >= 0 for r in rows)
    assert {r["train_steps"] for r in rows if r["stage"] == "trained"} == {"2"}
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert not list(out.parent.glob("*.tmp"))


def test_diagnose_refuses_a_non_adding_config(tmp_path):
    config = ROOT / "configs" / "experiment" / "quickstart.yaml"
    proc = _run("diagnose", "gradient-flow", str(config), "--out", str(tmp_path / "gf"),
                cwd=tmp_path)
    assert proc.returncode == 2
    assert "adding problem" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.iterdir())
