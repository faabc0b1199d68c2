"""The named Batch: what every data module yields, how tasks and the module read it."""

import lightning as L
import pytest
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch.callbacks import Callback

from rnnbench.data import Batch, SequenceDataModule, TBPTTDataModule, as_batch
from rnnbench.module import RNNModule
from tests.conftest import trainer_kwargs

VOCAB = 30


def test_lightning_moves_a_batch_field_by_field_and_keeps_its_type():
    batch = Batch(torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=torch.long),
                  reset=torch.zeros(2, 3, dtype=torch.bool))
    moved = move_data_to_device(batch, torch.device("meta"))
    assert type(moved) is Batch
    assert moved.inputs.is_meta and moved.targets.is_meta and moved.reset.is_meta
    assert moved.mask is None and moved.labels is None  # None fields stay in place


def test_lightning_moves_a_batch_with_its_own_to(monkeypatch):
    calls = []
    real = Batch.to

    def spy(self, device, non_blocking=False):
        calls.append((str(device), non_blocking))
        return real(self, device, non_blocking=non_blocking)

    monkeypatch.setattr(Batch, "to", spy)
    batch = Batch(torch.zeros(2, 3), torch.ones(2, 3))
    moved = move_data_to_device(batch, torch.device("cpu"))
    assert calls == [("cpu", False)]  # one call, not a walk over the fields
    assert moved.inputs is batch.inputs  # already there: no copy


def test_as_batch_wraps_pairs_and_refuses_positional_extras():
    x, y = torch.zeros(2, 3), torch.zeros(2, 3)
    assert as_batch((x, y)) == Batch(x, y)
    b = Batch(x, y, mask=torch.ones(2, 3, dtype=torch.bool))
    assert as_batch(b) is b and b.lengths.tolist() == [3, 3]
    with pytest.raises(TypeError, match="got a 3-tuple"):
        as_batch((x, y, torch.zeros(2, 3, dtype=torch.bool)))


class Seen(Callback):
    def __init__(self):
        self.batches = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.batches.append(batch)


def test_stream_with_boundaries_trains_and_resets_are_not_taken_for_a_mask():
    # The old tuple (inputs, targets, reset) reached pack_padded_sequence as a mask.
    torch.manual_seed(0)
    stream = torch.randint(0, VOCAB, (401,))
    marks = torch.zeros(401, dtype=torch.bool)
    marks[::13] = True
    dm = TBPTTDataModule(stream, stream, batch_size=4, bptt=10,
                         boundaries={"train": marks, "val": marks})
    module = RNNModule(task="lm", task_kwargs={"vocab_size": VOCAB}, cell="gru",
                       hidden_size=8, cuda_graphs="emulate")
    seen = Seen()
    trainer = L.Trainer(max_steps=3, limit_val_batches=2, val_check_interval=3,
                        callbacks=[seen], **trainer_kwargs())
    trainer.fit(module, dm)
    assert all(type(b) is Batch and b.reset is not None and b.mask is None
               for b in seen.batches)
    assert module._graph.replays == 0  # reset windows ran on the eager path
    assert "val/nll" in trainer.callback_metrics


def test_anomaly_task_reads_labels_and_mask_by_name():
    from rnnbench.data.datasets.hai import HAIWindows, MinMaxNormalizer, make_synthetic_process

    frame = make_synthetic_process(n_steps=600, n_sensors=3, n_attacks=1, seed=0)
    ds = HAIWindows(frame, MinMaxNormalizer().fit(frame), window=12, stride=20)
    dm = SequenceDataModule(ds, ds, batch_size=8, target="sequence")
    batch = next(iter(dm.val_dataloader()))
    module = RNNModule(task="anomaly", task_kwargs={"input_dim": 3}, cell="gru", hidden_size=8,
                       bidirectional=True)
    inputs, targets, mask, extras = module.task.unpack(batch)
    assert extras["labels"] is batch.labels and mask is batch.mask
    module._eval_step(batch, 0, "val")
    with pytest.raises(ValueError, match="needs Batch.labels"):
        module.task.unpack(batch._replace(labels=None))


def test_regression_residual_adds_the_last_valid_input():
    module = RNNModule(task="regression", cell="gru", hidden_size=4,
                       task_kwargs={"input_dim": 2, "output_dim": 2, "residual": True})
    x = torch.randn(2, 5, 2)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    with torch.no_grad():
        _, _, m, _ = module.task.unpack(Batch(x, torch.zeros(2, 2), mask=mask))
        y = torch.zeros(2, 5, module.backbone.output_size)
        pred = module.task(y, m, m.sum(1))
        head = module.task.head(torch.zeros(1, module.backbone.output_size))
    torch.testing.assert_close(pred - head, torch.stack([x[0, 4], x[1, 1]]))
