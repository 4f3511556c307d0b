r"""The surrogate-gradient protocol, and the standard surrogates with snnTorch's names and definitions.

A surrogate ``σ`` is used in three ways:

* ``surrogate(x)`` is the Heaviside step :math:`H(x) = [x > 0]` in the forward pass whose
  backward pass uses :math:`∂H/∂x ≈ σ'(x)`; neurons that step in Python call it once per step.
* ``surrogate.derivative(x)`` returns :math:`σ'(x)` itself, so fused neuron kernels can apply
  it to all time steps at once in their own backward pass.
* ``surrogate.kernel_form()`` names one of the derivatives the compiled kernels evaluate inline
  (those of the standard surrogates below, :data:`KERNEL_FORMS`), or returns ``None``. Kernels
  then evaluate :meth:`derivative` once on all steps with PyTorch and read the result: the same
  fused loop, one more ``[T, ...]`` tensor during the backward pass. A third-party surrogate
  needs only ``derivative``; it may return ``KernelForm(FastSigmoid, k)`` (say) when its
  derivative is exactly that standard one.

Example::

    >>> sg = FastSigmoid(slope=25)
    >>> x = torch.tensor([-0.1, 0.2], requires_grad=True)
    >>> sg(x)
    tensor([0., 1.], grad_fn=<HeavisideBackward>)
    >>> sg.derivative(x.detach())
    tensor([0.0816, 0.0277])
"""

from __future__ import annotations

import math

import attrs
import torch


@attrs.frozen
class KernelForm:
    """A surrogate derivative the compiled kernels evaluate inline: one of :data:`KERNEL_FORMS`
    (the standard surrogate classes below) and its one parameter (slope, α or θ; none for
    :class:`StraightThrough`)."""

    form: type
    param: float = 0.0


class _Heaviside(torch.autograd.Function):
    """H(x) forward, ``surrogate.derivative(x)`` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, surrogate: Surrogate) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad * ctx.surrogate.derivative(x), None


_Heaviside.__name__ = "Heaviside"


class Surrogate:
    """Base class: subclasses define :meth:`derivative` (and, optionally, :meth:`kernel_form`)."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return _Heaviside.apply(x, self)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def kernel_form(self) -> KernelForm | None:
        """The inline form of :meth:`derivative` for compiled kernels, or ``None`` (see the module docs)."""
        return None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self), tuple(vars(self).items())))


def _check_positive(**parameter: float) -> float:
    """The one keyword argument's value as a float if it is finite and > 0 (``_check_positive(slope=25)``)."""
    ((name, value),) = parameter.items()
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive number, got {value}")
    return float(value)


class FastSigmoid(Surrogate):
    r"""Fast sigmoid (SuperSpike, Zenke & Ganguli 2018), snnTorch's ``fast_sigmoid``.

    .. math::
        σ'(x) = \frac{1}{(k|x| + 1)^2}, \quad k = \text{slope}
    """

    def __init__(self, *, slope: float = 25.0):
        self.slope = _check_positive(slope=slope)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return (self.slope * x.abs() + 1.0).square().reciprocal()

    def kernel_form(self) -> KernelForm:
        return KernelForm(FastSigmoid, self.slope)


class ATan(Surrogate):
    r"""Shifted arc-tangent (Fang et al. 2021), snnTorch's ``atan`` and its default surrogate.

    .. math::
        σ'(x) = \frac{α/2}{1 + (\frac{π}{2} α x)^2}
    """

    def __init__(self, *, alpha: float = 2.0):
        self.alpha = _check_positive(alpha=alpha)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return (self.alpha / 2) / (1 + (math.pi / 2 * self.alpha * x).square())

    def kernel_form(self) -> KernelForm:
        return KernelForm(ATan, self.alpha)


class Sigmoid(Surrogate):
    r"""Logistic sigmoid, snnTorch's ``sigmoid``.

    .. math::
        σ'(x) = \frac{k e^{-kx}}{(e^{-kx} + 1)^2} = k\,s(kx)\,s(-kx), \quad k = \text{slope}

    (computed as the right-hand side, :math:`s` = ``torch.sigmoid``: equal to snnTorch's
    expression, but finite where :math:`e^{-kx}` overflows).
    """

    def __init__(self, *, slope: float = 25.0):
        self.slope = _check_positive(slope=slope)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        kx = self.slope * x
        return self.slope * torch.sigmoid(kx) * torch.sigmoid(-kx)

    def kernel_form(self) -> KernelForm:
        return KernelForm(Sigmoid, self.slope)


class Triangular(Surrogate):
    r"""snnTorch's ``triangular``, defined exactly as snnTorch 1.0 does.

    .. math::
        σ'(x) = \begin{cases} θ & x < 0 \\ -θ & x \ge 0 \end{cases}

    (snnTorch's definition: the gradient is constant in magnitude and changes sign at the threshold.)
    """

    def __init__(self, *, threshold: float = 1.0):
        self.threshold = float(threshold)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return (x < 0).to(x.dtype) * (2 * self.threshold) - self.threshold

    def kernel_form(self) -> KernelForm:
        return KernelForm(Triangular, self.threshold)


class StraightThrough(Surrogate):
    r"""Straight-through estimator, snnTorch's ``straight_through_estimator``: :math:`σ'(x) = 1`."""

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(x)

    def kernel_form(self) -> KernelForm:
        return KernelForm(StraightThrough)


DEFAULT_SURROGATE = ATan
# The forms compiled kernels evaluate inline, in the order of their surrogate ids.
KERNEL_FORMS = (FastSigmoid, ATan, Sigmoid, Triangular, StraightThrough)
