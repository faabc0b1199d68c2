"""Task.member_loss (K population members at once) equals each member's own loss."""

from __future__ import annotations

import pytest
import torch

from rnnbench.tasks.base import Task
from rnnbench.tasks.language_model import LanguageModelTask
from rnnbench.tasks.music import MusicTask


def _mask(k: int, b: int, t: int, gen: torch.Generator) -> torch.Tensor:
    lengths = torch.randint(1, t + 1, (k, b), generator=gen)  # (K, B)
    return torch.arange(t)[None, None, :] < lengths[..., None]  # (K, B, T)


@pytest.mark.parametrize("masked", [True, False])
def test_music_member_loss_equals_each_members_loss(masked):
    gen = torch.Generator().manual_seed(0)
    k, b, t = 5, 3, 7
    out = torch.randn(k, b, t, 88, generator=gen, dtype=torch.float64)
    targets = (torch.rand(k, b, t, 88, generator=gen) > 0.8).double()
    mask = _mask(k, b, t, gen) if masked else None
    task = MusicTask()
    loss, count = task.member_loss(out, targets, mask)
    assert loss.shape == count.shape == (k,)
    for i in range(k):
        want, n = task.loss(out[i], targets[i], None if mask is None else mask[i])
        assert loss[i].item() == pytest.approx(want.item(), rel=1e-12)
        assert count[i].item() == n.item()


@pytest.mark.parametrize("masked", [True, False])
def test_language_model_member_loss_equals_each_members_loss(masked):
    gen = torch.Generator().manual_seed(1)
    k, b, t, v = 4, 2, 6, 11
    out = torch.randn(k, b, t, v, generator=gen, dtype=torch.float64)
    targets = torch.randint(0, v, (k, b, t), generator=gen)
    mask = _mask(k, b, t, gen) if masked else None
    task = LanguageModelTask(vocab_size=v, embedding_size=8)
    loss, count = task.member_loss(out, targets, mask)
    for i in range(k):
        want, n = task.loss(out[i], targets[i], None if mask is None else mask[i])
        assert loss[i].item() == pytest.approx(want.item(), rel=1e-12)
        assert count[i].item() == n.item()


def test_tasks_without_member_loss_say_so():
    assert MusicTask().has_member_loss and not Task().has_member_loss
