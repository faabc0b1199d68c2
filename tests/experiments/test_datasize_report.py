"""experiments/datasize_report.py reads the three studies' results.json (with a suffix) and
writes a table whose verdicts come from the report's statistics."""

import csv
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "datasize_report.py"


def _results(gru: list[float], lstm: list[float], base: float) -> dict:
    def variant(name: str, values: list[float]) -> dict:
        runs = [{"state": "COMPLETE", "metrics": {"test/nll": v}} for v in values]
        return {"variant": name, "num_parameters": 20_000, "final": {"runs": runs}}

    baseline = {"variant": "frequency", "baseline": True,
                "final": {"runs": [], "test_metric": {"mean": base}}}
    return {"variants": [variant("gru", gru), variant("lstm", lstm), baseline]}


def test_suffix_selects_the_studies_and_the_verdicts_follow_the_intervals(tmp_path):
    runs = tmp_path / "runs"
    data = {"1of16": ([11.6, 11.7, 11.5, 11.8, 11.6], [10.7, 10.8, 10.6, 10.9, 10.8], 11.6),
            "1of4": ([12.0, 12.1, 11.9, 12.2, 12.0], [10.9, 11.0, 10.8, 11.0, 10.9], 11.9),
            "all": ([8.50, 8.55, 8.41, 8.57, 8.49], [8.38, 8.52, 8.42, 8.56, 8.40], 11.1)}
    for tag, (gru, lstm, base) in data.items():
        folder = runs / f"datasize_jsb_{tag}_e50"
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps(_results(gru, lstm, base)))
    out = tmp_path / "docs"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--runs", str(runs), "--out", str(out),
                           "--suffix", "_e50"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (out / "datasize_jsb_e50.png").stat().st_size > 0
    rows = {(r["fraction"], r["cell"]): r
            for r in csv.DictReader(open(out / "datasize_jsb_e50.csv"))}
    assert rows[("1/16", "lstm")]["vs_other"].startswith("beats")
    assert rows[("1/16", "gru")]["vs_other"].startswith("falls short")
    assert rows[("all", "gru")]["vs_other"].startswith("matches")
    assert rows[("1/16", "gru")]["vs_baseline"] == "matches"  # its interval holds 11.6
    assert rows[("all", "lstm")]["vs_baseline"] == "beats"
    # without the suffix there is nothing to read: one line, exit 2
    bare = subprocess.run([sys.executable, str(SCRIPT), "--runs", str(runs), "--out",
                           str(out)], capture_output=True, text=True, timeout=300)
    assert bare.returncode == 2 and "no datasize_jsb_* results" in bare.stderr

