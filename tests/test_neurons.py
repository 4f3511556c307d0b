"""Built-in neurons: equal to snnTorch (leaky, synaptic) or to step-by-step references (alif, plif).

Spikes are piecewise constant, so finite differences cannot see a surrogate gradient: the fused
backward passes are checked (a) with ``gradcheck`` in float64 on the membrane output, whose
true derivative they compute exactly (the reset is detached), and (b) against autograd through a
step-by-step float64 reference that uses the same surrogate, for the spike output.
"""

import pytest
import snntorch as snn
import torch
from snntorch import surrogate as snn_surrogate
from snntorch import utils as snn_utils

from snnframe.builtins.neurons import register_neurons
from snnframe.builtins.neurons.alif import ALIF, _ALIFFunction
from snnframe.builtins.neurons.leaky import Leaky
from snnframe.builtins.neurons.plif import PLIF, _PLIFFunction
from snnframe.builtins.neurons.synaptic import Synaptic, _SynapticFunction
from snnframe.engine.kernels import lif as lif_kernels
from snnframe.engine.lif import LIFScan
from snnframe.engine.neuron import SpikingNeuron
from snnframe.engine.surrogate import ATan, FastSigmoid, KernelForm, Sigmoid, StraightThrough, Surrogate, Triangular

RESETS = ["subtract", "zero", "none"]


@pytest.fixture(params=["numba", "torch"])
def loop(request, monkeypatch):
    """leaky runs numba kernels on CPU and the PyTorch loop elsewhere: test both."""
    monkeypatch.setenv("SNNFRAME_NUMBA", "1" if request.param == "numba" else "0")
    return request.param


def current(*shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g, dtype=dtype) * 0.8 + 0.4).requires_grad_()


def backward_with_weights(spikes, mem, seed=1):
    g = torch.Generator().manual_seed(seed)
    ws, wm = torch.randn(spikes.shape, generator=g), torch.randn(mem.shape, generator=g)
    (spikes * ws.to(spikes.dtype) + mem * wm.to(mem.dtype)).sum().backward()


def param_grads(module, names):
    return [getattr(module, n).grad for n in names]


# ---- leaky / synaptic against snnTorch ------------------------------------------------------


def run_snntorch(ref, x):
    """Step snnTorch's neuron with explicit state; spikes and membrane stacked over time."""
    spikes, mems, state = [], [], ()
    for t in range(x.shape[0]):
        out = ref(x[t], *state)
        spikes.append(out[0])
        mems.append(out[-1])
        state = out[1:]
    return torch.stack(spikes), torch.stack(mems)


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("learn", [False, True])
def test_leaky_equals_snntorch(reset, learn, loop):
    kw = dict(beta=0.7, threshold=0.8, reset_mechanism=reset, learn_beta=learn, learn_threshold=learn)
    ref = snn.Leaky(spike_grad=snn_surrogate.fast_sigmoid(slope=25), **kw)
    ours = Leaky(surrogate=FastSigmoid(slope=25), **kw)
    x = current(24, 4, 30)
    s_ref, m_ref = run_snntorch(ref, x)
    backward_with_weights(s_ref, m_ref)
    grad_ref, x.grad = x.grad, None
    s, m = ours(x, return_mem=True)
    backward_with_weights(s, m)
    assert 0.1 < s.mean() < 0.9
    assert torch.equal(s, s_ref) and torch.equal(m, m_ref)  # bitwise: same order of operations
    torch.testing.assert_close(x.grad, grad_ref, rtol=1e-5, atol=1e-5)
    if learn:
        for a, b in zip(param_grads(ours, ["beta", "threshold"]), param_grads(ref, ["beta", "threshold"])):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)


def test_leaky_equals_the_seeds_init_hidden_loop(loop):
    """snnTorch stepped the seed's way: init_hidden=True, utils.reset, default surrogate (atan)."""
    ref = torch.nn.Sequential(snn.Leaky(beta=0.5, init_hidden=True, output=True))
    x = current(30, 8, 16)
    for _ in range(2):  # the second call checks the reset between sequences
        snn_utils.reset(ref)
        steps = [ref(x[t]) for t in range(x.shape[0])]
        s_ref = torch.stack([s for s, _ in steps])
        m_ref = torch.stack([m for _, m in steps])
    s_ref.sum().backward()
    grad_ref, x.grad = x.grad, None
    s, m = Leaky(beta=0.5)(x, return_mem=True)
    s.sum().backward()
    assert torch.equal(s, s_ref) and torch.equal(m, m_ref)
    torch.testing.assert_close(x.grad, grad_ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("learn", [False, True])
def test_synaptic_equals_snntorch(reset, learn):
    kw = dict(
        alpha=0.6,
        beta=0.7,
        threshold=0.8,
        reset_mechanism=reset,
        learn_alpha=learn,
        learn_beta=learn,
        learn_threshold=learn,
    )
    ref = snn.Synaptic(**kw)  # default surrogate on both sides: atan
    ours = Synaptic(**kw)
    x = current(24, 4, 30)
    s_ref, m_ref = run_snntorch(ref, x)
    backward_with_weights(s_ref, m_ref)
    grad_ref, x.grad = x.grad, None
    s, m = ours(x, return_mem=True)
    backward_with_weights(s, m)
    assert 0.1 < s.mean() < 0.9
    assert torch.equal(s, s_ref) and torch.equal(m, m_ref)
    torch.testing.assert_close(x.grad, grad_ref, rtol=1e-5, atol=1e-5)
    if learn:
        names = ["alpha", "beta", "threshold"]
        for a, b in zip(param_grads(ours, names), param_grads(ref, names)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)


# ---- alif / plif against step-by-step references ---------------------------------------------


def alif_reference(x, beta, threshold, beta_a, decay, reset, surrogate):
    u = a = s = torch.zeros_like(x[0])
    spikes, mems = [], []
    for t in range(x.shape[0]):
        r = s.detach()
        a = decay * a + beta_a * r
        if reset == "zero":
            u = beta * (1 - r) * u + x[t]
        else:
            u = beta * u + x[t] - (threshold * r if reset == "subtract" else 0)
        s = surrogate(u - a - threshold)
        spikes.append(s)
        mems.append(u)
    return torch.stack(spikes), torch.stack(mems)


def plif_reference(x, w, threshold, reset, decay_input, detach_reset, surrogate):
    """SpikingJelly's ParametricLIFNode (v_reset=0 or None) stepped with autograd."""
    k = torch.sigmoid(w)
    v = torch.zeros_like(x[0])
    spikes, mems = [], []
    for t in range(x.shape[0]):
        h = v + (x[t] - v) * k if decay_input else v * (1 - k) + x[t]
        s = surrogate(h - threshold)
        sd = s.detach() if detach_reset else s
        v = (1 - sd) * h if reset == "zero" else h - sd * threshold
        spikes.append(s)
        mems.append(h)
    return torch.stack(spikes), torch.stack(mems)


@pytest.mark.parametrize("reset", RESETS)
def test_alif_equals_reference(reset):
    # beta and threshold exact in float32, the dtype the module's scalars are created in
    ours = ALIF(
        beta=0.75,
        threshold=0.875,
        beta_a=0.3,
        adapt_decay=0.9,
        reset_mechanism=reset,
        learn_beta=True,
        learn_threshold=True,
    ).double()
    x = current(30, 3, 20, dtype=torch.float64)
    beta = torch.tensor(0.75, dtype=torch.float64, requires_grad=True)
    threshold = torch.tensor(0.875, dtype=torch.float64, requires_grad=True)
    s_ref, m_ref = alif_reference(x, beta, threshold, 0.3, 0.9, reset, ATan())
    backward_with_weights(s_ref, m_ref)
    grad_ref, x.grad = x.grad, None
    s, m = ours(x, return_mem=True)
    backward_with_weights(s, m)
    assert 0.05 < s.mean() < 0.9
    assert torch.equal(s, s_ref)
    torch.testing.assert_close(m, m_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x.grad, grad_ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ours.beta.grad, beta.grad, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ours.threshold.grad, threshold.grad, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize(
    "surrogate", [FastSigmoid(slope=5.0), ATan(), Sigmoid(slope=4.0), Triangular(), StraightThrough()], ids=repr
)
def test_leaky_float64_gradients_equal_reference(reset, surrogate, loop):
    """Every built-in surrogate inside the fused backward (numba evaluates them inline)."""
    ours = Leaky(
        beta=0.75, threshold=0.875, reset_mechanism=reset, learn_beta=True, learn_threshold=True, surrogate=surrogate
    ).double()
    x = current(30, 3, 20, dtype=torch.float64)
    beta = torch.tensor(0.75, dtype=torch.float64, requires_grad=True)
    threshold = torch.tensor(0.875, dtype=torch.float64, requires_grad=True)
    s_ref, m_ref = alif_reference(x, beta, threshold, 0.0, 0.0, reset, surrogate)  # beta_a = 0: leaky
    backward_with_weights(s_ref, m_ref)
    grad_ref, x.grad = x.grad, None
    s, m = ours(x, return_mem=True)
    backward_with_weights(s, m)
    assert torch.equal(s, s_ref) and torch.equal(m, m_ref)
    torch.testing.assert_close(x.grad, grad_ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ours.beta.grad, beta.grad, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ours.threshold.grad, threshold.grad, rtol=1e-10, atol=1e-10)


class _Box(Surrogate):
    """A third party's surrogate without a kernel form: the fused kernels use its derivative."""

    def derivative(self, x):
        return (x.abs() < 0.25).to(x.dtype) * 2.0


class _OwnFastSigmoid(Surrogate):
    """A third party's surrogate declaring the fast-sigmoid form: evaluated inline by the kernels."""

    def derivative(self, x):
        return 1 / (10.0 * x.abs() + 1) ** 2

    def kernel_form(self):
        return KernelForm(FastSigmoid, 10.0)


@pytest.mark.parametrize("surrogate", [_Box(), _OwnFastSigmoid()], ids=["no kernel form", "fast-sigmoid form"])
def test_leaky_fused_backward_with_a_third_party_surrogate(surrogate, loop):
    assert lif_kernels.surrogate_code(surrogate)[0] == (lif_kernels.PRECOMPUTED if isinstance(surrogate, _Box) else 0)
    ours = Leaky(beta=0.75, threshold=0.875, learn_threshold=True, surrogate=surrogate).double()
    x = current(30, 3, 20, dtype=torch.float64)
    threshold = torch.tensor(0.875, dtype=torch.float64, requires_grad=True)
    s_ref, m_ref = alif_reference(
        x, torch.tensor(0.75, dtype=torch.float64), threshold, 0.0, 0.0, "subtract", surrogate
    )
    backward_with_weights(s_ref, m_ref)
    grad_ref, x.grad = x.grad, None
    s, m = ours(x, return_mem=True)
    backward_with_weights(s, m)
    torch.testing.assert_close(x.grad, grad_ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ours.threshold.grad, threshold.grad, rtol=1e-10, atol=1e-10)


def test_the_base_forward_runs_every_neuron_in_float32_under_autocast():
    x = current(6, 2, 5).detach()
    for neuron in (Leaky(), Synaptic(), ALIF(), PLIF()):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            spikes, mem = neuron(x.bfloat16(), return_mem=True)
        assert spikes.dtype == mem.dtype == torch.float32, type(neuron).__name__
    with pytest.raises(ValueError, match="expects time-major input"):
        Leaky()(torch.zeros(3))


def test_alif_threshold_rises_with_spikes():
    """Constant drive: with adaptation the neuron fires less often than leaky with the same beta."""
    x = torch.full((100, 1, 1), 0.5)
    assert ALIF(beta=0.9, beta_a=0.5, adapt_decay=0.99)(x).sum() < ALIF(beta=0.9, beta_a=0.0)(x).sum()
    assert torch.equal(ALIF(beta=0.9, beta_a=0.0)(x), Leaky(beta=0.9)(x))


@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("decay_input", [True, False])
@pytest.mark.parametrize("detach_reset", [False, True])
def test_plif_equals_spikingjelly_formulation(reset, decay_input, detach_reset):
    ours = PLIF(
        init_tau=3.0,
        threshold=0.7,
        reset_mechanism=reset,
        decay_input=decay_input,
        detach_reset=detach_reset,
        surrogate=FastSigmoid(slope=5.0),
    ).double()
    x = current(30, 3, 20, dtype=torch.float64)
    if not decay_input:
        x = (x.detach() * 0.5).requires_grad_()
    w = ours.w.detach().clone().requires_grad_()
    s_ref, m_ref = plif_reference(x, w, 0.7, reset, decay_input, detach_reset, FastSigmoid(slope=5.0))
    backward_with_weights(s_ref, m_ref)
    grad_ref, x.grad = x.grad, None
    s, m = ours(x, return_mem=True)
    backward_with_weights(s, m)
    assert 0.05 < s.mean() < 0.9
    assert torch.equal(s, s_ref)
    torch.testing.assert_close(m, m_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x.grad, grad_ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ours.w.grad, w.grad, rtol=1e-10, atol=1e-10)


def test_plif_time_constant_is_learnable_and_initialised():
    neuron = PLIF(init_tau=4.0)
    torch.testing.assert_close(1 / torch.sigmoid(neuron.w), torch.tensor(4.0))
    assert [name for name, _ in neuron.named_parameters()] == ["w"]


# ---- gradcheck of the fused functions (float64, membrane output) -----------------------------

SG = FastSigmoid(slope=5.0)


def f64(value):
    return torch.tensor(value, dtype=torch.float64, requires_grad=True)


GRADCHECKS = {
    **{
        f"leaky-{r}": (lambda r=r: (lambda x, b, th: LIFScan.apply(x, b, th, SG, r)[1], [f64(0.7), f64(0.8)]))
        for r in RESETS
    },
    **{
        f"synaptic-{r}": (
            lambda r=r: (
                lambda x, a, b, th: _SynapticFunction.apply(x, a, b, th, SG, r)[1],
                [f64(0.6), f64(0.7), f64(0.8)],
            )
        )
        for r in RESETS
    },
    **{
        f"alif-{r}": (
            lambda r=r: (lambda x, b, th: _ALIFFunction.apply(x, b, th, (0.3, 0.9), SG, r)[1], [f64(0.7), f64(0.8)])
        )
        for r in RESETS
    },
    **{
        f"plif-{r}-{d}": (
            lambda r=r, d=d: (lambda x, k: _PLIFFunction.apply(x, k, (0.8, r, d, True), SG)[1], [f64(0.4)])
        )
        for r in ["zero", "subtract"]
        for d in [True, False]
    },
}


@pytest.mark.parametrize("name", list(GRADCHECKS))
def test_gradcheck_membrane(name, loop):
    fn, params = GRADCHECKS[name]()
    x = current(8, 2, 3, dtype=torch.float64, seed=3)
    out = fn(x, *params)
    assert ((out > 0.8).sum() > 0) if not name.startswith("plif") else True
    assert torch.autograd.gradcheck(fn, (x, *params), eps=1e-6, atol=1e-7)


# ---- the module contract ----------------------------------------------------------------------

NEURONS = [Leaky, Synaptic, ALIF, PLIF]


@pytest.mark.parametrize("cls", NEURONS)
def test_contract_shapes_fresh_state_and_hooks(cls, loop):
    neuron = cls()
    assert isinstance(neuron, SpikingNeuron)
    x = current(10, 4, 3, 5, 5) * 2
    seen = []
    neuron.register_forward_hook(lambda m, i, o: seen.append(o))
    spikes = neuron(x)
    again, mem = neuron(x, return_mem=True)
    assert spikes.shape == mem.shape == x.shape
    assert torch.equal(spikes, again)  # fresh state on every call
    assert seen[0] is spikes and set(spikes.unique().tolist()) == {0.0, 1.0}
    with torch.no_grad():
        s_eval, m_eval = neuron(x, return_mem=True)
        assert torch.equal(neuron(x), spikes)
    assert torch.equal(s_eval, spikes) and torch.equal(m_eval, mem)


@pytest.mark.parametrize("cls", NEURONS)
def test_time_expanded_input_equals_materialised(cls):
    img = current(4, 6)
    expanded = img.unsqueeze(0).expand(12, 4, 6)
    spikes = cls()(expanded)
    spikes.sum().backward()
    grad, img.grad = img.grad, None
    materialised = img.unsqueeze(0).repeat(12, 1, 1)
    ref = cls()(materialised)
    ref.sum().backward()
    assert torch.equal(spikes, ref)
    torch.testing.assert_close(grad, img.grad)


def test_channels_last_layout_is_kept():
    x = torch.randn(5 * 2, 3, 4, 4).contiguous(memory_format=torch.channels_last).unflatten(0, (5, 2))
    spikes = Leaky()(x)
    assert spikes[0].is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(spikes, Leaky()(x.contiguous()))


def test_low_precision_input_runs_in_float32():
    x = current(10, 4, 8).detach().bfloat16().requires_grad_()
    spikes, mem = Leaky(beta=0.9)(x, return_mem=True)
    assert spikes.dtype == mem.dtype == torch.float32
    spikes.sum().backward()
    assert x.grad.dtype == torch.bfloat16
    assert torch.equal(spikes, Leaky(beta=0.9)(x.detach().float()))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Leaky(beta=1.5), "beta must be between 0 and 1"),
        (lambda: Leaky(beta=-0.1), "beta must be between 0 and 1"),
        (lambda: Leaky(reset_mechanism="sub"), "reset_mechanism must be one of"),
        (lambda: Leaky(threshold=0.0), "threshold must be a positive number"),
        (lambda: Synaptic(alpha=2.0), "alpha must be between 0 and 1"),
        (lambda: ALIF(beta_a=-1.0), "beta_a must be zero or positive"),
        (lambda: ALIF(adapt_decay=1.1), "adapt_decay must be between 0 and 1"),
        (lambda: PLIF(init_tau=1.0), "init_tau must be greater than 1"),
        (lambda: PLIF(reset_mechanism="none"), "reset_mechanism must be one of 'zero', 'subtract'"),
        (lambda: Leaky(surrogate="atan"), "surrogate must have __call__ and derivative"),
    ],
)
def test_bad_values_raise_value_error(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_registered_neurons():
    seen = {}
    register_neurons(lambda name, ref, **options: seen.__setitem__(name, ref))
    assert seen == {
        "leaky": "snnframe.builtins.neurons.leaky:Leaky",
        "synaptic": "snnframe.builtins.neurons.synaptic:Synaptic",
        "alif": "snnframe.builtins.neurons.alif:ALIF",
        "plif": "snnframe.builtins.neurons.plif:PLIF",
    }
