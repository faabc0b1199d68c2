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


def test_a_population_refuses_members_with_other_task_options():
    """The head runs as member 0's module under vmap: member 1 would get member 0's rate."""
    with pytest.raises(PopulationUnsupported, match="task options"):
        Population([_jsb("seed=1", "task.dropout=0.1"), _jsb("seed=2", "task.dropout=0.4")])
