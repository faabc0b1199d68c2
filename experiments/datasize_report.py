"""Table and plot of the data-size studies: GRU against LSTM per training-set fraction.

Usage:
    python experiments/datasize_report.py [--runs runs] [--out docs] [--suffix _e50]

Reads ``{runs}/datasize_jsb_{1of16,1of4,all}{suffix}/results.json`` (the three studies of
``configs/experiment/datasize_jsb.yaml``; ``--suffix _e50``: the runs at Chung et al.'s
budget, ``study.name=datasize_jsb_1of16_e50`` ...) and writes
``{out}/datasize_jsb{suffix}.csv`` and ``{out}/datasize_jsb{suffix}.png``: test NLL per
frame (mean and 95% t-interval over the seeds) per cell and fraction, the verdict of Welch's
test GRU against LSTM, and each fraction's no-recurrence baseline (key frequencies fitted on
the same training pieces).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

FRACTIONS = (("1of16", 14, "1/16"), ("1of4", 57, "1/4"), ("all", 229, "all"))


def _values(variant: dict) -> list[float]:
    return [r["metrics"]["test/nll"] for r in variant["final"]["runs"]
            if r["state"] == "COMPLETE" and "test/nll" in r["metrics"]]


def collect(runs: Path, suffix: str = "") -> list[dict]:
    """One row per fraction and cell (and the fraction's baseline)."""
    from rnnbench.report.stats import summarize, verdict_vs_value, verdict_welch

    rows = []
    for tag, pieces, label in FRACTIONS:
        path = runs / f"datasize_jsb_{tag}{suffix}" / "results.json"
        if not path.exists():
            continue
        res = json.loads(path.read_text())
        by_name = {v["variant"]: v for v in res["variants"]}
        base = next((v for v in res["variants"] if v.get("baseline")), None)
        base_value = base["final"]["test_metric"]["mean"] if base else None
        gru, lstm = _values(by_name["gru"]), _values(by_name["lstm"])
        for cell, vals, other in (("gru", gru, lstm), ("lstm", lstm, gru)):
            s = summarize(vals)
            welch = verdict_welch(vals, other, "minimize")
            rows.append({
                "fraction": label, "train_pieces": pieces, "cell": cell,
                "params": by_name[cell]["num_parameters"], "n": s.n, "mean": s.mean,
                "std": s.std, "low": s.low, "high": s.high,
                "vs_other": f"{welch.verdict} (p={welch.p:.3g})" if welch.verdict else "-",
                "baseline": base_value,
                "vs_baseline": verdict_vs_value(s, base_value, "minimize").verdict or "-",
            })
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, default=Path("runs"))
    p.add_argument("--out", type=Path, default=Path("docs"))
    p.add_argument("--suffix", default="", help="study-name suffix, e.g. _e50")
    args = p.parse_args()
    rows = collect(args.runs, args.suffix)
    if not rows:
        print(f"no datasize_jsb_*{args.suffix} results under {args.runs}", file=sys.stderr)
        return 2
    name = f"datasize_jsb{args.suffix}"
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / f"{name}.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for i, cell in enumerate(("gru", "lstm")):
        pts = [r for r in rows if r["cell"] == cell]
        x = [r["train_pieces"] * (1.03 if i else 0.97) for r in pts]
        err = [[r["mean"] - r["low"] for r in pts], [r["high"] - r["mean"] for r in pts]]
        ax.errorbar(x, [r["mean"] for r in pts], yerr=err,
                    marker="o", capsize=3, label=f"{cell} (mean, 95% interval)")
    base = [r for r in rows if r["cell"] == "gru"]
    ax.plot([r["train_pieces"] for r in base], [r["baseline"] for r in base], "k--",
            label="key frequency (no recurrence)")
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks([r["train_pieces"] for r in base],
                  [f"{r['fraction']} ({r['train_pieces']})" for r in base])
    ax.set_xlabel("training pieces of JSB Chorales")
    ax.set_ylabel("test NLL per frame (lower is better)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / f"{name}.png", dpi=110)
    for r in rows:
        print(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
