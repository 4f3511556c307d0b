"""StepNeuron: neurons written as their per-step update, run by the engine."""

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from snnframe.builtins.neurons.leaky import Leaky
from snnframe.builtins.neurons.synaptic import Synaptic
from snnframe.engine import FastSigmoid, StepNeuron, Surrogate, check_unit_interval

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from step_lif import StepLIF  # noqa: E402  (the benchmark's per-step LIF)


class StepSynaptic(StepNeuron):
    """snnTorch's Synaptic (subtract / none reset) in the per-step form: two state variables."""

    state_names = ("syn", "mem")

    def __init__(self, *, alpha=0.9, beta=0.8, **options):
        super().__init__(**options)
        self.alpha, self.beta = alpha, beta

    def charge(self, x, syn, mem):
        syn = self.alpha * syn + x
        return syn, self.beta * mem + syn


class ScaledInput(StepNeuron):
    """A learnt input gain and a non-linear leak: the backward needs the input's value."""

    def __init__(self, **options):
        super().__init__(**options)
        self.gain = nn.Parameter(torch.tensor(0.8, dtype=torch.float64))

    def charge(self, x, mem):
        return 0.8 * mem + 0.1 * torch.tanh(mem) + self.gain * torch.tanh(x)


class Izhikevich(StepNeuron):
    """A custom reset (v <- c, u <- u + d) and a non-zero initial state."""

    state_names = ("u", "v")
    surrogate_scale = 1 / 95.0

    def __init__(self, **options):
        super().__init__(threshold=30.0, **options)
        self.d = nn.Parameter(torch.tensor(8.0, dtype=torch.float64))

    def initial_state(self, x0):
        v = torch.full_like(x0, -65.0)
        return 0.2 * v, v

    def reset(self, state, spiked):
        u, v = state
        return u + self.d * spiked, torch.where(spiked > 0, torch.full_like(v, -65.0), v)

    def charge(self, x, u, v):
        return u + 0.02 * (0.2 * v - u), v + 0.04 * v * v + 5 * v + 140 - u + 10 * x


def reference(neuron: StepNeuron, x: torch.Tensor):
    """The module docs' equations stepped with plain autograd (what the engine must equal)."""
    state = neuron.initial_state(x[0])
    spikes, mems, spike = [], [], None
    threshold = neuron.threshold.to(x.dtype)
    custom = type(neuron).reset is not StepNeuron.reset
    for t in range(x.shape[0]):
        if spike is not None:
            state = neuron.reset(state, spike.detach())
        state = neuron.charge(x[t], *state)
        state = state if isinstance(state, tuple) else (state,)
        if spike is not None and neuron.reset_mechanism == "subtract" and not custom:
            state = (*state[:-1], state[-1] - threshold * spike.detach())
        spike = neuron.surrogate((state[-1] - threshold) * neuron.surrogate_scale)
        spikes.append(spike)
        mems.append(state[-1])
    return torch.stack(spikes), torch.stack(mems)


class GenericStepLIF(StepLIF):
    fuse_affine = False  # the generic per-step loop, not the fused LIF scan


class GainLIF(StepNeuron):
    """Affine with a learnt input gain and a bias: fused, with gradients for both."""

    def __init__(self, **options):
        super().__init__(**options)
        self.gain = nn.Parameter(torch.tensor(1.5))
        self.bias = nn.Parameter(torch.tensor(0.1))

    def charge(self, x, mem):
        return 0.8 * mem + self.gain * x + self.bias


class ChannelLIF(StepNeuron):
    """One decay per feature: not the same affine map for every neuron, so the generic loop runs."""

    def __init__(self, **options):
        super().__init__(**options)
        self.register_buffer("beta", torch.linspace(0.5, 0.9, 7))

    def charge(self, x, mem):
        return self.beta * mem + x


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("cls", [StepLIF, GenericStepLIF], ids=["fused", "generic"])
def test_step_lif_equals_the_builtin_leaky(reset, cls):
    torch.manual_seed(0)
    x = (torch.randn(40, 6, 3, 5, 5) * 1.2).requires_grad_()
    kwargs = dict(beta=0.7, reset_mechanism=reset, surrogate=FastSigmoid(slope=25), learn_threshold=True)
    step, builtin = cls(**kwargs), Leaky(**kwargs)
    s1, m1 = step(x, return_mem=True)
    s2, m2 = builtin(x, return_mem=True)
    assert torch.equal(s1, s2) and torch.equal(m1, m2)  # bitwise: the same operations in the same order
    assert 0.05 < s1.mean() < 0.6
    w = torch.randn_like(s1)
    (g1, t1) = torch.autograd.grad((s1 * w).sum() + (m1**2).mean(), (x, step.threshold))
    (g2, t2) = torch.autograd.grad((s2 * w).sum() + (m2**2).mean(), (x, builtin.threshold))
    torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(t1, t2, rtol=1e-5, atol=1e-4)
    assert not step.backward_needs_input(x)  # β·U + X: only the membrane is kept for backward


def test_affine_charges_run_on_the_fused_scan_and_others_on_the_generic_loop():
    x = torch.randn(6, 2, 3, 4, 4)
    a, b, c = StepLIF(beta=0.7).affine_coefficients(x)
    assert (a.item(), b.item(), c.item()) == pytest.approx((0.7, 1.0, 0.0))
    assert GenericStepLIF().affine_coefficients(x) is None
    assert ChannelLIF().affine_coefficients(torch.randn(6, 2, 7)) is None
    assert StepSynaptic().affine_coefficients(x) is None and Izhikevich().affine_coefficients(x) is None
    a, b, c = GainLIF().affine_coefficients(x)
    assert (a.item(), b.item(), c.item()) == pytest.approx((0.8, 1.5, 0.1)) and b.requires_grad


def test_a_fused_affine_neuron_equals_its_generic_loop_with_parameter_gradients():
    torch.manual_seed(4)
    x = (torch.randn(30, 3, 8, dtype=torch.float64) * 1.2).requires_grad_()
    fused = GainLIF(reset_mechanism="zero", learn_threshold=True).double()
    generic = GainLIF(reset_mechanism="zero", learn_threshold=True).double()
    generic.fuse_affine = False
    results = []
    for neuron in (fused, generic):
        spikes, mem = neuron(x, return_mem=True)
        w = torch.randn_like(spikes, generator=torch.Generator().manual_seed(5))
        grads = torch.autograd.grad(
            (spikes * w).sum() + (mem * w).sum(), [x, neuron.gain, neuron.bias, neuron.threshold]
        )
        results.append((spikes, mem, grads))
    assert torch.equal(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-12, atol=1e-12)
    for a, b in zip(results[0][2], results[1][2]):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_two_state_neuron_equals_the_builtin_synaptic():
    torch.manual_seed(1)
    x = (torch.randn(30, 4, 20) * 0.8).requires_grad_()
    for reset in ("subtract", "none"):
        step = StepSynaptic(alpha=0.85, beta=0.75, reset_mechanism=reset)
        builtin = Synaptic(alpha=0.85, beta=0.75, reset_mechanism=reset)
        s1, m1 = step(x, return_mem=True)
        s2, m2 = builtin(x, return_mem=True)
        assert torch.equal(s1, s2) and torch.equal(m1, m2)
        (g1,) = torch.autograd.grad(s1.sum(), x)
        (g2,) = torch.autograd.grad(s2.sum(), x)
        torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "make",
    [
        lambda: StepLIF(beta=0.6, reset_mechanism="zero", learn_threshold=True),
        lambda: StepSynaptic(reset_mechanism="subtract"),
        lambda: ScaledInput(reset_mechanism="zero", learn_threshold=True),
        lambda: Izhikevich(),
    ],
    ids=["lif", "synaptic", "non-linear", "izhikevich"],
)
def test_forward_and_gradients_equal_plain_autograd_in_float64(make):
    torch.manual_seed(2)
    neuron = make().double()
    scale = 3.0 if isinstance(neuron, Izhikevich) else 1.2
    x = torch.randn(25, 3, 7, dtype=torch.float64) * scale + (1.5 if isinstance(neuron, Izhikevich) else 0)
    x.requires_grad_()
    params = [p for p in neuron.parameters() if p.requires_grad]
    spikes, mem = neuron(x, return_mem=True)
    ref_spikes, ref_mem = reference(neuron, x)
    assert torch.equal(spikes, ref_spikes)
    torch.testing.assert_close(mem, ref_mem, rtol=1e-12, atol=1e-10)
    assert 0 < spikes.sum() < spikes.numel()
    w = torch.randn_like(spikes)
    got = torch.autograd.grad((spikes * w).sum() + (mem * w).sum(), [x, *params])
    want = torch.autograd.grad((ref_spikes * w).sum() + (ref_mem * w).sum(), [x, *params])
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_the_input_is_kept_only_when_the_backward_needs_it():
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    assert not StepLIF().double().backward_needs_input(x)
    assert not StepSynaptic().double().backward_needs_input(x)
    assert ScaledInput().double().backward_needs_input(x)  # tanh(x) and gain * tanh(x) keep x


def test_a_charge_that_couples_neurons_is_refused():
    class Coupled(StepNeuron):
        def charge(self, x, mem):
            return 0.5 * mem + x + 0.1 * mem.sum(-1, keepdim=True)

    x = torch.randn(5, 2, 3, requires_grad=True)
    with pytest.raises(ValueError, match="Coupled.charge must act elementwise"):
        Coupled()(x)


def test_no_grad_and_time_expanded_input():
    neuron = StepLIF(beta=0.5)
    image = torch.rand(4, 10) * 2
    x = image.unsqueeze(0).expand(20, 4, 10)  # what the static encoder hands the first neuron
    with torch.no_grad():
        spikes, mem = neuron(x, return_mem=True)
    builtin_spikes, builtin_mem = Leaky(beta=0.5)(x.contiguous(), return_mem=True)
    assert torch.equal(spikes, builtin_spikes) and torch.equal(mem, builtin_mem)
    assert neuron(x).shape == (20, 4, 10) and not neuron(x).requires_grad


def test_a_foreign_surrogate_is_used_in_the_backward():
    class Box(Surrogate):  # no kernel_form: a third party's surrogate
        def derivative(self, x):
            return (x.abs() < 0.5).to(x.dtype)

    torch.manual_seed(3)
    x = torch.randn(10, 2, 4, dtype=torch.float64, requires_grad=True)
    neuron = GenericStepLIF(beta=0.5, surrogate=Box()).double()
    (got,) = torch.autograd.grad(neuron(x).sum(), x)
    (want,) = torch.autograd.grad(reference(neuron, x)[0].sum(), x)
    torch.testing.assert_close(got, want)


def test_a_charge_that_changes_the_shape_is_refused():
    class Broadcasting(StepNeuron):
        def charge(self, x, mem):
            return torch.ones(3, 1, 1) * mem + x  # [3, 7] steps become [3, 3, 7]

    with pytest.raises(
        ValueError, match=r"Broadcasting.charge returned a state of shape \(3, 3, 7\) for steps of shape \(3, 7\)"
    ):
        Broadcasting()(torch.randn(4, 3, 7))


def test_charge_is_the_only_required_method():
    class Incomplete(StepNeuron):
        pass

    with pytest.raises(NotImplementedError):
        Incomplete()(torch.zeros(2, 1, 1))
    with pytest.raises(ValueError, match="threshold must be a finite number"):
        StepLIF(threshold=float("inf"))
    with pytest.raises(ValueError, match="reset_mechanism must be one of"):
        StepLIF(reset_mechanism="soft")
    assert check_unit_interval("beta", 1) == 1.0
