"""The gradient-checking utility, and the check of each hand-written layer on its own."""
from __future__ import annotations

import torch

from zoo.models.lenet import C3_TABLE, ConnectionTableConv2d, ScaledTanh, Subsampling
from zoo.utils.gradcheck import check_module, gradient_check, relative_difference


class _WrongSquare(torch.autograd.Function):
    """x^2 whose backward is deliberately wrong (3x instead of 2x)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3 * x


def test_detects_a_wrong_gradient():
    x = torch.randn(10, dtype=torch.float64, requires_grad=True)
    (res,) = gradient_check(lambda: _WrongSquare.apply(x).sum(), {"x": x})
    assert res.relative_difference > 0.1


def test_accepts_a_right_gradient():
    x = torch.randn(10, dtype=torch.float64, requires_grad=True)
    (res,) = gradient_check(lambda: (x * x).sum(), {"x": x})
    assert res.relative_difference < 1e-8


def test_relative_difference():
    a = torch.tensor([1.0, 2.0], dtype=torch.float64)
    assert relative_difference(a, a) == 0.0
    assert abs(relative_difference(a, -a) - 1.0) < 1e-12


def _assert_ok(results, tol=1e-7):
    for r in results:
        assert r.relative_difference < tol, r


def test_scaled_tanh():
    _assert_ok(check_module(ScaledTanh(), [torch.randn(3, 5)]))
    f = ScaledTanh()
    assert abs(float(f(torch.tensor(1.0))) - 1.0) < 1e-3  # f(1) = 1 by design (appendix A)


def test_subsampling():
    _assert_ok(check_module(Subsampling(4), [torch.randn(2, 4, 6, 6)]))


def test_connection_table_conv():
    layer = ConnectionTableConv2d(6, C3_TABLE, 5)
    _assert_ok(check_module(layer, [torch.randn(2, 6, 7, 7)]))


def test_connection_table_is_respected():
    """An output map does not change when an input map outside its table row changes."""
    layer = ConnectionTableConv2d(6, C3_TABLE, 5).double()
    x = torch.randn(1, 6, 9, 9, dtype=torch.float64)
    y = layer(x)
    x2 = x.clone()
    x2[:, 5] += 1.0  # S2 map 5 feeds C3 maps 3, 4, 5, 8, 9, 10, 11, 13, 14, 15 only
    y2 = layer(x2)
    # float64: an unconnected map is unchanged to rounding, a connected one moves by order 1
    changed = {o for o in range(16) if not torch.allclose(y[:, o], y2[:, o])}
    assert changed == {o for o, ins in enumerate(C3_TABLE) if 5 in ins}
