"""Lightning callbacks of ``rnnbench fit``."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import TQDMProgressBar


class LossProgressBar(TQDMProgressBar):
    """Lightning's progress bar, showing the latest training loss read at refresh time only.

    Metrics logged with ``prog_bar=True`` are converted to Python numbers at the end of
    every batch, a host-device synchronisation per step that would stall replayed CUDA
    graphs; this bar reads the module's last loss only when it redraws (every
    ``refresh_rate`` batches).
    """

    def get_metrics(self, trainer: Any, pl_module: Any) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        last = getattr(getattr(pl_module, "_rt", None), "last_loss", None)
        if last is not None and trainer.training:
            items["loss"] = f"{float(last):.4g}"
        return items
