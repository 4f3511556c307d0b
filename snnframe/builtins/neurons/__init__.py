"""Built-in neurons and surrogate gradients: lazy references only, so discovery never imports torch."""

import snnframe


@snnframe.hookimpl
def register_neurons(register):
    register("leaky", "snnframe.builtins.neurons.leaky:Leaky")
    register("synaptic", "snnframe.builtins.neurons.synaptic:Synaptic")
    register("alif", "snnframe.builtins.neurons.alif:ALIF")
    register("plif", "snnframe.builtins.neurons.plif:PLIF")


@snnframe.hookimpl
def register_surrogates(register):
    register("fast_sigmoid", "snnframe.builtins.neurons.surrogates:FastSigmoid")
    register("atan", "snnframe.builtins.neurons.surrogates:ATan")
    register("sigmoid", "snnframe.builtins.neurons.surrogates:Sigmoid")
    register("triangular", "snnframe.builtins.neurons.surrogates:Triangular")
    register("straight_through", "snnframe.builtins.neurons.surrogates:StraightThrough")
