"""snnframe: a plugin-based framework for training spiking neural networks."""

from snnframe.hookspecs import hookimpl

__all__ = ["hookimpl", "__version__"]
__version__ = "0.1.0"
