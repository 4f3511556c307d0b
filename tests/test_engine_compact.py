"""Compact saved tensors: uint8 max-pool offsets, uint8 spikes, views instead of copies."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from snnframe.builtins.models.csnn import csnn
from snnframe.builtins.neurons.leaky import Leaky
from snnframe.engine import compact
from snnframe.engine.kernels import maxpool as pool_kernels
from snnframe.engine.surrogate import FastSigmoid


@pytest.fixture(params=["numba", "torch"])
def backend(request, monkeypatch):
    monkeypatch.setenv("SNNFRAME_NUMBA", "1" if request.param == "numba" else "0")
    return request.param


@pytest.mark.parametrize("k, size", [(2, 8), (2, 11), (3, 9)])
def test_max_pool_equals_pytorchs_with_ties(backend, k, size):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 3, (4, 5, size, size), generator=g).float()  # many ties
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    grad = torch.randn(4, 5, size // k, size // k, generator=g)
    ref = F.max_pool2d(x, k)
    ref.backward(grad)
    ref_grad, x.grad = x.grad, None
    out = compact._CompactMaxPool2d.apply(x, k)
    out.backward(grad)
    assert torch.equal(out, ref)
    assert torch.equal(x.grad, ref_grad)  # the same (first) maximum of each window gets the gradient


def test_max_pool_offsets_are_uint8_and_nan_wins(backend):
    x = torch.tensor([[1.0, 5.0], [float("nan"), 2.0]]).view(1, 1, 2, 2)
    out, offsets = pool_kernels.max_pool_forward(x, 2)
    assert torch.isnan(out).all() and offsets.dtype == torch.uint8 and offsets.item() == 2
    assert torch.isnan(F.max_pool2d(x, 2)).all()


def saved_tensors(fn):
    """Run ``fn`` and return the tensors autograd saved for backward."""
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = fn()
    return out, saved


@pytest.mark.parametrize("binary", [True, False])
def test_compact_conv_and_linear_gradients_equal_the_plain_layers(binary):
    torch.manual_seed(0)
    conv, lin = nn.Conv2d(3, 4, 3, padding=1, stride=2), nn.Linear(12, 5)
    x = (torch.rand(6, 3, 9, 9) < 0.3).float() if binary else torch.randn(6, 3, 9, 9)
    x.requires_grad_()
    xl = (torch.rand(6, 12) < 0.3).float().requires_grad_()
    ref = (conv(x) ** 2).sum() + (lin(xl) ** 2).sum()
    ref.backward()
    refs = [t.grad.clone() for t in (x, xl, conv.weight, conv.bias, lin.weight, lin.bias)]
    for t in (x, xl, conv.weight, conv.bias, lin.weight, lin.bias):
        t.grad = None
    out, saved = saved_tensors(
        lambda: (compact.apply(conv, x, binary) ** 2).sum() + (compact.apply(lin, xl, True) ** 2).sum()
    )
    out.backward()
    torch.testing.assert_close(out, ref)
    for got, want in zip([t.grad for t in (x, xl, conv.weight, conv.bias, lin.weight, lin.bias)], refs):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    inputs = [t for t in saved if t.shape in (x.shape, xl.shape)]
    assert [t.dtype for t in inputs] == ([torch.uint8] if binary else [torch.float32]) + [torch.uint8]
    if not binary:
        assert inputs[0] is x  # the input itself, not a channels-last copy


def test_csnn_saves_less_than_half_for_backward():
    def run(save_compact):
        torch.manual_seed(0)
        net = csnn(input_shape=(2, 34, 34), num_classes=10, neuron=lambda: Leaky(beta=0.5, surrogate=FastSigmoid()))
        net.compact_saves = save_compact
        x = (torch.rand(20, 4, 2, 34, 34, generator=torch.Generator().manual_seed(1)) < 0.05).float()
        out, saved = saved_tensors(lambda: net(x))
        out.sum().backward()
        storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in saved}
        return out, sum(storages.values()) - x.numel() * 4 * (x.untyped_storage().data_ptr() in storages), net

    out, compact_bytes, net = run(True)
    ref, plain_bytes, ref_net = run(False)
    assert torch.equal(out, ref)
    for p, q in zip(net.parameters(), ref_net.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5)
    assert compact_bytes < 0.45 * plain_bytes


def test_bf16_autocast_trains_with_float32_parameters():
    torch.manual_seed(0)
    net = csnn(input_shape=(1, 16, 16), num_classes=4, neuron=lambda: Leaky(beta=0.5), channels=[4, 8], kernel_size=3)
    img = torch.rand(5, 1, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(img.unsqueeze(0).expand(6, *img.shape))
        loss = F.cross_entropy(out.sum(0), torch.arange(5) % 4)
    loss.backward()
    assert out.dtype == torch.float32 and torch.isfinite(loss)
    assert all(
        p.grad is not None and p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all() for p in net.parameters()
    )


WEIGHT_GRAD_KERNELS = ["conv_pool_weight_grad", "conv_pool_weight_grad_unpooled"]


def force_weight_grad_kernel(monkeypatch, name):
    from snnframe.engine import sparse_conv

    monkeypatch.setattr(sparse_conv, "_weight_grad_kernel", lambda *args: getattr(sparse_conv._numba(), name))


@pytest.mark.parametrize("kernel", WEIGHT_GRAD_KERNELS)
@pytest.mark.parametrize("channels, size, k, p", [(2, 17, 5, 2), (3, 20, 3, 3), (1, 14, 4, 2)])
def test_event_driven_conv_pool_equals_dense(channels, size, k, p, kernel, monkeypatch):
    from snnframe.engine import sparse_conv

    force_weight_grad_kernel(monkeypatch, kernel)
    torch.manual_seed(0)
    conv, pool = nn.Conv2d(channels, 6, k), nn.MaxPool2d(p)
    x = (torch.rand(40, channels, size, size, generator=torch.Generator().manual_seed(2)) < 0.03).float() * 2
    assert sparse_conv.applicable(conv, pool, x) == p
    out = sparse_conv.conv_pool(conv, p, x)
    assert out.grad_fn.active == int(torch.count_nonzero(x))  # counted by the forward kernel, for backward's choice
    ref = pool(conv(x))
    grad = torch.randn(ref.shape, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    (out * grad).sum().backward()
    got = [conv.weight.grad.clone(), conv.bias.grad.clone()]
    conv.zero_grad()
    (ref * grad).sum().backward()
    torch.testing.assert_close(got[0], conv.weight.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got[1], conv.bias.grad, rtol=1e-4, atol=1e-4)
    conv.zero_grad()
    conv.weight.requires_grad_(False)  # the bias gradient alone
    (sparse_conv.conv_pool(conv, p, x) * grad).sum().backward()
    torch.testing.assert_close(conv.bias.grad, got[1], rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        x[0, -1, 4, 4] = float("nan")  # NaN wins its pooling windows, as in PyTorch
        torch.testing.assert_close(
            sparse_conv.conv_pool(conv, p, x), pool(conv(x)), rtol=1e-5, atol=1e-5, equal_nan=True
        )


def test_event_driven_conv_pool_is_used_only_where_it_applies():
    from snnframe.engine import sparse_conv

    conv, pool = nn.Conv2d(2, 6, 5), nn.MaxPool2d(2)
    sparse = (torch.rand(8, 2, 17, 17) < 0.02).float()
    assert sparse_conv.applicable(conv, pool, sparse) == 2
    assert sparse_conv.applicable(conv, pool, torch.rand(8, 2, 17, 17)) is None  # dense input
    assert sparse_conv.applicable(conv, pool, sparse.requires_grad_()) is None  # needs an input gradient, not spikes
    assert sparse_conv.applicable(conv, pool, sparse, binary=True) == 2  # a hidden layer's spikes
    assert sparse_conv.applicable(nn.Conv2d(2, 6, 5, padding=2), pool, sparse.detach()) is None
    conv.register_forward_hook(lambda *a: None)
    assert sparse_conv.applicable(conv, pool, sparse.detach()) is None  # hooks must see the layer run


@pytest.mark.parametrize("kernel", WEIGHT_GRAD_KERNELS)
@pytest.mark.parametrize("size, k, p", [(12, 5, 2), (15, 5, 2), (11, 3, 3), (16, 3, 3)])
def test_event_driven_conv_pool_on_hidden_spikes_equals_dense_with_input_gradient(size, k, p, kernel, monkeypatch):
    from snnframe.engine import sparse_conv

    force_weight_grad_kernel(monkeypatch, kernel)
    # 15 -> 11 -> pooled 5 and 16 -> 14 -> pooled 4: input rows/columns the pool never reaches
    torch.manual_seed(0)
    conv, pool = nn.Conv2d(12, 16, k), nn.MaxPool2d(p)
    spikes = (torch.rand(30, 12, size, size, generator=torch.Generator().manual_seed(2)) < 0.04).float()
    x = spikes.contiguous(memory_format=torch.channels_last).requires_grad_()
    assert sparse_conv.applicable(conv, pool, x, binary=True) == p
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = sparse_conv.conv_pool(conv, p, x, binary=True)
    assert any(t.dtype == torch.uint8 and t.shape == x.shape for t in saved)  # the spikes, 4x smaller
    assert not any(t.dtype == torch.float32 and t.shape == x.shape for t in saved)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(3))
    (out * grad).sum().backward()
    got = [x.grad.clone(), conv.weight.grad.clone(), conv.bias.grad.clone()]
    x.grad = None
    conv.zero_grad()
    ref = pool(conv(x))
    (ref * grad).sum().backward()
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    for g, r in zip(got, [x.grad, conv.weight.grad, conv.bias.grad]):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-4)


def test_weight_gradient_unpools_first_once_the_inputs_taps_cover_the_pooled_positions():
    from snnframe.engine import sparse_conv

    kernels = sparse_conv._numba()
    # 100 samples of a 5x5 conv pooled 2x2 to 15x15 (conv positions covered: 30 x 30 = 900 each)
    chosen = lambda active, channels: sparse_conv._weight_grad_kernel(active, 5, 2, (100, channels, 15, 15))
    assert chosen(36 * 100, 12) is kernels.conv_pool_weight_grad_unpooled  # 36 x 25 taps >= 900
    assert chosen(35 * 100, 12) is kernels.conv_pool_weight_grad
    assert chosen(0, 12) is kernels.conv_pool_weight_grad  # a silent layer: no pass over the conv output
    assert chosen(36 * 100, 64) is kernels.conv_pool_weight_grad_unpooled  # wide outputs alike
    assert chosen(35 * 100, 64) is kernels.conv_pool_weight_grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_winner_driven_input_gradient_equals_the_transposed_convolution(dtype):
    from snnframe.engine import sparse_conv

    # a gradient with zeros (a surrogate with bounded support passes none back), windows of 2x2
    g = torch.Generator().manual_seed(4)
    weight = torch.randn(7, 5, 3, 3, generator=g, dtype=dtype)
    grad = torch.randn(6, 7, 4, 4, generator=g, dtype=dtype) * (torch.rand(6, 7, 4, 4, generator=g) < 0.5)
    offsets = torch.randint(0, 4, grad.shape, generator=g, dtype=torch.uint8)
    full = torch.zeros(6, 7, 9, 9, dtype=dtype)  # conv output 9x9: row and column 8 are never pooled
    for dy in range(2):
        for dx in range(2):
            full[:, :, dy:8:2, dx:8:2] = grad * (offsets == dy * 2 + dx)
    ref = F.conv_transpose2d(full, weight)  # the input, 11x11
    channels_last = [t.contiguous(memory_format=torch.channels_last) for t in (grad, offsets)]
    got = sparse_conv._input_grad(*channels_last, weight, 2, (6, 5, 11, 11), dtype)
    assert got.dtype == dtype and got.shape == (6, 5, 11, 11)
    torch.testing.assert_close(got, ref)
    assert got[:, :, 9].abs().sum() > 0  # reached from the last pooled conv row (7)
    assert got[:, :, 10].abs().sum() == 0 and got[:, :, :, 10].abs().sum() == 0  # beyond the pool's reach


def test_hidden_layers_take_the_event_driven_path_per_batch_by_spike_density(monkeypatch):
    from snnframe.engine import sparse_conv

    torch.manual_seed(0)
    net = csnn(input_shape=(1, 28, 28), num_classes=10, neuron=lambda: Leaky(beta=0.5, surrogate=FastSigmoid()))
    calls = []
    original = sparse_conv.conv_pool
    monkeypatch.setattr(
        sparse_conv, "conv_pool", lambda conv, p, x, binary=False: calls.append(binary) or original(conv, p, x, binary)
    )
    image = torch.rand(4, 1, 28, 28).unsqueeze(0).expand(6, -1, -1, -1, -1)
    firing = {}
    net[2].register_forward_hook(lambda m, i, o: firing.update(rate=float(o.detach().mean())))
    for bias, hidden in [(-0.3, True), (5.0, False)]:  # conv1 -> few spikes / every neuron fires
        calls.clear()
        with torch.no_grad():
            net[0].bias.fill_(bias)
        out = net(image)
        F.cross_entropy(out.sum(0), torch.arange(4)).backward()
        assert (0 < firing["rate"] < sparse_conv.MAX_HIDDEN_DENSITY) is hidden
        assert calls == ([True] if hidden else [])  # conv2 + pool2 on conv1's spikes
        assert net[0].weight.grad is not None and torch.isfinite(net[0].weight.grad).all()
