"""The multi-step engine: time folding, static-input hoisting, chunking, and the seed's snnTorch loop."""

import pytest
import snntorch as snn
import torch
from snntorch import surrogate as snn_surrogate
from snntorch import utils as snn_utils
from torch import nn

from snnframe.builtins.models.csnn import csnn
from snnframe.builtins.models.mlp import mlp
from snnframe.builtins.neurons.leaky import Leaky
from snnframe.engine.sequential import SpikingSequential, is_static
from snnframe.engine.surrogate import FastSigmoid


def seed_leaky():
    return Leaky(beta=0.5, surrogate=FastSigmoid(slope=25))


def small_csnn(dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    net = csnn(input_shape=(1, 16, 16), num_classes=4, neuron=seed_leaky, channels=[4, 8], kernel_size=3)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(4)  # enough drive for every layer to spike
    return net.to(dtype)


def images(batch=5, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 1, 16, 16, generator=g, dtype=dtype)


def grads(net):
    return [p.grad.clone() for p in net.parameters()]


def run(net, x):
    out = net(x)
    (out * torch.linspace(-1, 1, out.shape[-1], dtype=out.dtype)).sum().backward()
    return out


def test_static_input_is_detected_by_stride():
    img = images()
    assert is_static(img.unsqueeze(0).expand(7, *img.shape))
    assert not is_static(img.unsqueeze(0).repeat(7, 1, 1, 1, 1))
    assert not is_static(img.unsqueeze(0).expand(1, *img.shape))


def test_hoisted_static_input_equals_materialised_input():
    img = images(dtype=torch.float32).requires_grad_()
    net = small_csnn(torch.float32)
    out = run(net, img.unsqueeze(0).expand(9, *img.shape))
    hoisted_grads, hoisted_input_grad = grads(net), img.grad.clone()
    net.zero_grad()
    img.grad = None
    ref = run(net, img.unsqueeze(0).repeat(9, 1, 1, 1, 1))
    assert 0.02 < out.mean() < 0.9
    assert torch.equal(out, ref)
    for a, b in zip(hoisted_grads, grads(net)):  # summed over T in another order: float32 rounding
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(hoisted_input_grad, img.grad, rtol=1e-5, atol=1e-6)


def test_layers_before_the_first_neuron_run_once_and_are_not_copied_over_time():
    net = small_csnn(torch.float32)
    batches, handed = [], []
    net[0].register_forward_hook(lambda m, i, o: batches.append(i[0].shape[0]))
    net[1].register_forward_hook(lambda m, i, o: handed.append(o))
    first_neuron_inputs = []
    net[2].register_forward_pre_hook(lambda m, i: first_neuron_inputs.append(i[0]))
    img = images(dtype=torch.float32)
    net(img.unsqueeze(0).expand(20, *img.shape)).sum().backward()
    assert batches == [5]  # conv1 saw B samples, not T * B
    x = first_neuron_inputs[0]
    assert x.shape[:2] == (20, 5) and x.stride(0) == 0
    assert x.data_ptr() == handed[0].data_ptr()  # a view of the pooled activation
    assert x.untyped_storage().nbytes() == handed[0].numel() * 4  # one step's worth of memory


def test_time_varying_input_is_folded_into_the_batch():
    net = small_csnn(torch.float32)
    batches = []
    net[0].register_forward_hook(lambda m, i, o: batches.append(i[0].shape[0]))
    net.fold_chunk = 0
    net(torch.rand(6, 5, 1, 16, 16))
    assert batches == [30]


def test_chunked_folding_equals_one_chunk():
    x = torch.rand(7, 5, 1, 16, 16)
    net = small_csnn(torch.float32)
    net.fold_chunk = 0
    ref = run(net, x)
    ref_grads = grads(net)
    net.zero_grad()
    net.fold_chunk = 8  # 35 samples in 5 chunks, the last one short
    out = run(net, x)
    assert torch.equal(out, ref)
    for a, b in zip(grads(net), ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_only_segments_with_an_intermediate_are_chunked():
    net = small_csnn(torch.float32)
    net.fold_chunk = 8
    seen = {"conv": [], "linear": []}
    net[3].register_forward_hook(lambda m, i, o: seen["conv"].append(i[0].shape[0]))  # conv -> pool: chunked
    net[7].register_forward_hook(lambda m, i, o: seen["linear"].append(i[0].shape[0]))  # flatten -> linear: not
    net(torch.rand(7, 5, 1, 16, 16))
    assert seen == {"conv": [8, 8, 8, 8, 3], "linear": [35]}


def test_mlp_static_hoisting_and_explicit_neuron_indices():
    torch.manual_seed(0)
    net = mlp(input_shape=(1, 4, 4), num_classes=3, neuron=seed_leaky, hidden=[8]).double()
    img = images(3)[:, :, :4, :4]
    a = net(img.unsqueeze(0).expand(5, *img.shape))
    b = net(img.unsqueeze(0).repeat(5, 1, 1, 1, 1))
    assert torch.equal(a, b) and a.shape == (5, 3, 3)
    assert net.neuron_indices == (2, 4)


def test_a_stack_without_neurons_still_returns_time_major_output():
    net = SpikingSequential(nn.Flatten(), nn.Linear(4, 2))
    img = torch.rand(3, 4)
    assert net(img.unsqueeze(0).expand(6, 3, 4)).shape == (6, 3, 2)
    assert net(torch.rand(6, 3, 4)).shape == (6, 3, 2)
    with pytest.raises(ValueError, match="time-major"):
        net(torch.rand(4))


@pytest.mark.parametrize("static", [True, False])
def test_equals_the_seeds_snntorch_loop(static):
    """Same weights and batch as the seed's nn.Sequential of snn.Leaky stepped in Python.

    Per-sample convolution results do not depend on the batch size they run in, so the
    spikes are equal bit for bit; gradients agree to float32 rounding.
    """
    torch.manual_seed(0)
    grad = snn_surrogate.fast_sigmoid(slope=25)
    seed = nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.MaxPool2d(2),
        snn.Leaky(beta=0.5, spike_grad=grad, init_hidden=True),
        nn.Conv2d(4, 8, 3),
        nn.MaxPool2d(2),
        snn.Leaky(beta=0.5, spike_grad=grad, init_hidden=True),
        nn.Flatten(),
        nn.Linear(32, 4),
        snn.Leaky(beta=0.5, spike_grad=grad, init_hidden=True, output=True),
    )
    net = small_csnn(torch.float32)
    with torch.no_grad():
        for name, p in seed.named_parameters():
            p.copy_(dict(net.named_parameters())[name])
    steps = 12
    x = images(6, torch.float32).unsqueeze(0).expand(steps, 6, 1, 16, 16)
    if not static:
        x = (torch.rand(x.shape, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    snn_utils.reset(seed)
    ref = torch.stack([seed(x[t])[0] for t in range(steps)])
    (ref * torch.linspace(-1, 1, 4)).sum().backward()
    out = run(net, x)
    assert 0.02 < out.mean() < 0.9
    assert torch.equal(out, ref)
    for name, p in seed.named_parameters():
        torch.testing.assert_close(dict(net.named_parameters())[name].grad, p.grad, rtol=1e-4, atol=1e-5)


def test_freed_host_memory_is_kept_unless_disabled(monkeypatch):
    import sys

    from snnframe.engine import host_memory

    monkeypatch.setattr(host_memory, "_applied", False)
    monkeypatch.setenv("SNNFRAME_KEEP_FREED_MEMORY", "0")
    assert host_memory.keep_freed_memory() is False
    monkeypatch.delenv("SNNFRAME_KEEP_FREED_MEMORY")
    assert host_memory.keep_freed_memory() is sys.platform.startswith("linux")


def test_kept_freed_memory_is_released_on_request_unless_disabled(monkeypatch):
    import sys

    from snnframe.engine import host_memory

    monkeypatch.setattr(host_memory, "_applied", False)
    monkeypatch.setattr(host_memory, "_libc", None)
    assert host_memory.release_freed_memory() is False  # nothing kept, nothing to release
    monkeypatch.delenv("SNNFRAME_KEEP_FREED_MEMORY", raising=False)
    monkeypatch.delenv("SNNFRAME_RELEASE_BEFORE_WORKERS", raising=False)
    if not host_memory.keep_freed_memory():
        assert not sys.platform.startswith("linux")
        return
    assert host_memory.release_freed_memory() is True
    monkeypatch.setenv("SNNFRAME_RELEASE_BEFORE_WORKERS", "0")
    assert host_memory.release_freed_memory() is False


def test_a_training_forward_leaves_the_allocator_alone(monkeypatch):
    from snnframe.engine import host_memory

    monkeypatch.setattr(host_memory, "_applied", False)
    monkeypatch.delenv("SNNFRAME_KEEP_FREED_MEMORY", raising=False)
    run(small_csnn(), images().unsqueeze(0).expand(4, 5, 1, 16, 16))
    assert host_memory._applied is False  # process-wide: the trainer decides, not the model
