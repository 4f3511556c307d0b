"""Built-in architectures: lazy references only, so discovery never imports torch."""

import snnframe


@snnframe.hookimpl
def register_architectures(register):
    register("csnn", "snnframe.builtins.models.csnn:csnn")
    register("mlp", "snnframe.builtins.models.mlp:mlp")
    register("layers", "snnframe.builtins.models.layers:layers")
