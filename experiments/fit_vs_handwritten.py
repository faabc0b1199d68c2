"""Training throughput of ``rnnbench fit``'s step against hand-written TBPTT loops.

Usage:
    python experiments/fit_vs_handwritten.py [--hidden 200] [--steps 60] [--rounds 3]
    python experiments/fit_vs_handwritten.py --device cuda --hidden 650 --steps 300

Every contestant trains the same PTB-shaped language model (embedding, 2-layer LSTM,
10k-word softmax, B20 T35, carried and detached state, clip 0.25, SGD) on the same random
token stream, in one process, alternating rounds so that machine noise hits all of them.

On CPU: rnnbench's fit step against the hand-written eager loop (which reads its loss every
step, as most do); each figure is the median time of the timed steps.

On CUDA (TF32 on, as the issue's figures): four contestants, each timed as the wall time of
its timed steps between two device synchronisations divided by their number:
``fit (graphs)`` (``rnnbench fit``'s default on a GPU) against the hand-written whole-step
CUDA graph, and ``fit (eager)`` (``cuda_graphs=False``) against the hand-written eager loop
(which never synchronises: the strictest baseline). rnnbench's figures include everything
Lightning does around the step (fetching, hooks, logging every 50 steps).
"""

from __future__ import annotations

import argparse
import statistics
import time

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback

from rnnbench.bench.throughput import HandwrittenLM, handwritten_graphed_train_step
from rnnbench.data.tbptt import StreamBatches, TBPTTDataModule
from rnnbench.module import RNNModule

VOCAB, BATCH, BPTT, LAYERS = 10_000, 20, 35, 2


class StepTimer(Callback):
    """Wall time between consecutive training-batch starts (one full step each)."""

    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.starts.append(time.perf_counter())


def time_rnnbench(stream: torch.Tensor, hidden: int, steps: int, warmup: int) -> float:
    module = RNNModule(task="lm", task_kwargs={"vocab_size": VOCAB}, cell="lstm",
                       hidden_size=hidden, num_layers=LAYERS, optimizer="sgd", lr=1.0, clip=0.25)
    timer = StepTimer()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=warmup + steps + 1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, callbacks=[timer],
                        log_every_n_steps=50)
    trainer.fit(module, TBPTTDataModule(stream, batch_size=BATCH, bptt=BPTT))
    gaps = [b - a for a, b in zip(timer.starts, timer.starts[1:])][warmup:]
    return statistics.median(gaps)


def hand_step(model: torch.nn.Module, state=None):
    """The hand-written eager TBPTT step: forward, detach the carry, loss, backward, clip, SGD."""
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=1.0)
    box = {"state": state}

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits, new_state = model(x, box["state"])
        box["state"] = tuple(s.detach() for s in new_state)
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 0.25)
        opt.step()
        return loss

    return step


def time_handwritten(stream: torch.Tensor, hidden: int, steps: int, warmup: int) -> float:
    step = hand_step(HandwrittenLM(VOCAB, hidden, LAYERS))  # the baseline `rnnbench bench` times
    times = []
    for k, (x, y) in enumerate(StreamBatches(stream, BATCH, BPTT)):
        if k == warmup + steps:
            break
        t0 = time.perf_counter()
        step(x, y).item()  # the hand loop reads its loss every step, as most do
        times.append(time.perf_counter() - t0)
    return statistics.median(times[warmup:])


class SyncedWindow(Callback):
    """Wall time from the start of batch ``warmup`` to the start of batch ``warmup + steps``."""

    def __init__(self, warmup: int, steps: int) -> None:
        self.warmup, self.steps, self.t0, self.t1 = warmup, steps, None, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx in (self.warmup, self.warmup + self.steps):
            torch.cuda.synchronize()
            now = time.perf_counter()
            if batch_idx == self.warmup:
                self.t0 = now
            else:
                self.t1 = now


def gpu_fit(stream: torch.Tensor, hidden: int, steps: int, warmup: int, graphs: bool) -> float:
    torch.manual_seed(0)
    module = RNNModule(task="lm", task_kwargs={"vocab_size": VOCAB}, cell="lstm",
                       hidden_size=hidden, num_layers=LAYERS, optimizer="sgd", lr=1.0, clip=0.25,
                       cuda_graphs=graphs)
    timer = SyncedWindow(warmup, steps)
    trainer = L.Trainer(accelerator="gpu", devices=1, max_steps=warmup + steps + 1,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, callbacks=[timer],
                        log_every_n_steps=50)
    trainer.fit(module, TBPTTDataModule(stream, batch_size=BATCH, bptt=BPTT))
    if graphs:
        assert module._graph is not None and module._graph.replays >= steps, module._graph_off
    return (timer.t1 - timer.t0) / steps


def _pair(batch) -> tuple[torch.Tensor, torch.Tensor]:
    return batch.inputs, batch.targets


def gpu_hand(stream: torch.Tensor, hidden: int, steps: int, warmup: int, graphed: bool) -> float:
    torch.manual_seed(0)
    device = torch.device("cuda")
    model = HandwrittenLM(VOCAB, hidden, LAYERS).to(device)
    batches = iter(StreamBatches(stream.to(device), BATCH, BPTT))
    zeros = torch.zeros(LAYERS, BATCH, hidden, device=device)
    state = (zeros, zeros.clone())
    if graphed:
        first = next(batches)  # the first window is the graph's warm-up and capture
        x0, y0 = first.inputs, first.targets
        step = handwritten_graphed_train_step(model, x0, y0, state, VOCAB)
    else:
        step = hand_step(model, state)

    for _ in range(warmup):
        step(*_pair(next(batches)))
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step(*_pair(next(batches)))
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def main_gpu(args: argparse.Namespace) -> None:
    torch.set_float32_matmul_precision("high")  # TF32, as the hand-written figures
    n = BATCH * BPTT * (args.warmup + args.steps + 3) + 1
    stream = torch.randint(0, VOCAB, (n,), generator=torch.Generator().manual_seed(0))
    names = ("fit (graphs)", "hand-written graphed", "fit (eager)", "hand-written eager")
    times: dict[str, list[float]] = {k: [] for k in names}
    for _ in range(args.rounds):
        times[names[0]].append(gpu_fit(stream, args.hidden, args.steps, args.warmup, True))
        times[names[1]].append(gpu_hand(stream, args.hidden, args.steps, args.warmup, True))
        times[names[2]].append(gpu_fit(stream, args.hidden, args.steps, args.warmup, False))
        times[names[3]].append(gpu_hand(stream, args.hidden, args.steps, args.warmup, False))
    tok = BATCH * BPTT
    rate = {k: tok / statistics.median(v) for k, v in times.items()}
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, B{BATCH} T{BPTT} "
          f"H{args.hidden} L{LAYERS}, {args.rounds} rounds x {args.steps} timed steps "
          f"(median round)")
    for k in names:
        print(f"{k:22s}: {rate[k]:>10,.0f} tokens/s")
    print(f"fit (graphs) / hand-written graphed : {rate[names[0]] / rate[names[1]]:.3f}x")
    print(f"fit (eager)  / hand-written eager   : {rate[names[2]] / rate[names[3]]:.3f}x")
    print(f"fit (graphs) / hand-written eager   : {rate[names[0]] / rate[names[3]]:.3f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=200)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args()
    if args.device == "cuda":
        if not torch.cuda.is_available():
            parser.error("--device cuda: CUDA is not available")
        main_gpu(args)
        return
    torch.manual_seed(0)
    n = BATCH * BPTT * (args.warmup + args.steps + 2) + 1
    stream = torch.randint(0, VOCAB, (n,))
    ours, theirs = [], []
    for _ in range(args.rounds):
        ours.append(time_rnnbench(stream, args.hidden, args.steps, args.warmup))
        theirs.append(time_handwritten(stream, args.hidden, args.steps, args.warmup))
    tok = BATCH * BPTT
    a, b = tok / statistics.median(ours), tok / statistics.median(theirs)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, B{BATCH} T{BPTT} "
          f"H{args.hidden} L{LAYERS}, {args.rounds} rounds x {args.steps} timed steps")
    print(f"rnnbench fit step : {a:,.0f} tokens/s")
    print(f"hand-written loop : {b:,.0f} tokens/s")
    print(f"ratio             : {a / b:.3f}x")


if __name__ == "__main__":
    main()
