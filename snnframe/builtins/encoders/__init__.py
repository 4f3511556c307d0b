"""Built-in encoders: lazy references only, so discovery never imports torch."""

import snnframe


@snnframe.hookimpl
def register_encoders(register):
    register("static", "snnframe.builtins.encoders.static:Static")
    register("rate", "snnframe.builtins.encoders.spikegen:Rate")
    register("latency", "snnframe.builtins.encoders.spikegen:Latency")
    register("delta", "snnframe.builtins.encoders.spikegen:Delta")
    register("frames", "snnframe.builtins.encoders.frames:Frames")
