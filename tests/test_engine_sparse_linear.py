"""The event-driven linear layer: equal to nn.Linear and its gradients, chosen per batch by density."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from snnframe.builtins.models.mlp import mlp
from snnframe.builtins.neurons.leaky import Leaky
from snnframe.engine import sparse_linear


def spikes(shape, density, seed=0):
    return (torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < density).float()


@pytest.mark.parametrize("binary, dtype", [(True, torch.float32), (False, torch.float32), (True, torch.float64)])
def test_sparse_linear_equals_dense_with_all_gradients(binary, dtype):
    torch.manual_seed(0)
    layer = nn.Linear(90, 33).to(dtype)
    x = spikes((200, 90), 0.04).to(dtype)
    if not binary:
        x = x * torch.randint(1, 4, x.shape).to(dtype)  # event counts, the network's input
    else:
        x.requires_grad_()
    assert sparse_linear.applicable(layer, x, binary)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = sparse_linear.linear(layer, x, binary)
    assert not any(t.shape == x.shape for t in saved)  # the non-zero list, not the input
    assert sum(t.numel() * t.element_size() for t in saved if t is not layer.weight) < 0.5 * x.numel()
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    (out * grad).sum().backward()
    got = [layer.weight.grad.clone(), layer.bias.grad.clone()] + ([x.grad.clone()] if binary else [])
    layer.zero_grad()
    x.grad = None
    ref = F.linear(x, layer.weight, layer.bias)
    (ref * grad).sum().backward()
    torch.testing.assert_close(out, ref)
    for g, r in zip(got, [layer.weight.grad, layer.bias.grad] + ([x.grad] if binary else [])):
        torch.testing.assert_close(g, r)


def test_sparse_linear_on_silent_input_and_without_bias():
    layer = nn.Linear(20, 16, bias=False)
    x = torch.zeros(5, 20, requires_grad=True)
    out = sparse_linear.linear(layer, x, True)
    out.sum().backward()
    assert torch.equal(out, torch.zeros(5, 16))
    assert torch.equal(layer.weight.grad, torch.zeros(16, 20))
    torch.testing.assert_close(x.grad, layer.weight.detach().sum(0).expand(5, 20))


def test_sparse_linear_applies_only_where_it_can():
    layer = nn.Linear(100, 32)
    sparse = spikes((64, 100), 0.03)
    assert sparse_linear.applicable(layer, sparse)
    assert not sparse_linear.applicable(layer, spikes((64, 100), 0.5))  # dense input
    assert not sparse_linear.applicable(layer, sparse.clone().requires_grad_())  # a gradient, not spikes
    assert sparse_linear.applicable(layer, sparse.clone().requires_grad_(), binary=True)
    assert not sparse_linear.applicable(layer, sparse.unsqueeze(0))  # folded rows only
    assert not sparse_linear.applicable(layer.double(), sparse)  # dtypes differ
    layer.float().register_forward_hook(lambda *a: None)
    assert not sparse_linear.applicable(layer, sparse)  # hooks must see the layer run


def test_an_mlp_takes_the_event_driven_path_per_batch_and_learns(monkeypatch):
    torch.manual_seed(0)
    net = mlp(input_shape=(200,), num_classes=4, hidden=[64], neuron=lambda: Leaky(beta=0.9))
    calls = []
    original = sparse_linear.linear
    monkeypatch.setattr(
        sparse_linear, "linear", lambda layer, x, binary=False: calls.append(binary) or original(layer, x, binary)
    )
    y = torch.arange(16) % 4
    sparse, dense = spikes((25, 16, 200), 0.03, seed=1), spikes((25, 16, 200), 0.5, seed=1)
    net(dense)
    assert False not in calls  # half the inputs active: the input layer runs the dense product
    optimizer = torch.optim.Adam(net.parameters(), lr=5e-3)
    losses = []
    for _ in range(30):
        calls.clear()
        optimizer.zero_grad()
        loss = F.cross_entropy(net(sparse).sum(0), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        assert calls[0] is False  # the input layer, on sparse input that needs no gradient
    assert losses[-1] < 0.5 * losses[0]
