"""Contract checks every RNNCell must pass; run them on your own cell before publishing it.

A cell plugin is usable everywhere in rnnbench (any depth, direction, TBPTT, float64, any
device) only if it keeps a few promises. Each promise is one public ``check_*`` function;
:func:`check_cell` runs them all and raises one :class:`CellContractError` (an
``AssertionError``) listing every broken promise with what to change. The checks use plain
``torch`` and ``assert``-style errors, so they run under pytest, unittest or a script::

    from rnnbench.testing import check_cell

    check_cell("my_cell")                 # a registry name (entry point or @register_cell)
    check_cell(MyCell, window=4)          # or the class; options go to its constructor

With pytest, subclass :class:`CellContract` to get one test per check::

    from rnnbench.testing import CellContract

    class TestMyCell(CellContract):
        cell = "my_cell"
        cell_kwargs = {"window": 4}

The checks seed their own random numbers and leave the caller's global generator as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from rnnbench.cells import RNNCell
from rnnbench.testing._common import CellContractError, _cell_class
from rnnbench.testing.backbone_checks import (
    check_backbone,
    check_batch_size_one,
    check_device_move,
    check_float64,
    check_forward_sequence,
)
from rnnbench.testing.cell_checks import (
    check_detach_cuts_graph,
    check_finite_long_run,
    check_gradients,
    check_init_state,
    check_shapes,
    check_state_round_trip,
)

__all__ = [
    "CHECKS",
    "CellContract",
    "CellContractError",
    "check_backbone",
    "check_batch_size_one",
    "check_cell",
    "check_detach_cuts_graph",
    "check_device_move",
    "check_finite_long_run",
    "check_float64",
    "check_forward_sequence",
    "check_gradients",
    "check_init_state",
    "check_shapes",
    "check_state_round_trip",
]


CHECKS: dict[str, Callable[..., None]] = {
    "shapes": check_shapes,
    "init_state": check_init_state,
    "state_round_trip": check_state_round_trip,
    "gradients": check_gradients,
    "finite_long_run": check_finite_long_run,
    "detach_cuts_graph": check_detach_cuts_graph,
    "backbone": check_backbone,
    "batch_size_one": check_batch_size_one,
    "float64": check_float64,
    "device_move": check_device_move,
    "forward_sequence": check_forward_sequence,
}
"""Every contract check by short name, in the order :func:`check_cell` runs them."""


def check_cell(cell: str | type[RNNCell], **cell_kwargs: Any) -> list[str]:
    """Runs every contract check on a cell and reports all failures at once.

    Args:
        cell: Registry name or ``RNNCell`` subclass.
        **cell_kwargs: Options passed to the cell's constructor.

    Returns:
        The names of the checks run (all passed).

    Raises:
        CellContractError: One or more checks failed; the message has one paragraph per
            failure, each saying what broke and how to fix it.
    """
    cls = _cell_class(cell)
    failures = []
    for check_name, check in CHECKS.items():
        try:
            check(cls, **cell_kwargs)
        except CellContractError as err:
            failures.append(str(err))
        except Exception as err:  # noqa: BLE001 - a crash in the cell is a failed check too
            failures.append(
                f"{cls.__qualname__} failed '{check_name}': raised {type(err).__name__}: {err}"
            )
    if failures:
        raise CellContractError(
            f"{len(failures)} of {len(CHECKS)} contract checks failed for "
            f"{cls.__qualname__}:\n" + "\n".join(failures)
        )
    return list(CHECKS)


class CellContract:
    """pytest mixin: one ``test_*`` method per contract check.

    Subclass it in a ``Test*`` class and set ``cell`` (registry name or class) and,
    optionally, ``cell_kwargs``::

        class TestMyCell(CellContract):
            cell = "my_cell"
            cell_kwargs = {"window": 4}
    """

    cell: ClassVar[str | type[RNNCell] | None] = None
    cell_kwargs: ClassVar[dict[str, Any]] = {}

    def _check(self, name: str) -> None:
        if self.cell is None:
            raise TypeError(f"{type(self).__name__} must set `cell = '<registry name>'`")
        CHECKS[name](self.cell, **self.cell_kwargs)


def _contract_test(name: str) -> Callable[[CellContract], None]:
    def test(self: CellContract) -> None:
        self._check(name)

    test.__name__ = f"test_{name}"
    test.__doc__ = (CHECKS[name].__doc__ or "").split("\n")[0]
    return test


# One test method per entry of CHECKS: a new check is one edit, in CHECKS.
for _name in CHECKS:
    setattr(CellContract, f"test_{_name}", _contract_test(_name))
del _name
