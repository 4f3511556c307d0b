"""Architectures: csnn and mlp shapes, parameters and value errors."""

import pytest
import torch
from torch import nn

from snnframe.builtins.models import register_architectures
from snnframe.builtins.models.csnn import csnn
from snnframe.builtins.models.mlp import mlp
from snnframe.builtins.neurons.leaky import Leaky
from snnframe.engine.neuron import SpikingNeuron
from snnframe.recipe.params import check_arguments


def leaky():
    return Leaky(beta=0.5)


@pytest.mark.parametrize("shape, features", [((1, 28, 28), 1024), ((2, 34, 34), 1600)])
def test_csnn_is_the_seeds_network(shape, features):
    net = csnn(input_shape=shape, num_classes=10, neuron=leaky)
    kinds = [type(m).__name__ for m in net]
    assert kinds == ["Conv2d", "MaxPool2d", "Leaky", "Conv2d", "MaxPool2d", "Leaky", "Flatten", "Linear", "Leaky"]
    assert (net[0].in_channels, net[0].out_channels, net[0].kernel_size) == (shape[0], 12, (5, 5))
    assert (net[3].in_channels, net[3].out_channels) == (12, 64)
    assert net[4].kernel_size == 2
    assert (net[7].in_features, net[7].out_features) == (features, 10)
    x = torch.rand(3, 2, *shape)
    assert net(x).shape == (3, 2, 10)


def test_csnn_parameters_and_one_neuron_per_spiking_layer():
    made = []

    def neuron():
        made.append(Leaky())
        return made[-1]

    net = csnn(input_shape=(3, 32, 32), num_classes=5, neuron=neuron, channels=[8, 16, 32], kernel_size=3, pool=2)
    # 32 -> 30 -> 15 -> 13 -> 6 -> 4 -> 2: 32 * 2 * 2 features
    assert net[-2].in_features == 128 and net[-2].out_features == 5
    assert len(made) == 4 and len({id(m) for m in made}) == 4
    assert [i for i, m in enumerate(net) if isinstance(m, SpikingNeuron)] == list(net.neuron_indices)
    assert net(torch.rand(4, 2, 3, 32, 32)).shape == (4, 2, 5)


def test_mlp_layers_and_output():
    net = mlp(input_shape=(1, 8, 8), num_classes=10, neuron=leaky, hidden=[32, 16])
    linears = [m for m in net if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64, 32), (32, 16), (16, 10)]
    assert sum(isinstance(m, SpikingNeuron) for m in net) == 3
    assert net(torch.rand(6, 4, 1, 8, 8)).shape == (6, 4, 10)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: csnn(input_shape=(1, 12, 12), num_classes=10, neuron=leaky), "too small"),
        (lambda: csnn(input_shape=(784,), num_classes=10, neuron=leaky), "image-shaped input"),
        (lambda: csnn(input_shape=(1, 28, 28), num_classes=10, neuron=leaky, channels=[]), "non-empty"),
        (lambda: csnn(input_shape=(1, 28, 28), num_classes=10, neuron=leaky, pool=0), "at least 1"),
        (
            lambda: csnn(input_shape=(1, 28, 28), num_classes=10, neuron=lambda: "lif"),
            "layer 2 is a str, not a torch.nn.Module",
        ),
        (lambda: mlp(input_shape=(1, 8, 8), num_classes=10, neuron=leaky, hidden=[0]), "positive integers"),
    ],
)
def test_bad_values_raise_value_error(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_recipe_values_are_checked_against_the_signatures():
    injected = ("input_shape", "num_classes", "neuron")
    assert check_arguments(csnn, {"channels": [12, 64], "kernel_size": 5, "pool": 2}, injected, "model", "csnn") == []
    problems = check_arguments(csnn, {"channels": [12, "x"], "kernel_size": 5.5}, injected, "model", "csnn")
    assert any("model.channels[1]" in p for p in problems) and any("model.kernel_size" in p for p in problems)
    assert check_arguments(mlp, {"hidden": [10, 10]}, injected, "model", "mlp") == []


def test_registered_architectures():
    seen = {}
    register_architectures(lambda name, ref, **options: seen.__setitem__(name, ref))
    assert seen == {
        "csnn": "snnframe.builtins.models.csnn:csnn",
        "mlp": "snnframe.builtins.models.mlp:mlp",
        "layers": "snnframe.builtins.models.layers:layers",
    }
