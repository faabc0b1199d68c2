"""Seconds per epoch of ``rnnbench fit`` against a plain PyTorch loop, on the README's main job.

Usage:
    python experiments/cpu_epoch_vs_plain.py [--cells lstm gru rnn_tanh] [--rounds 2]
    python experiments/cpu_epoch_vs_plain.py --denormals            # tanh, flush on vs off
    python experiments/cpu_epoch_vs_plain.py --quick                # a smoke run (tests)
    python experiments/cpu_epoch_vs_plain.py --breakdown [--cells lstm]  # where an epoch goes

The job is the main job's (``configs/experiment/chung2014_jsb.yaml``): JSB Chorales, batches
of 4 pieces of similar length, ~20K parameters per cell, Adam, gradient clipping at 1 and a
validation pass each epoch. The plain loop is what one writes by hand: ``nn.LSTM/GRU/RNN``
on the padded batch, a masked loss, ``clip_grad_norm_``, ``Adam.step``; it reads the same
batches from the same data module, so only the training machinery differs.

Each contestant runs in a fresh process with one torch thread for ``E`` epochs and times
every epoch in-process (training plus its validation pass: for rnnbench, a Lightning
callback from the first training batch to the end of validation; for the plain loop, a clock
around the same work). The figure is the median epoch after the first, so start-up, imports
and the first epoch's warm-up stay out: differencing whole processes, as first tried, was
swamped by start-up jitter of several seconds on a shared machine. Rounds alternate the
contestants, so machine noise falls on all of them; each figure is the median over rounds.

``--breakdown`` splits one ``rnnbench fit`` epoch per cell by CPU time of the process's
thread (``time.thread_time``, less disturbed by other jobs than wall time): training steps
(and within them forward, backward, clipping, optimiser), the validation loop, checkpoint
writes, collating and moving batches, and the rest, which is Lightning's loop and hooks;
beside it the plain loop's epoch split the same way.

``--denormals`` runs the tanh RNN's plain loop and ``rnnbench fit`` with
``torch.set_flush_denormal`` off and on (``flush_denormal: true`` in a config; off by
default), and prints the final validation NLL of each so a change in accuracy
would show.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "configs" / "experiment" / "chung2014_jsb.yaml"
BUDGET, BATCH, LR, CLIP = 20_000, 4, 0.005, 1.0


def _plain_child(cell: str, epochs: int, limit: int | None, flush: bool) -> None:
    """The hand-written loop (runs in a fresh process)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from rnnbench.data.catalog import build_data
    from rnnbench.sizing import hidden_for_budget

    torch.set_num_threads(1)
    torch.set_flush_denormal(flush)
    torch.manual_seed(0)
    hidden = hidden_for_budget(BUDGET, "music", {"n_keys": 88}, {"cell": cell})
    dm = build_data({"dataset": "jsb_chorales", "batch_size": BATCH, "sort_by_length": True,
                     "eval_batch_size": 76, "limit_pieces": limit}).datamodule
    dm.setup("fit")
    kind = {"lstm": nn.LSTM, "gru": nn.GRU}.get(cell, nn.RNN)
    extra = {"nonlinearity": "tanh" if cell == "rnn_tanh" else "relu"} if kind is nn.RNN else {}
    rnn, head = kind(88, hidden, batch_first=True, **extra), nn.Linear(hidden, 88)
    params = [*rnn.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=LR)

    def nll(batch) -> tuple[torch.Tensor, torch.Tensor]:
        y, _ = rnn(batch.inputs)                                      # (B, T, H)
        logits = head(y)                                              # (B, T, 88)
        per_frame = F.binary_cross_entropy_with_logits(
            logits, batch.targets, reduction="none").sum(-1)          # (B, T)
        mask = batch.mask.to(per_frame.dtype)
        return (per_frame * mask).sum(), mask.sum()

    val, times, cpu = float("nan"), [], []  # cpu: per epoch, CPU seconds of its parts
    for _ in range(epochs):
        t0, c0 = time.perf_counter(), time.thread_time()
        parts = dict.fromkeys(("collating batches", "training steps", "validation loop"), 0.0)
        loader = iter(dm.train_dataloader())
        while True:
            c = time.thread_time()
            batch = next(loader, None)
            parts["collating batches"] += time.thread_time() - c
            if batch is None:
                break
            c = time.thread_time()
            total, frames = nll(batch)
            opt.zero_grad(set_to_none=True)
            (total / frames).backward()
            torch.nn.utils.clip_grad_norm_(params, CLIP)
            opt.step()
            parts["training steps"] += time.thread_time() - c
        c = time.thread_time()
        with torch.no_grad():
            sums = [nll(b) for b in dm.val_dataloader()]
        val = float(sum(s for s, _ in sums) / sum(n for _, n in sums))
        parts["validation loop"] += time.thread_time() - c
        times.append(time.perf_counter() - t0)
        cpu.append({"epoch": time.thread_time() - c0, "wall": times[-1], **parts})
    print(json.dumps({"val_nll": val, "hidden": hidden, "epoch_s": times, "cpu": cpu}))


def _rnnbench_child(cell: str, epochs: int, limit: int | None, flush: bool, out: str) -> None:
    """``rnnbench fit`` of the main job, in-process, with an epoch clock (fresh process)."""
    import lightning as L
    import torch

    from rnnbench.config import load_config
    from rnnbench.train import run

    class EpochClock(L.Callback):
        """Time from one epoch's start to the next's: training, validation, checkpointing
        and logging, all that Lightning does for an epoch."""

        def __init__(self) -> None:
            self.marks: list[float] = []

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self.marks.append(time.perf_counter())

        def on_train_end(self, trainer, pl_module) -> None:
            self.marks.append(time.perf_counter())

        @property
        def times(self) -> list[float]:
            return [b - a for a, b in zip(self.marks, self.marks[1:])]

    torch.set_num_threads(1)
    overrides = [f"model.cell={cell}", f"trainer.max_epochs={epochs}", f"logging.dir={out}",
                 f"flush_denormal={'true' if flush else 'false'}"]
    if limit:
        overrides.append(f"data.limit_pieces={limit}")
    clock = EpochClock()
    result = run(load_config(PRESET, overrides), callbacks=[clock], test=False)
    print(json.dumps({"val_nll": result.metrics.get("val/nll"), "epoch_s": clock.times}))


def _breakdown_child(cell: str, epochs: int, limit: int | None, out: str) -> None:
    """CPU seconds per epoch of ``rnnbench fit``'s parts, by wrapping them (fresh process)."""
    import lightning as L
    import torch
    from lightning.pytorch.strategies import Strategy

    import rnnbench.data.sequence as seq
    from rnnbench.config import load_config
    from rnnbench.module import RNNModule
    from rnnbench.train import run

    torch.set_num_threads(1)
    clock, spent = time.thread_time, {}

    def wrap(owner, name: str, key: str) -> None:
        inner = getattr(owner, name)

        def timed(*args, **kwargs):
            t0 = clock()
            try:
                return inner(*args, **kwargs)
            finally:
                spent[key] = spent.get(key, 0.0) + clock() - t0

        setattr(owner, name, timed)

    for owner, name, key in [
            (RNNModule, "training_step", "training steps"), (torch.Tensor, "backward", "backward"),
            (torch.nn.utils, "clip_grad_norm_", "clipping"), (torch.optim.Adam, "step",
                                                               "optimiser step"),  # the preset's
            (seq, "pad_collate", "collating batches"), (Strategy, "batch_to_device",
                                                         "moving batches"),
            (L.Trainer, "save_checkpoint", "checkpoint writes")]:
        wrap(owner, name, key)

    class Clock(L.Callback):
        def __init__(self) -> None:
            self.rows: list[dict[str, float]] = []
            self.mark: tuple[float, dict] | None = None

        def on_validation_start(self, trainer, pl_module) -> None:
            self.v0 = clock()

        def on_validation_end(self, trainer, pl_module) -> None:
            spent["validation loop"] = spent.get("validation loop", 0.0) + clock() - self.v0

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            now, wall = clock(), time.perf_counter()
            if self.mark is not None:
                t0, w0, before = self.mark
                self.rows.append({"epoch": now - t0, "wall": wall - w0,
                                  **{k: v - before.get(k, 0.0) for k, v in spent.items()}})
            self.mark = (now, wall, dict(spent))

        def on_train_end(self, trainer, pl_module) -> None:
            self.on_train_epoch_start(trainer, pl_module)

    overrides = [f"model.cell={cell}", f"trainer.max_epochs={epochs}", f"logging.dir={out}"]
    if limit:
        overrides.append(f"data.limit_pieces={limit}")
    clock_cb = Clock()
    run(load_config(PRESET, overrides), callbacks=[clock_cb], test=False)
    rows = clock_cb.rows[1:] or clock_cb.rows
    print(json.dumps({k: statistics.median(r.get(k, 0.0) for r in rows) for k in rows[-1]}))


def _print_breakdown(cells: list[str], epochs: int, limit: int | None, tmp: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore"}
    for cell in cells:
        cmd = [sys.executable, __file__, "--child-breakdown", cell, "--epochs", str(epochs),
               "--out", str(tmp / "breakdown" / cell), *(["--limit", str(limit)] if limit else [])]
        got = json.loads(_run(cmd, env)[1].strip().splitlines()[-1])
        epoch, wall = got.pop("epoch"), got.pop("wall")
        plain = json.loads(_run(_command("plain", cell, epochs, limit, False, tmp), env)[1]
                           .strip().splitlines()[-1])["cpu"][1:]
        plain = {k: statistics.median(r[k] for r in plain) for k in plain[0]}
        parts = {k: v for k, v in got.items()
                 if k not in ("backward", "clipping", "optimiser step")}
        rest = epoch - sum(parts.values())
        print(f"\n{cell}: CPU ms per epoch (median of epochs 2..{epochs}), one thread")
        print("| part | rnnbench fit | share | plain loop |\n|---|---:|---:|---:|")
        for k, v in [*parts.items(), ("Lightning's loop, hooks and logging (the rest)", rest)]:
            mine = f"{plain[k] * 1e3:.1f}" if k in plain else "-"
            print(f"| {k} | {v * 1e3:.1f} | {v / epoch:.0%} | {mine} |")
            if k == "training steps":
                for sub in ("backward", "clipping", "optimiser step"):
                    if sub in got:
                        print(f"| - of which {sub} | {got[sub] * 1e3:.1f} | "
                              f"{got[sub] / epoch:.0%} | |")
        print(f"| **epoch** | **{epoch * 1e3:.1f}** | | **{plain['epoch'] * 1e3:.1f}** |")
        print(f"| epoch, wall clock (CPU time plus waiting) | {wall * 1e3:.1f} | | "
              f"{plain['wall'] * 1e3:.1f} |")


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return took, proc.stdout


def _command(who: str, cell: str, epochs: int, limit: int | None, flush: bool,
             tmp: Path) -> list[str]:
    return [sys.executable, __file__, f"--child-{who}", cell, "--epochs", str(epochs),
            "--out", str(tmp / who / cell), *(["--limit", str(limit)] if limit else []),
            *(["--flush"] if flush else [])]


def measure(contestants: list[tuple[str, str, bool]], epochs: int, rounds: int,
            limit: int | None, tmp: Path) -> dict[tuple[str, str, bool], dict]:
    """``{(who, cell, flush): {"s_per_epoch": median over rounds, "val_nll": last}}``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore"}
    times: dict = {c: [] for c in contestants}
    nll: dict = {}
    for r in range(rounds):
        for c in contestants[r % len(contestants):] + contestants[:r % len(contestants)]:
            _, out = _run(_command(c[0], c[1], epochs, limit, c[2], tmp), env)
            got = json.loads(out.strip().splitlines()[-1])
            times[c].append(statistics.median(got["epoch_s"][1:] or got["epoch_s"]))
            nll[c] = got["val_nll"]
            who, cell, flush = c
            print(f"  round {r + 1}: {who:8s} {cell:8s} flush={flush!s:5s} "
                  f"{times[c][-1]:.3f} s/epoch", flush=True)
    return {c: {"s_per_epoch": statistics.median(t), "val_nll": nll[c]}
            for c, t in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", nargs="+", default=["lstm", "gru", "rnn_tanh"])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="first N pieces of each split")
    ap.add_argument("--denormals", action="store_true")
    ap.add_argument("--breakdown", action="store_true",
                    help="split rnnbench's epoch by CPU time instead of racing the plain loop")
    ap.add_argument("--quick", action="store_true", help="2 epochs, 8 pieces, 1 round")
    ap.add_argument("--out", type=Path, default=Path("/tmp/rnnbench_cpu_epoch"))
    ap.add_argument("--child-plain", help=argparse.SUPPRESS)
    ap.add_argument("--child-rnnbench", help=argparse.SUPPRESS)
    ap.add_argument("--child-breakdown", help=argparse.SUPPRESS)
    ap.add_argument("--flush", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_plain:
        return _plain_child(args.child_plain, args.epochs, args.limit, args.flush)
    if args.child_rnnbench:
        return _rnnbench_child(args.child_rnnbench, args.epochs, args.limit, args.flush,
                               str(args.out))
    if args.child_breakdown:
        return _breakdown_child(args.child_breakdown, args.epochs, args.limit, str(args.out))
    if args.quick:
        args.epochs, args.rounds, args.limit = 2, 1, 8
    if args.breakdown:
        return _print_breakdown(args.cells, max(args.epochs, 3), args.limit, args.out)
    if args.denormals:
        contestants = [(w, "rnn_tanh", f) for w in ("plain", "rnnbench") for f in (False, True)]
    else:
        contestants = [(w, c, False) for c in args.cells for w in ("plain", "rnnbench")]
    print(f"{len(contestants)} contestants, {args.rounds} round(s), 1 and {args.epochs} "
          f"epochs each, 1 thread", flush=True)
    res = measure(contestants, args.epochs, args.rounds, args.limit, args.out)
    print("\n| contestant | cell | flush denormals | s/epoch | final val NLL |")
    print("|---|---|---|---:|---:|")
    for (who, cell, flush), r in res.items():
        v = "-" if r["val_nll"] is None else f"{r['val_nll']:.4f}"
        print(f"| {who} | {cell} | {'on' if flush else 'off'} | {r['s_per_epoch']:.3f} | {v} |")
    if not args.denormals:
        print("\n| cell | plain / rnnbench |")
        print("|---|---:|")
        for cell in args.cells:
            ratio = res[("plain", cell, False)]["s_per_epoch"] / \
                res[("rnnbench", cell, False)]["s_per_epoch"]
            print(f"| {cell} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
