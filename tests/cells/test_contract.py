"""The contract suite over every registered cell, and the suite itself on broken cells."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rnnbench.cells import RNNCell, list_cells
from rnnbench.testing import CHECKS, CellContract, CellContractError, check_cell


@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize("name", list_cells())
def test_every_cell_passes(name: str, check: str) -> None:
    CHECKS[check](name)


def test_check_cell_runs_every_check() -> None:
    assert check_cell("gru") == list(CHECKS)


def test_checks_leave_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check_cell("mgu")
    assert torch.equal(torch.rand(3), expected)


def test_cell_options_reach_the_constructor() -> None:
    check_cell("indrnn", recurrent_max=2 ** (1 / 100))
    with pytest.raises(CellContractError, match="no_such_option"):
        check_cell("mgu", no_such_option=1)


class TestMGUContract(CellContract):
    cell = "mgu"


class TestCIFGPeepholeContract(CellContract):
    cell = "cifg"
    cell_kwargs = {"peepholes": True}


# ---- the suite must catch broken cells: each class below breaks one promise on purpose


class _Elman(RNNCell):
    """A correct Elman cell the broken variants start from."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.weight_ih = nn.Parameter(torch.randn(hidden_size, input_size) / input_size**0.5)
        self.weight_hh = nn.Parameter(torch.randn(hidden_size, hidden_size) / hidden_size)

    def forward(self, x_t: torch.Tensor, state: tuple) -> tuple:
        h = torch.tanh(F.linear(x_t, self.weight_ih) + F.linear(state[0], self.weight_hh))
        return h, (h,)


class _ListState(_Elman):
    def forward(self, x_t, state):
        h, (h,) = super().forward(x_t, state)
        return h, [h]


class _WrongStateSize(_Elman):
    state_size = 2


class _Transposed(_Elman):
    def forward(self, x_t, state):
        h, _ = super().forward(x_t, state)
        return h.t(), (h,)


class _InPlace(_Elman):
    def forward(self, x_t, state):
        h, _ = super().forward(x_t, state)
        state[0].mul_(0.5)
        return h, (h,)


class _HiddenMemory(_Elman):
    """Keeps the last output on the module instead of in the state."""

    def forward(self, x_t, state):
        prev = getattr(self, "_last", None)
        h, _ = super().forward(x_t, state)
        if prev is not None and prev.shape == h.shape:
            h = h + 0.1 * prev
        self._last = h
        return h, (h,)


class _UnusedParameter(_Elman):
    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size)
        self.unused = nn.Parameter(torch.zeros(hidden_size))


class _Exploding(_Elman):
    def forward(self, x_t, state):
        h = F.linear(x_t, self.weight_ih) + 3.0 * state[0]
        return h, (h,)


class _BatchMixing(_Elman):
    def forward(self, x_t, state):
        h, _ = super().forward(x_t, state)
        h = h - h.mean(dim=0, keepdim=True)
        return h, (h,)


class _Float32Only(_Elman):
    def forward(self, x_t, state):
        h, _ = super().forward(x_t, state)
        return h.float(), (h.float(),)


class _Unregistered(_Elman):
    """Holds a tensor neither a parameter nor a buffer: not saved, not moved."""

    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size)
        self.scale = torch.rand(hidden_size) + 0.5

    def forward(self, x_t, state):
        h, _ = super().forward(x_t, state)
        return h * self.scale, (h * self.scale,)


class _HostSync(_Elman):
    def forward(self, x_t, state):
        h, _ = super().forward(x_t, state)
        h = h * float(h.abs().max().item() > -1.0)  # the meta device has no values to read
        return h, (h,)


class _BadSequence(_Elman):
    def forward_sequence(self, x, state):
        h = state[0]
        outs = []
        for t in range(x.shape[1]):
            h = torch.tanh(F.linear(x[:, t], self.weight_ih) + 0.99 * F.linear(h, self.weight_hh))
            outs.append(h)
        return torch.stack(outs, 1), (h,)


class _NoRecurrence(_Elman):
    def forward(self, x_t, state):
        h = torch.tanh(F.linear(x_t, self.weight_ih))
        return h, (h,)


class _Jitter(_Elman):
    """Hidden randomness outside the state: forward is not a function of (x, state)."""

    def forward(self, x_t, state):
        h, _ = super().forward(x_t, state)
        h = h + random.random()
        return h, (h,)


@pytest.mark.parametrize(
    ("cls", "check", "message"),
    [
        (_ListState, "shapes", "not a tuple"),
        (_WrongStateSize, "shapes", "state_size"),
        (_Transposed, "shapes", "expected (B, H)"),
        (_InPlace, "state_round_trip", "in place"),
        (_HiddenMemory, "state_round_trip", "hidden state"),
        (_Jitter, "state_round_trip", "different result"),
        (_HiddenMemory, "detach_cuts_graph", "still has a gradient path"),
        (_UnusedParameter, "gradients", "'unused' gets no gradient"),
        (_Exploding, "finite_long_run", "NaN/inf"),
        (_BatchMixing, "batch_size_one", "row 0"),
        (_Float32Only, "float64", "float64 in"),
        (_Unregistered, "device_move", "state_dict"),
        pytest.param(
            _HostSync,
            "device_move",
            "forward on",
            marks=pytest.mark.skipif(
                torch.cuda.is_available(), reason="host reads only fail on the meta device"
            ),
        ),
        (_BadSequence, "forward_sequence", "differs from the step loop"),
        (_NoRecurrence, "detach_cuts_graph", "even without detaching"),
    ],
)
def test_suite_catches_broken_cell(cls: type, check: str, message: str) -> None:
    with pytest.raises(CellContractError, match="fix:") as info:
        CHECKS[check](cls)
    assert message in str(info.value)
    assert cls.__qualname__ in str(info.value)


def test_check_cell_reports_every_failure_at_once() -> None:
    with pytest.raises(CellContractError) as info:
        check_cell(_HiddenMemory)
    message = str(info.value)
    assert "state round trip" in message and "detach cuts the graph" in message
    assert "contract checks failed for _HiddenMemory" in message


def test_instance_is_refused_with_advice() -> None:
    with pytest.raises(TypeError, match="not an instance"):
        check_cell(_Elman(2, 3))
