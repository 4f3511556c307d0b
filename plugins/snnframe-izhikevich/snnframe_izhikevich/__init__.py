"""Izhikevich neurons for snnframe.

The hook module stays import-light: the neuron is registered as a lazy reference, so
``snnframe list-plugins`` does not import torch.
"""

import snnframe

__version__ = "0.1.0"


@snnframe.hookimpl
def register_neurons(register):
    register("izhikevich", "snnframe_izhikevich.neuron:Izhikevich")
