"""Two-process CPU DDP (gloo): every rank writes the rows it trained on to OUT/rank{r}.pt.

Usage: python tests/scripts/ddp_rows.py OUT [BATCH_SIZE]
"""

import sys

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from rnnbench.data.tbptt import TBPTTDataModule
from rnnbench.module import RNNModule


class Record(Callback):
    def __init__(self):
        self.rows = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.rows.append(batch[0].clone())

    def on_train_end(self, trainer, pl_module):
        torch.save(self.rows, f"{sys.argv[1]}/rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    torch.set_num_threads(1)
    batch_size = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    dm = TBPTTDataModule(torch.arange(401) % 50, batch_size=batch_size, bptt=10)
    module = RNNModule(task="lm", task_kwargs={"vocab_size": 50}, cell="gru", hidden_size=8)
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy="ddp", max_epochs=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        use_distributed_sampler=False, limit_val_batches=0, callbacks=[Record()],
    )
    trainer.fit(module, dm)
