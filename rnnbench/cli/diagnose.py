"""``rnnbench diagnose``: diagnostics of trained or fresh models (gradient flow through time)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rnnbench.cli.base import CLIError, choose, comma_list

FLOW_HELP = """\
Measure how the gradient of the last step's loss reaches back through time:
mean ||dL_T/dh_t|| over a batch of adding-problem sequences, against the distance T - t,
at initialisation and after --train-steps Adam steps (the config's lr and clip). CONFIG is a
run config on the adding problem (e.g. configs/experiment/gradient_flow.yaml); its model
section sizes every cell (model.param_budget: equal parameters, else model.hidden_size:
equal width). Writes OUT.csv (one row per cell, stage and distance) and OUT.png (log y).
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("diagnose", help="diagnostics: gradient flow through time",
                       description="Diagnostics of recurrent models.")
    inner = p.add_subparsers(dest="diagnostic", metavar="DIAGNOSTIC")
    inner.required = True
    g = inner.add_parser("gradient-flow", help="||dL_T/dh_t|| against T - t, per cell",
                         description=FLOW_HELP,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    g.add_argument("config", help="run config on the adding problem")
    g.add_argument("overrides", nargs="*", help="section.key=value overrides")
    g.add_argument("--cells", default=None,
                   help="comma-separated cell names, or 'all' for every registered cell "
                   "(default: the config's model.cell)")
    g.add_argument("--T", dest="T", type=int, default=None,
                   help="sequence length (default: the config's data.T)")
    g.add_argument("--batch", type=int, default=32, help="sequences per batch (default 32)")
    g.add_argument("--train-steps", type=int, default=200,
                   help="Adam steps before the second measurement; 0: initialisation only")
    g.add_argument("--seed", type=int, default=0, help="weights and data seed")
    g.add_argument("--out", default="gradient_flow",
                   help="output path without suffix: writes OUT.csv and OUT.png")
    g.add_argument("--quick", action="store_true", help="apply the config's quick: section")
    g.set_defaults(func=_cmd_gradient_flow)


def _cells(value: str | None, cfg: dict) -> list[str]:
    from rnnbench.cells import list_cells

    known = list_cells()
    if value is None:
        return [cfg["model"]["cell"]]
    if value.strip() == "all":
        return known
    return choose("cells", comma_list(value), known, also=("all",))


def _settings(args: argparse.Namespace, cfg: dict):
    from rnnbench.bench.gradient_flow import FlowSettings

    T = args.T if args.T is not None else int(cfg["data"].get("T", 100))
    if T < 2 or args.batch < 1 or args.train_steps < 0:
        raise CLIError("--T must be >= 2, --batch >= 1 and --train-steps >= 0; "
                       f"got {T}, {args.batch}, {args.train_steps}")
    return FlowSettings(T=T, batch=args.batch, train_steps=args.train_steps, seed=args.seed)


def _cmd_gradient_flow(args: argparse.Namespace) -> int:
    from rich.console import Console

    from rnnbench.config import ConfigError, load_config

    try:
        cfg = load_config(args.config, args.overrides, quick=args.quick)
    except ConfigError as err:
        raise CLIError(str(err)) from None
    if cfg["data"].get("dataset") != "adding":
        raise CLIError(f"gradient flow runs on the adding problem, but {args.config} uses "
                       f"data set {cfg['data'].get('dataset')!r}; use a config with "
                       "data: adding (e.g. configs/experiment/gradient_flow.yaml)")
    if cfg["model"].get("bidirectional"):
        raise CLIError("gradient flow through time needs a unidirectional model; set "
                       "model.bidirectional=false")
    cells = _cells(args.cells, cfg)
    settings = _settings(args, cfg)
    out = Path(args.out)
    if out.suffix in (".csv", ".png"):
        out = out.with_suffix("")

    from rnnbench.bench.gradient_flow import gradient_flow, plot, write_csv

    console = Console()
    t0 = time.perf_counter()
    try:
        rows = gradient_flow(cfg, cells, settings)
    except ValueError as err:
        raise CLIError(str(err)) from None
    wall = time.perf_counter() - t0
    csv_path, png_path = out.with_suffix(".csv"), out.with_suffix(".png")
    write_csv(rows, csv_path)
    plot(rows, png_path, title=f"gradient flow, adding problem T={settings.T}, "
         f"batch {settings.batch}, seed {settings.seed}")
    _summary(console, rows, settings)
    console.print(f"{len(cells)} cell(s) in {wall:.1f} s; written {csv_path} and {png_path}")
    return 0


def _summary(console, rows: list[dict], settings) -> None:
    """Norm at distance 0, 10 % and the far end of the window, per cell and stage."""
    from rich.table import Table

    far = settings.T - 1
    mid = max(1, settings.T // 10)
    table = Table(title="mean ||dL_T/dh_t|| by distance T - t")
    for col in ("cell", "hidden", "stage", "loss", "d=0", f"d={mid}", f"d={far}",
                f"ratio d={far}/d=0"):
        table.add_column(col, justify="left" if col in ("cell", "stage") else "right")
    index = {(r["cell"], r["stage"], r["distance"]): r for r in rows}
    for key in dict.fromkeys((r["cell"], r["stage"]) for r in rows):
        first, m, last = (index[(*key, d)] for d in (0, mid, far))
        ratio = last["grad_norm"] / first["grad_norm"] if first["grad_norm"] else float("nan")
        table.add_row(key[0], str(first["hidden_size"]), key[1], f"{first['loss']:.4f}",
                      f"{first['grad_norm']:.3g}", f"{m['grad_norm']:.3g}",
                      f"{last['grad_norm']:.3g}", f"{ratio:.3g}")
    console.print(table)
