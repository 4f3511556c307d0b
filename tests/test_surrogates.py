"""Surrogates: snnTorch's definitions, Heaviside forward, derivative used by backward."""

import subprocess
import sys

import pytest
import torch
from snntorch import surrogate as snn_surrogate

from snnframe.builtins.surrogates import register_surrogates
from snnframe.engine.surrogate import ATan, FastSigmoid, Sigmoid, StraightThrough, Triangular

X = torch.linspace(-2, 2, 401)

CASES = [
    (FastSigmoid(), snn_surrogate.fast_sigmoid()),
    (FastSigmoid(slope=5.0), snn_surrogate.fast_sigmoid(slope=5.0)),
    (ATan(), snn_surrogate.atan()),
    (ATan(alpha=3.0), snn_surrogate.atan(alpha=3.0)),
    (Sigmoid(), snn_surrogate.sigmoid()),
    (Sigmoid(slope=4.0), snn_surrogate.sigmoid(slope=4.0)),
    (Triangular(), snn_surrogate.triangular()),
    (Triangular(threshold=0.5), snn_surrogate.triangular(threshold=0.5)),
    (StraightThrough(), snn_surrogate.straight_through_estimator()),
]


def snntorch_grad(fn, x):
    x = x.clone().requires_grad_()
    fn(x).backward(torch.ones_like(x))
    return x.grad


@pytest.mark.parametrize("ours, theirs", CASES, ids=lambda c: repr(c))
def test_derivative_and_backward_equal_snntorch(ours, theirs):
    expected = snntorch_grad(theirs, X)
    torch.testing.assert_close(ours.derivative(X), expected, rtol=1e-6, atol=1e-7)
    x = X.clone().requires_grad_()
    out = ours(x)
    assert torch.equal(out, (X > 0).float())
    assert torch.equal(out, theirs(X))
    out.backward(torch.ones_like(x))
    torch.testing.assert_close(x.grad, expected, rtol=1e-6, atol=1e-7)


def test_defaults_are_snntorchs():
    assert FastSigmoid().slope == 25 and Sigmoid().slope == 25
    assert ATan().alpha == 2 and Triangular().threshold == 1


def test_sigmoid_stays_finite_where_snntorchs_overflows():
    x = torch.tensor([-100.0, 100.0])
    assert torch.isnan(snntorch_grad(snn_surrogate.sigmoid(), x)).any()
    assert torch.equal(Sigmoid().derivative(x), torch.zeros(2))


def test_heaviside_keeps_dtype_and_is_zero_at_zero():
    x = torch.tensor([-1.0, 0.0, 1e-30], dtype=torch.float64)
    assert torch.equal(ATan()(x), torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))


@pytest.mark.parametrize(
    "make", [lambda: FastSigmoid(slope=0.0), lambda: ATan(alpha=-1.0), lambda: Sigmoid(slope=-2.0)]
)
def test_bad_parameters_raise_value_error(make):
    with pytest.raises(ValueError, match="must be a positive number"):
        make()


def test_registered_names_point_at_the_classes():
    seen = {}
    register_surrogates(lambda name, ref, **options: seen.__setitem__(name, ref))
    assert seen == {
        "fast_sigmoid": "snnframe.engine.surrogate:FastSigmoid",
        "atan": "snnframe.engine.surrogate:ATan",
        "sigmoid": "snnframe.engine.surrogate:Sigmoid",
        "triangular": "snnframe.engine.surrogate:Triangular",
        "straight_through": "snnframe.engine.surrogate:StraightThrough",
    }


def test_plugin_modules_do_not_import_torch():
    code = (
        "import sys, snnframe.builtins.neurons, snnframe.builtins.models; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
