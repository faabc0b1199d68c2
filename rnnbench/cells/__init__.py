"""Recurrent cells: the RNNCell contract, the registry and the built-in cells."""

from rnnbench.cells import builtin as _builtin  # noqa: F401  (registers the built-ins)
from rnnbench.cells.base import RNNCell, State
from rnnbench.cells.builtin import GRUCell, LSTMCell, ReLURNNCell, TanhRNNCell
from rnnbench.cells.registry import (
    ENTRY_POINT_GROUP,
    CellInfo,
    PluginError,
    UnknownCellError,
    cell_infos,
    get_cell,
    list_cells,
    register_cell,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "CellInfo",
    "GRUCell",
    "LSTMCell",
    "PluginError",
    "RNNCell",
    "ReLURNNCell",
    "State",
    "TanhRNNCell",
    "UnknownCellError",
    "cell_infos",
    "get_cell",
    "list_cells",
    "register_cell",
]
