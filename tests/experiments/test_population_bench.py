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


def test_a_bad_config_or_override_is_one_line_and_exit_2(capsys):
    import pytest

    spec = importlib.util.spec_from_file_location("population_bench", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for argv, named in ((["--config", "nope.yaml"], "nope.yaml"),
                        (["--set", "model.bogus=1"], "model.bogus")):
        with pytest.raises(SystemExit) as exit_:
            bench.main(["--quick", *argv])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert named in err and "Traceback" not in err
