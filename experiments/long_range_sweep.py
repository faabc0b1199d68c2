"""Sweep the long-range presets over the sequence length T: where does each cell break down?

Usage:
    python experiments/long_range_sweep.py adding --T 25,50,100 --workers 2 \
        [--out docs] [section.key=value ...]
    python experiments/long_range_sweep.py adding --from-csv docs/long_range_adding.csv \
        --out docs          # redraw the plot only

For each T this runs (or resumes) ``rnnbench study run configs/experiment/long_range_{task}.yaml
data.T=T study.name={task}_T{T}`` with the overrides given, then reads every study's
``results.json`` and writes ``long_range_{task}.md`` / ``.csv`` (final test metric, mean and
std over the study's seeds, per cell and T, beside the trivial baseline) and
``long_range_{task}.png`` / ``.svg`` (the same as a plot) into ``--out``.

Trivial baselines: the adding problem's target is the sum of two U(0, 1) numbers, so
predicting its mean scores MSE 1/6 ~ 0.167 at every T; copy memory's memoryless predictor
scores cross-entropy 10 ln 8 / (T + 20).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def baseline(task: str, T: int) -> float:
    return 1.0 / 6.0 if task == "adding" else 10.0 * math.log(8.0) / (T + 20)


def run_study(task: str, T: int, workers: int, overrides: list[str]) -> Path:
    """Runs (or resumes) one study; returns its results.json."""
    name = f"{task}_T{T}"
    cmd = [sys.executable, "-m", "rnnbench", "study", "run",
           str(ROOT / "configs" / "experiment" / f"long_range_{task}.yaml"),
           f"data.T={T}", f"study.name={name}", "--workers", str(workers), "--no-live",
           *overrides]
    print("$", " ".join(cmd[1:]), flush=True)
    done = subprocess.run(cmd)
    if done.returncode != 0:  # the study printed why; stop before tabulating a partial sweep
        raise SystemExit(f"long_range_sweep: the study for T={T} failed (exit "
                         f"{done.returncode}, its message is above); nothing was tabulated")
    log_dir = next((o.split("=", 1)[1] for o in overrides if o.startswith("logging.dir=")),
                   "runs")
    return Path(log_dir) / name / "results.json"


def collect(task: str, paths: dict[int, Path]) -> list[dict]:
    rows = []
    for T, path in sorted(paths.items()):
        results = json.loads(path.read_text())
        for v in results["variants"]:
            if v.get("baseline"):  # study.baselines: the trivial baseline is its own row here
                continue
            summary = (v.get("final") or {}).get("test_metric") or {}
            rows.append({
                "T": T, "variant": v["variant"], "params": v["num_parameters"],
                "hidden": v["hidden_size"], "best_lr": (v.get("best") or {}).get(
                    "params", {}).get("lr"),
                "metric": results["test_metric"], "mean": summary.get("mean"),
                "std": summary.get("std"), "n": summary.get("n"),
                "baseline": baseline(task, T),
            })
    return rows


def write_table(task: str, rows: list[dict], out: Path) -> None:
    with open(out / f"long_range_{task}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    Ts = sorted({r["T"] for r in rows})
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    lines = [f"| cell | {' | '.join(f'T = {T}' for T in Ts)} |",
             "|---|" + "---:|" * len(Ts)]
    for v in variants:
        cells = []
        for T in Ts:
            r = next((r for r in rows if r["T"] == T and r["variant"] == v), None)
            if r is None or r["mean"] is None:
                cells.append("–")
            else:
                solved = r["mean"] < 0.5 * r["baseline"]
                text = f"{r['mean']:.4f} ± {r['std'] or 0:.4f}"
                cells.append(f"**{text}**" if solved else text)
        lines.append(f"| {v} | {' | '.join(cells)} |")
    lines.append(f"| trivial baseline | {' | '.join(f'{baseline(task, T):.4f}' for T in Ts)} |")
    metric = rows[0]["metric"]
    lines.append("")
    lines.append(f"{metric}, mean ± std over the final seeds; bold: below half the trivial "
                 "baseline (the task is being solved).")
    (out / f"long_range_{task}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def read_rows(path: Path) -> list[dict]:
    """The rows of a ``long_range_{task}.csv`` that :func:`write_table` wrote."""
    def num(x: str) -> float | None:
        return float(x) if x not in ("", "None") else None

    with open(path, newline="") as f:
        return [{**r, "T": int(r["T"]), "mean": num(r["mean"]), "std": num(r["std"]),
                 "baseline": num(r["baseline"])} for r in csv.DictReader(f)]


def plot(task: str, rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    Ts = sorted({r["T"] for r in rows})
    fig, ax = plt.subplots(figsize=(6, 4))
    from rnnbench.report.plots import clipped_errors, floor_at_zero

    metric = rows[0]["metric"]
    for v in dict.fromkeys(r["variant"] for r in rows):
        pts = [r for r in rows if r["variant"] == v and r["mean"] is not None]
        means = [r["mean"] for r in pts]
        # A std larger than the mean must not draw the MSE below 0: the bar stops there.
        ax.errorbar([r["T"] for r in pts], means, marker="o", capsize=3, label=v,
                    yerr=clipped_errors(means, [r["std"] or 0 for r in pts], metric))
    ax.plot(Ts, [baseline(task, T) for T in Ts], "k--", label="trivial baseline")
    floor_at_zero(ax, metric)
    ax.set_xscale("log")
    ax.set_xticks(Ts, [str(T) for T in Ts])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("sequence length T")
    ax.set_ylabel(rows[0]["metric"])
    ax.set_title(f"{task}: test {rows[0]['metric'].split('/')[-1]} vs T")
    ax.legend()
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(out / f"long_range_{task}.{ext}", dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("task", choices=["adding", "copy"])
    p.add_argument("--T", default="25,50,100", help="comma-separated lengths (default 25,50,100)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default=".", help="folder for the table and plot")
    p.add_argument("--from-csv", default=None, metavar="CSV",
                   help="only redraw the plot from a long_range_{task}.csv written before")
    p.add_argument("overrides", nargs="*", help="section.key=value for every study")
    args = p.parse_intermixed_args(argv)
    try:
        Ts = [int(t) for t in args.T.split(",") if t.strip()]
    except ValueError:
        p.error(f"--T takes comma-separated integers, got {args.T!r}")
    if not Ts or min(Ts) < 2:
        p.error(f"--T needs lengths >= 2, got {args.T!r}")
    out = Path(args.out)
    if args.from_csv:  # the plot again from a finished sweep's table, without training
        rows = read_rows(Path(args.from_csv))
        out.mkdir(parents=True, exist_ok=True)
        plot(args.task, rows, out)
        print(f"wrote {out}/long_range_{args.task}.{{png,svg}}")
        return 0
    paths = {T: run_study(args.task, T, args.workers, args.overrides) for T in Ts}
    rows = collect(args.task, paths)
    out.mkdir(parents=True, exist_ok=True)
    write_table(args.task, rows, out)
    plot(args.task, rows, out)
    print(f"wrote {out}/long_range_{args.task}.{{md,csv,png,svg}}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
