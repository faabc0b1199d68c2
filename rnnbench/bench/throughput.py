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
BENCH_IMPLS = ("fused", "reference", "compiled", "fused+graph", "reference+graph",
               "compiled+graph")
GRAPH_SUFFIX = "+graph"
CLIP = 0.25
LR = 1.0
COMPILED_MIN_WARMUP = 2


@dataclass(frozen=True)
class BenchCase:
    """One benchmark point.

    Args:
        cell: Registry name of the cell.
        impl: ``fused``, ``reference`` or ``compiled`` (see ``RecurrentBackbone``); with
            ``+graph`` the whole step is captured once as a CUDA graph and replayed
            (:class:`rnnbench.graphs.StepGraph` for training; CUDA only).
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


def _graphed_lm_step(model: nn.Module, tokens, targets, state, mode: str, vocab: int):
    """The same step as ``_lm_step``, captured as a CUDA graph and replayed.

    Training goes through :class:`~rnnbench.graphs.StepGraph`, the code ``rnnbench fit``
    replays; inference captures the forward pass with the state carried in place.
    """
    from rnnbench.graphs import StepGraph

    params = [p for p in model.parameters() if p.requires_grad]
    model.train(mode == "train")
    if mode == "train":
        opt = torch.optim.SGD(params, lr=LR)

        def body(inputs, st):
            x, y = inputs
            logits, new_state = model(x, st)
            loss = F.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1))
            return loss, loss, new_state

        graph = StepGraph(body, params, opt, CLIP)
        box = {"state": state}

        def train_step() -> None:
            _, _, box["state"] = graph.step((tokens, targets), box["state"], lambda: state)

        return train_step

    static = {"state": tuple(s.clone() for s in state), "graph": None, "left": 3}

    def forward() -> None:
        logits, new_state = model(tokens, static["state"])
        F.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1))
        for buf, new in zip(static["state"], new_state):
            buf.copy_(new)

    def infer_step() -> None:
        with torch.inference_mode():
            if static["left"] > 0:  # warm-up (and compilation) outside the capture
                static["left"] -= 1
                forward()
                return
            if static["graph"] is None:
                torch.cuda.synchronize()
                static["graph"] = torch.cuda.CUDAGraph()
                with torch.cuda.graph(static["graph"]):
                    forward()
            static["graph"].replay()

    return infer_step


def _row(case: BenchCase, **extra) -> dict:
    shape = next(
        (n for n, s in SHAPES.items() if s == (case.batch, case.hidden, case.steps, case.layers)),
        f"B{case.batch}-H{case.hidden}-T{case.steps}-L{case.layers}",
    )
    return {**asdict(case), "shape": shape, **extra}


def skip_reason(cell: str, impl: str) -> str | None:
    """Why ``impl`` cannot run ``cell`` (``None`` when it can)."""
    base = impl.removesuffix(GRAPH_SUFFIX)
    if base == "fused" and get_cell(cell).fused_mode is None:
        return f"cell {cell!r} has no fused kernel"
    return None


def _graph_skip_reason(impl: str, device: str) -> str | None:
    if impl.endswith(GRAPH_SUFFIX) and torch.device(device).type != "cuda":
        return "CUDA graphs need a CUDA device"
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
    reason = skip_reason(case.cell, case.impl) or _graph_skip_reason(case.impl, case.device)
    if reason is not None:
        return _row(case, status="skipped", reason=reason)
    device = torch.device(case.device)
    graphed = case.impl.endswith(GRAPH_SUFFIX)
    base_impl = case.impl.removesuffix(GRAPH_SUFFIX)
    built: dict = {}

    def setup() -> None:
        torch.manual_seed(0)
        model = PTBStepModel(case.cell, base_impl, case.vocab, case.hidden, case.layers)
        model.to(device)
        gen = torch.Generator().manual_seed(1)
        tokens = torch.randint(case.vocab, (case.batch, case.steps), generator=gen).to(device)
        targets = torch.randint(case.vocab, (case.batch, case.steps), generator=gen).to(device)
        state = model.rnn.init_state(case.batch)
        built["model"] = model
        make = _graphed_lm_step if graphed else _lm_step
        built["step"] = make(model, tokens, targets, state, case.mode, case.vocab)

    if graphed:
        warmup = max(warmup, 4)  # three eager warm-up steps, then the capture
    if base_impl == "compiled":
        # The first call compiles for the zero initial state, the second recompiles for the
        # carried one: both must fall in the warm-up, never in the timed steps.
        warmup = max(warmup, COMPILED_MIN_WARMUP)
    stats = measure(lambda: built["step"](), device, warmup, repeats, setup=setup)
    effective = built["model"].rnn.effective_impl + (GRAPH_SUFFIX if graphed else "")
    return _row(
        case,
        status="ok",
        reason=None,
        warmup=warmup,
        effective_impl=effective,
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


def handwritten_graphed_train_step(model: nn.Module, tokens, targets, state, vocab: int):
    """A hand-written whole-step CUDA graph, the textbook way (no rnnbench code).

    Static tokens, targets and state; three warm-up steps on a side stream; then one
    capture of forward, loss, backward, clip and SGD step with the state copied in place.
    Returns ``step(tokens, targets)`` that copies the batch in, replays and returns the
    static loss.
    """
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=LR)
    static_x, static_y = tokens.clone(), targets.clone()
    static_h = tuple(s.clone() for s in state)

    def body():
        logits, new_state = model(static_x, static_h)
        loss = F.cross_entropy(logits.reshape(-1, vocab), static_y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        opt.step()
        with torch.no_grad():
            for buf, new in zip(static_h, new_state):
                buf.copy_(new)
        return loss.detach()

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            body()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        static_loss = body()

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        static_x.copy_(x, non_blocking=True)
        static_y.copy_(y, non_blocking=True)
        graph.replay()
        return static_loss

    return step


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
    graphed: bool = False,
) -> dict:
    """Times the hand-written ``nn.LSTM`` step with the same clock and loss as ``run_case``.

    With ``graphed`` (CUDA, train mode) the step is :func:`handwritten_graphed_train_step`.
    """
    device_t = torch.device(device)
    built: dict = {}

    def setup() -> None:
        torch.manual_seed(0)
        model = HandwrittenLM(vocab, hidden, layers).to(device_t)
        gen = torch.Generator().manual_seed(1)
        tokens = torch.randint(vocab, (batch, steps), generator=gen).to(device_t)
        targets = torch.randint(vocab, (batch, steps), generator=gen).to(device_t)
        zeros = torch.zeros(layers, batch, hidden, device=device_t)
        if graphed:
            step = handwritten_graphed_train_step(model, tokens, targets,
                                                  (zeros, zeros.clone()), vocab)
            built["step"] = lambda: step(tokens, targets)
        else:
            built["step"] = _lm_step(model, tokens, targets, (zeros, zeros.clone()), mode,
                                     vocab)

    if graphed and (device_t.type != "cuda" or mode != "train"):
        raise ValueError("the hand-written graphed step is a CUDA training step")
    stats = measure(lambda: built["step"](), device_t, warmup, repeats, setup=setup)
    impl = "handwritten" + (GRAPH_SUFFIX if graphed else "")
    case = BenchCase("lstm", impl, batch, hidden, steps, layers, mode, device, vocab)
    return _row(
        case,
        status="ok",
        reason=None,
        warmup=warmup,
        effective_impl=impl,
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
