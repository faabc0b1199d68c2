"""Registry behaviour: registration errors, unknown names, lookups."""

from __future__ import annotations

import pytest
import torch

from rnnbench.cells import (
    GRUCell,
    LSTMCell,
    RNNCell,
    UnknownCellError,
    get_cell,
    list_cells,
    register_cell,
)
from rnnbench.cells.registry import _isolated_registry


class _Echo(RNNCell):
    """h' = tanh(h + mean(x)): a tiny but real cell to register."""

    def forward(self, x_t: torch.Tensor, state: tuple) -> tuple:
        h = torch.tanh(state[0] + x_t.mean(dim=1, keepdim=True))
        return h, (h,)


def test_builtins_are_registered_by_name() -> None:
    assert {"gru", "lstm", "rnn_relu", "rnn_tanh"} <= set(list_cells())
    assert get_cell("lstm") is LSTMCell
    assert get_cell("gru") is GRUCell


def test_get_cell_returns_classes_and_passes_classes_through() -> None:
    for name in list_cells():
        cls = get_cell(name)
        assert isinstance(cls, type) and issubclass(cls, RNNCell)
    assert get_cell(_Echo) is _Echo


def test_register_then_lookup_and_restore() -> None:
    with _isolated_registry():
        register_cell("echo_test")(_Echo)
        assert get_cell("echo_test") is _Echo
        assert "echo_test" in list_cells()
    assert "echo_test" not in list_cells()


def test_duplicate_name_raises() -> None:
    class Other(_Echo):
        pass

    with _isolated_registry():
        register_cell("dup_test")(_Echo)
        register_cell("dup_test")(_Echo)  # the same class again is harmless
        with pytest.raises(ValueError, match="already registered"):
            register_cell("dup_test")(Other)
        with pytest.raises(ValueError, match="already registered"):
            register_cell("lstm")(Other)
        assert get_cell("dup_test") is _Echo
        assert get_cell("lstm") is LSTMCell


@pytest.mark.parametrize("obj", [torch.nn.Linear, object, lambda x: x, "lstm"])
def test_non_rnncell_raises(obj: object) -> None:
    with _isolated_registry():
        with pytest.raises(TypeError, match="RNNCell"):
            register_cell("not_a_cell")(obj)
        assert "not_a_cell" not in list_cells()


def test_bad_names_raise() -> None:
    with _isolated_registry():
        for name in ("", " padded "):
            with pytest.raises(ValueError, match="cell name"):
                register_cell(name)(_Echo)


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(KeyError) as info:
        get_cell("no_such_cell")
    assert isinstance(info.value, UnknownCellError)
    message = str(info.value)
    assert "no_such_cell" in message
    for name in list_cells():
        assert name in message


def test_list_cells_sorted_and_includes_contrib() -> None:
    names = list_cells()
    assert names == sorted(names)
    assert {"cifg", "indrnn", "janet", "ln_lstm", "mgu", "mingru"} <= set(names)
