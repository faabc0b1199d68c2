"""One row per registered cell (plugins that failed to load included), for ``rnnbench cells``."""

from __future__ import annotations

import warnings
from typing import Any

from rnnbench.cells import RNNCell, cell_infos


def _impls(cls: type[RNNCell]) -> list[str]:
    impls = ["fused"] if cls.fused_mode else []
    impls += ["reference", "compiled"]
    if callable(getattr(cls, "forward_sequence", None)):
        impls.append("sequence")
    return impls


def cell_rows(input_size: int = 64, hidden_size: int = 128) -> list[dict[str, Any]]:
    """Describes every known cell, built-in, contrib and plugin, broken ones included.

    Args:
        input_size: Input features of the reference cell whose parameters are counted.
        hidden_size: Hidden units of that reference cell.

    Returns:
        One dict per cell, sorted by name with broken plugins last, with keys ``name``,
        ``source`` (``"built-in"``, ``"contrib"`` or the plugin's distribution),
        ``state_size``, ``parameters`` (of one cell, one layer and direction, default
        options), ``impls`` (of ``"fused"``, ``"reference"``, ``"compiled"``,
        ``"sequence"``) and ``error`` (``None``, or why the cell cannot be used; then the
        counts are ``None`` and ``impls`` is empty).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # broken plugins: reported per row
        infos = list(cell_infos())
    rows = []
    for info in infos:
        row: dict[str, Any] = {
            "name": info.name,
            "source": info.source,
            "state_size": None,
            "parameters": None,
            "impls": [],
            "error": info.error,
        }
        if info.cls is not None:
            try:
                cell = info.cls(input_size, hidden_size)
                row["parameters"] = sum(p.numel() for p in cell.parameters())
                row["state_size"] = int(info.cls.state_size)
                row["impls"] = _impls(info.cls)
            except Exception as err:  # noqa: BLE001 - one bad cell must not hide the others
                row["error"] = (
                    f"{info.cls.__module__}.{info.cls.__qualname__}({input_size}, "
                    f"{hidden_size}) failed: {type(err).__name__}: {err}"
                )
        rows.append(row)
    return rows
