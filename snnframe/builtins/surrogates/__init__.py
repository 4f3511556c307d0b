"""Built-in surrogate gradients: the engine's standard set (snnTorch's names and definitions)."""

import snnframe


@snnframe.hookimpl
def register_surrogates(register):
    register("fast_sigmoid", "snnframe.engine.surrogate:FastSigmoid")
    register("atan", "snnframe.engine.surrogate:ATan")
    register("sigmoid", "snnframe.engine.surrogate:Sigmoid")
    register("triangular", "snnframe.engine.surrogate:Triangular")
    register("straight_through", "snnframe.engine.surrogate:StraightThrough")
