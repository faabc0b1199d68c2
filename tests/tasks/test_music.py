"""The music task's output dropout: active in training only, set from the config."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rnnbench.config import load_config
from rnnbench.population import Population, PopulationUnsupported
from rnnbench.tasks import MusicTask
from rnnbench.train import build

JSB = "configs/experiment/chung2014_jsb.yaml"


def test_dropout_acts_on_the_backbone_outputs_in_training_only():
    task = MusicTask(dropout=0.5)
    task.build(16, bidirectional=False)
    y = torch.randn(3, 7, 16)
    task.eval()
    assert torch.equal(task(y, None, None), task.head(y))  # evaluation: no dropout
    task.train()
    torch.manual_seed(0)
    got = task(y, None, None)
    torch.manual_seed(0)
    expected = task.head(F.dropout(y, 0.5, training=True))
    assert torch.equal(got, expected)
    assert not torch.allclose(got, task.head(y))  # it did drop something


def test_no_dropout_by_default_and_a_bad_rate_is_refused():
    task = MusicTask()
    task.build(4, bidirectional=False)
    task.train()
    y = torch.randn(2, 3, 4)
    assert torch.equal(task(y, None, None), task.head(y))
    with pytest.raises(ValueError, match=r"task.dropout must lie in \[0, 1\)"):
        MusicTask(dropout=1.0)


def _jsb(*over: str) -> dict:
    return load_config(JSB, ["data.limit_pieces=8", "checkpoint.enabled=false",
                             "logging.wandb=false", *over])


def test_the_config_sets_the_rate():
    module, _, _ = build(_jsb("task.dropout=0.3"))
    assert module.task.drop.p == pytest.approx(0.3)


def _member_losses(*rates: float) -> list[list[float]]:
    cfgs = [_jsb(f"seed={k + 1}", f"task.dropout={r}", "trainer.max_epochs=1")
            for k, r in enumerate(rates)]
    return [r.losses for r in Population(cfgs, record_losses=True).fit()]


def test_a_population_gives_each_member_its_own_output_dropout():
    """The head runs as member 0's module under vmap; the output dropout is applied before
    it, per member: a member's losses depend on its own rate only."""
    none = _member_losses(0.0, 0.0)
    first = _member_losses(0.5, 0.0)
    second = _member_losses(0.0, 0.5)
    assert len(none[0]) >= 2
    assert first[1] == pytest.approx(none[1], rel=1e-6)  # member 0's rate is not member 1's
    assert second[0] == pytest.approx(none[0], rel=1e-6)
    # the member's own rate acts (at initialisation the outputs are small: a small change)
    assert max(abs(a - b) for a, b in zip(first[0], none[0])) > 1e-2
    assert max(abs(a - b) for a, b in zip(second[1], none[1])) > 1e-2


def test_a_population_refuses_members_with_other_task_options():
    """The language model's embedding dropout acts inside the encoder, which runs as member
    0's module under vmap: member 1 would get member 0's rate."""
    cfgs = [load_config("configs/experiment/zaremba_small.yaml", [
        f"seed={k}", f"model.embedding_dropout={r}", "model.hidden_size=8",
        "data.limit_tokens=2000", "checkpoint.enabled=false", "logging.wandb=false",
        "trainer.accelerator=cpu"]) for k, r in ((1, 0.1), (2, 0.4))]
    with pytest.raises(PopulationUnsupported, match="task options"):
        Population(cfgs)
