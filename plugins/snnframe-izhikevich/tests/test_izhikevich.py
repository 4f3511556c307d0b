import torch

import snnframe_izhikevich
from snnframe.plugins import load_plugins
from snnframe_izhikevich.neuron import Izhikevich


def spike_times(spikes):
    return torch.nonzero(spikes.flatten()).flatten().tolist()


def test_regular_spiking_neuron_adapts():
    # Izhikevich (2003), Fig. 2 "RS": under a step of current the inter-spike intervals lengthen.
    neuron = Izhikevich()
    spikes, v = neuron(torch.full((300, 1, 1), 1.0), return_mem=True)
    times = spike_times(spikes)
    assert len(times) >= 4
    intervals = [b - a for a, b in zip(times, times[1:])]
    assert intervals[-1] > intervals[0]
    assert v.max() <= 30.0 and v.min() < -65  # after-spike hyperpolarisation below c


def test_no_input_no_spikes_and_fresh_state_every_call():
    neuron = Izhikevich()
    assert neuron(torch.zeros(100, 2, 3)).sum() == 0
    x = torch.rand(50, 2, 3)
    assert torch.equal(neuron(x), neuron(x))


def test_gradients_reach_the_input_through_the_surrogate():
    x = torch.full((60, 4, 5), 0.8, requires_grad=True)
    Izhikevich()(x).sum().backward()
    assert x.grad.abs().sum() > 0


def test_bad_parameters_are_value_errors():
    import pytest

    with pytest.raises(ValueError, match="v_peak must be above"):
        Izhikevich(c=40.0)
    with pytest.raises(ValueError, match="dt"):
        Izhikevich(dt=0.0)


def test_registers_through_the_neurons_hook():
    plugins = load_plugins(extra=[("izhikevich-src", snnframe_izhikevich)], entry_points=False)
    assert plugins.registry("neurons").get("izhikevich") is Izhikevich
