"""experiments/cell_kernel_cost.py prints one row per cell with a time for every path."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "cell_kernel_cost.py"


def test_prints_a_positive_time_per_cell_and_path(capsys):
    spec = importlib.util.spec_from_file_location("cell_kernel_cost", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main(["--steps", "5", "--repeats", "1", "--rounds", "1"])
    rows = [line for line in capsys.readouterr().out.splitlines()
            if line.startswith("| ") and "(" in line.split("|")[1] and "ms |" not in line]
    assert [r.split("|")[1].split("(")[0].strip() for r in rows] == ["gru", "lstm", "rnn_tanh"]
    assert all(float(v) > 0 for r in rows for v in r.split("|")[2:6])
