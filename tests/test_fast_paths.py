"""Fast paths train like the eager reference: the same losses over 50 TBPTT steps."""

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from rnnbench.data.tbptt import TBPTTDataModule
from rnnbench.module import RNNModule
from tests.conftest import trainer_kwargs


class Losses(Callback):
    def __init__(self):
        self.values = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.values.append(float(outputs["loss"]))


def _train(cell, impl, stream):
    L.seed_everything(0, verbose=False)
    module = RNNModule(task="lm", task_kwargs={"vocab_size": 50}, cell=cell, hidden_size=16,
                       num_layers=2, impl=impl, optimizer="sgd", lr=0.5, clip=1.0)
    rec = Losses()
    trainer = L.Trainer(max_steps=50, limit_val_batches=0, callbacks=[rec], **trainer_kwargs())
    trainer.fit(module, TBPTTDataModule(stream, batch_size=4, bptt=8))
    return torch.tensor(rec.values)


@pytest.mark.slow
@pytest.mark.parametrize("cell,fast", [("lstm", "compiled"), ("mgu", "compiled"),
                                       ("lstm", "fused"), ("mingru", "auto")])
def test_fast_path_losses_equal_reference_over_50_steps(cell, fast):
    stream = torch.randint(0, 50, (4 * 8 * 60 + 1,), generator=torch.Generator().manual_seed(1))
    ref = _train(cell, "reference", stream)
    got = _train(cell, fast, stream)
    assert len(ref) == len(got) == 50
    rel = ((got - ref).abs() / ref.abs()).max().item()
    assert rel <= 1e-5, rel
