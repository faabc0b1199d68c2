"""Training throughput of ``rnnbench fit``'s step against a hand-written eager TBPTT loop.

Usage:
    python experiments/fit_vs_handwritten.py [--hidden 200] [--steps 60] [--rounds 3]

Both sides train the same PTB-shaped language model (embedding, 2-layer LSTM, 10k-word
softmax, B20 T35, carried and detached state, clip 0.25, SGD) on the same random token
stream, in one process, alternating rounds so that machine noise hits both. Each side's
figure is the median time of its timed steps (warm-up excluded); rnnbench's includes
everything Lightning does around the step (fetching, hooks, logging).
"""

from __future__ import annotations

import argparse
import statistics
import time

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback

from rnnbench.bench.throughput import HandwrittenLM
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


def time_handwritten(stream: torch.Tensor, hidden: int, steps: int, warmup: int) -> float:
    model = HandwrittenLM(VOCAB, hidden, LAYERS)  # the same baseline `rnnbench bench` times
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=1.0)
    state, times = None, []
    for k, (x, y) in enumerate(StreamBatches(stream, BATCH, BPTT)):
        if k == warmup + steps:
            break
        t0 = time.perf_counter()
        logits, state = model(x, state)
        state = tuple(s.detach() for s in state)
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 0.25)
        opt.step()
        loss.item()  # the hand loop reads its loss every step, as most do
        times.append(time.perf_counter() - t0)
    return statistics.median(times[warmup:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=200)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
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
