"""Built-in loggers: ``tensorboard`` (lazy reference only: discovery imports neither torch nor tensorboard)."""

import snnframe


@snnframe.hookimpl
def register_loggers(register):
    register("tensorboard", "snnframe.builtins.loggers.tensorboard:TensorBoardLogger")
