"""The contrib cells' own maths, on hand-computed tiny examples and exact properties."""

from __future__ import annotations

import math
from importlib import metadata

import pytest
import torch
import torch.nn.functional as F

from rnnbench.backbones import RecurrentBackbone
from rnnbench.cells import cell_infos, get_cell

# Classes come from the registry (never imported directly), so the plugin path is what loads
# them.
CONTRIB = ("cifg", "indrnn", "janet", "ln_lstm", "mgu", "mingru")


def _sig(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def _set(cell: torch.nn.Module, **values: list) -> None:
    with torch.no_grad():
        for name, value in values.items():
            getattr(cell, name).copy_(torch.tensor(value, dtype=torch.float64))


def test_contrib_cells_come_through_entry_points() -> None:
    sources = {info.name: info.source for info in cell_infos()}
    assert {sources[name] for name in CONTRIB} == {"contrib"}
    eps = {ep.name: ep for ep in metadata.entry_points(group="rnnbench.cells")}
    for name in CONTRIB:
        assert eps[name].dist.name == "rnnbench"
        assert eps[name].load() is get_cell(name)


# ---------------------------------------------------------------------------- MGU
def test_mgu_hand_computed_step() -> None:
    cell = get_cell("mgu")(1, 1).double()
    _set(cell, weight_ih=[[0.7], [-1.2]], weight_hh=[[0.4], [0.9]], bias_ih=[0.1, -0.3])
    x, h = 0.5, 0.3
    f = _sig(0.7 * x + 0.4 * h + 0.1)
    cand = math.tanh(-1.2 * x + 0.9 * (f * h) - 0.3)
    expected = (1 - f) * h + f * cand
    out, (h_new,) = cell(
        torch.tensor([[x]], dtype=torch.float64), (torch.tensor([[h]], dtype=torch.float64),)
    )
    assert out.item() == pytest.approx(expected, abs=1e-12)
    assert h_new is out


def test_mgu_without_bias() -> None:
    cell = get_cell("mgu")(3, 4, bias=False)
    assert cell.bias_ih is None
    assert [n for n, _ in cell.named_parameters()] == ["weight_ih", "weight_hh"]


# ---------------------------------------------------------------------------- IndRNN
def test_indrnn_units_are_independent() -> None:
    cell = get_cell("indrnn")(3, 5).double()
    x = torch.randn(1, 3, dtype=torch.float64)
    h = torch.randn(1, 5, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda s: cell(x, (s,))[0], h)[0, :, 0, :]  # (H, H)
    pre = F.linear(x, cell.weight_ih, cell.bias_ih) + cell.weight_hh * h
    expected = torch.diag(cell.weight_hh.detach() * (pre[0] > 0).double())
    torch.testing.assert_close(jac, expected, rtol=0, atol=1e-12)


def test_indrnn_recurrent_constraint() -> None:
    bound = get_cell("indrnn").recurrent_bound(100)
    assert bound == pytest.approx(2 ** (1 / 100))
    cell = get_cell("indrnn")(1, 2, recurrent_max=bound)
    assert (cell.weight_hh.abs() <= bound).all() and (cell.weight_hh >= 0).all()
    _set(cell, weight_ih=[[1.0], [1.0]], weight_hh=[5.0, -0.5], bias_ih=[0.0, 0.0])
    out, _ = cell(torch.zeros(1, 1), (torch.ones(1, 2),))
    # u = 5 acts as the bound; relu(-0.5) = 0
    torch.testing.assert_close(out, torch.tensor([[bound, 0.0]]))
    cell.constrain_()
    torch.testing.assert_close(cell.weight_hh.detach(), torch.tensor([bound, -0.5]))


def test_indrnn_default_init_in_unit_range() -> None:
    cell = get_cell("indrnn")(4, 256)
    assert 0.0 <= cell.weight_hh.min() and cell.weight_hh.max() <= 1.0
    assert cell.bias_ih.abs().max() == 0


# ---------------------------------------------------------------------------- LayerNorm-LSTM
def _ln(v: torch.Tensor, gain: torch.Tensor, shift: torch.Tensor | float, eps: float):
    mu = v.mean(-1, keepdim=True)
    var = ((v - mu) ** 2).mean(-1, keepdim=True)
    return (v - mu) / torch.sqrt(var + eps) * gain + shift


def test_ln_lstm_matches_paper_equations() -> None:
    cell = get_cell("ln_lstm")(3, 4).double()
    with torch.no_grad():
        for p in cell.parameters():
            p.copy_(torch.randn_like(p))
    x = torch.randn(2, 3, dtype=torch.float64)
    h, c = torch.randn(2, 2, 4, dtype=torch.float64).unbind(0)
    eps = cell.ln_c.eps
    gates = (
        _ln(x @ cell.weight_ih.T, cell.ln_ih.weight, 0.0, eps)
        + _ln(h @ cell.weight_hh.T, cell.ln_hh.weight, 0.0, eps)
        + cell.bias_ih
    )
    i, f, g, o = gates.chunk(4, dim=1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h_new = torch.sigmoid(o) * torch.tanh(_ln(c_new, cell.ln_c.weight, cell.ln_c.bias, eps))
    out, (h_out, c_out) = cell(x, (h, c))
    torch.testing.assert_close(c_out, c_new, rtol=0, atol=1e-12)
    torch.testing.assert_close(out, h_new, rtol=0, atol=1e-12)


def test_ln_lstm_is_invariant_to_weight_scale() -> None:
    cell = get_cell("ln_lstm")(3, 4, eps=1e-30).double()
    x = torch.randn(2, 3, dtype=torch.float64)
    state = tuple(torch.randn(2, 2, 4, dtype=torch.float64).unbind(0))
    before, _ = cell(x, state)
    with torch.no_grad():
        cell.weight_ih.mul_(7.0)
        cell.weight_hh.mul_(0.2)
    after, _ = cell(x, state)
    torch.testing.assert_close(after, before, rtol=0, atol=1e-12)


def test_ln_lstm_forget_bias_init() -> None:
    cell = get_cell("ln_lstm")(3, 4, forget_bias=2.0)
    torch.testing.assert_close(
        cell.bias_ih.detach(), torch.tensor([0.0] * 4 + [2.0] * 4 + [0.0] * 8)
    )


# ---------------------------------------------------------------------------- CIFG
def test_cifg_hand_computed_step() -> None:
    cell = get_cell("cifg")(1, 1).double()
    _set(
        cell,
        weight_ih=[[0.5], [-0.8], [1.1]],
        weight_hh=[[0.3], [0.6], [-0.2]],
        bias_ih=[1.0, 0.2, -0.1],
    )
    x, h, c = 0.4, -0.6, 0.9
    f = _sig(0.5 * x + 0.3 * h + 1.0)
    g = math.tanh(-0.8 * x + 0.6 * h + 0.2)
    o = _sig(1.1 * x - 0.2 * h - 0.1)
    c_new = f * c + (1 - f) * g  # input gate = 1 - forget gate
    t = lambda v: torch.tensor([[v]], dtype=torch.float64)  # noqa: E731
    out, (h_out, c_out) = cell(t(x), (t(h), t(c)))
    assert c_out.item() == pytest.approx(c_new, abs=1e-12)
    assert out.item() == pytest.approx(o * math.tanh(c_new), abs=1e-12)


def test_cifg_is_an_lstm_whose_input_gate_is_one_minus_forget() -> None:
    # sigmoid(-a) = 1 - sigmoid(a): an LSTM with i's weights = -f's computes CIFG exactly.
    cell = get_cell("cifg")(3, 4).double()
    lstm = torch.nn.LSTMCell(3, 4).double()
    w_f, w_g, w_o = cell.weight_ih.chunk(3)
    u_f, u_g, u_o = cell.weight_hh.chunk(3)
    b_f, b_g, b_o = cell.bias_ih.chunk(3)
    with torch.no_grad():
        lstm.weight_ih.copy_(torch.cat([-w_f, w_f, w_g, w_o]))
        lstm.weight_hh.copy_(torch.cat([-u_f, u_f, u_g, u_o]))
        lstm.bias_ih.copy_(torch.cat([-b_f, b_f, b_g, b_o]))
        lstm.bias_hh.zero_()
    x = torch.randn(5, 3, dtype=torch.float64)
    h, c = torch.randn(2, 5, 4, dtype=torch.float64).unbind(0)
    out, (_, c_out) = cell(x, (h, c))
    h_ref, c_ref = lstm(x, (h, c))
    torch.testing.assert_close(out, h_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(c_out, c_ref, rtol=0, atol=1e-12)


def test_cifg_peepholes() -> None:
    cell = get_cell("cifg")(1, 1, peepholes=True).double()
    _set(cell, weight_ih=[[0.0]] * 3, weight_hh=[[0.0]] * 3, bias_ih=[0.0, 0.5, 0.0])
    _set(cell, weight_cf=[2.0], weight_co=[-1.0])
    c = 0.7
    f = _sig(2.0 * c)
    c_new = f * c + (1 - f) * math.tanh(0.5)
    h_new = _sig(-1.0 * c_new) * math.tanh(c_new)
    t = lambda v: torch.tensor([[v]], dtype=torch.float64)  # noqa: E731
    out, (_, c_out) = cell(t(0.3), (t(0.1), t(c)))
    assert c_out.item() == pytest.approx(c_new, abs=1e-12)
    assert out.item() == pytest.approx(h_new, abs=1e-12)


# ---------------------------------------------------------------------------- JANET
def test_janet_hand_computed_step() -> None:
    cell = get_cell("janet")(1, 1, beta=1.0).double()
    _set(cell, weight_ih=[[0.9], [-0.4]], weight_hh=[[0.2], [0.7]], bias_ih=[2.0, 0.1])
    x, c = -0.5, 0.25
    s = 0.9 * x + 0.2 * c + 2.0
    cand = math.tanh(-0.4 * x + 0.7 * c + 0.1)
    expected = _sig(s) * c + (1 - _sig(s - 1.0)) * cand
    t = lambda v: torch.tensor([[v]], dtype=torch.float64)  # noqa: E731
    out, (c_out,) = cell(t(x), (t(c),))
    assert out.item() == pytest.approx(expected, abs=1e-12)
    assert c_out is out


@pytest.mark.parametrize("t_max", [10.0, 100.0, 784.0])
def test_janet_chrono_init_in_range(t_max: float) -> None:
    cell = get_cell("janet")(3, 512, t_max=t_max)
    b_f, b_c = cell.bias_ih.detach().chunk(2)
    assert b_f.min() >= 0.0 and b_f.max() <= math.log(t_max - 1) + 1e-6
    # log of a uniform draw: spread over the range, not a constant
    assert b_f.max() > 0.9 * math.log(t_max - 1) and b_f.min() < 0.3 * math.log(t_max - 1)
    assert b_c.abs().max() == 0
    no_chrono = get_cell("janet")(3, 8, t_max=None)
    assert no_chrono.bias_ih.abs().max() == 0
    with pytest.raises(ValueError, match="t_max"):
        get_cell("janet")(3, 8, t_max=2)


# ---------------------------------------------------------------------------- minGRU
def test_mingru_hand_computed_step() -> None:
    cell = get_cell("mingru")(1, 2).double()
    _set(cell, weight_ih=[[1.0], [-2.0], [0.5], [3.0]], bias_ih=[0.0, 0.0, 0.0, -1.0])
    x, h = 0.6, [0.2, -0.4]
    z = [_sig(1.0 * x), _sig(-2.0 * x)]
    cand = [0.5 * x + 0.5, 3.0 * x - 1.0 + 0.5]  # both pre-activations >= 0: g(v) = v + 0.5
    expected = [(1 - z[k]) * h[k] + z[k] * cand[k] for k in range(2)]
    out, _ = cell(
        torch.tensor([[x]], dtype=torch.float64), (torch.tensor([h], dtype=torch.float64),)
    )
    assert out[0].tolist() == pytest.approx(expected, abs=1e-12)


def test_mingru_negative_candidate_branch() -> None:
    cell = get_cell("mingru")(1, 1).double()
    _set(cell, weight_ih=[[0.0], [1.0]], bias_ih=[0.0, 0.0])  # z = 0.5, candidate g(x)
    out, _ = cell(torch.tensor([[-2.0]], dtype=torch.float64), (torch.zeros(1, 1).double(),))
    assert out.item() == pytest.approx(0.5 * _sig(-2.0), abs=1e-12)


@pytest.mark.parametrize(("steps", "chunk"), [(1, 128), (30, 7), (64, 64), (50, 128)])
def test_mingru_scan_equals_step_loop(steps: int, chunk: int) -> None:
    torch.manual_seed(0)
    cell = get_cell("mingru")(3, 5, chunk_size=chunk).double()
    x = torch.randn(4, steps, 3, dtype=torch.float64) * 3
    h0 = torch.randn(4, 5, dtype=torch.float64)  # any sign: the initial state enters linearly
    state, outs = (h0,), []
    for t in range(steps):
        h, state = cell(x[:, t], state)
        outs.append(h)
    y, (h_last,) = cell.forward_sequence(x, (h0,))
    torch.testing.assert_close(y, torch.stack(outs, dim=1), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(h_last, state[0], rtol=1e-9, atol=1e-9)


def test_mingru_scan_is_stable_in_float32_over_long_windows() -> None:
    torch.manual_seed(0)
    cell = get_cell("mingru")(3, 8)
    x = torch.randn(2, 2000, 3) * 4  # saturated gates: log-magnitudes grow fast
    y, _ = cell.forward_sequence(x, None)
    with torch.no_grad():
        ref = cell.double().forward_sequence(x.double(), None)[0]
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y.double(), ref, rtol=1e-4, atol=1e-5)


def test_mingru_backbone_takes_the_sequence_path() -> None:
    torch.manual_seed(0)
    kw = dict(input_size=3, hidden_size=5, num_layers=2, bidirectional=True)
    fast = RecurrentBackbone(cell="mingru", impl="auto", **kw).double()
    slow = RecurrentBackbone(cell="mingru", impl="reference", **kw).double()
    slow.load_state_dict(fast.state_dict())
    assert fast.effective_impl == "sequence" and slow.effective_impl == "reference"
    x = torch.randn(2, 11, 3, dtype=torch.float64)
    y_fast, s_fast = fast(x)
    y_slow, s_slow = slow(x)
    torch.testing.assert_close(y_fast, y_slow, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(s_fast[0], s_slow[0], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", CONTRIB)
def test_contrib_cells_reject_unknown_options(name: str) -> None:
    with pytest.raises(TypeError):
        get_cell(name)(3, 4, no_such_option=True)
