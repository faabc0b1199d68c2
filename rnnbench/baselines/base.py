"""The baseline contract: fitted on the training batches, predicting what a task's head would."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch


class BaselineUnfit(ValueError):
    """A baseline (or one of its candidate options) cannot be fitted to this data or task."""


@dataclass(frozen=True)
class TaskInfo:
    """What a baseline needs to know of the task it is scored by (names, not objects).

    Attributes:
        name: The task's registry name (``lm``, ``music``, ``regression``, ``anomaly``,
            ``copy``, ``classification``).
        options: The task's options (``vocab_size``, ``n_keys``, ``input_dim``, ``residual``,
            ``num_symbols``, ...), as the data set and the config give them.
        streaming: Batches continue each other row by row (TBPTT streams).
    """

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    streaming: bool = False

    @property
    def forecasting(self) -> bool:
        """The target is the next value of the input series (anomaly, residual regression)."""
        return self.name == "anomaly" or (self.name == "regression"
                                         and bool(self.options.get("residual")))


class Baseline(ABC):
    """A model without recurrence, scored with the same data, split and metric as the cells.

    A baseline is fitted on the training split's batches and then predicts, batch by batch,
    the tensor the task's head would output for the trained models (logits, log-probabilities
    or values), so the task's own loss and metrics score it.

    Class attributes:
        name: Registry name (set by :func:`~rnnbench.baselines.register_baseline`).
        tasks: Names of the tasks it can be scored by.
        select: ``{option: candidates}`` chosen on the validation split when the user gives
            no value (e.g. the order of an AR model).
        summary: One line for the report.
    """

    name: ClassVar[str] = "baseline"
    tasks: ClassVar[tuple[str, ...]] = ()
    select: ClassVar[dict[str, tuple[Any, ...]]] = {}
    summary: ClassVar[str] = ""

    def __init__(self, **options: Any) -> None:
        if options:
            raise TypeError(f"baseline {self.name!r} takes no option {sorted(options)}")

    @classmethod
    def check_task(cls, task: TaskInfo) -> str | None:
        """Why this baseline cannot be scored by ``task`` (``None`` when it can)."""
        if task.name not in cls.tasks:
            return (f"baseline {cls.name!r} scores the {', '.join(cls.tasks)} task(s), not "
                    f"{task.name!r}")
        return None

    @abstractmethod
    def fit(self, train: Iterable[Any], task: TaskInfo) -> None:
        """Fits on the training split.

        Args:
            train: The training batches (:class:`~rnnbench.data.Batch`), in the data
                module's order.
            task: The task that will score it.

        Raises:
            BaselineUnfit: These options cannot be fitted to these data.
        """

    def start(self) -> None:  # noqa: B027 - optional hook
        """Called before each pass over a split (a stream starts afresh, as the cells' state
        does)."""

    @abstractmethod
    def predict(self, batch: Any) -> torch.Tensor:
        """What the task's head would output for ``batch`` (same shape and meaning)."""

    @property
    def num_parameters(self) -> int:
        """Numbers fitted on the training split (counts, coefficients, probabilities)."""
        return 0

    def options(self) -> dict[str, Any]:
        """The options this instance was built with (what the results record)."""
        return {}

    def describe(self) -> str:
        """One line: what it predicts, with its fitted options."""
        return self.summary

    def published_as(self) -> str | None:
        """The variant name of this baseline in ``rnnbench/report/published.csv``, if any."""
        return None


def stack_batches(batches: Iterable[Any]) -> tuple[list[torch.Tensor], list[torch.Tensor],
                                                    list[torch.Tensor | None]]:
    """``(inputs, targets, masks)`` of every batch, on the CPU, detached."""
    xs, ys, ms = [], [], []
    for b in batches:
        xs.append(b.inputs.detach().cpu())
        ys.append(b.targets.detach().cpu())
        ms.append(None if b.mask is None else b.mask.detach().cpu())
    return xs, ys, ms


def last_steps(inputs: torch.Tensor, mask: torch.Tensor | None, p: int) -> torch.Tensor:
    """The last ``p`` valid steps of each row, oldest first.

    Args:
        inputs: ``(B, T, D)``.
        mask: ``(B, T)`` bool, true on real steps (right padding), or ``None``.
        p: Steps wanted.

    Returns:
        ``(B, p, D)``.

    Raises:
        BaselineUnfit: A row has fewer than ``p`` valid steps.
    """
    batch, steps = inputs.shape[:2]
    lengths = mask.sum(1) if mask is not None else torch.full((batch,), steps)  # (B,)
    if int(lengths.min()) < p:
        raise BaselineUnfit(f"needs {p} input steps but a window has {int(lengths.min())}")
    offsets = lengths[:, None] - p + torch.arange(p)[None, :]  # (B, p)
    return inputs[torch.arange(batch)[:, None], offsets]  # (B, p, D)


__all__ = ["Baseline", "BaselineUnfit", "TaskInfo", "last_steps", "stack_batches"]
