"""snnframe: a plugin-based framework for training spiking neural networks.

``snnframe.hookimpl`` marks a plugin's hook implementations; ``snnframe.load_run(run_dir)`` reads
a run back (imported on first use, so ``import snnframe`` stays light); the model-building API
is :mod:`snnframe.engine`.
"""

from snnframe.hookspecs import hookimpl

__all__ = ["hookimpl", "load_run", "__version__"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "load_run":
        from snnframe.rundir import load_run

        return load_run
    raise AttributeError(f"module 'snnframe' has no attribute {name!r}")
