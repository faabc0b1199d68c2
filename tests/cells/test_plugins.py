"""Out-of-tree plugin distributions: discovered through entry points, tested, trained, and
broken ones reported without breaking anything else."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rnnbench.cells import PluginError, get_cell, list_cells
from rnnbench.cells.listing import cell_rows
from rnnbench.cells.registry import _isolated_registry

DEMO_CELL = '''
"""A third-party cell package: a plain RNNCell subclass, not registered by decorator."""

import torch
import torch.nn.functional as F
from torch import nn

from rnnbench.cells import RNNCell


class DemoCell(RNNCell):
    """Gated Elman cell: h' = (1 - z) * h + z * tanh(W x + U h + b)."""

    def __init__(self, input_size, hidden_size, bias=True):
        super().__init__(input_size, hidden_size)
        b = hidden_size ** -0.5
        self.weight_ih = nn.Parameter(torch.empty(2 * hidden_size, input_size).uniform_(-b, b))
        self.weight_hh = nn.Parameter(torch.empty(2 * hidden_size, hidden_size).uniform_(-b, b))
        self.bias_ih = nn.Parameter(torch.zeros(2 * hidden_size)) if bias else None

    def forward(self, x_t, state):
        h = state[0]
        gates = F.linear(x_t, self.weight_ih, self.bias_ih) + F.linear(h, self.weight_hh)
        z, n = gates.chunk(2, dim=1)
        z = torch.sigmoid(z)
        h = (1 - z) * h + z * torch.tanh(n)
        return h, (h,)
'''

TRAIN_SNIPPET = """
import torch
from rnnbench.backbones import RecurrentBackbone
from rnnbench.cells import cell_infos
from rnnbench.testing import check_cell

print("checks:", ",".join(check_cell("demo_cell")))
print("sources:", {i.name: i.source for i in cell_infos()})
torch.manual_seed(0)
bb = RecurrentBackbone(cell="demo_cell", input_size=2, hidden_size=8, num_layers=2,
                       bidirectional=True)
head = torch.nn.Linear(bb.output_size, 1)
x = torch.randn(16, 10, 2)
target = x[..., :1].cumsum(dim=1) * 0.3 - x[..., 1:]  # (B, T, 1)
opt = torch.optim.Adam([*bb.parameters(), *head.parameters()], lr=1e-2)
losses = []
for _ in range(20):
    y, _ = bb(x)
    loss = torch.nn.functional.mse_loss(head(y), target)
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())
print("losses:", losses[0], losses[-1], bb.effective_impl)
assert losses[-1] < 0.7 * losses[0], losses
print("TRAINED")
"""


def _write_dist(root: Path, dist: str, package: str, files: dict[str, str], entry_points: str):
    """Lays out an installed distribution (package + .dist-info) as pip would, in ``root``."""
    pkg = root / package
    pkg.mkdir(parents=True)
    for name, text in files.items():
        (pkg / name).write_text(textwrap.dedent(text))
    info = root / f"{package}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[rnnbench.cells]\n{entry_points}\n")
    record = [f"{package}/{name},," for name in files]
    record += [f"{info.name}/{name},," for name in ("METADATA", "entry_points.txt", "RECORD")]
    (info / "RECORD").write_text("\n".join(record) + "\n")


def _write_demo(root: Path) -> None:
    _write_dist(
        root,
        "rnnbench-demo-plugin",
        "rnnbench_demo_plugin",
        {"__init__.py": DEMO_CELL},
        "demo_cell = rnnbench_demo_plugin:DemoCell",
    )


def _write_broken(root: Path) -> None:
    _write_dist(
        root,
        "rnnbench-broken-plugin",
        "rnnbench_broken_plugin",
        {
            "__init__.py": "not_a_cell = object()\n",
            # The path makes the message unique, so the once-only warning fires in every test.
            "needs_lib.py": "raise ImportError('libdemo is not installed (' + __file__ + ')')\n",
        },
        "broken = rnnbench_broken_plugin.needs_lib:Cell\n"
        "not_a_cell = rnnbench_broken_plugin:not_a_cell",
    )


@pytest.fixture(scope="module")
def plugin_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One site directory holding a working and a broken plugin distribution."""
    root = tmp_path_factory.mktemp("site")
    _write_demo(root)
    _write_broken(root)
    return root


def _run(args: list[str], pythonpath: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(pythonpath), COLUMNS="400")
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def cells_command(plugin_root: Path) -> subprocess.CompletedProcess:
    """``python -m rnnbench cells`` with both plugins installed (run once: ~3 s)."""
    return _run(["-m", "rnnbench", "cells"], plugin_root)


def test_cells_command_lists_out_of_tree_plugin(cells_command) -> None:
    assert cells_command.returncode == 0, cells_command.stderr
    row = next(line for line in cells_command.stdout.splitlines() if "demo_cell" in line)
    assert "rnnbench-demo-plugin" in row and "ok" in row
    assert "lstm" in cells_command.stdout and "mingru" in cells_command.stdout


def test_plugin_passes_contract_and_trains(tmp_path: Path) -> None:
    _write_demo(tmp_path)
    proc = _run(["-c", TRAIN_SNIPPET], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "'demo_cell': 'rnnbench-demo-plugin'" in proc.stdout
    assert "TRAINED" in proc.stdout


@pytest.fixture
def broken_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _write_broken(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with _isolated_registry():
            yield
    finally:
        for mod in [m for m in sys.modules if m.startswith("rnnbench_broken_plugin")]:
            del sys.modules[mod]


@pytest.mark.usefixtures("broken_in_process")
def test_broken_plugin_error_names_plugin_and_distribution() -> None:
    with pytest.raises(PluginError) as info:
        get_cell("broken")
    message = str(info.value)
    assert "'broken'" in message and "rnnbench-broken-plugin" in message
    assert "libdemo is not installed" in message
    assert isinstance(info.value.__cause__, ImportError)
    with pytest.raises(PluginError, match="not an rnnbench.cells.RNNCell subclass") as info:
        get_cell("not_a_cell")
    assert "rnnbench-broken-plugin" in str(info.value)


@pytest.mark.usefixtures("broken_in_process")
def test_broken_plugin_leaves_the_rest_usable() -> None:
    with pytest.warns(RuntimeWarning, match="rnnbench-broken-plugin"):
        names = list_cells()
    assert {"gru", "lstm", "rnn_relu", "rnn_tanh", "mgu", "mingru"} <= set(names)
    assert "broken" not in names and "not_a_cell" not in names
    rows = {row["name"]: row for row in cell_rows(input_size=4, hidden_size=8)}
    assert rows["broken"]["source"] == "rnnbench-broken-plugin"
    assert "libdemo" in rows["broken"]["error"] and rows["broken"]["parameters"] is None
    assert rows["not_a_cell"]["error"]
    assert rows["lstm"]["error"] is None and rows["lstm"]["parameters"] == 4 * 8 * (4 + 8 + 2)
    assert get_cell("lstm") is not None


def test_cells_command_survives_broken_plugin(cells_command) -> None:
    assert cells_command.returncode == 0, cells_command.stderr
    out = cells_command.stdout
    broken_rows = [line for line in out.splitlines() if "broken" in line]
    assert any("rnnbench-broken-plugin" in line for line in broken_rows), out
    assert "libdemo" in out and "not_a_cell" in out
    assert "lstm" in out and "ok" in out


def test_plugin_name_clash_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_dist(tmp_path, "rnnbench-clash", "rnnbench_clash", {"__init__.py": DEMO_CELL},
                "lstm = rnnbench_clash:DemoCell")
    monkeypatch.syspath_prepend(str(tmp_path))
    with _isolated_registry():
        with pytest.warns(RuntimeWarning, match="clashes with the cell already registered"):
            names = list_cells()
        assert "lstm" in names
        assert get_cell("lstm").__module__ == "rnnbench.cells.builtin"  # built-in kept
        rows = [row for row in cell_rows(4, 8) if row["name"] == "lstm"]
        assert any(row["error"] and "rnnbench-clash" in row["error"] for row in rows)


def test_contrib_source_survives_direct_import() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "import rnnbench.cells.contrib.mgu\n"
         "from rnnbench.cells import cell_infos\n"
         "print({i.name: i.source for i in cell_infos()}['mgu'])"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.stdout.strip() == "contrib", proc.stderr
