"""Tests for the padded sequence-set data module."""

import lightning as L
import pytest
import torch
from torch import nn

from rnnbench.data import Batch
from rnnbench.data.datasets.hai import HAIWindows, MinMaxNormalizer, make_synthetic_process
from rnnbench.data.datasets.music import load_music
from rnnbench.data.datasets.synthetic import digits_sequences
from rnnbench.data.sequence import SequenceDataModule, next_step_pairs, pad_collate


def ragged(n=10, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, 12, (n,), generator=g).tolist()
    return [torch.randn(length, d, generator=g) for length in lengths]


def test_collate_per_step_targets_pads_and_masks():
    pieces = ragged()
    batch = [(p, p * 2) for p in pieces[:4]]
    inputs, targets, mask = (out := pad_collate(batch)).inputs, out.targets, out.mask
    assert out.reset is None and out.labels is None
    T = max(len(p) for p in pieces[:4])
    assert inputs.shape == targets.shape == (4, T, 3) and mask.shape == (4, T)
    assert mask.dtype == torch.bool
    for i, p in enumerate(pieces[:4]):
        assert torch.equal(inputs[i, : len(p)], p) and torch.equal(targets[i, : len(p)], 2 * p)
        assert mask[i].sum() == len(p) and not mask[i, len(p) :].any()
        assert (inputs[i, len(p) :] == 0).all()


def test_collate_token_sequences_and_per_sequence_labels():
    batch = [(torch.tensor([1, 2, 3]), torch.tensor(0)), (torch.tensor([4]), torch.tensor(7))]
    inputs, targets, mask = (out := pad_collate(batch)).inputs, out.targets, out.mask
    assert inputs.dtype == torch.long and inputs.tolist() == [[1, 2, 3], [4, 0, 0]]
    assert targets.tolist() == [0, 7] and mask.tolist() == [[True] * 3, [True, False, False]]


def test_collate_vector_targets_and_explicit_kind():
    # Windows of 4 steps with 4 features: a (4,) next-value target matches the length by
    # chance, so auto reads it per step; target="sequence" says what it is.
    batch = [(torch.randn(4, 4), torch.randn(4)) for _ in range(3)]
    assert pad_collate(batch).targets.shape == (3, 4)
    assert pad_collate(batch, "sequence").targets.shape == (3, 4)
    batch = [(torch.randn(5, 4), torch.randn(4)) for _ in range(3)]
    assert pad_collate(batch).targets.shape == (3, 4)  # unambiguous: per sequence
    with pytest.raises(ValueError, match="per-step target"):
        pad_collate(batch, "step")


def test_collate_errors():
    with pytest.raises(ValueError, match="same rank"):
        pad_collate([(torch.randn(3, 2), torch.tensor(0)), (torch.randn(3), torch.tensor(1))])
    with pytest.raises(ValueError, match="one shape"):
        pad_collate([(torch.randn(3, 2), torch.randn(2)), (torch.randn(4, 2), torch.randn(3))])
    with pytest.raises(TypeError, match=r"\(x, y\) pairs"):
        pad_collate([torch.randn(3, 2)])
    with pytest.raises(ValueError, match="empty batch"):
        pad_collate([])
    # A third positional field could be a mask, resets or labels: it must be named.
    with pytest.raises(TypeError, match="named extra fields"):
        pad_collate([(torch.randn(3, 2), torch.tensor(0), torch.tensor(1))] * 2)
    with pytest.raises(ValueError, match="some items of the batch carry labels"):
        pad_collate([Batch(torch.randn(3, 2), torch.tensor(0), labels=torch.tensor(1)),
                     Batch(torch.randn(3, 2), torch.tensor(0))])


def test_collate_named_item_fields():
    items = [
        Batch(torch.arange(4), torch.arange(1, 5), reset=torch.tensor([1, 0, 1, 0]),
              labels=torch.tensor(3)),
        Batch(torch.arange(2), torch.arange(1, 3), reset=torch.tensor([0, 1]),
              mask=torch.tensor([False, True]), labels=torch.tensor(5)),
    ]
    with pytest.raises(ValueError, match="carry mask"):
        pad_collate(items)
    items[0] = items[0]._replace(mask=torch.ones(4, dtype=torch.bool))
    out = pad_collate(items)
    assert out.reset.tolist() == [[True, False, True, False], [False, True, False, False]]
    assert out.mask.tolist() == [[True] * 4, [False, True, False, False]]
    assert out.labels.tolist() == [3, 5] and out.targets.shape == (2, 4)


def test_extra_fields_are_stacked():
    frame = make_synthetic_process(n_steps=1000, n_sensors=4, n_attacks=1, seed=0)
    ds = HAIWindows(frame, MinMaxNormalizer().fit(frame), window=20, stride=5)
    dm = SequenceDataModule(ds, ds, batch_size=8, target="sequence")
    batch = next(iter(dm.val_dataloader()))
    assert isinstance(batch, Batch) and batch.reset is None
    assert batch.inputs.shape == (8, 20, 4) and batch.targets.shape == (8, 4)
    assert batch.mask.all() and batch.labels.shape == (8,)


def test_next_step_pairs():
    pieces = ragged(3)
    pairs = next_step_pairs(pieces)
    for p, (x, y) in zip(pieces, pairs, strict=True):
        assert torch.equal(x, p[:-1]) and torch.equal(y, p[1:])
    with pytest.raises(ValueError, match="piece 1"):
        next_step_pairs([torch.randn(3, 2), torch.randn(1, 2)])


def order_of(loader):
    return [tuple(b[1].tolist()) for b in loader]


def labelled(n=40):
    return [(torch.randn(i % 7 + 1, 2), torch.tensor(i)) for i in range(n)]


def test_shuffle_is_seeded_reproducible_and_varies_by_epoch():
    data = labelled()
    dm = SequenceDataModule(data, data, data, batch_size=8, seed=3)
    loader = dm.train_dataloader()
    epoch1, epoch2 = order_of(loader), order_of(loader)
    assert epoch1 != epoch2
    again = SequenceDataModule(data, batch_size=8, seed=3).train_dataloader()
    assert order_of(again) == epoch1 and order_of(again) == epoch2
    assert order_of(SequenceDataModule(data, batch_size=8, seed=4).train_dataloader()) != epoch1
    flat = sorted(i for batch in epoch1 for i in batch)
    assert flat == list(range(40))
    sequential = [tuple(range(k, min(k + 8, 40))) for k in range(0, 40, 8)]
    assert order_of(dm.val_dataloader()) == sequential == order_of(dm.test_dataloader())
    assert order_of(SequenceDataModule(data, shuffle=False, batch_size=8).train_dataloader()) == (
        sequential
    )


def test_sort_by_length_groups_similar_lengths():
    data = labelled(200)
    dm = SequenceDataModule(data, data, batch_size=10, sort_by_length=True, eval_batch_size=50)
    padded = sum(int((~b[2]).sum()) for b in dm.train_dataloader())
    plain = SequenceDataModule(data, batch_size=10, seed=0)
    assert padded < sum(int((~b[2]).sum()) for b in plain.train_dataloader())
    ids = sorted(i for b in dm.train_dataloader() for i in b[1].tolist())
    assert ids == list(range(200))
    lengths = [b[2].sum(1).tolist() for b in dm.val_dataloader()]
    flat = [v for b in lengths for v in b]
    assert flat == sorted(flat, reverse=True) and len(lengths) == 4


def test_module_errors():
    data = labelled(4)
    with pytest.raises(ValueError, match="batch_size"):
        SequenceDataModule(data, batch_size=0)
    with pytest.raises(ValueError, match="eval_batch_size"):
        SequenceDataModule(data, eval_batch_size=-2)
    with pytest.raises(ValueError, match="val data set is empty"):
        SequenceDataModule(data, val=[])
    with pytest.raises(TypeError, match="pairs"):
        SequenceDataModule([torch.randn(3)])
    with pytest.raises(RuntimeError, match="without test"):
        SequenceDataModule(data).test_dataloader()
    assert SequenceDataModule(data).val_dataloader() == []


def test_music_next_frame_batches():
    music = load_music("jsb")
    dm = SequenceDataModule(next_step_pairs(music["train"]), next_step_pairs(music["valid"]))
    x, y, mask, reset, labels = next(iter(dm.train_dataloader()))
    assert reset is None and labels is None
    assert x.shape == y.shape and x.shape[0] == 16 and x.shape[2] == 88
    assert torch.equal(x[:, 1:][mask[:, 1:]], y[:, :-1][mask[:, 1:]])  # y is x shifted


class _Classifier(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(8, 16, batch_first=True)
        self.head = nn.Linear(16, 10)

    def training_step(self, batch, _):
        x, y, mask = batch.inputs, batch.targets, batch.mask
        out, _ = self.rnn(x)  # (B, T, H)
        last = out[torch.arange(len(x)), mask.sum(1) - 1]  # (B, H)
        return nn.functional.cross_entropy(self.head(last), y)

    def validation_step(self, batch, _):
        self.log("val/loss", self.training_step(batch, _))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), 1e-2)


def test_fits_with_lightning_on_digits():
    x, y = digits_sequences()
    items = list(zip(x[:128], y[:128], strict=True))
    dm = SequenceDataModule(items[:96], items[96:], batch_size=32)
    trainer = L.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(_Classifier(), datamodule=dm)
    assert trainer.global_step == 3 and "val/loss" in trainer.callback_metrics
