"""The LightningModule: TBPTT equivalence with a hand-written loop, gradient cut, refusals."""

import copy

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback

from rnnbench.data.tbptt import StreamBatches, TBPTTDataModule
from rnnbench.module import NonFiniteLossError, RNNModule, detach_state
from tests.conftest import trainer_kwargs

VOCAB = 40


class RecordLosses(Callback):
    def __init__(self):
        self.losses = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))


def _lm(**kw):
    base = dict(task="lm", task_kwargs={"vocab_size": VOCAB}, cell="lstm", hidden_size=16,
                num_layers=2, optimizer="sgd", lr=1.0, clip=5.0)
    base.update(kw)
    return RNNModule(**base)


def test_tbptt_matches_hand_written_loop():
    torch.manual_seed(0)
    stream = torch.randint(0, VOCAB, (2001,))
    module = _lm()
    ref = copy.deepcopy(module)
    rec = RecordLosses()
    trainer = L.Trainer(max_steps=5, callbacks=[rec], limit_val_batches=0, **trainer_kwargs())
    trainer.fit(module, TBPTTDataModule(stream, batch_size=4, bptt=10))

    # The textbook loop: nn.LSTM with the same weights, state carried and detached.
    emb, dec = ref.task.embedding, ref.task.decoder
    lstm = ref.backbone.to_torch()
    params = [*emb.parameters(), *lstm.parameters(), *dec.parameters()]
    opt = torch.optim.SGD(params, lr=1.0)
    hidden, losses = None, []
    for x, y, *_ in list(StreamBatches(stream, 4, 10))[:5]:
        out, hidden = lstm(emb(x), hidden)
        hidden = tuple(h.detach() for h in hidden)
        loss = F.cross_entropy(dec(out).reshape(-1, VOCAB), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        losses.append(loss.item())
    assert len(rec.losses) == 5
    for got, want in zip(rec.losses, losses):
        assert abs(got - want) <= 1e-6, (rec.losses, losses)


def test_gradients_stop_at_the_window():
    torch.manual_seed(0)
    module = _lm(hidden_size=8, num_layers=1)
    # Window 1 uses tokens 0..9 only, window 2 tokens 10..19 only.
    w1 = (torch.randint(0, 10, (3, 6)), torch.randint(0, 10, (3, 6)))
    w2 = (torch.randint(10, 20, (3, 6)), torch.randint(10, 20, (3, 6)))
    module._step(w1, 0, "train")
    carried = module._states["train"]
    assert all(s.grad_fn is None and not s.requires_grad for s in carried)
    assert all(s.abs().sum() > 0 for s in carried)  # the forward pass did carry information
    loss, *_ = module._step(w2, 1, "train")
    module.zero_grad()
    loss.backward()
    grad = module.task.embedding.weight.grad
    assert grad[:10].abs().sum() == 0  # nothing flows back into window 1
    assert grad[10:20].abs().sum() > 0
    # Without the detach the same loss does reach window 1: the check above can fail.
    emb, bb = module.task.embedding, module.backbone
    _, state = bb(emb(w1[0]))
    y, _ = bb(emb(w2[0]), state)
    module.zero_grad()
    y.sum().backward()
    assert emb.weight.grad[:10].abs().sum() > 0


def test_state_is_reset_at_epoch_start_and_carried_otherwise():
    module = _lm(hidden_size=8, num_layers=1)
    batch = (torch.randint(0, VOCAB, (3, 6)), torch.randint(0, VOCAB, (3, 6)))
    module._step(batch, 0, "val")
    assert module._carried_state("val", 1, 3) is not None
    assert module._carried_state("val", 0, 3) is None
    assert detach_state(None) is None


def test_bidirectional_is_refused_for_causal_tasks():
    with pytest.raises(ValueError, match="bidirectional backbone would read"):
        _lm(bidirectional=True)
    with pytest.raises(ValueError, match="bidirectional backbone would read"):
        RNNModule(task="music", cell="gru", hidden_size=8, bidirectional=True)
    # Window-to-value tasks accept it.
    RNNModule(task="anomaly", task_kwargs={"input_dim": 3}, cell="gru", hidden_size=8,
              bidirectional=True, num_layers=3)


def test_nonfinite_loss_stops_training():
    torch.manual_seed(0)
    stream = torch.randint(0, VOCAB, (2001,))
    module = _lm(cell="rnn_relu", lr=1e6, clip=None, hidden_size=32)
    trainer = L.Trainer(max_steps=200, limit_val_batches=0, **trainer_kwargs())
    with pytest.raises(NonFiniteLossError, match="lower the learning rate"):
        trainer.fit(module, TBPTTDataModule(stream, batch_size=4, bptt=10))


def test_unknown_names_are_clear():
    with pytest.raises(KeyError, match="registered cells are"):
        _lm(cell="lstmm")
    with pytest.raises(ValueError, match="unknown optimizer"):
        _lm(optimizer="lbfgs")
    with pytest.raises(ValueError, match="unknown task"):
        RNNModule(task="translation")


def test_initialisers():
    m = _lm(init={"uniform": 0.05, "recurrent": "orthogonal", "forget_bias": 1.0})
    cell = m.backbone.cells[0]
    block = cell.weight_hh[:16]
    torch.testing.assert_close(block @ block.T, torch.eye(16), atol=1e-5, rtol=0)
    assert torch.all(cell.bias_ih[16:32] == 1.0) and torch.all(cell.bias_hh[16:32] == 0.0)
    assert m.task.embedding.weight.abs().max() <= 0.05


def test_document_boundaries_reset_single_rows():
    torch.manual_seed(0)
    module = _lm(hidden_size=8, num_layers=1)
    module.eval()
    x = torch.randint(0, VOCAB, (2, 12))
    reset = torch.zeros(2, 12, dtype=torch.bool)
    reset[1, 4] = True
    with torch.no_grad():
        state = module.backbone.init_state(2)
        state = tuple(torch.randn_like(s) for s in state)
        out, _ = module(x, state, reset=reset)
        fresh, _ = module(x[1:, 4:])
        carried, _ = module(x, state)
    torch.testing.assert_close(out[1:, 4:], fresh)  # row 1 restarts at its boundary
    torch.testing.assert_close(out[0], carried[0])  # row 0 is untouched


def test_variable_bptt_rescales_the_learning_rate():
    torch.manual_seed(0)
    stream = torch.randint(0, VOCAB, (3001,))
    dm = TBPTTDataModule(stream, batch_size=4, bptt=20, variable_bptt=True, seed=1)
    module = _lm(hidden_size=8, num_layers=1, lr=0.5)
    seen = []

    class Spy(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append(batch[0].shape[1])

    trainer = L.Trainer(max_steps=12, limit_val_batches=0, callbacks=[Spy()], **trainer_kwargs())
    trainer.fit(module, dm)
    assert len(set(seen)) > 1  # lengths vary
    scale = module._bptt_lr_scale(seen[-1])
    assert scale == seen[-1] / 20
    assert module.optimizers().param_groups[0]["lr"] == 0.5  # restored after every step


def test_tbptt_inside_long_sequences_carries_state_between_chunks():
    torch.manual_seed(0)
    pieces = [torch.rand(40, 88).round() for _ in range(6)]
    from rnnbench.data.sequence import SequenceDataModule, next_step_pairs

    dm = SequenceDataModule(next_step_pairs(pieces), batch_size=3, shuffle=False)
    module = RNNModule(task="music", cell="gru", hidden_size=8, tbptt=10, optimizer="adam",
                       lr=1e-2)
    steps = []

    class Count(Callback):
        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            steps.append(1)

    trainer = L.Trainer(max_epochs=1, limit_val_batches=0, callbacks=[Count()],
                        **trainer_kwargs())
    trainer.fit(module, dm)
    assert len(steps) == 2 * 4  # 2 batches x ceil(39 / 10) windows, one update each


def test_sum_time_reduction_equals_scaled_lr_and_clip():
    """Zaremba's lr 1 / clip 5 on the time-summed loss == lr T / clip 5/T on the mean loss."""
    torch.manual_seed(0)
    stream = torch.randint(0, VOCAB, (2001,))
    runs = []
    for kw in ({"loss_reduction": "sum_time", "lr": 1.0, "clip": 5.0},
               {"loss_reduction": "mean", "lr": 10.0, "clip": 0.5}):
        L.seed_everything(0, verbose=False)
        module = _lm(hidden_size=8, num_layers=1, **kw)
        rec = RecordLosses()
        trainer = L.Trainer(max_steps=6, limit_val_batches=0, callbacks=[rec], **trainer_kwargs())
        trainer.fit(module, TBPTTDataModule(stream, batch_size=4, bptt=10))
        runs.append((rec.losses, [p.detach().clone() for p in module.parameters()]))
    assert runs[0][0] == pytest.approx(runs[1][0], abs=1e-5)
    for p, q in zip(runs[0][1], runs[1][1]):
        torch.testing.assert_close(p, q, atol=1e-5, rtol=1e-5)


def test_fan_in_normal_and_embedding_std_init():
    torch.manual_seed(0)
    module = _lm(hidden_size=64, num_layers=1,
                 init={"fan_in_normal": True, "embedding_std": 0.01})
    cell = module.backbone.cells[0]
    assert cell.weight_hh.std().item() == pytest.approx(1 / 64**0.5, rel=0.05)
    assert cell.bias_ih.abs().sum() == 0 and module.task.decoder.bias.abs().sum() == 0
    assert module.task.embedding.weight.std().item() == pytest.approx(0.01, rel=0.1)
    with pytest.raises(ValueError, match="unknown init option"):
        _lm(init={"fan_in": True})
    with pytest.raises(ValueError, match="embedding_std must be a positive number"):
        _lm(init={"embedding_std": -0.01})
