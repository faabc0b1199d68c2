"""Weight noise: on for each update's forward and backward, off before the step and in eval."""

from __future__ import annotations

import copy
from pathlib import Path

import lightning as L
import pytest
import torch

from rnnbench.data.tbptt import StreamBatches, TBPTTDataModule
from rnnbench.module import RNNModule
from rnnbench.regularizers import WeightNoise
from tests.conftest import trainer_kwargs

VOCAB, STD, LR = 30, 0.075, 0.5


def _lm(cell: str = "gru", **kw) -> RNNModule:
    base = dict(task="lm", task_kwargs={"vocab_size": VOCAB}, cell=cell, hidden_size=12,
                optimizer="sgd", lr=LR, clip=0.0, weight_noise=STD)
    base.update(kw)
    return RNNModule(**base)


def _stream(seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (801,), generator=torch.Generator().manual_seed(seed))


def _snap(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


class _Recorder:
    """Copies of every weight each time the backbone runs, with the module's mode."""

    def __init__(self, module: RNNModule) -> None:
        self.calls: list[tuple[bool, list[torch.Tensor]]] = []
        module.backbone.register_forward_pre_hook(
            lambda *_: self.calls.append((module.training, _snap(module))))


@pytest.mark.parametrize("cell", ["rnn_tanh", "gru", "lstm"])
def test_the_gradient_is_taken_at_the_noisy_point_and_applied_to_the_clean_weights(cell):
    L.seed_everything(0, verbose=False)
    module = _lm(cell)
    clean = _snap(module)
    ref = copy.deepcopy(module)
    rec = _Recorder(module)
    trainer = L.Trainer(max_steps=1, limit_val_batches=0, **trainer_kwargs())
    trainer.fit(module, TBPTTDataModule(_stream(), batch_size=4, bptt=10))

    [(training, noisy)] = rec.calls
    assert training
    diffs = torch.cat([(n - c).flatten() for n, c in zip(noisy, clean)])
    assert 0.06 < float(diffs.std()) < 0.09 and float(diffs.mean().abs()) < 0.01
    assert all(bool((n != c).all()) for n, c in zip(noisy, clean))  # every weight is noisy

    # The same step by hand: gradient at the noisy weights, SGD applied to the clean ones.
    with torch.no_grad():
        for p, n in zip(ref.parameters(), noisy):
            p.copy_(n)
    x, y, *_ = next(iter(StreamBatches(_stream(), 4, 10)))
    loss, *_ = ref._step((x, y), 0, "train")
    loss.backward()
    want = [c - LR * p.grad for c, p in zip(clean, ref.parameters())]
    for got, w in zip(module.parameters(), want):
        torch.testing.assert_close(got.detach(), w, rtol=1e-5, atol=1e-6)
    # Had the noise stayed in the weights, they would sit ~STD away from that.
    assert max(float((g.detach() - n + LR * p.grad).abs().max())
               for g, n, p in zip(module.parameters(), noisy, ref.parameters())) > 0.05


def test_fresh_noise_every_step_and_none_in_validation_or_test():
    L.seed_everything(0, verbose=False)
    module = _lm()
    rec = _Recorder(module)
    dm = TBPTTDataModule(_stream(), val=_stream(1), test=_stream(2), batch_size=4, bptt=10)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=2,
                        limit_test_batches=2, num_sanity_val_steps=0, **trainer_kwargs())
    trainer.fit(module, dm)
    after = _snap(module)
    trainer.test(module, dm, verbose=False)
    train = [w for training, w in rec.calls if training]
    evals = [w for training, w in rec.calls if not training]
    assert len(train) == 3 and len(evals) == 4  # 2 validation + 2 test batches
    for w in evals:  # evaluation saw exactly the trained (clean) weights
        assert all(torch.equal(a, b) for a, b in zip(w, after))
    # Each step draws new noise: the offsets from the weights of the update differ.
    first = torch.cat([(a - b).flatten() for a, b in zip(train[1], train[0])])
    # noise of step 2 minus noise of step 1 (+ the update): about STD * sqrt(2)
    assert float(first.std()) > 0.09


def _train(seed: int, **kw) -> list[torch.Tensor]:
    L.seed_everything(seed, verbose=False)
    module = _lm(**kw)
    trainer = L.Trainer(max_steps=3, limit_val_batches=0, **trainer_kwargs())
    trainer.fit(module, TBPTTDataModule(_stream(), batch_size=4, bptt=10))
    return _snap(module)


def test_noise_is_deterministic_under_the_run_seed():
    a, b, c = _train(7), _train(7), _train(8)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    # the noise matters: the same seed without it trains to other weights
    off = _train(7, weight_noise=0.0)
    assert not all(torch.equal(x, y) for x, y in zip(a, off))


def test_the_noise_stream_resumes_from_a_checkpoint_state():
    torch.manual_seed(3)
    p = torch.nn.Parameter(torch.zeros(50))
    noise = WeightNoise(1.0)
    noise.perturb([p])
    noise.restore()
    state = noise.state_dict()
    noise.perturb([p])
    want = p.detach().clone()
    noise.restore()
    assert torch.equal(p.detach(), torch.zeros(50))  # restore is exact
    again = WeightNoise(1.0)
    again.load_state_dict(state)
    again.perturb([p])
    assert torch.equal(p.detach(), want)


def test_off_by_default_and_refused_when_negative():
    module = _lm(weight_noise=0.0)
    before = _snap(module)
    module._noise.perturb(list(module.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(before, _snap(module)))
    with pytest.raises(ValueError, match="weight_noise must be a finite number >= 0"):
        _lm(weight_noise=-0.1)


def test_cuda_graphs_step_aside_with_the_reason():
    # The emulated graph path runs on CPU; weight noise keeps every step eager instead.
    module = _lm(cuda_graphs="emulate")
    assert "weight_noise" in module._graphs_off_reason()
    assert _lm(cuda_graphs="emulate", weight_noise=0.0)._graphs_off_reason() is None


def test_the_config_key_is_typed_and_checked():
    from rnnbench.config import ConfigError
    from rnnbench.experiment import load_config

    path = Path(__file__).resolve().parent.parent / "configs" / "study" / "chung2014_jsb.yaml"
    assert load_config(path)["model"]["weight_noise"] == 0.075
    with pytest.raises(ConfigError, match="weight_noise"):
        load_config(path, ["model.weight_noise=-1"])
