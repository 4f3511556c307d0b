"""Built-in neurons: lazy references only, so discovery never imports torch."""

import snnframe


@snnframe.hookimpl
def register_neurons(register):
    register("leaky", "snnframe.builtins.neurons.leaky:Leaky", default=True)
    register("synaptic", "snnframe.builtins.neurons.synaptic:Synaptic")
    register("alif", "snnframe.builtins.neurons.alif:ALIF")
    register("plif", "snnframe.builtins.neurons.plif:PLIF")
    register("rleaky", "snnframe.builtins.neurons.recurrent:RLeaky")
    register("rsynaptic", "snnframe.builtins.neurons.recurrent:RSynaptic")
    register("alpha", "snnframe.builtins.neurons.alpha:Alpha")
