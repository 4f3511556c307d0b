"""Built-in trainers: ``bptt`` (backpropagation through time, checkpoints, DDP)."""

import snnframe


@snnframe.hookimpl
def register_trainers(register):
    register("bptt", "snnframe.builtins.training.bptt:BPTTTrainer", default=True)
