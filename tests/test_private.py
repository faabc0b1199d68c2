"""Each private library name rnnbench relies on still exists in the installed version."""

from __future__ import annotations

import importlib.util

import pytest

from rnnbench._private import PRIVATE, resolve

NAMES = [(lib, name) for lib, names in PRIVATE.items() for name in names]


@pytest.mark.parametrize(("library", "name"), NAMES, ids=[n for _, n in NAMES])
def test_private_name_still_exists(library, name):
    if importlib.util.find_spec(library) is None:
        pytest.skip(f"{library} is not installed")
    resolve(name)  # raises when the installed library dropped it


def test_every_entry_says_why():
    assert all(len(reason) > 40 for names in PRIVATE.values() for reason in names.values())


def test_resolve_fails_on_a_missing_name():
    with pytest.raises(AttributeError, match="'nope' is gone"):
        resolve("optuna.storages:RDBStorage.nope")


def test_private_instance_attributes_still_exist():
    import lightning as L
    import torch
    import torchmetrics
    from lightning.pytorch.core.optimizer import LightningOptimizer

    from rnnbench._private import LIGHTNING_INSTANCE

    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    lopt = LightningOptimizer(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0))
    found = {
        "LightningOptimizer()._on_before_step": callable(getattr(lopt, "_on_before_step", 0)),
        "LightningOptimizer()._on_after_step": callable(getattr(lopt, "_on_after_step", 0)),
        "Trainer()._logger_connector": hasattr(trainer, "_logger_connector"),
        "Trainer().fit_loop.epoch_loop._batches_that_stepped": isinstance(
            getattr(trainer.fit_loop.epoch_loop, "_batches_that_stepped", None), int),
        "torchmetrics.MeanMetric()._update_count": isinstance(
            getattr(torchmetrics.MeanMetric(), "_update_count", None), int),
    }
    assert set(found) == set(LIGHTNING_INSTANCE)
    assert all(found.values()), found
