"""The HAI comparison on the synthetic plant: four recurrent shapes and two baselines, by TaPR.

usage: python experiments/hai_comparison.py [--plants 0,1,2] [--seeds 1,2,3,4,5]
       [--out docs/hai_comparison] [--quick] [section.key=value ...]

For every plant (``data.process_seed``) and run seed, trains bi-GRU x3 (the HAI competition
baseline's shape), bi-LSTM x3, GRU x3 and a 1-layer GRU with
``configs/experiment/hai_anomaly.yaml`` (cut down by ``SMALL`` so the whole grid fits in
about an hour of one shared core: 24,000 steps, hidden 32, window 40, at most 5 epochs,
early stopping on ``val/mse`` with patience 2, tested with the best-validation checkpoint),
and scores
persistence and AR(p) (order chosen on validation MSE) on each plant; the plant does not
depend on the run seed, so a baseline is scored once per plant. Every model's threshold is
the one that maximises TaPR F1 on the validation quarter (the anomaly task's rule).

Writes ``OUT.csv`` (one row per run, appended as runs finish, so an interrupted run resumes
where it stopped) and ``OUT.log``; then ``OUT.md`` (means, 95% intervals and verdicts
against the best baseline) and ``OUT.png`` (test TaPR F1 per plant) from the CSV.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "configs" / "experiment" / "hai_anomaly.yaml"
VARIANTS = {  # name: model overrides
    "bigru3": ["model.cell=gru", "model.num_layers=3", "model.bidirectional=true"],
    "bilstm3": ["model.cell=lstm", "model.num_layers=3", "model.bidirectional=true"],
    "gru3": ["model.cell=gru", "model.num_layers=3", "model.bidirectional=false"],
    "gru1": ["model.cell=gru", "model.num_layers=1", "model.bidirectional=false"],
}
SMALL = ["model.hidden_size=32", "data.window=40", "data.n_steps=24000", "trainer.max_epochs=5",
         "optim.lr=0.002",
         "logging.progress_bar=false", "checkpoint.enabled=true"]
QUICK = ["data.n_steps=6000", "data.n_attacks=8", "data.window=20", "model.hidden_size=8",
         "trainer.max_epochs=1"]
METRICS = ("test/tapr_f1", "test/tap", "test/tar", "test/f1_pa", "test/f1", "test/mse",
           "val/tapr_f1", "val/mse", "test/threshold")
FIELDS = ["plant", "seed", "variant", "params", "epochs", "wall_s", *METRICS]


def _done(path: Path) -> set[tuple[str, str, str]]:
    if not path.exists():
        return set()
    with path.open() as fh:
        return {(r["plant"], r["seed"], r["variant"]) for r in csv.DictReader(fh)}


def _append(path: Path, row: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def _train(plant: int, seed: int, variant: str, extra: list[str], run_root: Path) -> dict:
    from lightning.pytorch.callbacks import EarlyStopping

    from rnnbench.config import load_config
    from rnnbench.train import run

    overrides = [*SMALL, *VARIANTS[variant], f"data.process_seed={plant}", f"seed={seed}",
                 f"logging.dir={run_root}", f"name=p{plant}_{variant}_s{seed}", *extra]
    cfg = load_config(PRESET, overrides)
    cfg.pop("study", None)
    stop = EarlyStopping(monitor="val/mse", mode="min", patience=2)
    result = run(cfg, callbacks=[stop])
    return {"params": result.num_parameters, "wall_s": round(result.wall_time_s, 1),
            "epochs": stop.stopped_epoch or cfg["trainer"]["max_epochs"], **result.metrics}


def _baseline(plant: int, name: str, extra: list[str]) -> dict:
    from rnnbench.config import load_config
    from rnnbench.studies.baselines import evaluate_baseline

    cfg = load_config(PRESET, [*SMALL, f"data.process_seed={plant}", *extra])
    cfg.pop("study", None)
    row = evaluate_baseline({"name": name, "options": {}}, cfg, seed=1, metric="val/mse",
                            direction="minimize")
    label = f"{name}({row['options']['order']})" if row["options"] else name
    return {"params": row["num_parameters"], "wall_s": row["duration_s"], "epochs": 0,
            "variant_label": label, **row["metrics"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--plants", default="0,1,2")
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--out", default=str(ROOT / "docs" / "hai_comparison"))
    parser.add_argument("--runs", default="runs/hai_comparison")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("WANDB_MODE", "disabled")
    extra = [*(QUICK if args.quick else []), *args.overrides]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table, log = out.with_suffix(".csv"), out.with_suffix(".log")
    done = _done(table)
    plants = [int(p) for p in args.plants.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    t0 = time.perf_counter()

    def note(text: str) -> None:
        line = f"[{time.perf_counter() - t0:7.0f} s] {text}"
        print(line, flush=True)
        with log.open("a") as fh:
            fh.write(line + "\n")

    note(f"start: plants {plants}, seeds {seeds}, overrides {extra}")
    jobs = [(p, 0, b) for p in plants for b in ("persistence", "ar")]
    # Seeds outermost: a run cut short still has every plant and variant for its first seeds.
    jobs += [(p, s, v) for s in seeds for p in plants for v in VARIANTS]
    for plant, seed, variant in jobs:
        if (str(plant), str(seed), variant) in done:
            continue
        t = time.perf_counter()
        if seed == 0:
            metrics = _baseline(plant, variant, extra)
        else:
            metrics = _train(plant, seed, variant, extra, Path(args.runs))
        row = {"plant": plant, "seed": seed, "variant": variant,
               **{k: metrics.get(k, "") for k in FIELDS[3:]}}
        _append(table, row)
        note(f"plant {plant} seed {seed} {metrics.get('variant_label', variant)}: "
             f"test TaPR F1 {metrics['test/tapr_f1']:.3f}, F1-PA {metrics['test/f1_pa']:.3f}, "
             f"val TaPR F1 {metrics['val/tapr_f1']:.3f}, epochs {metrics['epochs']}, "
             f"{time.perf_counter() - t:.0f} s")
    note(f"done in {time.perf_counter() - t0:.0f} s")
    summarise(table, out)
    return 0


def _interval(v) -> tuple[float, float]:
    """Mean and the half-width of its 95% t interval."""
    import numpy as np
    from scipy import stats

    v = np.asarray(v, dtype=float)
    if len(v) < 2:
        return float(v.mean()), math.nan
    return float(v.mean()), float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1)
                                  / math.sqrt(len(v)))


def summarise(table: Path, out: Path) -> str:
    """Writes OUT.md and OUT.png from the CSV; returns the markdown.

    Per model: mean test TaPR F1 over every (plant, seed) run with its 95% interval, and the
    verdict against the best baseline (the one with the higher mean test TaPR F1 over the
    plants): the difference from that baseline on the same plant, run by run, with its 95%
    interval; ``beats`` when the interval lies above 0, ``falls short`` below, ``matches``
    otherwise. Then the mean test TaPR F1 per plant.
    """
    import numpy as np

    with table.open() as fh:
        rows = list(csv.DictReader(fh))
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["variant"], []).append(r)
    baselines = [b for b in ("persistence", "ar") if b in by]
    plants = sorted({r["plant"] for r in rows})

    def mean(variant: str, key: str, plant: str | None = None) -> float:
        v = [float(r[key]) for r in by[variant] if plant is None or r["plant"] == plant]
        return float(np.mean(v)) if v else math.nan

    best = max(baselines, key=lambda b: mean(b, "test/tapr_f1")) if baselines else None
    ref = {p: mean(best, "test/tapr_f1", p) for p in plants} if best else {}
    lines = [f"| model | runs | test TaPR F1 (95% interval) | TaP | TaR | F1-PA | point F1 | "
             f"val TaPR F1 | test MSE | minus {best} (95% interval) | verdict |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for variant, runs in by.items():
        m, h = _interval([float(r["test/tapr_f1"]) for r in runs])
        cells = [f"{mean(variant, k):.3f}" for k in
                 ("test/tap", "test/tar", "test/f1_pa", "test/f1", "val/tapr_f1")]
        cells.append(f"{mean(variant, 'test/mse'):.2e}")
        diff, verdict = "", ""
        if best and variant not in baselines:
            d, dh = _interval([float(r["test/tapr_f1"]) - ref[r["plant"]] for r in runs])
            diff = f"{d:+.3f} [{d - dh:+.3f}, {d + dh:+.3f}]"
            verdict = "beats" if d - dh > 0 else "falls short" if d + dh < 0 else "matches"
        shown = f"{m:.3f}" + (f" [{m - h:.3f}, {m + h:.3f}]" if not math.isnan(h) else "")
        lines.append(f"| {variant} | {len(runs)} | {shown} | " + " | ".join(cells)
                     + f" | {diff} | {verdict} |")
    lines += ["", "| model | " + " | ".join(f"plant {p}" for p in plants) + " |",
              "|---|" + "---:|" * len(plants)]
    for variant in by:
        lines.append(f"| {variant} | " + " | ".join(
            f"{mean(variant, 'test/tapr_f1', p):.3f}".replace("nan", "") for p in plants) + " |")
    text = "\n".join(lines) + "\n"
    out.with_suffix(".md").write_text(text)
    print(text)
    _plot(by, plants, out.with_suffix(".png"))
    return text


def _plot(by: dict, plants: list[str], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for k, variant in enumerate(by):
        for j, plant in enumerate(plants):
            v = [float(r["test/tapr_f1"]) for r in by[variant] if r["plant"] == plant]
            ax.scatter([k + (j - 1) * 0.15] * len(v), v, s=14, color=f"C{j}",
                       label=f"plant {plant}" if k == 0 else None)
    ax.set_xticks(range(len(by)), list(by))
    ax.set_ylabel("test TaPR F1")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
