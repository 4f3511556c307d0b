"""Built-in visualizers, run after training from the recipe's ``[[visualize]]`` tables."""

import snnframe


@snnframe.hookimpl
def register_visualizers(register):
    register("curves", "snnframe.builtins.visualizers.curves:Curves")
    register("spike_count_gif", "snnframe.builtins.visualizers.spike_count:SpikeCountGif")
    register("raster", "snnframe.builtins.visualizers.raster:Raster")
