"""Whole-step CUDA graphs: the graphed TBPTT path trains exactly like the eager one.

On CPU the graphed path runs in ``emulate`` mode (static buffers, state carry, optimiser
hooks, recapture on a new learning rate, eager fallback for other shapes, no capture); on a
GPU (tests marked ``gpu``) the real capture is compared with the eager reference over 50
steps, float32 with TF32 off.
"""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from rnnbench.data.tbptt import TBPTTDataModule
from rnnbench.graphs import StepGraph, cuda_graphs_available
from rnnbench.module import NonFiniteLossError, RNNModule
from tests.conftest import trainer_kwargs

VOCAB = 50


class RecordLosses(Callback):
    def __init__(self):
        self.losses = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))


def _module(graphs, **kw):
    base = dict(task="lm", task_kwargs={"vocab_size": VOCAB}, cell="lstm", hidden_size=16,
                num_layers=2, optimizer="sgd", lr=1.0, momentum=0.5, clip=0.5,
                cuda_graphs=graphs)
    base.update(kw)
    torch.manual_seed(0)
    return RNNModule(**base)


def _fit(module, stream, *, epochs=2, bptt=7, batch_size=4, **trainer_over):
    rec = RecordLosses()
    kw = trainer_kwargs(max_epochs=epochs, limit_val_batches=0, callbacks=[rec])
    kw.update(trainer_over)
    trainer = L.Trainer(**kw)
    trainer.fit(module, TBPTTDataModule(stream, batch_size=batch_size, bptt=bptt))
    return rec.losses, trainer


def _stream(n=4 * 7 * 6 + 4 * 3 + 1):
    # 4 rows of 45 steps: six windows of 7 and a short last window of 3 per epoch.
    return torch.randint(0, VOCAB, (n,), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("extra", [
    {},
    {"loss_reduction": "sum_time", "lr": 0.05},
    {"optimizer": "adam", "lr": 0.01, "momentum": 0.0},
    {"scheduler": {"name": "decay_after", "start_epoch": 1, "factor": 0.5}},
])
def test_emulated_graph_path_trains_like_the_eager_path(extra):
    stream = _stream()
    eager = _module(False, **extra)
    graphed = _module("emulate", **extra)
    want, t_eager = _fit(eager, stream)
    got, t_graphed = _fit(graphed, stream)
    assert len(got) == len(want) == 14
    assert got == pytest.approx(want, rel=1e-6, abs=1e-7)
    # Lightning's step count advances through the graph path too (max_steps, logging).
    assert t_graphed.global_step == t_eager.global_step == 14
    for a, b in zip(eager.parameters(), graphed.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # 12 full windows replayed, 2 short last windows eager.
    assert graphed._graph.replays == 12
    # The carried state is the graph's static buffer, and equals the eager run's.
    torch.testing.assert_close(graphed._states["train"][0], eager._states["train"][0])


def test_graph_off_reasons_and_validation():
    assert cuda_graphs_available("cpu") == "the model is not on a CUDA device"
    with pytest.raises(ValueError, match="cuda_graphs must be one of"):
        _module("sometimes")
    module = _module(True)
    _fit(module, _stream(), epochs=1)
    assert module._graph is None
    assert module._graph_off == "the model is not on a CUDA device"


def test_emulated_graph_path_catches_a_nonfinite_loss():
    module = _module("emulate", lr=1e6, clip=None, momentum=0.0, cell="rnn_relu")
    with pytest.raises(NonFiniteLossError, match="NaN or inf"):
        _fit(module, _stream(), epochs=3, log_every_n_steps=5)


def test_step_graph_carries_state_in_its_buffer_and_checks_shapes():
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 3)
    opt = torch.optim.SGD(lin.parameters(), lr=0.1)

    def body(inputs, state):
        (x,) = inputs
        h = torch.tanh(lin(x) + state[0])
        loss = h.pow(2).mean()
        return loss, loss, (h.detach(),)

    graph = StepGraph(body, list(lin.parameters()), opt, clip=1.0, emulate=True)
    x = torch.randn(2, 3)
    _, _, s = graph.step((x,), None, lambda: (torch.zeros(2, 3),))
    assert s[0].abs().sum() > 0
    _, _, s2 = graph.step((x,), s, lambda: (torch.zeros(2, 3),))
    assert s2 is s  # the carry lives in the static buffer
    assert graph.accepts((x,)) and not graph.accepts((torch.randn(5, 3),))


# ---------------------------------------------------------------------------- GPU
def _gpu_losses(graphs, cell, impl, steps=50, short_last=None, **extra):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    module = _module(graphs, cell=cell, impl=impl, hidden_size=64, **extra)
    # Fused paths: 25 full windows and a short last one per epoch (run eagerly). Compiled
    # paths: 25 full windows only, so that the test compiles one window shape, not two.
    if short_last is None:
        short_last = impl != "compiled"
    n = 8 * (35 * 25 + (20 if short_last else 0)) + 1
    stream = torch.randint(0, VOCAB, (n,), generator=torch.Generator().manual_seed(2))
    losses, trainer = _fit(module, stream, epochs=2, bptt=35, batch_size=8,
                           accelerator="gpu", max_steps=steps)
    return losses, module


@pytest.mark.gpu
@pytest.mark.parametrize("cell,impl,extra", [
    ("lstm", "fused", {}),
    ("gru", "fused", {}),
    ("rnn_tanh", "fused", {"lr": 0.1}),
    ("lstm", "fused", {"optimizer": "adam", "lr": 0.003, "momentum": 0.0}),
    ("lstm", "fused", {"scheduler": {"name": "decay_after", "start_epoch": 1, "factor": 0.5}}),
    ("lstm", "compiled", {}),
    ("mgu", "compiled", {}),
    ("mingru", "auto", {}),
])
def test_cuda_graph_matches_eager_over_50_steps(cell, impl, extra):
    want, _ = _gpu_losses(False, cell, impl, **extra)
    got, module = _gpu_losses(True, cell, impl, **extra)
    assert module._graph is not None and module._graph.captures >= 1
    assert module._graph.replays >= 40
    assert len(got) == len(want) == 50
    rel = max(abs(a - b) / abs(b) for a, b in zip(got, want))
    assert rel <= 1e-5, (rel, got[:5], want[:5])


@pytest.mark.gpu
def test_compiled_matches_reference_on_gpu_over_50_steps():
    want, _ = _gpu_losses(False, "lstm", "reference", short_last=False)
    got, module = _gpu_losses(False, "lstm", "compiled", short_last=False)
    assert module.backbone.effective_impl == "compiled"
    rel = max(abs(a - b) / abs(b) for a, b in zip(got, want))
    assert rel <= 1e-5, rel


@pytest.mark.gpu
def test_cuda_graph_with_dropout_trains_and_streams_stay_on_the_gpu():
    losses, module = _gpu_losses(True, "lstm", "fused", steps=50, dropout=0.3)
    assert module._graph is not None and module._graph.replays >= 40
    assert sum(losses[-5:]) < sum(losses[:5])
    loader = module.trainer.datamodule.train_dataloader()
    assert loader.inputs.device.type == "cuda"


@pytest.mark.gpu
def test_bench_graphed_cases_run_on_gpu():
    from rnnbench.bench.throughput import SHAPES, BenchCase, handwritten_case, run_case

    for impl in ("fused+graph", "reference+graph"):
        for mode in ("train", "infer"):
            row = run_case(BenchCase("lstm", impl, *SHAPES["tiny"], mode, "cuda"), repeats=3)
            assert row["status"] == "ok" and row["effective_impl"].endswith("+graph"), row
            assert row["tokens_per_s"] > 0
    hand = handwritten_case(*SHAPES["tiny"], device="cuda", repeats=3, graphed=True)
    assert hand["impl"] == "handwritten+graph" and hand["tokens_per_s"] > 0


def test_progress_bar_shows_the_loss_without_a_per_step_metric():
    from rnnbench.callbacks import LossProgressBar

    module = _module(False)
    bar = LossProgressBar(refresh_rate=5)
    _fit(module, _stream(), epochs=1, enable_progress_bar=True, callbacks=[bar])
    module.trainer.training = True
    shown = bar.get_metrics(module.trainer, module)
    assert float(shown["loss"]) == pytest.approx(float(module._rt.last_loss))
    # train/loss is logged on logging steps, not as a progress-bar metric (that would make
    # Lightning read it back from the GPU after every batch).
    assert "train/loss" not in module.trainer.progress_bar_metrics
