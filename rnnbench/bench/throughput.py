"""Timed PTB-shaped language-model steps (embedding -> backbone -> vocab linear -> loss)."""

from __future__ import annotations

import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rnnbench.backbones.recurrent import RecurrentBackbone
from rnnbench.cells import get_cell

# name -> (batch B, hidden H, steps T, layers L); small/medium/large follow Zaremba et al.'s
# PTB models (large here is the GPU-sized batch used for throughput, not the paper's 20).
SHAPES: dict[str, tuple[int, int, int, int]] = {
    "tiny": (4, 32, 10, 1),
    "small": (20, 200, 35, 2),
    "medium": (20, 650, 35, 2),
    "large": (256, 1024, 64, 2),
}
MODES = ("train", "infer")
BENCH_IMPLS = ("fused", "reference", "compiled")
CLIP = 0.25
LR = 1.0
COMPILED_MIN_WARMUP = 2


@dataclass(frozen=True)
class BenchCase:
    """One benchmark point.

    Args:
        cell: Registry name of the cell.
        impl: ``fused``, ``reference`` or ``compiled`` (see ``RecurrentBackbone``).
        batch: Rows per step ``B``.
        hidden: Hidden units ``H`` (also the embedding width).
        steps: TBPTT window ``T``.
        layers: Stacked layers ``L``.
        mode: ``"train"`` (forward, backward, clip, SGD) or ``"infer"`` (forward only).
        device: ``"cpu"`` or ``"cuda"``.
        vocab: Vocabulary size ``V`` of the embedding and the output linear.
    """

    cell: str
    impl: str
    batch: int
    hidden: int
    steps: int
    layers: int
    mode: str
    device: str
    vocab: int = 10000


class PTBStepModel(nn.Module):
    """Embedding -> RecurrentBackbone -> Linear(V), the shape of Zaremba's PTB model.

    No dropout: the benchmark measures the recurrent compute, not regularisation.
    """

    def __init__(self, cell: str, impl: str, vocab: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.rnn = RecurrentBackbone(cell, hidden, hidden, num_layers=layers, impl=impl)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, tokens: torch.Tensor, state):
        x = self.embed(tokens)  # (B, T, H)
        y, state = self.rnn(x, state)  # (B, T, H)
        return self.decoder(y), state  # (B, T, V)


def _detach(state):
    return tuple(s.detach() for s in state)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rss_mb() -> float:
    # ru_maxrss is the process's high-water mark: KiB on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def measure(
    step: Callable[[], None],
    device: torch.device | str,
    warmup: int = 3,
    repeats: int = 10,
    setup: Callable[[], None] | None = None,
) -> dict:
    """Times ``step`` with a synchronised clock; warm-up (and any compilation) is not timed.

    Args:
        step: One full step (forward, and backward/optimiser in train mode).
        device: Where the step runs; CUDA steps are timed with CUDA events.
        warmup: Untimed steps first (``torch.compile`` compiles here).
        repeats: Timed steps; the median is reported.
        setup: Builds the model and data; called first so its memory counts towards the peak.

    Returns:
        ``median_ms``, ``min_ms``, ``times_ms`` (per step) and ``peak_mb``: on GPU
        ``torch.cuda.max_memory_allocated`` over setup and steps; on CPU the growth of the
        process's peak RSS (approximate: zero when an earlier case already reached a higher
        peak, and it includes allocator and library overheads).
    """
    device = torch.device(device)
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
    rss0 = _rss_mb()
    if setup is not None:
        setup()
    for _ in range(warmup):
        step()
    _sync(device)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1000.0)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = max(_rss_mb() - rss0, 0.0)
    return {
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "times_ms": times,
        "peak_mb": peak,
    }


def _lm_step(model: nn.Module, tokens, targets, state, mode: str, vocab: int):
    """Builds the timed closure shared by rnnbench's model and the hand-written one."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=LR)
    box = {"state": state}

    def train_step() -> None:
        box["state"] = _detach(box["state"])  # TBPTT: carry the state, cut the graph
        logits, box["state"] = model(tokens, box["state"])
        loss = F.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        opt.step()

    def infer_step() -> None:
        with torch.inference_mode():
            logits, box["state"] = model(tokens, box["state"])
            F.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1))

    model.train(mode == "train")
    return train_step if mode == "train" else infer_step


def _row(case: BenchCase, **extra) -> dict:
    shape = next(
        (n for n, s in SHAPES.items() if s == (case.batch, case.hidden, case.steps, case.layers)),
        f"B{case.batch}-H{case.hidden}-T{case.steps}-L{case.layers}",
    )
    return {**asdict(case), "shape": shape, **extra}


def skip_reason(cell: str, impl: str) -> str | None:
    """Why ``impl`` cannot run ``cell`` (``None`` when it can)."""
    if impl == "fused" and get_cell(cell).fused_mode is None:
        return f"cell {cell!r} has no fused kernel"
    return None


def run_case(case: BenchCase, warmup: int = 3, repeats: int = 10) -> dict:
    """Measures one PTB-shaped step.

    Args:
        case: What to run.
        warmup: Untimed steps; ``compiled`` compiles during these and always gets at least
            ``COMPILED_MIN_WARMUP`` of them.
        repeats: Timed steps.

    Returns:
        The case's fields plus ``shape``, ``status`` (``"ok"`` or ``"skipped"``), ``reason``,
        ``effective_impl`` (``reference`` when ``compiled`` fell back), ``tokens_per_s``
        (``B * T / median``), ``median_ms``, ``min_ms``, ``peak_mb`` and the timed
        ``times_ms`` (warm-up and compilation excluded).
    """
    reason = skip_reason(case.cell, case.impl)
    if reason is not None:
        return _row(case, status="skipped", reason=reason)
    device = torch.device(case.device)
    built: dict = {}

    def setup() -> None:
        torch.manual_seed(0)
        model = PTBStepModel(case.cell, case.impl, case.vocab, case.hidden, case.layers)
        model.to(device)
        gen = torch.Generator().manual_seed(1)
        tokens = torch.randint(case.vocab, (case.batch, case.steps), generator=gen).to(device)
        targets = torch.randint(case.vocab, (case.batch, case.steps), generator=gen).to(device)
        state = model.rnn.init_state(case.batch)
        built["model"] = model
        built["step"] = _lm_step(model, tokens, targets, state, case.mode, case.vocab)

    if case.impl == "compiled":
        # The first call compiles for the zero initial state, the second recompiles for the
        # carried one: both must fall in the warm-up, never in the timed steps.
        warmup = max(warmup, COMPILED_MIN_WARMUP)
    stats = measure(lambda: built["step"](), device, warmup, repeats, setup=setup)
    return _row(
        case,
        status="ok",
        reason=None,
        warmup=warmup,
        effective_impl=built["model"].rnn.effective_impl,
        tokens_per_s=case.batch * case.steps / (stats["median_ms"] / 1000.0),
        **stats,
    )


class HandwrittenLM(nn.Module):
    """The hand-written eager baseline: plain ``nn.Embedding``, ``nn.LSTM``, ``nn.Linear``."""

    def __init__(self, vocab: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.lstm = nn.LSTM(hidden, hidden, layers, batch_first=True)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, tokens: torch.Tensor, state):
        y, state = self.lstm(self.embed(tokens), state)  # (B, T, H)
        return self.decoder(y), state  # (B, T, V)


def handwritten_case(
    batch: int,
    hidden: int,
    steps: int,
    layers: int,
    mode: str = "train",
    device: str = "cpu",
    vocab: int = 10000,
    warmup: int = 3,
    repeats: int = 10,
) -> dict:
    """Times the hand-written ``nn.LSTM`` step with the same clock and loss as ``run_case``."""
    device_t = torch.device(device)
    built: dict = {}

    def setup() -> None:
        torch.manual_seed(0)
        model = HandwrittenLM(vocab, hidden, layers).to(device_t)
        gen = torch.Generator().manual_seed(1)
        tokens = torch.randint(vocab, (batch, steps), generator=gen).to(device_t)
        targets = torch.randint(vocab, (batch, steps), generator=gen).to(device_t)
        zeros = torch.zeros(layers, batch, hidden, device=device_t)
        built["step"] = _lm_step(model, tokens, targets, (zeros, zeros.clone()), mode, vocab)

    stats = measure(lambda: built["step"](), device_t, warmup, repeats, setup=setup)
    case = BenchCase("lstm", "handwritten", batch, hidden, steps, layers, mode, device, vocab)
    return _row(
        case,
        status="ok",
        reason=None,
        warmup=warmup,
        effective_impl="handwritten",
        tokens_per_s=batch * steps / (stats["median_ms"] / 1000.0),
        **stats,
    )


def run_suite(
    cells: Iterable[str],
    impls: Iterable[str],
    shapes: Iterable[str],
    modes: Iterable[str],
    device: str,
    warmup: int = 3,
    repeats: int = 10,
    vocab: int = 10000,
    progress: bool = True,
) -> list[dict]:
    """Runs every cell x impl x shape x mode combination, with a Rich progress bar.

    Returns:
        One ``run_case`` row per combination, skipped ones included.
    """
    from rich.progress import Progress

    cases = [
        BenchCase(cell, impl, *SHAPES[shape], mode, device, vocab)
        for shape in shapes
        for mode in modes
        for cell in cells
        for impl in impls
    ]
    rows = []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("benchmark", total=len(cases))
        for case in cases:
            bar.update(task, description=f"{case.cell}/{case.impl} {case.mode} B{case.batch} "
                       f"H{case.hidden}")
            rows.append(run_case(case, warmup=warmup, repeats=repeats))
            bar.advance(task)
    return rows
