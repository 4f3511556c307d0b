"""rleaky, rsynaptic and alpha: equal to snnTorch's RLeaky, RSynaptic and Alpha on the same input and weights.

Forward: spikes and membrane bitwise equal (the same operations in the same order). Backward:
input, weight and parameter gradients close to autograd through snnTorch's modules (float32),
and equal to a float64 step-by-step autograd reference (which also covers what snnTorch cannot
do: a learnt alpha of the alpha neuron).
"""

import pytest
import snntorch as snn
import torch
from snntorch import surrogate as snn_surrogate

from snnframe.builtins.neurons import register_neurons
from snnframe.builtins.neurons.alpha import Alpha
from snnframe.builtins.neurons.leaky import Leaky
from snnframe.builtins.neurons.recurrent import RLeaky, RSynaptic
from snnframe.engine.neuron import SpikingNeuron
from snnframe.engine.surrogate import FastSigmoid

RESETS = ["subtract", "zero", "none"]
LAYERS = {"linear": (16,), "conv": (3, 6, 6), "one-to-one": (16,)}


def current(*shape, dtype=torch.float32, seed=0, scale=0.8, shift=0.4):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g, dtype=dtype) * scale + shift).requires_grad_()


def weighted_backward(spikes, mem, seed=1):
    g = torch.Generator().manual_seed(seed)
    ws, wm = torch.randn(spikes.shape, generator=g), torch.randn(mem.shape, generator=g)
    (spikes * ws.to(spikes.dtype) + mem * wm.to(mem.dtype)).sum().backward()


def step_snntorch(ref, x):
    """snnTorch's neuron stepped with explicit state: spikes and membrane stacked over time.

    The recurrent neurons take their spikes back as state (``forward(x, spk, ...)``), ``Alpha`` does not.
    """
    spikes, mems, state = [], [], None
    for t in range(x.shape[0]):
        out = ref(x[t]) if state is None else ref(x[t], *state)
        spikes.append(out[0])
        mems.append(out[-1])
        state = out[1:] if isinstance(ref, snn.Alpha) else out
    return torch.stack(spikes), torch.stack(mems)


def compare(ours, ref, x, names, rtol=1e-4, atol=1e-4):
    s_ref, m_ref = step_snntorch(ref, x)
    weighted_backward(s_ref, m_ref)
    grad_ref, x.grad = x.grad, None
    s, m = ours(x, return_mem=True)
    weighted_backward(s, m)
    assert 0.1 < s.mean() < 0.9  # both spiking and silent steps: the resets and surrogates are exercised
    assert torch.equal(s, s_ref) and torch.equal(m, m_ref)
    torch.testing.assert_close(x.grad, grad_ref, rtol=1e-5, atol=1e-5)
    for name in names:
        a, b = ours.get_parameter(name).grad, ref.get_parameter(name).grad
        scale = b.abs().max().clamp(min=1.0)  # parameter gradients sum over steps, batch and neurons
        torch.testing.assert_close(a / scale, b / scale, rtol=rtol, atol=atol, msg=name)


def recurrent_pair(cls, ref_cls, layer, reset, learn, **kw):
    shape = LAYERS[layer]
    common = dict(threshold=0.8, reset_mechanism=reset, learn_beta=learn, learn_threshold=learn, **kw)
    if layer == "one-to-one":
        ref = ref_cls(all_to_all=False, V=0.3, learn_recurrent=True, **common)
        ours = cls(all_to_all=False, V=0.3, **common)
    elif layer == "linear":
        ref = ref_cls(linear_features=shape[0], **common)
        ours = cls(shape=shape, **common)
    else:
        ref = ref_cls(conv2d_channels=shape[0], kernel_size=3, **common)
        ours = cls(shape=shape, kernel_size=3, **common)
    if layer != "one-to-one":
        ours.recurrent.load_state_dict(ref.recurrent.state_dict())  # the same weights
    names = ["V"] if layer == "one-to-one" else ["recurrent.weight", "recurrent.bias"]
    if learn:
        names += ["beta", "threshold"]
    return ours, ref, shape, names


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.parametrize("learn", [False, True])
def test_rleaky_equals_snntorch(reset, layer, learn):
    ours, ref, shape, names = recurrent_pair(RLeaky, snn.RLeaky, layer, reset, learn, beta=0.7)
    compare(ours, ref, current(20, 4, *shape), names)


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.parametrize("learn", [False, True])
def test_rsynaptic_equals_snntorch(reset, layer, learn):
    ours, ref, shape, names = recurrent_pair(
        RSynaptic, snn.RSynaptic, layer, reset, learn, alpha=0.6, beta=0.7, learn_alpha=learn
    )
    compare(ours, ref, current(20, 4, *shape), names + (["alpha"] if learn else []))


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("learn", [False, True])
def test_alpha_equals_snntorch(reset, learn):
    kw = dict(alpha=0.9, beta=0.7, threshold=0.8, reset_mechanism=reset, learn_beta=learn, learn_threshold=learn)
    ref = snn.Alpha(spike_grad=snn_surrogate.fast_sigmoid(slope=25), **kw)
    ours = Alpha(surrogate=FastSigmoid(slope=25), **kw)
    compare(ours, ref, current(30, 4, 16), ["beta", "threshold"] if learn else [])


def test_the_seeds_default_surrogate_and_reset_of_alpha():
    ref, ours = snn.Alpha(alpha=0.8, beta=0.5), Alpha(alpha=0.8, beta=0.5)  # atan, reset "zero" on both sides
    assert ours.reset_mechanism == "zero"
    compare(ours, ref, current(30, 4, 16), [])


# ---- float64 references: step-by-step autograd with the same surrogate ---------------------


def reference(kind, x, params, reset, surrogate, recurrent=None):
    """snnTorch's equations stepped with autograd (float64); ``recurrent``: spikes -> current."""
    alpha, beta, threshold = params.get("alpha"), params["beta"], params["threshold"]
    zeros = torch.zeros_like(x[0])
    spikes, mems = [], []
    mem, syn, spk, exc, inh = zeros, zeros, zeros, zeros, zeros
    if kind == "alpha":
        tau = torch.log(alpha) / (torch.log(beta) - torch.log(alpha)) + 1
    for t in range(x.shape[0]):
        r = (mem > threshold).to(x.dtype)  # detached: a comparison
        if kind == "alpha":
            e_hat, n_hat = alpha * exc + x[t], beta * inh - x[t]
            u_hat = tau * (e_hat + n_hat)
            if reset == "zero":
                exc, inh, mem = e_hat * (1 - r), n_hat * (1 - r), u_hat * (1 - r)
            elif reset == "subtract":
                exc, inh, mem = e_hat - threshold * r, n_hat * (1 - r), u_hat + inh * r
            else:
                exc, inh, mem = e_hat, n_hat, u_hat
        else:
            q = recurrent(spk)
            if kind == "rsynaptic":
                syn = alpha * syn + x[t] + q
                base = beta * mem + syn
            else:
                base = beta * mem + x[t] + q
            mem = {"subtract": base - threshold * r, "zero": base * (1 - r), "none": base}[reset]
        spk = surrogate(mem - threshold)
        spikes.append(spk)
        mems.append(mem)
    return torch.stack(spikes), torch.stack(mems)


def f64(value):
    return torch.tensor(value, dtype=torch.float64)


@pytest.mark.parametrize("kind", ["rleaky", "rsynaptic"])
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("layer", list(LAYERS))
def test_recurrent_gradients_equal_a_float64_reference(kind, reset, layer):
    shape = LAYERS[layer]
    sg = FastSigmoid(slope=5.0)
    kw = dict(surrogate=sg, beta=0.7, threshold=0.8, reset_mechanism=reset, learn_beta=True, learn_threshold=True)
    if kind == "rsynaptic":
        kw.update(alpha=0.6, learn_alpha=True)
    cls = RLeaky if kind == "rleaky" else RSynaptic
    if layer == "one-to-one":
        ours = cls(all_to_all=False, V=0.3, **kw).double()
    else:
        ours = cls(shape=shape, **kw).double()
    x = current(12, 3, *shape, dtype=torch.float64, seed=2)
    s, m = ours(x, return_mem=True)
    weighted_backward(s, m)
    grads = {"x": x.grad, **{n: p.grad for n, p in ours.named_parameters()}}
    x.grad = None
    params = {n: p.detach().clone().requires_grad_() for n, p in ours.named_parameters()}
    if layer == "one-to-one":

        def recurrent(spk):
            return spk * params["V"]
    elif layer == "linear":

        def recurrent(spk):
            return torch.nn.functional.linear(spk, params["recurrent.weight"], params["recurrent.bias"])
    else:

        def recurrent(spk):
            return torch.nn.functional.conv2d(spk, params["recurrent.weight"], params["recurrent.bias"], padding=1)

    s_ref, m_ref = reference(kind, x, params, reset, sg, recurrent)
    weighted_backward(s_ref, m_ref)
    assert torch.equal(s, s_ref.detach())
    torch.testing.assert_close(m, m_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grads["x"], x.grad, rtol=1e-10, atol=1e-10)
    for name, p in params.items():
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-10, atol=1e-10, msg=name)


@pytest.mark.parametrize("reset", RESETS)
def test_alpha_gradients_equal_a_float64_reference_with_alpha_learnt(reset):
    sg = FastSigmoid(slope=5.0)
    kw = dict(alpha=0.9, beta=0.7, threshold=0.8, reset_mechanism=reset)
    ours = Alpha(surrogate=sg, learn_alpha=True, learn_beta=True, learn_threshold=True, **kw).double()
    x = current(25, 3, 8, dtype=torch.float64, seed=4)
    s, m = ours(x, return_mem=True)
    weighted_backward(s, m)
    grads = {"x": x.grad, **{n: p.grad for n, p in ours.named_parameters()}}
    x.grad = None
    params = {n: p.detach().clone().requires_grad_() for n, p in ours.named_parameters()}
    s_ref, m_ref = reference("alpha", x, params, reset, sg)
    weighted_backward(s_ref, m_ref)
    assert 0.05 < s.mean() < 0.95
    assert torch.equal(s, s_ref.detach())
    torch.testing.assert_close(grads["x"], x.grad, rtol=1e-10, atol=1e-10)
    for name, p in params.items():
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-9, atol=1e-9, msg=name)


# ---- the module contract ----------------------------------------------------------------------


MAKERS = {
    "rleaky": lambda shape: RLeaky(shape=shape),
    "rsynaptic": lambda shape: RSynaptic(shape=shape),
    "rleaky-one-to-one": lambda shape: RLeaky(all_to_all=False),
    "alpha": lambda shape: Alpha(),
}


@pytest.mark.parametrize("name", list(MAKERS))
@pytest.mark.parametrize("shape", [(6,), (3, 5, 5)])
def test_contract_shapes_fresh_state_no_grad_and_hooks(name, shape):
    neuron = MAKERS[name](shape)
    assert isinstance(neuron, SpikingNeuron) and neuron.binary_spikes
    x = current(10, 4, *shape, scale=2.0)
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


@pytest.mark.parametrize("name", list(MAKERS))
def test_time_expanded_input_equals_materialised(name):
    neuron = MAKERS[name]((6,))
    img = current(4, 6)
    spikes = neuron(img.unsqueeze(0).expand(12, 4, 6))
    spikes.sum().backward()
    grad, img.grad = img.grad, None
    ref = neuron(img.unsqueeze(0).repeat(12, 1, 1))
    ref.sum().backward()
    assert torch.equal(spikes, ref)
    torch.testing.assert_close(grad, img.grad)


def test_low_precision_input_runs_in_float32():
    x = current(10, 4, 8).detach().bfloat16().requires_grad_()
    neuron = RLeaky(shape=(8,), beta=0.9)
    spikes, mem = neuron(x, return_mem=True)
    assert spikes.dtype == mem.dtype == torch.float32
    spikes.sum().backward()
    assert x.grad.dtype == torch.bfloat16 and neuron.recurrent.weight.grad.dtype == torch.float32


def test_zero_recurrent_weights_give_the_leaky_neuron():
    """recurrent_init = "zeros": a feed-forward layer to start with (subtract, none: as leaky, bit for bit)."""
    x = current(20, 4, 16)
    for reset in ["subtract", "none"]:
        r = RLeaky(shape=(16,), beta=0.6, reset_mechanism=reset, recurrent_init="zeros")
        assert not r.recurrent.weight.any() and not r.recurrent.bias.any()
        assert torch.equal(r(x), Leaky(beta=0.6, reset_mechanism=reset)(x))


def test_learn_recurrent_false_freezes_the_weights():
    neuron = RLeaky(shape=(8,), learn_recurrent=False)
    assert not any(p.requires_grad for p in neuron.recurrent.parameters())
    x = current(6, 2, 8)
    neuron(x).sum().backward()
    assert x.grad is not None and neuron.recurrent.weight.grad is None
    assert RLeaky(all_to_all=False, learn_recurrent=False).V.requires_grad is False
    assert RLeaky(all_to_all=False).V.requires_grad is True


def test_recurrent_weights_match_snntorchs_layout():
    assert isinstance(RLeaky(shape=(32,)).recurrent, torch.nn.Linear)
    conv = RSynaptic(shape=(12, 8, 8), kernel_size=5).recurrent
    assert isinstance(conv, torch.nn.Conv2d)
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.padding) == (12, 12, (5, 5), (2, 2))
    keys = set(snn.RLeaky(beta=0.5, linear_features=32).state_dict())
    assert {"recurrent.weight", "recurrent.bias"} <= keys & set(RLeaky(shape=(32,)).state_dict())


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: RLeaky(), "needs the shape of its layer"),
        (lambda: RLeaky(shape=(3, 4)), r"fit a layer of features \(n,\) or of channels \(C, H, W\)"),
        (lambda: RLeaky(shape=(3, 4, 4), kernel_size=2), "must be an odd positive integer"),
        (lambda: RSynaptic(shape=(4,), alpha=1.5), "alpha must be between 0 and 1"),
        (lambda: RLeaky(shape=(4,), recurrent_init="ones"), "recurrent_init must be 'default' or 'zeros'"),
        (lambda: RLeaky(shape=(4,), threshold=0), "threshold must be a positive number"),
        (lambda: Alpha(alpha=0.5, beta=0.8), "alpha must be greater than beta"),
        (lambda: Alpha(alpha=0.9, beta=0.9), "alpha must be greater than beta"),
        (lambda: Alpha(reset_mechanism="sub"), "reset_mechanism must be one of"),
    ],
)
def test_bad_values_raise_value_error(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_input_of_another_shape_is_an_error():
    with pytest.raises(ValueError, match=r"built for layers of shape \(8,\), got input \(5, 2, 9\)"):
        RLeaky(shape=(8,))(torch.rand(5, 2, 9))


def test_registered_neurons():
    seen = {}
    register_neurons(lambda name, ref, **options: seen.__setitem__(name, ref))
    assert {k: seen[k] for k in ("rleaky", "rsynaptic", "alpha")} == {
        "rleaky": "snnframe.builtins.neurons.recurrent:RLeaky",
        "rsynaptic": "snnframe.builtins.neurons.recurrent:RSynaptic",
        "alpha": "snnframe.builtins.neurons.alpha:Alpha",
    }
