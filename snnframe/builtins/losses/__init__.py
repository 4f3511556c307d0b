"""Built-in losses on output spikes ``[T, B, classes]`` (snnTorch's semantics)."""

import snnframe


@snnframe.hookimpl
def register_losses(register):
    register("ce_rate", "snnframe.builtins.losses.spike_losses:ce_rate", default=True)
    register("ce_count", "snnframe.builtins.losses.spike_losses:ce_count")
    register("mse_count", "snnframe.builtins.losses.spike_losses:mse_count")
