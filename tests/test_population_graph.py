"""A population's graphed training step (streaming tasks) equals its eager step and its
members' solo runs; on CPU through ``emulate`` (the graph's bookkeeping run eagerly), on a
GPU with real CUDA graphs."""

from __future__ import annotations

import pytest
import torch

from rnnbench.config import load_config
from rnnbench.population import Population
from rnnbench.train import run

from .test_population import _cfg as _music
from .test_population import _Losses

LM = "configs/experiment/dlfs2_simple_rnnlm.yaml"


def _cfg(seed: int, optimizer: str, lr: float, clip, *extra: str) -> dict:
    # 2,000 tokens in 10 rows of 200, windows of 7: 28 full windows and a short one of 4 an
    # epoch, so each epoch ends with a window the graph did not capture (it runs eagerly).
    return load_config(LM, [
        f"seed={seed}", f"optim.optimizer={optimizer}", f"optim.lr={lr}", f"optim.clip={clip}",
        "model.cell=lstm", "data.limit_tokens=2001", "data.bptt=7", "trainer.max_epochs=2",
        "trainer.limit_val_batches=2", "checkpoint.enabled=false", "logging.wandb=false",
        *extra])


def _solo_losses(cfg: dict, tmp_path) -> list[float]:
    rec = _Losses()
    run(cfg, callbacks=[rec], test=False, run_dir=tmp_path / f"solo{cfg['seed']}")
    return rec.losses


def test_emulated_graph_step_equals_the_eager_step_and_solo_runs(tmp_path):
    cfgs = [_cfg(1, "adam", 0.01, 0.5), _cfg(2, "sgd", 0.5, 0.2), _cfg(3, "rmsprop", 0.003, 1.0)]
    eager = Population(cfgs, record_losses=True, cuda_graphs=False)
    want = eager.fit()
    assert eager._graphs.off == "turned off (optim.cuda_graphs: false)"
    graphed = Population(cfgs, record_losses=True, cuda_graphs="emulate")
    graphed._graphs.check_every = 5  # the host reads the losses every 5 steps
    got = graphed.fit()
    assert graphed._graphs.off is None
    assert graphed._graphs.replays == 2 * 28  # the short last window of each epoch: eager
    for w, g, cfg in zip(want, got, cfgs):
        assert g.state == w.state == "COMPLETE"
        assert g.losses == w.losses and len(g.losses) == 2 * 29  # same steps, same order
        assert g.metrics == w.metrics and g.log[-1]["train/loss_epoch"] == pytest.approx(
            w.log[-1]["train/loss_epoch"], rel=1e-6)
        solo = torch.tensor(_solo_losses(cfg, tmp_path))
        rel = ((torch.tensor(g.losses) - solo).abs() / solo.abs()).max().item()
        assert rel < 1e-5, f"seed {cfg['seed']}: per-step losses differ from solo by {rel:.2e}"


def test_a_member_that_diverges_under_the_graph_is_dropped_and_the_others_go_on():
    cfgs = [_cfg(1, "adam", 0.01, 0.5), _cfg(2, "sgd", 1e38, 0.0), _cfg(3, "sgd", 0.5, 0.2)]
    want = Population(cfgs, record_losses=True, cuda_graphs=False).fit()
    pop = Population(cfgs, record_losses=True, cuda_graphs="emulate")
    pop._graphs.check_every = 4
    got = pop.fit()
    assert want[1].state == got[1].state == "FAIL"
    assert got[1].fail_kind == "nonfinite" and "training loss became" in got[1].reason
    # Dropped at the first read after its loss turned NaN, its finite steps kept.
    assert got[1].losses == want[1].losses
    for k in (0, 2):
        assert got[k].state == "COMPLETE" and got[k].losses == want[k].losses
        assert got[k].metrics == want[k].metrics


@pytest.mark.parametrize("extra, why", [
    (("model.weight_noise=0.01",), "weight_noise > 0"),
    (("optim.cuda_graphs=false",), "turned off"),
])
def test_graphs_stay_off_where_the_eager_step_is_needed(extra, why):
    cfgs = [_cfg(1, "adam", 0.01, 0.5, *extra), _cfg(2, "adam", 0.02, 0.5, *extra)]
    pop = Population(cfgs, record_losses=True, cuda_graphs=None if "cuda_graphs" in extra[0]
                     else "emulate")
    assert why in pop._graphs.off


def test_padded_music_batches_take_the_eager_step():
    cfgs = [_music(1, "adam", 0.01, 0.5, "trainer.max_epochs=1"),
            _music(2, "adam", 0.02, 0.5, "trainer.max_epochs=1")]
    pop = Population(cfgs, record_losses=True, cuda_graphs="emulate")
    assert "not a streaming" in pop._graphs.off
    results = pop.fit()
    assert pop._graphs.replays == 0 and [len(r.losses) for r in results] == [13, 13]


@pytest.mark.gpu
def test_population_cuda_graph_equals_solo_on_gpu(tmp_path, monkeypatch):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA; no GPU on this machine")
    # Full float32 on both sides: cuDNN's TF32 (on by default) would differ by ~1e-3.
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    extra = ("trainer.accelerator=gpu",)
    cfgs = [_cfg(1, "adam", 0.01, 0.5, *extra), _cfg(2, "sgd", 0.5, 0.2, *extra),
            _cfg(3, "rmsprop", 0.003, 1.0, *extra), _cfg(4, "adam", 0.003, 1.0, *extra)]
    pop = Population(cfgs, record_losses=True)
    got = pop.fit()
    assert pop._graphs.off is None and pop._graphs.graph.captures >= 1
    assert pop._graphs.replays == 2 * 28 - 3  # 3 eager warm-up steps, short windows eager
    for g, cfg in zip(got, cfgs):
        solo = torch.tensor(_solo_losses(cfg, tmp_path))
        rel = ((torch.tensor(g.losses) - solo).abs() / solo.abs()).max().item()
        assert rel < 1e-5, f"seed {cfg['seed']}: per-step losses differ from solo by {rel:.2e}"


def test_a_bad_cuda_graphs_value_is_refused_before_training():
    with pytest.raises(ValueError, match="cuda_graphs must be"):
        Population([_cfg(1, "adam", 0.01, 0.5)], cuda_graphs="maybe")
