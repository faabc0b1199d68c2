"""Populations equal their solo runs: per-step losses and metrics of every member."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from rnnbench.config import load_config
from rnnbench.population import Population, PopulationUnsupported
from rnnbench.studies.pruning import PruningCallback
from rnnbench.train import run

JSB = "configs/experiment/chung2014_jsb.yaml"


def _cfg(seed: int, optimizer: str, lr: float, clip: float, *extra: str) -> dict:
    # 52 pieces in batches of 4: 13 steps an epoch, 4 epochs = 52 steps. Different seeds
    # read the pieces in different orders, so the population pads batches of other
    # lengths (and a member's batch to another member's length) every step.
    return load_config(JSB, [
        f"seed={seed}", f"optim.optimizer={optimizer}", f"optim.lr={lr}", f"optim.clip={clip}",
        "data.limit_pieces=52", "data.eval_batch_size=8", "trainer.max_epochs=4",
        "trainer.limit_val_batches=1",
        "checkpoint.enabled=false", "logging.wandb=false", *extra])


class _Losses(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"] if isinstance(outputs, dict) else outputs))


def _solo(cfg: dict, tmp_path) -> tuple[list[float], dict[str, float]]:
    rec = _Losses()
    out = run(cfg, callbacks=[rec], test=False, run_dir=tmp_path / f"solo{cfg['seed']}")
    return rec.losses, out.metrics


def _assert_equal_to_solo(cfgs, results, tmp_path, steps: int) -> None:
    for cfg, res in zip(cfgs, results):
        losses, metrics = _solo(cfg, tmp_path)
        assert len(res.losses) == len(losses) >= steps
        got, want = torch.tensor(res.losses), torch.tensor(losses)
        rel = ((got - want).abs() / want.abs()).max().item()
        assert rel < 1e-5, f"member seed {cfg['seed']}: per-step losses differ by {rel:.2e}"
        assert res.metrics["val/nll"] == pytest.approx(metrics["val/nll"], rel=1e-5)


def test_lstm_population_equals_solo_runs(tmp_path):
    """K=4: other seeds and learning rates, Adam and SGD, clipping active, 52 steps."""
    cfgs = [_cfg(1, "adam", 0.01, 0.5), _cfg(2, "sgd", 0.5, 0.2),
            _cfg(3, "adam", 0.003, 1.0), _cfg(4, "sgd", 0.1, 0.1)]
    pop = Population(cfgs, record_losses=True)
    results = pop.fit()
    assert pop._pop[1].path == "batched"
    assert [r.state for r in results] == ["COMPLETE"] * 4
    assert len({r.losses[1] for r in results}) == 4  # the members really differ
    _assert_equal_to_solo(cfgs, results, tmp_path, steps=50)


def test_weight_noise_members_equal_their_solo_runs(tmp_path):
    """Chung et al.'s recipe (RMSProp, weight noise 0.075, grad norm 1): each member draws
    its own noise stream from its own seed, as its solo run does."""
    extra = ("model.weight_noise=0.075", "trainer.max_epochs=1")
    cfgs = [_cfg(7, "rmsprop", 1e-3, 1.0, *extra), _cfg(8, "rmsprop", 3e-4, 1.0, *extra),
            _cfg(9, "adam", 0.003, 1.0, "trainer.max_epochs=1")]  # one without noise
    results = Population(cfgs, record_losses=True).fit()
    _assert_equal_to_solo(cfgs, results, tmp_path, steps=13)
    clean = Population(cfgs[:1], record_losses=True, path="batched")
    clean.members[0].module._noise.std = 0.0
    assert clean.fit()[0].losses[1:] != results[0].losses[1:]  # the noise did something


def test_a_failed_step_leaves_the_clean_weights(monkeypatch):
    """Weight noise is removed even when the forward raises (the error is not swallowed)."""
    cfgs = [_cfg(7, "rmsprop", 1e-3, 1.0, "model.weight_noise=0.075", "trainer.max_epochs=1")]
    pop = Population(cfgs)
    module = pop.members[0].module
    clean = [p.detach().clone() for p in module.parameters()]

    def boom(*args, **kwargs):
        assert any(not torch.equal(p, c) for p, c in zip(module.parameters(), clean))  # noisy
        raise RuntimeError("forward failed")

    monkeypatch.setattr(pop, "_forward", boom)
    with pytest.raises(RuntimeError, match="forward failed"):
        pop.fit()
    assert all(torch.equal(p, c) for p, c in zip(module.parameters(), clean))


@pytest.mark.slow
def test_plugin_cell_population_runs_under_vmap_and_equals_solo(tmp_path):
    """A plugin cell (mgu) has no batched form: vmap over its own step, same losses."""
    cfgs = [_cfg(5, "adam", 0.01, 0.5, "model.cell=mgu", "trainer.max_epochs=1"),
            _cfg(6, "sgd", 0.3, 0.2, "model.cell=mgu", "trainer.max_epochs=1")]
    pop = Population(cfgs, record_losses=True)
    results = pop.fit()
    assert pop._pop[1].path == "vmap" and pop._pop[1].why_loop is None
    _assert_equal_to_solo(cfgs, results, tmp_path, steps=13)


@pytest.mark.slow
def test_diverged_member_is_dropped_and_a_pruned_one_stops(tmp_path):
    """A NaN member fails, a pruned one stops after its epoch, the others finish."""
    cfgs = [_cfg(1, "adam", 0.01, 0.5, "trainer.max_epochs=2"),
            _cfg(2, "sgd", 1e38, 0.0, "trainer.max_epochs=2"),  # diverges in its first steps
            _cfg(3, "adam", 0.003, 1.0, "trainer.max_epochs=2")]
    seen: list[int] = []

    def prune_after_first(epoch: int, metrics: dict) -> str | None:
        seen.append(epoch)
        return f"pruned after epoch {epoch}"

    pop = Population(cfgs, callbacks=[None, None, prune_after_first], record_losses=True)
    results = pop.fit()
    assert [r.state for r in results] == ["COMPLETE", "FAIL", "PRUNED"]
    assert results[1].fail_kind == "nonfinite" and "loss became" in results[1].reason
    assert seen == [1] and len(results[2].losses) == 13  # stopped costing compute
    assert len(results[0].losses) == 26 and set(results[0].history) == {1, 2}
    # The survivor still equals its solo run.
    losses, _ = _solo(cfgs[0], tmp_path)
    assert torch.allclose(torch.tensor(results[0].losses), torch.tensor(losses), rtol=1e-5)


def test_members_of_other_shapes_are_refused():
    cfgs = [_cfg(1, "adam", 0.01, 0.5), _cfg(2, "adam", 0.01, 0.5, "model.param_budget=5000")]
    with pytest.raises(PopulationUnsupported, match="share one shape"):
        Population(cfgs)


@pytest.mark.gpu
def test_population_equals_solo_on_gpu(tmp_path, monkeypatch):
    """The same equality on CUDA (padded music batches: the population's step runs eagerly)."""
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    extra = ("trainer.accelerator=gpu", "trainer.max_epochs=1")
    cfgs = [_cfg(1, "adam", 0.01, 0.5, *extra), _cfg(2, "sgd", 0.5, 0.2, *extra)]
    results = Population(cfgs, record_losses=True).fit()
    _assert_equal_to_solo(cfgs, results, tmp_path, steps=13)


def test_variable_bptt_windows_are_refused():
    """AWD-LSTM's random window lengths scale each window's lr: not one lockstep step."""
    cfg = load_config("configs/experiment/dlfs2_simple_rnnlm.yaml", [
        "data.variable_bptt=true", "checkpoint.enabled=false", "logging.wandb=false"])
    with pytest.raises(PopulationUnsupported, match="variable_bptt"):
        Population([cfg, cfg])


def test_max_steps_and_sparse_validation_follow_lightning(tmp_path):
    """``max_steps`` cuts the third epoch short (13 steps an epoch, 30 steps) and
    ``check_val_every_n_epoch=2`` validates epoch 2 only: the cut epoch is not validated,
    as in a solo run; per-step losses, validated epochs and metrics equal the solo runs'."""
    extra = ("trainer.max_epochs=100", "trainer.max_steps=30",
             "trainer.check_val_every_n_epoch=2")
    cfgs = [_cfg(1, "adam", 0.01, 0.5, *extra), _cfg(2, "sgd", 0.5, 0.2, *extra)]
    calls: list[int] = []
    results = Population(cfgs, record_losses=True,
                         callbacks=[lambda e, m: calls.append(e), None]).fit()
    assert [len(r.losses) for r in results] == [30, 30]
    assert [sorted(r.history) for r in results] == [[2], [2]] and calls == [2]
    assert [row["epoch"] for row in results[0].log] == [0, 1, 2]  # the cut epoch is logged
    _assert_equal_to_solo(cfgs, results, tmp_path, steps=30)
    for cfg, res in zip(cfgs, results):
        seen = PruningCallback(None, "val/nll")  # what a solo study trial reports, by epoch
        run(cfg, callbacks=[seen], test=False, run_dir=tmp_path / f"again{cfg['seed']}")
        assert seen.history == pytest.approx(res.history, rel=1e-5)
