"""A run stopped mid-epoch and resumed from its checkpoint equals the uninterrupted run."""

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from rnnbench.data.tbptt import TBPTTDataModule
from rnnbench.module import RNNModule
from tests.conftest import trainer_kwargs

VOCAB = 30


class Crash(RuntimeError):
    pass


class CrashAt(Callback):
    """Dies at the start of global step ``step``, as a killed job would."""

    def __init__(self, step):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise Crash(f"simulated crash at step {self.step}")


class RecordLosses(Callback):
    def __init__(self):
        self.losses = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append((trainer.global_step, float(outputs["loss"])))


def _setup(seed=0):
    L.seed_everything(seed, verbose=False)
    g = torch.Generator().manual_seed(1)
    train = torch.randint(0, VOCAB, (1201,), generator=g)
    val = torch.randint(0, VOCAB, (301,), generator=g)
    dm = TBPTTDataModule(train, val, val, batch_size=4, bptt=10)  # 30 windows / epoch
    module = RNNModule(task="lm", task_kwargs={"vocab_size": VOCAB}, cell="gru", hidden_size=12,
                       num_layers=2, optimizer="adam", lr=3e-3, clip=1.0, dropout=0.0)
    return module, dm


def _kw(tmp_path, **over):
    kw = trainer_kwargs(max_epochs=3, enable_checkpointing=True, default_root_dir=str(tmp_path))
    kw.update(over)
    return kw


@pytest.mark.parametrize("crash_step", [17, 30, 47])  # mid-epoch, at an epoch end, later
def test_resume_mid_epoch_equals_uninterrupted(tmp_path, crash_step):
    module, dm = _setup()
    full = RecordLosses()
    trainer = L.Trainer(callbacks=[full], **_kw(tmp_path / "full", enable_checkpointing=False))
    trainer.fit(module, dm)
    expected = {k: float(v) for k, v in trainer.callback_metrics.items()}
    expected_test = trainer.test(module, dm, verbose=False)[0]

    module, dm = _setup()
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ck", save_last=True, every_n_train_steps=1)
    part = RecordLosses()
    trainer = L.Trainer(callbacks=[part, CrashAt(crash_step), ckpt], **_kw(tmp_path / "a"))
    with pytest.raises(Crash):
        trainer.fit(module, dm)
    assert len(part.losses) == crash_step

    module, dm = _setup(seed=123)  # fresh process state: everything must come from the ckpt
    rest = RecordLosses()
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ck", save_last=True, every_n_train_steps=1)
    trainer = L.Trainer(callbacks=[rest, ckpt], **_kw(tmp_path / "b"))
    trainer.fit(module, dm, ckpt_path=str(tmp_path / "ck" / "last.ckpt"))
    got = {k: float(v) for k, v in trainer.callback_metrics.items()}
    got_test = trainer.test(module, dm, verbose=False)[0]

    assert part.losses + rest.losses == full.losses  # same steps, same losses, exactly
    assert got["val/ppl"] == expected["val/ppl"]
    assert got_test == expected_test
