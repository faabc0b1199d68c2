"""experiments/population_bench.py --quick runs and prints one row per K."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "population_bench.py"


def test_quick_mode_prints_a_row_per_population_size(capsys):
    spec = importlib.util.spec_from_file_location("population_bench", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--quick", "--compare-drop"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| lstm")]
    assert [row.split("|")[2].strip() for row in rows] == ["1", "2"]
    assert all(row.split("|")[3].strip() == "batched" for row in rows)
    # --compare-drop adds the time with every member kept to the end, and the gain
    assert all(row.split("|")[10].strip().endswith("x") for row in rows)
